"""Training and validation splits: which images (or which region of each) a run trains on and
which it holds out, from the recipe's [data] keys."""
import numpy as np

from workbench.data.shards import ShardSource
from workbench.data.sources import _local, is_tiny_imagenet, open_source
from workbench.errors import WorkbenchError
from workbench.images.files import to_float


def split_train_valid(n, fraction, seed):
    """Deterministic (train, valid) index lists; both non-empty for n >= 2.

    At least one image is held out whatever the fraction. With n == 1 the single image serves as
    both training and validation image (a smoke test, not a measurement).
    """
    if n < 1:
        raise WorkbenchError("cannot split an empty data set; add images to data.train.")
    if not 0 <= fraction < 1:
        raise WorkbenchError(f"data.valid_fraction must be in [0, 1), got {fraction}.")
    if n == 1:
        return [0], [0]
    n_valid = min(max(1, round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_valid:].tolist()), sorted(perm[:n_valid].tolist())


# Below this many images, holding out whole photos leaves one unrepresentative validation photo
# (and fewer to learn from); hold out a region of every photo instead.
MIN_IMAGES_FOR_IMAGE_SPLIT = 10
MIN_REGION_FRACTION = 0.25


class RegionSource:
    """One region of every image of `base`: the last `fraction` of its longer side ("valid") or
    the rest ("train"). Validation pixels are never trained on, yet every photo is represented."""

    def __init__(self, base, part, fraction):
        self.base, self.part, self.fraction = base, part, fraction
        self.classes = base.classes

    def __len__(self):
        return len(self.base)

    def load(self, i):
        return to_float(self.pixels(i))

    def pixels(self, i):
        img = self.base.pixels(i)
        axis = -1 if img.shape[-1] >= img.shape[-2] else -2
        length = img.shape[axis]
        if length < 2:
            return img   # a 1-pixel photo cannot be split: it serves both parts (a smoke test, not a measurement)
        cut = min(length - 1, max(1, round(length * (1 - self.fraction))))
        keep = slice(None, cut) if self.part == "train" else slice(cut, None)
        return img[..., keep] if axis == -1 else img[..., keep, :]

    __getitem__ = load

    def order(self, indices, rng):
        return self.base.order(indices, rng)

    def typical_pixels(self):
        return self.base.typical_pixels() * (1 - self.fraction if self.part == "train" else self.fraction)

    def name(self, i):
        return self.base.name(i)

    def label(self, i):
        return self.base.label(i)

    def min_side(self):
        """Shortest side over all readable regions (small sets only: it reads every image)."""
        sides = []
        for i in range(len(self)):
            try:
                sides.append(min(self.pixels(i).shape[-2:]))
            except WorkbenchError:
                continue   # training skips it with a warning; it must not stop the run here
        if not sides:
            raise WorkbenchError(f"no readable image in {self.base!r}; check the files or the folder.")
        return min(sides)

    def __repr__(self):
        return f"RegionSource({self.part}: {self.fraction:.0%} of each image of {self.base!r})"


def open_splits(train, valid="", *, valid_fraction=0.1, limit=0, seed=0, opener=None):
    """The `data` recipe keys -> ((train_source, indices), (valid_source, indices)).

    Validation comes from `valid` when given, else from Tiny ImageNet's val/ split, else a
    held-out `valid_fraction` of `train`'s images; with fewer than 10 images, the last
    `valid_fraction` (at least a quarter) of every image's longer side. `opener(spec, split=, limit=)`
    opens a folder as a source (open_source; a segmentation task's reads images/ + masks/ pairs).
    """
    open_source_ = opener or open_source
    if str(train) != "sample":
        train = _local(train, "data.train")   # a .zip is extracted (or its extraction found) once, here
    train_src = open_source_(train, split="train", limit=limit)
    if valid:
        valid_src = open_source_(valid, split="valid", limit=limit)
        return (train_src, list(range(len(train_src)))), (valid_src, list(range(len(valid_src))))
    if str(train) != "sample" and train.is_dir() and is_tiny_imagenet(train):
        valid_src = open_source(train, split="valid", limit=limit)
        return (train_src, list(range(len(train_src)))), (valid_src, list(range(len(valid_src))))
    if isinstance(train_src, ShardSource):   # hold out whole photos: a photo's sub-images overlap
        tr, va = train_src.split(valid_fraction, seed)
        return (train_src, tr), (train_src, va)
    n = len(train_src)
    if 1 < n < MIN_IMAGES_FOR_IMAGE_SPLIT:
        fraction = max(valid_fraction, MIN_REGION_FRACTION)
        every = list(range(n))
        return (RegionSource(train_src, "train", fraction), every), (RegionSource(train_src, "valid", fraction), every)
    tr, va = split_train_valid(n, valid_fraction, seed)
    return (train_src, tr), (train_src, va)


def recipe_splits(recipe, opener=None):
    """open_splits for the recipe's [data]; a missing, empty or unreadable folder names the recipe."""
    data = recipe["data"]
    if not str(data["train"]).strip():   # Path("") is the current folder: every image under it, recursively
        raise WorkbenchError(f"{recipe.source}: data.train is empty; name a folder of images, a .zip, a prepared "
                             "folder, or \"sample\" for the bundled photos.")
    try:
        return open_splits(data["train"], data["valid"], valid_fraction=data["valid_fraction"], limit=data["limit"],
                           seed=recipe["recipe"]["seed"], opener=opener)
    except WorkbenchError as e:
        raise WorkbenchError(f"{recipe.source}: {e}") from e
