"""Perceptual metrics for `eval`, `grid` and the report: LPIPS (Zhang et al. 2018) and DISTS (Ding et
al. 2020), computed by torchmetrics on the very images PSNR/SSIM see (8-bit, border-cropped RGB).
Lower is better for both: they are distances, where PSNR and SSIM are similarities.

Why torchmetrics: it ships the LPIPS linear layers and DISTS's alpha/beta in the package, takes its
backbones (AlexNet, VGG16) from torchvision's cache like our perceptual loss, and has few
dependencies; pyiqa's pull in a second OpenCV and many more. The backbone weights are downloaded
once where there is a network; offline a metric is skipped with one line naming the file.

A photo is scored whole up to TILE x TILE pixels; a bigger one (a 12 MP phone photo: VGG16's
first layers alone would need ~10 GB) on TILE-sized tiles, the area-weighted mean of their
scores. Set5/Set14/DIV2K-crop figures are therefore whole-image scores, as published.
"""
import math

import torch

from workbench.api.pixels import to_levels
from workbench.api.pretrained import ensure_cached

# name -> (torchvision backbone, label); LPIPS with AlexNet is what papers report ("LPIPS" alone).
METRICS = {"lpips": ("alexnet", "LPIPS (AlexNet)"), "dists": ("vgg16", "DISTS (VGG16)")}
DEFAULT = ("lpips",)
TILE = 1024
MIN_SIDE = 32
LOWER_IS_BETTER = frozenset(METRICS)


class Unavailable(Exception):
    """A perceptual metric that cannot run here (weights missing offline): the reason, one line."""


def parse(text):
    """--perceptual 'lpips,dists' or 'none' -> tuple of names; a ValueError names an unknown one."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown perceptual metric {', '.join(unknown)}: choose from {', '.join(METRICS)}, or none")
    return tuple(dict.fromkeys(names))


def load(name, device):
    """A scorer fn(output, target, crop) -> float for metric `name`, on `device`; Unavailable if
    its weights cannot be had."""
    from workbench.errors import WorkbenchError

    backbone, label = METRICS[name]
    try:
        ensure_cached(backbone, label)
    except WorkbenchError as e:
        raise Unavailable(str(e)) from None
    if name == "lpips":
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(device).eval()

        def distance(a, b):
            metric.reset()
            return float(metric(a, b))
    else:
        # torchmetrics' DISTS metric rebuilds its network (VGG16 and its weights: ~3 s) on every
        # update; its own network, built once, gives the same score per pair.
        from torchmetrics.functional.image.dists import DISTSNetwork

        net = DISTSNetwork().to(device).eval()

        def distance(a, b):
            return float(net(a, b))

    def score(output, target, crop=0):
        return _tiled(distance, quantised(output, crop).to(device), quantised(target, crop).to(device))

    return score


def quantised(img, crop=0):
    """3 x H x W in [0, 1] -> 1 x 3 x H' x W': 8-bit levels back in [0, 1], `crop` border pixels off,
    exactly the pixels `protocol.measure` scores."""
    levels = to_levels(img)
    if crop:
        levels = levels[..., crop:levels.shape[-2] - crop, crop:levels.shape[-1] - crop]
    return (levels / 255).float()[None]


def _spans(n):
    """[(start, stop)] cutting n pixels into the fewest near-equal parts of at most TILE: no slivers."""
    parts = math.ceil(n / TILE)
    step = math.ceil(n / parts)
    return [(i, min(i + step, n)) for i in range(0, n, step)]


@torch.no_grad()
def _tiled(distance, out, ref):
    if min(out.shape[-2:]) < MIN_SIDE:
        return math.nan   # the backbone's pooling cannot see so small an image; as SSIM below its window
    total, area = 0.0, 0
    for top, bottom in _spans(out.shape[-2]):
        for left, right in _spans(out.shape[-1]):
            n = (bottom - top) * (right - left)
            total += distance(out[..., top:bottom, left:right], ref[..., top:bottom, left:right]) * n
            area += n
    return total / area


class Scorers:
    """The perceptual metrics asked for, loaded once; those that cannot run are listed in `skipped`
    ({name: reason}) and left out, so `eval` still reports the others."""

    def __init__(self, names, device):
        self.fns, self.skipped = {}, {}
        for name in names:
            try:
                self.fns[name] = load(name, device)
            except Unavailable as e:
                self.skipped[name] = str(e)

    def __call__(self, output, target, crop=0):
        return {name: fn(output, target, crop) for name, fn in self.fns.items()}
