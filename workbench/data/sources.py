"""Image sources: scikit-image's sample photos, a folder searched recursively, or Tiny ImageNet;
the folder or the Tiny ImageNet root may come as a .zip, extracted once beside it (data/archive.py).

Every source has `len(src)`, `src.pixels(i)` -> 3 x H x W uint8 (float32 in [0, 1] for 16-bit
photos), `src.load(i)` -> the same as float in [0, 1], `src.name(i)`, `src.label(i)` -> class
index or None, `src.classes`, `src.order(indices, rng)` -> one epoch's order of `indices` and
`src.typical_pixels()`. Folder sources hold paths only and read pixels per item, so a DataLoader
worker never receives a copy of the whole data set. A folder `workbench prepare` wrote is a
ShardSource (data/shards.py).
"""
from pathlib import Path

import numpy as np
import torch

from workbench.data import archive
from workbench.data.shards import ShardSource, is_prepared
from workbench.errors import WorkbenchError
from workbench.images.files import IMAGE_SUFFIXES, list_images, read_pixels, to_float

# Everyday colour photos that ship inside the scikit-image wheel (no pooch download). Left out:
# hubble_deep_field (82% black sky), retina (black border, 1411 px), colorwheel and logo
# (synthetic), cat (the same photo as chelsea), and the grey-level images.
SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "immunohistochemistry")
SPLITS = {"train": "train", "valid": "valid", "val": "valid"}
_SUFFIXES = ", ".join(s.lstrip(".") for s in IMAGE_SUFFIXES)


class SampleSource:
    """scikit-image's bundled photos, read from the wheel on first use and kept as uint8 (about 4 MB)."""

    classes = []

    def __init__(self, names=SAMPLE_NAMES):
        self.names = list(names)
        self._cache = {}

    def __len__(self):
        return len(self.names)

    def pixels(self, i):
        name = self.names[i]
        if name not in self._cache:
            self._cache[name] = _skimage_photo(name)
        return torch.from_numpy(self._cache[name]).permute(2, 0, 1)

    def load(self, i):
        return to_float(self.pixels(i))

    __getitem__ = load
    order = staticmethod(lambda indices, rng: shuffled(indices, rng))

    def typical_pixels(self):
        return 512 * 512   # the sample photos are about 512 x 512

    def name(self, i):
        return self.names[i]

    def label(self, i):
        return None

    def __repr__(self):
        return f"SampleSource({len(self)} scikit-image photos)"


def _skimage_photo(name):
    import skimage.data  # imported here: it is slow and only the sample source needs it

    arr = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return np.ascontiguousarray(arr[:, :, :3])


class FolderSource:
    """Image files under `root` given as relative paths, with optional class labels."""

    def __init__(self, root, files, labels=None, classes=()):
        self.root = Path(root)
        self.files = [str(f) for f in files]  # posix-style relative paths: cheap to pickle to workers
        self.labels = None if labels is None else [int(x) for x in labels]
        self.classes = list(classes)

    def __len__(self):
        return len(self.files)

    def pixels(self, i):
        return read_pixels(self.root / self.files[i])

    def load(self, i):
        return to_float(self.pixels(i))

    __getitem__ = load
    order = staticmethod(lambda indices, rng: shuffled(indices, rng))

    def typical_pixels(self):
        """Median pixel count of up to 16 photos spread over the folder, from their headers only."""
        return median_pixels(self.root / self.files[k] for k in np.linspace(0, len(self) - 1, min(len(self), 16)).astype(int))

    def name(self, i):
        return self.files[i]

    def label(self, i):
        return None if self.labels is None else self.labels[i]

    def limited(self, limit):
        """The first `limit` images (all when limit <= 0)."""
        if limit <= 0 or limit >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return FolderSource(self.root, self.files[:limit], labels, self.classes)

    def __repr__(self):
        extra = f", {len(self.classes)} classes" if self.classes else ""
        return f"FolderSource({str(self.root)!r}, {len(self)} images{extra})"


def open_source(spec, *, split="train", limit=0):
    """"sample", a folder, one image file, or a Tiny ImageNet root (its `split`: train or valid),
    the last two also as a .zip.

    A folder must hold at least one readable image: its images are read in order until one works
    (so a healthy folder costs one read), else the error names the folder and the first failure.
    """
    if split not in SPLITS:
        raise WorkbenchError(f"unknown data split '{split}'; use 'train' or 'valid'.")
    split = SPLITS[split]
    key, flag = f"data.{split}", "--data" if split == "train" else "--valid"
    if str(spec) == "sample":
        src = SampleSource()
        return SampleSource(src.names[:limit]) if limit > 0 else src
    path = _local(spec, key)
    if is_prepared(path):
        try:
            return ShardSource(path).limited(limit)
        except WorkbenchError as e:
            raise WorkbenchError(f"{key}: {e}") from e
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        src = FolderSource(path.parent, [path.name])
    elif not path.is_dir():
        raise WorkbenchError(f"{key}: data folder {path} does not exist; pass {flag} DIR or set {key} to a folder (or .zip) of images.")
    else:
        try:
            if is_tiny_imagenet(path):
                src = _tiny_imagenet(path, split)
            elif (path / "val_annotations.txt").is_file():
                src = _tiny_imagenet_val(path, _classes_beside(path))
            else:
                src = _folder(path)
        except WorkbenchError as e:
            raise WorkbenchError(f"{key}: {e}") from e
    src = src.limited(limit)
    _check_readable(src, key, path)
    return src


