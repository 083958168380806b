"""PSNR and SSIM, once: on 8-bit-quantised images, as saved files would score.

`ssim` is Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, population
covariance, the mean over 'valid' window positions and then over channels): scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`, which
tests/test_metrics.py checks it against. Written in torch so validation during training and `eval`
on full-size photos share one implementation.
"""
import math

import torch
import torch.nn.functional as F

from workbench.api.pixels import to_levels

WINDOW, SIGMA = 11, 1.5   # Wang et al.'s Gaussian window
K1, K2 = 0.01, 0.03


def psnr_of(a, b, peak):
    """Per-image PSNR in dB of two B x ... float tensors whose values span `peak` (inf if equal)."""
    mse = (a.double() - b.double()).square().flatten(1).mean(1)
    return [math.inf if m == 0 else 10 * math.log10(peak**2 / m) for m in mse.tolist()]


def _gaussian():
    x = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return g / g.sum()


def ssim_of(a, b, peak):
    """Per-image SSIM of two B x C x H x W float tensors whose values span `peak` (the mean over
    channels); NaN where the image is smaller than the window, for which SSIM is undefined."""
    if min(a.shape[-2:]) < WINDOW:
        return [math.nan] * len(a)
    g = _gaussian().to(a.device)
    row, col = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)
    c1, c2 = (K1 * peak) ** 2, (K2 * peak) ** 2
    total = torch.zeros(len(a), dtype=torch.float64, device=a.device)
    for ch in range(a.shape[1]):   # one channel at a time: a 12 MP photo's maps stay near scikit-image's memory
        x, y = a[:, ch:ch + 1].double(), b[:, ch:ch + 1].double()
        blur = lambda t: F.conv2d(F.conv2d(t, row), col)  # noqa: E731  ('valid' positions only)
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        total += s.flatten(1).mean(1)
    return (total / a.shape[1]).tolist()


def batch_psnr(a, b):
    """Per-image PSNR of two B x C x H x W batches in [0, 1] after 8-bit quantisation, as a list."""
    return psnr_of(to_levels(a), to_levels(b), 255)


def batch_ssim(a, b):
    """Per-image SSIM of two B x C x H x W batches in [0, 1] after 8-bit quantisation, as a list."""
    return ssim_of(to_levels(a), to_levels(b), 255)


def psnr(a, b):
    """PSNR in dB of two C x H x W images in [0, 1] after 8-bit quantisation."""
    return batch_psnr(a[None], b[None])[0]


def ssim(a, b):
    """SSIM of two C x H x W images in [0, 1] after 8-bit quantisation."""
    return batch_ssim(a[None], b[None])[0]
