"""`noise` and `blur`: sensor noise and defocus, which real recipes chain with the other damage."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from workbench import hookimpl
from workbench.degradation import Degradation
from workbench.params import Param


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
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-(x**2) / (2 * sigma**2))
        k = (k / k.sum()).to(img)
        c = img.shape[0]
        # Separable: two 1-D passes; replicate padding works for images smaller than the kernel.
        out = img[None]
        out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return out[0].clamp(0, 1)


@hookimpl
def register_degradations(register):
    register("noise", Noise)
    register("blur", Blur)
