"""Class maps (segmentation masks): reading a mask file, writing one as a palette PNG, drawing one over
its photo, and scoring a predicted map against the true one (IoU, Dice, pixel accuracy).

A mask file holds one class index per pixel, as VOC and ADE20K ship theirs: a palette PNG (the index
is the class, the palette only shows it) or a grayscale PNG (the value is the class). 255 marks
pixels to ignore (VOC's object borders), except in a mask set whose every value is 0 or 255, which
is a binary mask drawn in black and white: there 255 is the foreground, class 1.
"""
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

from workbench.errors import WorkbenchError, first_line
from workbench.images.files import save_pil

IGNORE = 255          # VOC's "void" label: neither trained on nor scored
OVERLAY_ALPHA = 0.55  # a class colour's share where it is drawn over the photo
MODES = ("P", "L", "1", "I;16", "I")   # modes whose pixel values are class indices


def read_values(path):
    """A mask file -> H x W int64 tensor of its stored values (palette indices or gray levels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.getexif().get(0x0112, 1) != 1:   # turned as its photo is (files.read_pixels)
                    im = ImageOps.exif_transpose(im)
                if im.mode not in MODES:
                    raise WorkbenchError(f"{path}: the mask is an {im.mode} image; save masks as palette or grayscale "
                                         "PNGs whose values are the class indices (0 = background, 255 = ignore).")
                arr = np.asarray(im, dtype=np.int64 if im.mode.startswith("I") else np.uint8)
    except WorkbenchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise WorkbenchError(f"{path}: the mask is too large for Pillow's decompression-bomb guard; downscale it "
                             "(nearest neighbour) with its photo.") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as e:
        raise WorkbenchError(f"{path}: cannot read the mask ({first_line(e)}); check it is a complete PNG.") from e
    return torch.from_numpy(arr.astype(np.int64))


def values_of(path):
    """The set of values a mask file holds."""
    return set(torch.unique(read_values(path)).tolist())


def decode(values, binary):
    """Stored values -> class indices: a binary (0/255) mask set's 255 is class 1, else values are kept."""
    return (values > 0).to(torch.int64) if binary else values


def palette(n=256):
    """The VOC colour map: class k's colour from the bits of k, spread over R, G and B, so neighbouring
    indices get distinct colours; index 0 is black and 255 (ignore) a light gray."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for k in range(n):
        c, r, g, b = k, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        out[k] = (r, g, b)
    if n > IGNORE:
        out[IGNORE] = (224, 224, 192)
    return out


PALETTE = palette()


def to_pil(classes):
    """H x W class indices (0..255) -> a palette ("P") PIL image: viewers show the colours, programs read the indices."""
    im = Image.fromarray(torch.as_tensor(classes).to(torch.uint8).cpu().numpy(), "P")
    im.putpalette(PALETTE.reshape(-1).tolist())
    return im


def write(classes, path, *, replace=False):
    """Write a class map as a palette PNG through the one atomic writer."""
    return save_pil(to_pil(classes), path, replace=replace)


def overlay(img, classes, alpha=OVERLAY_ALPHA):
    """3 x H x W photo in [0, 1] with every non-background class drawn over it in its palette colour."""
    classes = torch.as_tensor(classes).to(torch.int64).cpu()
    colour = torch.from_numpy(PALETTE).float()
    colour = colour / colour.amax(1, keepdim=True).clamp_min(1)   # at full brightness: VOC's dark red vanishes on a dark photo
    colour = colour[classes.clamp(0, 255)].permute(2, 0, 1)
    shown = ((classes != 0) & (classes != IGNORE)).to(torch.float32)[None] * alpha
    return img.float().cpu() * (1 - shown) + colour * shown


class Confusion:
    """A confusion matrix summed over a data set, so IoU is over all its pixels (as VOC scores), not a
    mean of per-image IoUs that a near-empty image would swing."""

    def __init__(self, classes):
        self.n = int(classes)
        self.matrix = torch.zeros(self.n, self.n, dtype=torch.int64)

    def add(self, predicted, target):
        """predicted, target: class indices of the same shape; IGNORE pixels of the target are left out."""
        predicted, target = predicted.reshape(-1).cpu().to(torch.int64), target.reshape(-1).cpu().to(torch.int64)
        keep = (target != IGNORE) & (target >= 0) & (target < self.n)
        index = target[keep] * self.n + predicted[keep].clamp(0, self.n - 1)
        self.matrix += torch.bincount(index, minlength=self.n * self.n).reshape(self.n, self.n)
        return self

    def scores(self, names=None):
        """{"miou", "dice", "pixel_accuracy", "iou": {name: IoU}}: means over the classes present in the
        target or the prediction (a class absent from both has no IoU, not a perfect one)."""
        m = self.matrix.to(torch.float64)
        hit, truth, said = m.diag(), m.sum(1), m.sum(0)
        union = truth + said - hit
        seen = union > 0
        iou = torch.where(seen, hit / union.clamp_min(1), torch.nan)
        dice = torch.where(seen, 2 * hit / (truth + said).clamp_min(1), torch.nan)
        names = list(names or [])
        names += [f"class {k}" for k in range(len(names), self.n)]
        total = m.sum()
        return {"miou": _mean(iou[seen]), "dice": _mean(dice[seen]),
                "pixel_accuracy": float(hit.sum() / total) if total else float("nan"),
                "iou": {names[k]: float(iou[k]) for k in range(self.n) if seen[k]}}


def _mean(t):
    return float(t.mean()) if len(t) else float("nan")
