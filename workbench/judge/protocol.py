"""The published evaluation protocol (see BENCHMARKS.md): what every reported number means.

Images are quantised to 8 bits, `crop` pixels are removed from every border, PSNR and SSIM are
measured on RGB and on the luma Y of ITU-R BT.601 limited range (16-235, MATLAB's rgb2ycbcr).
SSIM is Wang et al. 2004 as scikit-image computes it (workbench.images.metrics, tested against
it): 11x11 Gaussian window, sigma 1.5, population covariance, data range 255. RGB PSNR runs about
2 dB below Y PSNR on the same images.
"""
import math

import numpy as np
import torch

from workbench.api.pixels import to_levels
from workbench.images.metrics import psnr_of, ssim_of

DESCRIPTION = {
    "quantised": "8-bit (uint8) images, as saved files",
    "y": "luma Y of ITU-R BT.601 limited range (16-235), as MATLAB rgb2ycbcr",
    "ssim": "Wang et al. 2004 as scikit-image computes it: 11x11 Gaussian window, sigma 1.5, population covariance, data range 255",
    "psnr_mask": "RGB PSNR over the destroyed pixels only (masked degradations)",
}


def rgb_to_y(rgb):
    """3 x H x W levels 0..255 -> 1 x H x W Y in 16..235 (BT.601 limited range, as MATLAB rgb2ycbcr)."""
    return 16 + (65.481 * rgb[0:1] + 128.553 * rgb[1:2] + 24.966 * rgb[2:3]) / 255


def _crop(t, crop):
    return t[..., crop:t.shape[-2] - crop, crop:t.shape[-1] - crop] if crop else t


def measure(output, target, *, crop=0, mask=None):
    """All protocol numbers for one image: psnr_y, ssim_y, psnr_rgb, ssim_rgb (+ psnr_mask)."""
    out, ref = _crop(to_levels(output), crop), _crop(to_levels(target), crop)
    out_y, ref_y = rgb_to_y(out), rgb_to_y(ref)
    scores = {"psnr_y": psnr_of(out_y[None], ref_y[None], 255)[0], "ssim_y": ssim_of(out_y[None], ref_y[None], 255)[0],
              "psnr_rgb": psnr_of(out[None], ref[None], 255)[0], "ssim_rgb": ssim_of(out[None], ref[None], 255)[0]}
    if mask is not None:
        m = _crop(mask[0].cpu(), crop)
        scores["psnr_mask"] = psnr_of(out[:, m][None], ref[:, m][None], 255)[0] if m.any() else math.nan
    return scores


def modcrop(img, scale):
    """Crop H and W down to multiples of `scale` (top-left kept), as the SR protocol does first."""
    if scale <= 1:
        return img
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def range_warnings(tensors):
    """The lesson's evaluation bug was images in [-0.5, 0.5] where [-1, 1] was meant, which made
    every score look better. Warn, naming the tensors, when they do not share the [0, 1] range."""
    warnings, spans = [], {}
    for name, t in tensors.items():
        lo, hi = float(t.min()), float(t.max())
        spans[name] = (lo, hi)
        if lo < -0.2 or hi > 1.2:   # restorers overshoot [0, 1] a little; a range bug is far bigger
            warnings.append(f"{name} spans [{lo:.3g}, {hi:.3g}], outside the [0, 1] of the others")
    widths = {n: hi - lo for n, (lo, hi) in spans.items()}
    widest = max(widths.values(), default=0)
    for name, w in widths.items():
        if widest > 0.5 and w < 0.5 * widest and not any(name in x for x in warnings):
            lo, hi = spans[name]
            warnings.append(f"{name} spans only [{lo:.3g}, {hi:.3g}] while others span up to {widest:.3g}: different value ranges?")
    return warnings


def to_tensor(arr):
    """H x W x 3 levels 0..255 -> 3 x H x W float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32) / 255).permute(2, 0, 1)
