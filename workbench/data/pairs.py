"""(damaged, clean) pairs: augment the clean image, then degrade it, so both line up pixel for pixel.

By default the crop is degraded. With `damage_first` the whole (padded, flipped, augmented) photo
is degraded and then cropped, damaged, clean and mask alike: damage sized relative to the image (a
watermark 10-30 % of the photo's height, holes covering 5-20 % of it) then looks in a training crop
as it does on the whole photos the model is judged and used on.

Training crops are cut from the photo as stored (uint8) and only then converted to float, and
several crops come from each decoded photo (data/crops.py). Training batches are made in lanes
(data/lanes.py). All randomness of a training crop comes from
`np.random.default_rng([seed, epoch, position, crop])`, of a plain key `(epoch, i)` from
`[seed, epoch, i]`, so a batch is the same with 0 or 8 workers, with persistent workers, on one
process or several, and after a resume.

An unreadable image does not stop a run: the item uses the next readable image of the set instead
and names the skipped file in `item["skipped"]`, so the trainer learns about files that DataLoader
workers skipped and can warn once and count them.
"""
import math
import sys

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info
from tqdm import tqdm

from workbench.api.degradation import apply_chain
from workbench.api.pixels import to_uint8
from workbench.data import crops
from workbench.data import lanes as lanes_
from workbench.data.crops import centre_crop  # noqa: F401  (re-exported: the data package's API)
from workbench.errors import WorkbenchError
from workbench.images.files import to_float
from workbench.recipe import defaults

MAX_EPOCH_PHOTOS = 50_000_000   # an epoch's order is an int64 array per process: 400 MB at this size


