"""Segmentation data: a folder holding images/ and masks/ (the VOC and ADE20K layout) read as one source
whose pixels carry the class map as a 4th channel, so every crop, flip and pad moves photo and mask alike.

masks/ holds a PNG (palette or grayscale, workbench.images.classmaps) under each photo's name, any
suffix: images/city/001.jpg pairs with masks/city/001.png. An optional classes.txt beside the two
folders names the classes, one per line, background first.
"""
from pathlib import Path

import numpy as np
import torch

from workbench.data.sources import _SUFFIXES, _local, median_pixels, shuffled
from workbench.errors import WorkbenchError
from workbench.images import classmaps
from workbench.images.files import IMAGE_SUFFIXES, list_images, read_pixels, to_float

LAYOUT = ("a folder holding images/ (the photos) and masks/ (a PNG of class indices under each photo's name), "
          "or a degradation that reports where it damaged the photo (watermark, erase) as the find-watermark recipe has")


def is_pair_folder(path):
    path = Path(path)
    return (path / "images").is_dir() and (path / "masks").is_dir()


class SegmentationSource:
    """Photos under root/images with their class maps under root/masks: pixels(i) is 4 x H x W, the
    photo's 3 channels and its class indices as a 4th (uint8, or index / 255 for a 16-bit photo)."""

    def __init__(self, root, files, masks, binary, classes):
        self.root, self.files, self.masks = Path(root), list(files), list(masks)
        self.binary, self.classes = binary, list(classes)

    def __len__(self):
        return len(self.files)

    def pixels(self, i):
        img = read_pixels(self.root / "images" / self.files[i])
        path = self.root / "masks" / self.masks[i]
        values = classmaps.read_values(path)
        if tuple(values.shape) != tuple(img.shape[-2:]):
            raise WorkbenchError(f"{path}: the mask is {values.shape[1]}x{values.shape[0]} but its photo is "
                                 f"{img.shape[2]}x{img.shape[1]}; a mask has its photo's size.")
        labels = classmaps.decode(values, self.binary).clamp(0, 255).to(torch.uint8)[None]
        return torch.cat([img, labels if img.dtype == torch.uint8 else labels.float() / 255])

    def load(self, i):
        return to_float(self.pixels(i))

    __getitem__ = load
    order = staticmethod(lambda indices, rng: shuffled(indices, rng))

    def typical_pixels(self):
        picks = np.linspace(0, len(self) - 1, min(len(self), 16)).astype(int)
        return median_pixels(self.root / "images" / self.files[k] for k in picks)

    def name(self, i):
        return self.files[i]

    def label(self, i):
        return None

    def limited(self, limit):
        if limit <= 0 or limit >= len(self):
            return self
        return SegmentationSource(self.root, self.files[:limit], self.masks[:limit], self.binary, self.classes)

    def __repr__(self):
        return f"SegmentationSource({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"


def open_segmentation(spec, *, split="train", limit=0, key=None):
    """`spec` (a folder, or a .zip of one) as a SegmentationSource; the masks are read once here, to
    count the classes and to tell a binary black-and-white mask set from one of class indices.
    `key` names the setting in messages (default: data.train or data.valid, by `split`)."""
    key = key or ("data.train" if split == "train" else "data.valid")
    root = _local(spec, key)
    if not is_pair_folder(root):
        raise WorkbenchError(f"{key}: {root} is not a segmentation data set; a segment recipe trains on {LAYOUT}.")
    photos = list_images(root / "images")
    if not photos:
        raise WorkbenchError(f"{key}: no images ({_SUFFIXES}) under {root / 'images'}; add the photos there.")
    files, masks, missing = [], [], []
    for photo in photos:
        rel = photo.relative_to(root / "images")
        mask = _mask_of(root / "masks", rel)
        if mask is None:
            missing.append(rel.as_posix())
            continue
        files.append(rel.as_posix())
        masks.append(mask.relative_to(root / "masks").as_posix())
    if missing:
        raise WorkbenchError(f"{key}: {len(missing)} of the {len(photos)} photos under {root / 'images'} have no mask under "
                             f"{root / 'masks'} (first: {missing[0]}); give each a PNG of the same name, or remove it.")
    values = set()
    for mask in masks[:limit] if limit > 0 else masks:
        values |= classmaps.values_of(root / "masks" / mask)
    binary = values <= {0, classmaps.IGNORE} and classmaps.IGNORE in values
    labels = {0, 1} if binary else values - {classmaps.IGNORE}
    if len(labels) < 2 and max(labels, default=0) == 0:
        raise WorkbenchError(f"{key}: every mask under {root / 'masks'} holds only class 0 (background); there is nothing "
                             "to segment: mark the objects with class indices 1, 2, ... (or 255 for a black-and-white mask).")
    if max(labels) >= classmaps.IGNORE:
        raise WorkbenchError(f"{key}: the masks under {root / 'masks'} hold the value {max(labels)}; class indices run "
                             f"from 0 to {classmaps.IGNORE - 1} ({classmaps.IGNORE} = ignore).")
    count = max(labels) + 1
    return SegmentationSource(root, files, masks, binary, _names(root, count, binary)).limited(limit)


def _mask_of(folder, rel):
    """masks/REL with the photo's suffix or any other image suffix (.png first), or None."""
    for suffix in dict.fromkeys((".png", rel.suffix.lower(), *IMAGE_SUFFIXES)):
        candidate = folder / rel.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _names(root, count, binary):
    """Class names: classes.txt beside images/ and masks/ (one per line), else background, class 1, ..."""
    listed = root / "classes.txt"
    names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if listed.is_file() else []
    defaults = ["background", "foreground"] if binary else ["background"] + [f"class {k}" for k in range(1, count)]
    return (names + defaults[len(names):])[:max(count, len(names))]
