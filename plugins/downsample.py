"""`downsample`: shrink by an integer scale and blow back up, the damage super-resolution undoes.

Pillow's bicubic resize antialiases when shrinking, like MATLAB's `imresize`, so the low-res images
match the published super-resolution protocol (see BENCHMARKS.md); OpenCV's INTER_CUBIC does not.
As in the fast.ai lesson, the model sees the low-res image upsampled back to full size, and
`restore` upsamples a real low-res photo the same way first (`prepare`).
"""
import cv2
from PIL import Image

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param
from workbench.api.pixels import from_uint8_hwc, to_uint8_hwc

FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "box": Image.BOX}


class Downsample(Degradation):
    """Shrink by `scale` with an antialiased `filter`, then upsample back with `up` to the original size.

    scale: integer factor (2, 3, 4, ...; a range or choices are sampled per image).
    filter: shrinking filter, bicubic (the protocol), bilinear, lanczos or box.
    up: filter that restores the original size (bicubic, as in the lesson and the protocol).
    """

    def __init__(self, *, scale=2, filter="bicubic", up="bicubic"):
        self.scale = Param(scale, name="scale", kind=int, lo=1, hi=64)
        self.filter = Param(filter, name="filter", kind=str, choices=list(FILTERS))
        self.up = Param(up, name="up", kind=str, choices=list(FILTERS))

    baselines = ("bicubic", "lanczos")   # the published rows every super-resolution paper beats

    def __call__(self, img, rng):
        scale, down, up = self.scale.sample(rng), self.filter.sample(rng), self.up.sample(rng)
        h, w = img.shape[-2:]
        return from_uint8_hwc(_shrink(img, scale, down).resize((w, h), FILTERS[up]), like=img)

    @property
    def scale_factor(self):
        # A range or choices was trained on every scale up to the largest; the most damaged input it
        # saw is the safest guess for a real low-res photo of unknown scale.
        return int(self.scale.max)

    def shrink(self, img, rng):
        return from_uint8_hwc(_shrink(img, self.scale.sample(rng), self.filter.sample(rng)), like=img)

    def prepare(self, photo):
        """Upsample a real low-res photo by the largest scale with the filter training upsampled with."""
        up = self.up.choices[0] if self.up.choices else self.up.value
        _, h, w = photo.shape
        # Through 8 bits, as in training: the model never saw finer steps in its inputs.
        big = Image.fromarray(to_uint8_hwc(photo)).resize((w * self.scale_factor, h * self.scale_factor), FILTERS[up])
        return from_uint8_hwc(big, like=photo)


def _shrink(img, scale, down):
    """The antialiased low-res PIL image. Quantised to 8 bits first: the protocol's low-res images
    are 8-bit files. Merging the planes builds the H x W x 3 array faster than Pillow's copy of the
    strided view would."""
    h, w = img.shape[-2:]
    pil = Image.fromarray(cv2.merge(list(to_uint8_hwc(img).transpose(2, 0, 1))))
    return pil.resize((max(1, w // scale), max(1, h // scale)), FILTERS[down])


@hookimpl
def register_degradations(register):
    register("downsample", Downsample)
