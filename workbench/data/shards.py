"""A prepared data set (`workbench prepare`): sub-images of photos in WebDataset tar shards.

Layout of a prepared folder:
    manifest.json      {"format": "workbench-shards", "version": 1, "count": N, "photos": P,
                        "size": 480, "step": 240, "shards": [{"file": "shard-000000.tar", "count": n}, ...],
                        "classes": [...], "source": "what was prepared"}; written last, so a folder
                        without it is an interrupted preparation
    index.npy          int64 N x 5: shard, data offset, data size, photo, label (-1: none), one row
                        per sub-image in shard order; read with allow_pickle=False
    photos.txt         one JSON string per line: the photo each sub-image was cut from
    shard-NNNNNN.tar   WebDataset shards: member KEY.png (8-bit RGB sub-image) and KEY.json
                       ({"photo", "top", "left", "label"}), KEY = the sub-image's number, 9 digits

The shards are plain WebDataset tars (`webdataset.WebDataset("shard-{000000..000009}.tar")` reads
them), so other tools can use them too. The workbench itself reads a sub-image by the offset the
index gives: a lane (data/lanes.py) reads a contiguous run of sub-images, so a shard is read from
front to back by one lane, with no tar parsing at training time and an exact place to resume from.
"""
import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.errors import WorkbenchError
from workbench.images.files import MAX_PIXELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FORMAT, VERSION = "workbench-shards", 1
MANIFEST, INDEX, PHOTOS = "manifest.json", "index.npy", "photos.txt"
COLUMNS = ("shard", "offset", "size", "photo", "label")
SHARD, OFFSET, SIZE, PHOTO, LABEL = range(5)
OPEN_FILES = 8   # shard files a process keeps open: a lane reads one at a time


