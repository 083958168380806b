"""(damaged, clean) pairs: augment the clean image, then degrade it, so both line up pixel for pixel.

By default the crop is degraded. With `damage_first` the whole (padded, flipped, augmented) photo
is degraded and then cropped, damaged, clean and mask alike: damage sized relative to the image (a
watermark 10-30 % of the photo's height, holes covering 5-20 % of it) then looks in a training crop
as it does on the whole photos the model is judged and used on.

Items are asked for by key `(epoch, i)`. All randomness of an item comes from
`np.random.default_rng([seed, epoch, i])`, so a batch is the same with 0 or 8 workers, with
persistent workers, and after a resume; `EpochSampler` yields those keys.

An unreadable image does not stop a run: the item uses the next readable image of the set instead
and names the skipped file in `item["skipped"]`, so the trainer learns about files that DataLoader
workers skipped and can warn once and count them.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from tqdm import tqdm

from workbench.degradation import apply_chain
from workbench.errors import WorkbenchError


class PairDataset(Dataset):
    """Crops of `source` images (those in `indices`), each degraded by `chain`.

    Training (train=True): reflect-pad by `pad`, random `size` crop, optional horizontal flip and
    TrivialAugmentWide. Validation: centre crop, damage seeded by (seed, 0, i) so it is the same
    every epoch. `repeat` passes over the images make one epoch (key i shows image i % n).
    `damage_first` degrades the whole photo before cropping (see the module docstring).
    Each item is {"damaged", "clean": 3 x S x S float, "mask": 1 x S x S bool, "index": source index,
    "skipped": unreadable files passed over for it, encoded by `encode_skipped` ("" when none)}.
    """

    def __init__(self, source, indices, chain, *, size, pad=0, flip=False, trivial_augment=False,
                 seed=0, repeat=1, train=True, damage_first=False):
        if not isinstance(size, int) or size < 1:
            raise WorkbenchError(f"data.size must be a positive integer, got {size!r}.")
        if pad < 0:
            raise WorkbenchError(f"data.pad must be 0 or more, got {pad}.")
        if repeat < 1:
            raise WorkbenchError(f"data.repeat must be 1 or more, got {repeat}.")
        self.source, self.indices, self.chain = source, [int(k) for k in indices], list(chain)
        if not self.indices:
            raise WorkbenchError("no images to make pairs from; check data.train and data.limit.")
        self.size, self.pad, self.flip, self.seed, self.repeat, self.train = size, pad, flip, seed, repeat, train
        self.damage_first = bool(damage_first)
        self.trivial_augment = trivial_augment and train
        self._bad = {}   # source index -> (name, reason) of files this process found unreadable
        self._ta = None
        if self.trivial_augment:
            from torchvision.transforms import TrivialAugmentWide  # only paid for when asked

            self._ta = TrivialAugmentWide()

    def __len__(self):
        return len(self.indices) * self.repeat

    def __getitem__(self, key):
        """key = (epoch, i); a bare int i means epoch 0 (handy for inspection and evaluation)."""
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch if self.train else 0, i])
        src_i, clean, skipped = self._load(i % len(self.indices))
        if self.damage_first:
            damaged, clean, mask = self._damage_then_crop(clean, rng)
        else:
            clean = (self._augment(clean, rng) if self.train else centre_crop(clean, self.size)).contiguous()
            damaged, mask = apply_chain(self.chain, clean, rng)
        if mask is None:
            mask = torch.zeros(1, self.size, self.size, dtype=torch.bool)
        return {"damaged": damaged.contiguous(), "clean": clean, "mask": mask.to(torch.bool), "index": src_i,
                "skipped": encode_skipped(skipped)}

    def _load(self, k):
        """(source index, image, [(name, reason) skipped]): image k of `indices`, or if it cannot be
        read the next readable one, (k + 1) % n, (k + 2) % n, ..., so the choice is deterministic."""
        n, skipped = len(self.indices), []
        for step in range(n):
            src_i = self.indices[(k + step) % n]
            if src_i not in self._bad:
                try:
                    return src_i, self.source.load(src_i), skipped
                except WorkbenchError as e:
                    self._bad[src_i] = (self.source.name(src_i), str(e))
                    if get_worker_info() is None:   # a worker's warnings reach the user via the trainer
                        warn_unreadable(str(e))
            skipped.append(self._bad[src_i])
        first = skipped[0][1] if skipped else "unknown error"
        raise WorkbenchError(f"no readable image in {_where(self.source)}: none of its {n} images could be read (first: {first})")

    def _augment(self, img, rng):
        # 1. pad: reflect-pad as the lesson's augmentation does, then up to the crop size for small photos
        img = self._pad(img)
        # 2. random crop
        img = self._crop(img, *self._corner(img, rng))
        # 3. flip, 4. TrivialAugmentWide
        return self._flip_and_trivial(img, rng)

    def _damage_then_crop(self, img, rng):
        """(damaged, clean, mask) crops of the whole photo degraded; the same crop of all three."""
        if self.train:   # augment the whole photo: pad, flip, TrivialAugmentWide, as `_augment` does
            img = self._flip_and_trivial(self._pad(img), rng)
        img = pad_to(img, self.size).contiguous()
        damaged, mask = apply_chain(self.chain, img, rng)
        corner = self._corner(img, rng) if self.train else _centre(img, self.size)
        crop = [None if t is None else self._crop(t, *corner).contiguous() for t in (damaged, img, mask)]
        return tuple(crop)

    def _pad(self, img):
        if self.pad:
            img = pad(img, self.pad, self.pad, self.pad, self.pad)
        return pad_to(img, self.size)

    def _corner(self, img, rng):
        _, h, w = img.shape
        return int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))

    def _crop(self, img, top, left):
        return img[:, top:top + self.size, left:left + self.size]

    def _flip_and_trivial(self, img, rng):
        if self.flip and rng.random() < 0.5:
            img = img.flip(-1)
        if self._ta is not None:   # TrivialAugmentWide (Muller & Hutter 2021)
            img = self._trivial(img, int(rng.integers(2**31)))
        return img

    def _trivial(self, img, seed):
        u8 = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8)  # torchvision's ops expect uint8 photos
        # TrivialAugmentWide draws from torch's global RNG: fork it and seed the CPU generator only,
        # so the item stays a function of (seed, epoch, i) and the caller's RNG (CUDA too) is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            u8 = self._ta(u8)
        return u8.float().div_(255)

    def __repr__(self):
        kind = "train" if self.train else "valid"
        first = ", damage_first" if self.damage_first else ""
        return f"PairDataset({kind}, {len(self.indices)} images x {self.repeat}, size={self.size}{first}, chain={[n for n, _ in self.chain]})"


_WARNED = set()   # reasons already printed by this process: one warning per file


def warn_unreadable(reason):
    """Print `warning: skipped REASON` to stderr once per file per process (tqdm keeps bars intact)."""
    reason = " ".join(reason.split())   # as `encode_skipped` carries it, so both spell it alike
    if reason not in _WARNED:
        _WARNED.add(reason)
        tqdm.write(f"warning: skipped {reason.rstrip('.')}; the next readable image takes its place.", file=sys.stderr)


def encode_skipped(entries):
    """[(name, reason)] as one string, so the DataLoader's default collate passes it through."""
    return "\n".join(f"{name}\t{' '.join(reason.split())}" for name, reason in entries)


