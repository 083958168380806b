"""Masks of missing pixels: reading a user's mask file, and the classical push-pull fill of the holes.

Models that are told where the holes are (`takes_mask`) and those that learn where the damage is
(`learns_mask`) are capabilities of the model contract: workbench.api.contracts.
"""
import numpy as np
import torch
from PIL import Image, ImageOps
from torch.nn import functional as F

from workbench.api.contracts import MASK_HELP
from workbench.errors import WorkbenchError
from workbench.images import classmaps
from workbench.images.files import has_alpha, read_image

CHECKED = 16   # palette entries that tell the workbench's class maps from a user's palette image


def read_mask(path, size):
    """A user's mask file -> bool 1 x H x W, True where pixels are missing; `size` is the photo's (w, h).

    Missing = white (mean of the channels >= 0.5). A mask with an alpha channel (strokes painted on
    a transparent layer) counts only its opaque pixels: transparent = known, whatever its colour,
    and opaque white = missing (alpha >= 0.5 and colour >= 0.5). A class map a segmentation run
    wrote (`restore` of find-watermark: the workbench's palette) marks every class but background
    and ignore as missing, so its masks feed an inpainter as they are."""
    found = _class_map(path)
    if found is not None:
        if (found.shape[-1], found.shape[-2]) != tuple(size):
            raise WorkbenchError(f"{path}: the mask is {found.shape[-1]}x{found.shape[-2]} but the photo is "
                                 f"{size[0]}x{size[1]}; the mask must be {MASK_HELP}.")
        return ((found != 0) & (found != classmaps.IGNORE))[None]
    img = read_image(path)
    if (img.shape[2], img.shape[1]) != tuple(size):
        raise WorkbenchError(f"{path}: the mask is {img.shape[2]}x{img.shape[1]} but the photo is {size[0]}x{size[1]}; "
                             f"the mask must be {MASK_HELP}.")
    white = img.mean(dim=0, keepdim=True) >= 0.5
    alpha = _alpha(path)
    return white if alpha is None else white & (alpha >= 0.5)


def _class_map(path):
    """H x W class indices of a palette PNG in the workbench's own palette (workbench.images.classmaps), else None."""
    try:
        with Image.open(path) as im:
            ours = im.mode == "P" and not has_alpha(im) and \
                (im.getpalette() or [])[:3 * CHECKED] == classmaps.PALETTE[:CHECKED].reshape(-1).tolist()
    except OSError:
        return None   # read_image says what is wrong with the file
    return classmaps.read_values(path) if ours else None


def _alpha(path):
    """1 x H x W alpha in [0, 1] of an image that has one, else None (read_image composited it on white)."""
    with Image.open(path) as im:
        if not has_alpha(im):
            return None
        im = ImageOps.exif_transpose(im)
        return torch.from_numpy(np.asarray(im.convert("RGBA"))[..., 3].astype(np.float32) / 255)[None]


@torch.no_grad()
def push_pull(img, hole):
    """Fill the holes of a B x C x H x W image smoothly from the known pixels around them.

    Push-pull (Gortler et al., "The Lumigraph", SIGGRAPH 1996): average the known pixels down a
    pyramid, each level's weight the known fraction capped at 1, then fill each level's gaps from
    the level above on the way back up. Linear in the pixel count and blind to hole size, so it
    gives a masked network a starting fill at any resolution (a convolution's reach is fixed).
    Runs without gradients: it is a fixed pre-fill, not a layer to train through.
    """
    x, hole = img.float(), hole.to(torch.bool)
    w = (~hole).float().expand_as(x[:, :1])
    levels = []
    while True:
        levels.append((x, w))
        h, wd = x.shape[-2:]
        if h == 1 and wd == 1:
            break
        pad = (0, wd % 2, 0, h % 2)  # odd sides: a zero-weight row or column
        s = F.avg_pool2d(F.pad(w, pad), 2) * 4
        x = F.avg_pool2d(F.pad(x * w, pad), 2) * 4 / s.clamp_min(1e-8)
        w = s.clamp_max(1.0)
    x, w = levels.pop()
    x = x * w + 0.5 * (1 - w)  # no known pixel at all: mid-grey
    while levels:
        finer, fw = levels.pop()
        up = F.interpolate(x, size=finer.shape[-2:], mode="bilinear", align_corners=False)
        x = finer * fw + up * (1 - fw)
    return torch.where(hole, x, img.float()).to(img.dtype)