class PairDataset(Dataset):
    """Crops of `source` images (those in `indices`), each degraded by `chain`.

    Training (train=True): reflect-pad by `pad`, random `size` crop, optional horizontal flip and
    TrivialAugmentWide; `crops_per_image` crops per decoded photo (0: `crops.auto_crops`), `repeat`
    passes over the images per epoch (0: enough for defaults.EPOCH_CROPS crops and every lane).
    Training batches come from `lane_batch` keys (data/lanes.py); a plain key (epoch, i) gives
    one crop of image i % n, as validation and previews ask. Validation: centre crop, damage seeded
    by (seed, 0, i) so it is the same every epoch. `damage_first` degrades the whole photo before
    cropping (see the module docstring). `labels`: None, "source" (the source's class labels) or
    {source index: label}; with labels each item also has "label".
    Each item is {"damaged", "clean": 3 x S x S float, "mask": 1 x S x S bool, "index": source index,
    "skipped": unreadable files passed over for it, encoded by `encode_skipped` ("" when none)}.
    """

    def __init__(self, source, indices, chain, *, size, pad=0, flip=False, trivial_augment=False,
                 seed=0, repeat=1, train=True, damage_first=False, crops_per_image=1, labels=None):
        if not isinstance(size, int) or size < 1:
            raise WorkbenchError(f"data.size must be a positive integer, got {size!r}.")
        if pad < 0:
            raise WorkbenchError(f"data.pad must be 0 or more, got {pad}.")
        if repeat < 0:
            raise WorkbenchError(f"data.repeat must be 0 (automatic) or more, got {repeat}.")
        if crops_per_image < 0:
            raise WorkbenchError(f"data.crops_per_image must be 0 (automatic) or more, got {crops_per_image}.")
        self.source, self.chain = source, list(chain)
        self.indices = np.asarray(indices, dtype=np.int64)   # an array: a million indices cost 8 MB per worker, not 36
        if not len(self.indices):
            raise WorkbenchError("no images to make pairs from; check data.train and data.limit.")
        self.size, self.pad, self.flip, self.seed, self.train = size, pad, flip, seed, train
        self.damage_first = bool(damage_first)
        self.crops_per_image = crops_per_image or (crops.auto_crops(source.typical_pixels(), size) if train else 1)
        self.repeat = repeat
        self.labels = labels
        self.trivial_augment = trivial_augment and train
        # A damage_first photo stays decoded until all its crops are made: one photo per lane at a time.
        self.window = 1 if self.damage_first else lanes_.WINDOW
        self._bad = {}   # source index -> (name, reason) of files this process found unreadable
        self._ta = None
        self._plans, self._cut = {}, {}
        if self.trivial_augment:
            from torchvision.transforms import (
                TrivialAugmentWide,  # only paid for when asked
            )

            self._ta = TrivialAugmentWide()

    def passes(self, lanes=1):
        """Passes over the images in an epoch: data.repeat, or enough for EPOCH_CROPS crops and one photo per lane."""
        n = len(self.indices)
        passes = self.repeat or max(1, math.ceil(defaults.EPOCH_CROPS / (n * self.crops_per_image)), math.ceil(lanes / n))
        if n * passes > MAX_EPOCH_PHOTOS:
            raise WorkbenchError(f"data.repeat = {self.repeat} makes {n * passes:,} photo passes per epoch (over {MAX_EPOCH_PHOTOS:,}, "
                                 f"whose order alone would fill memory); lower data.repeat, or set it to 0.")
        return passes

    def __len__(self):
        return len(self.indices) * self.passes()

    def __getstate__(self):   # workers start with empty caches
        return {**self.__dict__, "_plans": {}, "_cut": {}}

    def __getitem__(self, key):
        """key = (epoch, i); a bare int i means epoch 0; a 4-tuple is a `lane_batch` key."""
        if isinstance(key, tuple) and len(key) == 4:
            return self.lane_batch(key)
        epoch, i = key if isinstance(key, tuple) else (0, key)
        epoch = epoch if self.train else 0
        src_i, pixels, skipped = self._load(int(self.indices[i % len(self.indices)]))
        return self._item(pixels, np.random.default_rng([self.seed, epoch, i]), src_i, skipped)

    # -- training batches in lanes (data/lanes.py) ------------------------------------------------
    def lane_steps(self, lanes):
        """Steps in an epoch of `lanes` lanes (the global batch); an error if that is none."""
        steps = self.plan(0, lanes).steps
        if steps < 1:
            raise WorkbenchError(f"the global batch of {lanes} needs at least {lanes} photo passes per epoch, but data.repeat = "
                                 f"{self.repeat} gives {len(self.indices) * self.passes(lanes)}; raise data.repeat or set it to 0.")
        return steps

    def plan(self, epoch, lanes):
        key = (epoch, lanes)
        if key not in self._plans:
            entries = self.epoch_entries(epoch, lanes)
            self._plans = {key: lanes_.EpochPlan(entries, lanes=lanes, crops=self.crops_per_image, window=self.window,
                                                 seed=self.seed, epoch=epoch)}   # one epoch at a time per process
        return self._plans[key]

    def epoch_entries(self, epoch, lanes):
        """The epoch's source indices, pass after pass, each pass in the source's epoch order."""
        passes = [self.source.order(self.indices, np.random.default_rng([self.seed, epoch, r, 1])) for r in range(self.passes(lanes))]
        return np.concatenate(passes)

    def lane_batch(self, key):
        """The crops of `lanes` at step t of the epoch, stacked: one DataLoader message per worker and step."""
        epoch, t, total, lane_ids = key
        plan = self.plan(epoch, total)
        items = [self._lane_item(plan, epoch, *plan.position(lane, t)) for lane in lane_ids]
        batch = {k: torch.stack([it[k] for it in items]) if isinstance(items[0][k], torch.Tensor) else [it[k] for it in items]
                 for k in items[0]}
        batch["index"] = torch.as_tensor(batch["index"])
        if "label" in batch:
            batch["label"] = torch.as_tensor(batch["label"])
        return batch

    def _lane_item(self, plan, epoch, p, k):
        """Crop k of the photo at epoch position p. Decoding the photo cuts all its crops' regions
        at once (small uint8 copies); each is finished (augmented, degraded) when asked for."""
        key = (epoch, p)
        cut = self._cut.get(key)
        if cut is None:
            if any(e != epoch for e, _ in self._cut):
                self._cut = {}   # an earlier epoch's leftovers (an interrupted epoch)
            src_i, pixels, skipped = self._load(int(plan.entries[p]))
            rngs = {j: np.random.default_rng([self.seed, epoch, p, j]) for j in range(self.crops_per_image)}
            regions = None if self.damage_first or not crops.can_cut(pixels.shape, self.size, self.pad) else \
                {j: crops.train_region(pixels, rngs[j], self.size, self.pad) for j in rngs}
            cut = self._cut[key] = {"src": src_i, "skipped": skipped, "rngs": rngs, "regions": regions,
                                    "pixels": None if regions else pixels}
        rng = cut["rngs"].pop(k)
        if cut["regions"] is not None:
            item = self._finish(to_float(cut["regions"].pop(k)), rng, cut["src"], cut["skipped"])
        else:
            item = self._item(cut["pixels"], rng, cut["src"], cut["skipped"])
        if not cut["rngs"]:
            del self._cut[key]   # every crop made: the photo is released
        return item

    # -- one item ----------------------------------------------------------------------------------
    def _item(self, pixels, rng, src_i, skipped):
        if self.damage_first:
            damaged, clean, mask = self._damage_then_crop(to_float(pixels), rng)
            return self._pack(damaged, clean, mask, src_i, skipped)
        if not self.train:
            return self._finish(to_float(crops.centre_crop(pixels, self.size)), rng, src_i, skipped, augment=False)
        if crops.can_cut(pixels.shape, self.size, self.pad):
            return self._finish(to_float(crops.train_region(pixels, rng, self.size, self.pad)), rng, src_i, skipped)
        return self._finish(self._crop_padded(to_float(pixels), rng), rng, src_i, skipped)

    def _finish(self, clean, rng, src_i, skipped, augment=True):
        """A cut crop: 3. flip, 4. TrivialAugmentWide, then the damage."""
        if augment:
            clean = self._flip_and_trivial(clean, rng)
        clean = clean.contiguous()
        damaged, mask = apply_chain(self.chain, clean, rng)
        return self._pack(damaged, clean, mask, src_i, skipped)

    def _pack(self, damaged, clean, mask, src_i, skipped):
        if mask is None:
            mask = torch.zeros(1, self.size, self.size, dtype=torch.bool)
        item = {"damaged": damaged.contiguous(), "clean": clean, "mask": mask.to(torch.bool), "index": src_i,
                "skipped": encode_skipped(skipped)}
        if self.labels is not None:
            item["label"] = self.source.label(src_i) if self.labels == "source" else self.labels[src_i]
        return item

    def _load(self, src_i):
        """(source index, pixels, [(name, reason) skipped]): image `src_i`, or if it cannot be read
        the next readable one in `indices` order (wrapping around), so the choice is deterministic."""
        n, skipped, start = len(self.indices), [], None
        for step in range(n):
            if step == 1:
                start = int(np.flatnonzero(self.indices == src_i)[0])   # only paid for after a failure
            cand = src_i if step == 0 else int(self.indices[(start + step) % n])
            if cand not in self._bad:
                try:
                    return cand, self.source.pixels(cand), skipped
                except WorkbenchError as e:
                    self._bad[cand] = (self.source.name(cand), str(e))
                    if get_worker_info() is None:   # a worker's warnings reach the user via the trainer
                        warn_unreadable(str(e))
            skipped.append(self._bad[cand])
        first = skipped[0][1] if skipped else "unknown error"
        raise WorkbenchError(f"no readable image in {_where(self.source)}: none of its {n} images could be read (first: {first})")

    def _crop_padded(self, img, rng):
        """The float path for photos too small to cut directly: 1. pad, 2. random crop."""
        img = self._pad(img)
        return self._crop(img, *self._corner(img, rng))

    def _damage_then_crop(self, img, rng):
        """(damaged, clean, mask) crops of the whole photo degraded; the same crop of all three."""
        if self.train:   # augment the whole photo: pad, flip, TrivialAugmentWide, as a crop would be
            img = self._flip_and_trivial(self._pad(img), rng)
        img = crops.pad_to(img, self.size).contiguous()
        damaged, mask = apply_chain(self.chain, img, rng)
        corner = self._corner(img, rng) if self.train else crops.centre(img, self.size)
        crop = [None if t is None else self._crop(t, *corner).contiguous() for t in (damaged, img, mask)]
        return tuple(crop)

    def _pad(self, img):
        if self.pad:
            img = crops.pad(img, self.pad, self.pad, self.pad, self.pad)
        return crops.pad_to(img, self.size)

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
        u8 = to_uint8(img)  # torchvision's ops expect uint8 photos
        # TrivialAugmentWide draws from torch's global RNG: fork it and seed the CPU generator only,
        # so the item stays a function of (seed, epoch, i) and the caller's RNG (CUDA too) is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            u8 = self._ta(u8)
        return u8.float().div_(255)

    def __repr__(self):
        kind = "train" if self.train else "valid"
        first = ", damage_first" if self.damage_first else ""
        crops_ = f", {self.crops_per_image} crops per image" if self.train else ""
        return (f"PairDataset({kind}, {len(self.indices)} images x {self.passes()}, size={self.size}{crops_}{first}, "
                f"chain={[n for n, _ in self.chain]})")


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