def decode_skipped(batch):
    """{reason: name} of every unreadable file a batch (or item) passed over."""
    texts = batch.get("skipped", "")
    found = {}
    for text in [texts] if isinstance(texts, str) else texts:
        for line in text.splitlines():
            name, _, reason = line.partition("\t")
            found[reason or name] = name
    return found


def _where(source):
    root = getattr(source, "root", None) or getattr(getattr(source, "base", None), "root", None)
    return str(root) if root is not None else repr(source)


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
    img = pad_to(img, size)
    top, left = _centre(img, size)
    return img[:, top:top + size, left:left + size]


def _centre(img, size):
    _, h, w = img.shape
    return (h - size) // 2, (w - size) // 2


class EpochSampler(Sampler):
    """Yields (epoch, i) keys, i in range(n_items * repeat); the order is shuffled by (seed, epoch).
    `set_epoch(epoch, skip)` leaves out the epoch's first `skip` keys: a run resumed in the middle
    of an epoch sees exactly the keys it had not reached."""

    def __init__(self, n_items, *, shuffle, seed=0, repeat=1):
        if n_items < 1 or repeat < 1:
            raise WorkbenchError(f"EpochSampler needs n_items >= 1 and repeat >= 1, got {n_items} and {repeat}.")
        self.n_items, self.shuffle, self.seed, self.repeat, self.epoch, self.skip = n_items, shuffle, seed, repeat, 0, 0

    def set_epoch(self, epoch, skip=0):
        self.epoch, self.skip = int(epoch), int(skip)

    def __len__(self):
        return max(0, self.n_items * self.repeat - self.skip)

    def __iter__(self):
        n = self.n_items * self.repeat
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else range(n)
        return ((self.epoch, int(k)) for k in order[self.skip:])   # a generator: no list of keys per epoch


def make_loader(dataset, sampler, *, batch_size, workers=0, drop_last=False):
    """A DataLoader over `sampler`'s keys; degradation work happens in `workers` processes."""
    if batch_size < 1:
        raise WorkbenchError(f"data.batch_size must be 1 or more, got {batch_size}.")
    if workers < 0:
        raise WorkbenchError(f"data.workers must be 0 or more, got {workers}.")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        # A ragged last batch is dropped in training, unless that would leave an epoch empty.
        drop_last=drop_last and len(sampler) >= batch_size,
        pin_memory=torch.cuda.is_available(),  # page-locked memory only helps copies to a GPU
        persistent_workers=workers > 0,  # keys carry the epoch, so reused workers stay reproducible
        worker_init_fn=_init_worker if workers > 0 else None,
    )


def _init_worker(worker_id):
    # Each worker would otherwise start one thread per core: N workers x N threads oversubscribe.
    torch.set_num_threads(1)
    try:
        import cv2  # degradations may use OpenCV, which has its own thread pool

        cv2.setNumThreads(1)
    except ImportError:
        pass
