"""Image quality numbers on 8-bit-quantised RGB, as saved files would score.

`ssim` follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03), the
same definition as scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`; computed in torch so validation stays fast during training.
"""
import math

import torch
import torch.nn.functional as F


def quantize(img):
    """Round a [0, 1] image to the 256 levels an image file stores."""
    return (img.clamp(0, 1) * 255).round() / 255


def psnr(a, b):
    """Peak signal-to-noise ratio in dB between two [0, 1] images after 8-bit quantisation."""
    mse = torch.mean((quantize(a).double() - quantize(b).double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def batch_psnr(a, b):
    """Per-image PSNR of two B x C x H x W batches, as a list (inf for identical images)."""
    mse = ((quantize(a).double() - quantize(b).double()) ** 2).flatten(1).mean(1)
    return [math.inf if m == 0 else 10 * math.log10(1.0 / m) for m in mse.tolist()]


def _gaussian(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def batch_ssim(a, b):
    """Per-image SSIM (mean over channels) of two B x C x H x W batches in [0, 1], as a list."""
    a, b = quantize(a).double(), quantize(b).double()
    c = a.shape[1]
    g = _gaussian().to(a.device)
    if min(a.shape[-2:]) < len(g):   # smaller than the window: SSIM is undefined; report equality only
        return [1.0 if torch.equal(x, y) else 0.0 for x, y in zip(a, b)]

    def blur(x):
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).tolist()   # 'valid' window positions only, as scikit-image crops the border


def ssim(a, b):
    return batch_ssim(a[None], b[None])[0]
