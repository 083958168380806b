"""Cutting crops: reflect padding, centre crops, and training crops cut from uint8 photos.

A training crop of a 12 MP photo is 0.03 % of it: converting the whole photo to float first (as
the pipeline once did) cost more than everything else an item does. `train_region` cuts the crop
from the photo as stored (uint8) with exactly the pixels that padding the float photo and then
cropping it would give, so only the crop is ever converted.
"""
import torch
import torch.nn.functional as F

# Crops per decoded photo when data.crops_per_image = 0: one per 4 crop areas of the photo, 1 to
# 256. Decoding costs in proportion to the photo's pixels and a crop's work to its own, so a fixed
# share keeps decoding a small part of each crop's cost (measured: a 12 MP JPEG decodes in 170 ms,
# a 480 px PNG sub-image in 4 ms, a crop is made and degraded in about 0.4 ms). 16 crops of a 512 px
# sample photo at 64 px, 14 of a 480 px sub-image, 169 of a DIV2K photo, 256 of a 12 MP one (9 % of
# its area per pass); 1 for photos not much larger than the crop (Tiny ImageNet).
AUTO_AREA_SHARE = 4
AUTO_MAX_CROPS = 256


def auto_crops(pixels, size):
    """data.crops_per_image = 0: the crops to take from a photo of `pixels` pixels."""
    return int(min(AUTO_MAX_CROPS, max(1, pixels // (AUTO_AREA_SHARE * size * size))))


def pad(img, left, right, top, bottom):
    """Reflect-pad a C x H x W image; replicate where the image is too small to reflect."""
    _, h, w = img.shape
    mode = "reflect" if max(left, right) < w and max(top, bottom) < h else "replicate"
    return F.pad(img[None], (left, right, top, bottom), mode=mode)[0]


def pad_to(img, size):
    """Pad evenly on both sides up to size x size where the image is smaller."""
    _, h, w = img.shape
    dh, dw = max(size - h, 0), max(size - w, 0)
    if not dh and not dw:
        return img
    return pad(img, dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)


def centre_crop(img, size):
    """Deterministic size x size crop from the middle (padded first if the image is smaller)."""
    _, h, w = img.shape
    if h >= size and w >= size:   # cut first: on a uint8 photo only the crop is ever copied
        top, left = centre(img, size)
        return img[:, top:top + size, left:left + size]
    img = pad_to(img, size)
    top, left = centre(img, size)
    return img[:, top:top + size, left:left + size]


def centre(img, size):
    _, h, w = img.shape
    return (h - size) // 2, (w - size) // 2


def can_cut(shape, size, margin):
    """True when `train_region` applies: the photo is larger than the reflect margin and, padded,
    at least as large as the crop (smaller photos take the float path, which pads them further)."""
    _, h, w = shape
    return margin < h and margin < w and h + 2 * margin >= size and w + 2 * margin >= size


def train_region(pixels, rng, size, margin):
    """A random size x size crop of the photo reflect-padded by `margin`, cut straight from
    `pixels` (any dtype); draws the corner from `rng` exactly as cropping the padded photo does."""
    _, h, w = pixels.shape
    top = int(rng.integers(h + 2 * margin - size + 1)) - margin
    left = int(rng.integers(w + 2 * margin - size + 1)) - margin
    if 0 <= top and top + size <= h and 0 <= left and left + size <= w:   # inside the photo: a plain cut
        return pixels[:, top:top + size, left:left + size].contiguous()
    # At a border: copy the small bounding box first (index_select would copy the whole photo
    # when it is a non-contiguous view, as decoded photos are), then mirror inside it.
    rows = _reflect(torch.arange(top, top + size), h)
    cols = _reflect(torch.arange(left, left + size), w)
    r0, c0 = int(rows.min()), int(cols.min())
    box = pixels[:, r0:int(rows.max()) + 1, c0:int(cols.max()) + 1].contiguous()
    return box.index_select(1, rows - r0).index_select(2, cols - c0)


def _reflect(idx, n):
    """Indices outside [0, n) mirrored without repeating the edge, as torch's reflect padding does."""
    idx = idx.abs()
    return torch.where(idx >= n, 2 * (n - 1) - idx, idx)
