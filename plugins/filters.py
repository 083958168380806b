"""`noise` and `blur`: sensor noise and defocus, which real recipes chain with the other damage."""
import math

import cv2
import numpy as np
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param


class Noise(Degradation):
    """Add Gaussian noise (the DnCNN denoising setting, Zhang et al. 2017).

    sigma: standard deviation in 0-255 grey levels, e.g. 15 or [5, 25].
    gray: true draws one noise plane for all channels (luminance noise), false one per channel.
    """

    is_random = True  # fresh noise for every seed, whatever the parameters

    def __init__(self, *, sigma=15.0, gray=False):
        self.sigma = Param(sigma, name="sigma", kind=float, lo=0.0, hi=255.0)
        self.gray = Param(gray, name="gray", kind=bool)

    def __call__(self, img, rng):
        sigma, gray = self.sigma.sample(rng), self.gray.sample(rng)
        c, h, w = img.shape
        noise = rng.standard_normal((1 if gray else c, h, w), dtype=np.float32)
        return (img + torch.from_numpy(noise).to(img) * (sigma / 255)).clamp(0, 1)


class Blur(Degradation):
    """Gaussian blur, as from defocus or a cheap lens.

    sigma: standard deviation in pixels, e.g. 1.0 or [0.5, 2.0]; the kernel spans 3 sigma each side.
    """

    def __init__(self, *, sigma=1.0):
        self.sigma = Param(sigma, name="sigma", kind=float, lo=0.0, hi=50.0)

    def __call__(self, img, rng):
        sigma = self.sigma.sample(rng)
        if sigma <= 0:
            return img.clone()
        radius = max(1, math.ceil(3 * sigma))
        x = np.arange(-radius, radius + 1, dtype=np.float32)
        k = np.exp(-(x**2) / (2 * sigma**2))
        k /= k.sum()
        # Separable, per plane, replicating the border (which also works for images smaller than
        # the kernel). OpenCV's filter is 4 times faster than torch's conv2d on 64 px crops and
        # 5-50 times on 256 px, where oneDNN's path for these thin kernels is slow and erratic.
        planes = img.detach().float().cpu().numpy()
        out = np.stack([cv2.sepFilter2D(p, -1, k, k, borderType=cv2.BORDER_REPLICATE) for p in planes])
        return torch.from_numpy(out).to(img).clamp(0, 1)


@hookimpl
def register_degradations(register):
    register("noise", Noise)
    register("blur", Blur)