def is_prepared(path):
    """True for a folder `workbench prepare` wrote: a manifest.json of this format. A photo folder
    that happens to hold some other manifest.json stays a photo folder."""
    path = Path(path)
    if (path / INDEX).is_file() and (path / "shard-000000.tar").is_file():
        return True   # our layout with its manifest lost: ShardSource says so rather than reading it as photos
    try:
        return (path / MANIFEST).is_file() and json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class ShardSource:
    """The sub-images of a prepared folder, in index order; `photo(i)` groups them by photo so a
    validation split never shares a photo with training (neighbouring sub-images overlap)."""

    def __init__(self, root):
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise WorkbenchError(f"{self.root} has no {MANIFEST}: its preparation was interrupted or it is not a prepared "
                                 f"folder; delete it and run `workbench prepare` again.")
        try:
            meta = json.loads(manifest.read_text())
            index = np.load(self.root / INDEX, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise WorkbenchError(f"{self.root}: cannot read the prepared set ({e}); run `workbench prepare` again.") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise WorkbenchError(f"{manifest} is not a version-{VERSION} {FORMAT} manifest; prepare the data again with this workbench.")
        if not isinstance(meta.get("count"), int) or not isinstance(meta.get("shards"), list):
            raise WorkbenchError(f"{manifest} lacks its count or shard list (edited by hand?); run `workbench prepare` again.")
        if not (self.root / PHOTOS).is_file():
            raise WorkbenchError(f"{self.root} has no {PHOTOS}: the prepared set is incomplete; run `workbench prepare` again.")
        if (index.dtype != np.int64 or index.ndim != 2 or index.shape[1] != len(COLUMNS) or len(index) != meta["count"]
                or (len(index) and (index[:, SHARD].min() < 0 or index[:, SHARD].max() >= len(meta["shards"])
                                    or index[:, OFFSET].min() < 0 or index[:, SIZE].min() < 0))):
            raise WorkbenchError(f"{self.root / INDEX} does not match {MANIFEST} ({meta['count']} sub-images); run `workbench prepare` again.")
        self.meta, self.index = meta, index
        self.files = [s["file"] for s in meta["shards"]]
        self.classes = list(meta.get("classes", []))
        self.size = int(meta.get("size", 0))
        self._photos = None   # photo names, read on first use (a million names is tens of MB)
        self._open, self._pid = {}, os.getpid()

    def __len__(self):
        return len(self.index)

    def __getstate__(self):   # open files do not cross to DataLoader workers; each opens its own
        return {**self.__dict__, "_open": {}, "_photos": None}

    def pixels(self, i):
        shard, offset, size = (int(v) for v in self.index[i, :3])
        data = self._read(shard, offset, size)
        if len(data) != size:
            raise WorkbenchError(f"{self.root / self.files[shard]}: sub-image {i} is cut short; the shard is damaged, prepare the data again.")
        return decode_png(data, f"{self.root / self.files[shard]}: sub-image {i:09d}")

    def load(self, i):
        return self.pixels(i).float().div_(255)

    __getitem__ = load

    def _read(self, shard, offset, size):
        """`size` bytes at `offset` of a shard. A positional read: forked loader workers inherit
        the parent's open files, and a shared seek position would hand one worker another's bytes."""
        f = self._file(shard)
        if hasattr(os, "pread"):
            return os.pread(f.fileno(), size, offset)
        f.seek(offset)
        return f.read(size)

    def _file(self, shard):
        if self._pid != os.getpid():   # a forked worker: open its own files (the inherited ones stay the parent's)
            self._open, self._pid = {}, os.getpid()
        f = self._open.get(shard)
        if f is None:
            if len(self._open) >= OPEN_FILES:
                self._open.pop(next(iter(self._open))).close()
            try:
                f = self._open[shard] = open(self.root / self.files[shard], "rb")
            except OSError as e:
                raise WorkbenchError(f"{self.root / self.files[shard]}: cannot open the shard ({e.strerror}); check the prepared folder.") from e
        return f

    def photo(self, i):
        return int(self.index[i, PHOTO])

    def name(self, i):
        if self._photos is None:
            try:
                with open(self.root / PHOTOS, encoding="utf-8") as f:
                    self._photos = [json.loads(line) for line in f]
            except (OSError, ValueError) as e:
                raise WorkbenchError(f"{self.root / PHOTOS} cannot be read ({e}); run `workbench prepare` again.") from e
        photo = self.photo(i)
        name = self._photos[photo] if 0 <= photo < len(self._photos) else f"photo {photo}"
        return f"{name}#{i:09d}"

    def label(self, i):
        label = int(self.index[i, LABEL])
        return None if label < 0 else label

    def typical_pixels(self):
        """Median pixel count of up to 16 sub-images, from their PNG headers (photos smaller than
        the cut size, such as Tiny ImageNet's, were stored whole)."""
        from PIL import Image

        sizes = []
        for i in np.linspace(0, len(self) - 1, min(len(self), 16)).astype(int):
            shard, offset, size = (int(v) for v in self.index[i, :3])
            try:
                with Image.open(io.BytesIO(self._read(shard, offset, min(size, 4096)))) as im:
                    sizes.append(im.size[0] * im.size[1])
            except (OSError, SyntaxError, ValueError):   # a damaged sub-image is reported when training reads it
                continue
        return int(np.median(sizes)) if sizes else self.size * self.size

    def close(self):
        if getattr(self, "_pid", None) == os.getpid():   # this process's own files (also after a failed __init__)
            for f in self._open.values():
                f.close()
        self._open = {}

    __del__ = close

    def order(self, indices, rng):
        """An epoch's order: the shards shuffled, each shard's sub-images in stored order, so a
        lane's contiguous run of the order reads its shards front to back."""
        indices = np.asarray(indices, dtype=np.int64)
        rank = rng.permutation(len(self.files))
        return indices[np.argsort(rank[self.index[indices, SHARD]], kind="stable")]

    def split(self, fraction, seed):
        """(train, valid) sub-image indices holding out whole photos: `fraction` of them, at least one."""
        photos = self.index[:, PHOTO]
        ids = np.unique(photos)
        if len(ids) < 2:
            every = np.arange(len(self))
            return every, every
        n_valid = min(max(1, round(len(ids) * fraction)), len(ids) - 1)
        held = np.random.default_rng(seed).permutation(ids)[:n_valid]
        is_valid = np.isin(photos, held)
        return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)

    def limited(self, limit):
        """The first `limit` sub-images (all when limit <= 0)."""
        if limit <= 0 or limit >= len(self):
            return self
        view = object.__new__(ShardSource)
        view.__dict__.update(self.__getstate__())
        view.index = self.index[:limit]
        return view

    def __repr__(self):
        return f"ShardSource({str(self.root)!r}, {len(self)} sub-images in {len(self.files)} shards)"


def decode_png(data, name):
    """A sub-image's PNG bytes -> 3 x H x W uint8 tensor. OpenCV decodes these 18 % faster than
    Pillow (4.2 -> 3.4 ms at 480 px), the largest cost of a crop from shards; the header's size is
    checked first, so a crafted shard cannot make it allocate a decompression bomb."""
    import cv2

    if len(data) < 24 or not data.startswith(PNG_SIGNATURE):
        raise WorkbenchError(f"{name} is not a PNG: the shard is damaged or not one `workbench prepare` wrote; prepare the data again.")
    width, height = struct.unpack(">II", data[16:24])
    if width * height > (Image.MAX_IMAGE_PIXELS or MAX_PIXELS):
        raise WorkbenchError(f"{name} claims {width} x {height} pixels, over the decompression-bomb limit; prepare the data again.")
    # Straight to RGB where OpenCV can (4.11+); no cvtColor: it starts a thread pool (lanes.before_fork).
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if rgb_flag is None else rgb_flag)
    if arr is None:
        raise WorkbenchError(f"{name} cannot be decoded: the shard is damaged; prepare the data again.")
    return torch.from_numpy(arr if rgb_flag is not None else np.ascontiguousarray(arr[:, :, ::-1])).permute(2, 0, 1)
