"""`jpeg`: in-memory JPEG encode/decode, the blocking and ringing artefacts dejpeg undoes (ARCNN, 2015).

OpenCV's codec is libjpeg-turbo, as Pillow's is, with the same quality tables (baseline-limited)
and chroma subsampling: the decoded pixels equal Pillow's quality-Q round trip exactly (checked by
tests/test_builtin_degradations.py), at 2-3 times the speed on small crops.
"""
import cv2
import numpy as np
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param
from workbench.api.pixels import to_uint8_hwc

SUBSAMPLING = {"4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
               "4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420}


class Jpeg(Degradation):
    """Compress as a JPEG file at `quality` and decode it again.

    quality: libjpeg quality 1 (worst) to 100; a range such as [10, 50] is sampled per image.
    subsampling: chroma subsampling, "4:2:0" (what cameras and the web use), "4:2:2" or "4:4:4".
    """

    def __init__(self, *, quality=30, subsampling="4:2:0"):
        self.quality = Param(quality, name="quality", kind=int, lo=1, hi=100)
        self.subsampling = Param(subsampling, name="subsampling", kind=str, choices=list(SUBSAMPLING))

    baselines = ("bilateral",)   # edge-preserving smoothing: the classic cheap deblocker

    def __call__(self, img, rng):
        quality, sub = self.quality.sample(rng), self.subsampling.sample(rng)
        # OpenCV wants BGR: merging the reversed planes builds it in one pass (a strided numpy
        # copy of the H x W x C view would cost more than the encoding itself).
        bgr = cv2.merge(list(to_uint8_hwc(img).transpose(2, 0, 1)[::-1]))
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SUBSAMPLING[sub]])
        if not ok:
            raise ValueError(f"OpenCV could not encode a {tuple(img.shape)} image as JPEG")
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        rgb = np.stack(cv2.split(out)[::-1])   # 3 x H x W, as the planes come: no strided copy
        return torch.from_numpy(rgb).float().div_(255).to(img)


@hookimpl
def register_degradations(register):
    register("jpeg", Jpeg)