def _local(spec, key):
    """The folder to read for `spec`: a .zip file's extracted folder, else the path as given."""
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".zip" or path.is_dir():
        return path
    try:
        return archive.extracted(path)
    except WorkbenchError as e:
        raise WorkbenchError(f"{key}: {e}") from e


def _check_readable(src, key, path):
    """Read images in order until one works; none readable is an error naming the first failure."""
    errors = []
    for i in range(len(src)):
        try:
            src.pixels(i)
            return
        except WorkbenchError as e:
            errors.append(str(e))
    raise WorkbenchError(f"{key}: no readable image in {path} ({len(errors)} file(s) could not be read; first: {errors[0]})")


def is_tiny_imagenet(path):
    """True for a Tiny ImageNet root: root/train/<wnid>/images exists."""
    return any(Path(path).glob("train/*/images"))


def _folder(root):
    paths = _images_under(root)
    rel = [p.relative_to(root) for p in paths]
    # Labels only when every image sits in a first-level sub-folder: one folder per class.
    if all(len(r.parts) >= 2 for r in rel):
        classes = sorted({r.parts[0] for r in rel})
        index = {c: k for k, c in enumerate(classes)}
        return FolderSource(root, [r.as_posix() for r in rel], [index[r.parts[0]] for r in rel], classes)
    return FolderSource(root, [r.as_posix() for r in rel])


def _tiny_imagenet(root, split):
    train = root / "train"
    classes = sorted(p.parent.name for p in train.glob("*/images") if p.is_dir())
    if split == "valid":
        if not (root / "val").is_dir():
            raise WorkbenchError(f"Tiny ImageNet folder {root} has no val/ folder; set data.valid to a folder.")
        return _tiny_imagenet_val(root / "val", classes)
    index = {c: k for k, c in enumerate(classes)}
    paths = [p for c in classes for p in _images_under(train / c / "images")]
    rel = [p.relative_to(train) for p in paths]
    return FolderSource(train, [r.as_posix() for r in rel], [index[r.parts[0]] for r in rel], classes)


def _tiny_imagenet_val(val, classes):
    """val/images/*.JPEG labelled by val/val_annotations.txt (file, wnid, bbox, tab-separated)."""
    notes = val / "val_annotations.txt"
    wnid_of = {}
    for line in notes.read_text().splitlines():
        cols = line.split("\t")
        if len(cols) >= 2:
            wnid_of[cols[0].strip()] = cols[1].strip()
    classes = classes or sorted(set(wnid_of.values()))
    index = {c: k for k, c in enumerate(classes)}
    paths = _images_under(val / "images" if (val / "images").is_dir() else val)
    labels = []
    for p in paths:
        wnid = wnid_of.get(p.name)
        if wnid not in index:
            raise WorkbenchError(f"{notes} gives no known class for {p.name}; add a line 'FILE<tab>WNID' for it.")
        labels.append(index[wnid])
    return FolderSource(val, [p.relative_to(val).as_posix() for p in paths], labels, classes)


def _classes_beside(val):
    """Class list of a sibling train/ folder, so a val folder opened alone keeps train's numbering."""
    root = val.parent
    return sorted(p.parent.name for p in (root / "train").glob("*/images")) if is_tiny_imagenet(root) else []


def _images_under(folder):
    paths = list_images(folder)
    if not paths:
        raise WorkbenchError(f"no images ({_SUFFIXES}) found under {folder}; check the path or add photos there.")
    return paths


def shuffled(indices, rng):
    """An epoch's order of `indices` for sources read at random: a permutation."""
    return rng.permutation(np.asarray(indices, dtype=np.int64))


def median_pixels(paths):
    """Median width x height over `paths`, read from the image headers (no decoding)."""
    from PIL import Image

    sizes = []
    for path in paths:
        try:
            with Image.open(path) as im:
                sizes.append(im.size[0] * im.size[1])
        except Exception:   # an unreadable file is reported when it is read for training
            continue
    return int(np.median(sizes)) if sizes else 0
