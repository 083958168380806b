"""A third-party "realistic downsample": a Gaussian blur, OpenCV's area shrink, bicubic back up.

It names no engine internals: it declares the super-resolution capabilities (scale_factor, shrink,
prepare, baselines) and gets restore, eval and the bicubic/lanczos baselines like the built-in.
"""
import cv2
import numpy as np
from PIL import Image

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param
from workbench.api.pixels import from_uint8_hwc, to_uint8_hwc


class AreaDownsample(Degradation):
    """Blur by `sigma`, shrink by `scale` with pixel-area averaging, upsample back with bicubic."""

    baselines = ("bicubic", "lanczos", "nearest")   # the last registered below, by this plugin

    def __init__(self, *, scale=2, sigma=0.6):
        self.scale = Param(scale, name="scale", kind=int, lo=2, hi=8)
        self.sigma = Param(sigma, name="sigma", kind=float, lo=0.0, hi=3.0)

    @property
    def scale_factor(self):
        return int(self.scale.max)

    def shrink(self, img, rng):
        s, sigma = self.scale.sample(rng), self.sigma.sample(rng)
        arr = to_uint8_hwc(img)
        if sigma > 0:
            arr = cv2.GaussianBlur(arr, (0, 0), sigma)
        h, w = arr.shape[:2]
        small = cv2.resize(arr, (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
        return from_uint8_hwc(small.reshape(small.shape[0], small.shape[1], -1), like=img)

    def __call__(self, img, rng):
        h, w = img.shape[-2:]
        small = Image.fromarray(to_uint8_hwc(self.shrink(img, rng)))
        return from_uint8_hwc(small.resize((w, h), Image.BICUBIC), like=img)

    def prepare(self, photo):
        _, h, w = photo.shape
        s = self.scale_factor
        return from_uint8_hwc(Image.fromarray(to_uint8_hwc(photo)).resize((w * s, h * s), Image.BICUBIC), like=photo)


@hookimpl
def register_degradations(register):
    register("area-downsample", AreaDownsample)


def nearest(deg, chain):
    """Nearest-neighbour enlargement of the degradation's own low-res image: the crudest baseline."""
    if len(chain) != 1 or deg.is_random:
        return None

    def fn(clean, damaged, mask):
        small = Image.fromarray(to_uint8_hwc(deg.shrink(clean, np.random.default_rng(0))))
        return from_uint8_hwc(small.resize(tuple(reversed(clean.shape[-2:])), Image.NEAREST))
    return fn


@hookimpl
def register_baselines(register):
    register("nearest", nearest)
