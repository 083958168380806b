"""`jpeg`: in-memory JPEG encode/decode, the blocking and ringing artefacts dejpeg undoes (ARCNN, 2015)."""
import io

import numpy as np
from PIL import Image

from workbench import hookimpl
from workbench.degradation import Degradation, from_uint8_hwc, to_uint8_hwc
from workbench.params import Param

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


class Jpeg(Degradation):
    """Compress as a JPEG file at `quality` and decode it again.

    quality: libjpeg quality 1 (worst) to 100; a range such as [10, 50] is sampled per image.
    subsampling: chroma subsampling, "4:2:0" (what cameras and the web use), "4:2:2" or "4:4:4".
    """

    def __init__(self, *, quality=30, subsampling="4:2:0"):
        self.quality = Param(quality, name="quality", kind=int, lo=1, hi=100)
        self.subsampling = Param(subsampling, name="subsampling", kind=str, choices=list(SUBSAMPLING))

    def __call__(self, img, rng):
        quality, sub = self.quality.sample(rng), self.subsampling.sample(rng)
        buf = io.BytesIO()
        Image.fromarray(to_uint8_hwc(img)).save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING[sub])
        buf.seek(0)
        with Image.open(buf) as im:
            return from_uint8_hwc(np.asarray(im.convert("RGB")), like=img)


@hookimpl
def register_degradations(register):
    register("jpeg", Jpeg)
