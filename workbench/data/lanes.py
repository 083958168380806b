"""Training batches in lanes: one lane per place in the global batch, each reading its own photos.

An epoch's photos (`repeat` passes over the training images, each in the source's epoch order:
shuffled, or for a prepared set its shards shuffled) are cut into L contiguous runs of equal
length, L = the global batch (data.batch_size x processes). Lane l gives K = crops_per_image crops
of each of its photos, each photo's crops spread among those of the next few (EpochPlan); step t
takes item t of every lane.
Rank r of W trains on lanes r*b .. (r+1)*b - 1 (b = data.batch_size), and each DataLoader worker
of a rank makes the crops of a contiguous block of its lanes. So:
- each photo is decoded once per epoch, by one worker of one rank, and a prepared set's lanes read
  their shards front to back (a shard at the edge of two runs is shared, each sub-image read once);
- a batch holds crops of L different photos, and is the same with any number of workers; the
  ranks' batches together are the one-process batch of the same global size (the order depends
  on the global batch, not on the processes: MosaicML streaming calls this elastic determinism);
- an item is a function of (seed, epoch, position, crop), so a resume in the middle of an epoch
  starts at its step without replaying anything.
Photos beyond the last full run (fewer than L) wait for another epoch, whose order differs.
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from workbench.errors import WorkbenchError

WINDOW = 8   # photos whose crops a lane mixes at a time: consecutive steps draw on about 8 photos per lane


class EpochPlan:
    """Where each lane's crops come from in one epoch (a pure function of seed, epoch, lanes).

    Lane l's n photos give K crops each, n*K items. Item (j, k) is placed at the sort key
    j*K - shift + u*WINDOW*K (u uniform in [0, 1), shift = l*K // lanes for j >= 1): photo j's crops
    spread over the WINDOW*K items after its start, so a lane mixes about WINDOW photos at a time and
    needs a new photo decoded about every K items, and the lanes' decodes fall on different steps
    (the shift) instead of all at once.
    """

    def __init__(self, entries, *, lanes, crops, window, seed, epoch):
        self.entries, self.lanes, self.crops, self.window = entries, lanes, crops, window
        self.seed, self.epoch = seed, epoch
        self.per_lane = len(entries) // lanes
        self.starts = np.arange(lanes, dtype=np.int64) * len(entries) // lanes
        self.steps = self.per_lane * crops
        self._orders = {}

    def position(self, lane, t):
        """(p, k): lane `lane` gives crop k of the epoch's photo at position p at step t."""
        order = self._orders.get(lane)
        if order is None:
            order = self._orders[lane] = self._order(lane)
        j, k = divmod(int(order[t]), self.crops)
        return int(self.starts[lane]) + j, k

    def _order(self, lane):
        n, k = self.per_lane, self.crops
        j = np.repeat(np.arange(n, dtype=np.float64), k)
        start = np.maximum(j * k - (lane * k // self.lanes) * (j > 0), 0)
        u = np.random.default_rng([self.seed, self.epoch, lane]).random(n * k)
        return np.argsort(start + u * self.window * k, kind="stable")


class LaneSampler(Sampler):
    """Keys (epoch, step, L, lanes) for one rank: per step, one key per worker group of lanes, so
    the DataLoader's round robin gives each worker the same lanes every step."""

    def __init__(self, dataset, *, batch_size, rank=0, world=1, groups=1):
        self.dataset, self.total = dataset, batch_size * world
        mine = np.arange(rank * batch_size, (rank + 1) * batch_size)
        # Contiguous lanes per worker: its runs of the epoch order adjoin, so it shares a shard with
        # another worker only where its first and last runs begin and end.
        self.groups = [tuple(int(x) for x in part) for part in np.array_split(mine, max(1, min(groups, batch_size)))]
        self.steps = dataset.lane_steps(self.total)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch, skip=0):
        """`skip` leaves out the epoch's first steps (a run resumed in the middle of an epoch)."""
        self.epoch, self.skip = int(epoch), int(skip)

    def __len__(self):
        return max(0, self.steps - self.skip) * len(self.groups)

    def __iter__(self):
        return ((self.epoch, t, self.total, lanes) for t in range(self.skip, self.steps) for lanes in self.groups)


class LaneLoader:
    """Batches of one rank: each step's worker parts put back together in lane order."""

    def __init__(self, loader, sampler):
        self.loader, self.sampler = loader, sampler
        lanes = [lane for group in sampler.groups for lane in group]
        self._order = torch.as_tensor(np.argsort(lanes), dtype=torch.long)   # part order -> lane order
        self.num_workers = loader.num_workers

    def __len__(self):
        return max(0, self.sampler.steps - self.sampler.skip)

    def __iter__(self):
        # The DataLoader's iterator is made now, not at the first batch: making it draws from the
        # torch RNG, and a resume restores the RNG state saved after that draw.
        return self._batches(iter(self.loader))

    def _batches(self, parts_iter):
        parts, n = [], len(self.sampler.groups)
        for part in parts_iter:
            parts.append(part)
            if len(parts) == n:
                yield merge(parts, self._order)
                parts = []


def merge(parts, order):
    """One batch from worker parts: tensors concatenated and put in lane order, texts joined."""
    out = {}
    for key, first in parts[0].items():
        if isinstance(first, torch.Tensor):
            out[key] = torch.cat([p[key] for p in parts])[order] if len(parts) > 1 else first
        else:
            values = [v for p in parts for v in p[key]]
            out[key] = [values[i] for i in order.tolist()]
    return out


def train_loader(dataset, *, batch_size, workers, rank=0, world=1):
    """(loader, sampler) of the training batches of this rank; `workers` -1 picks the count."""
    if batch_size < 1:
        raise WorkbenchError(f"data.batch_size must be 1 or more, got {batch_size}.")
    workers = auto_workers(batch_size) if workers < 0 else workers
    sampler = LaneSampler(dataset, batch_size=batch_size, rank=rank, world=world, groups=max(workers, 1))
    if workers > 0:
        before_fork()
    # Four messages ahead per worker (DataLoader's default is two): room to absorb a photo decode.
    more = {"prefetch_factor": 4, "persistent_workers": True, "worker_init_fn": init_worker} if workers > 0 else {}
    loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers,
                        pin_memory=torch.cuda.is_available(), **more)
    return LaneLoader(loader, sampler), sampler


def auto_workers(lanes):
    """data.workers = -1: one loader process per core this rank has, less one for the training
    process, at least one; a divisor of the rank's lanes so each worker keeps its lanes."""
    want = max(1, cores() - 1)
    return max(d for d in range(1, lanes + 1) if lanes % d == 0 and d <= want)


def cores():
    """Cores this process may use, shared among the torchrun processes of this machine."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, n // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def before_fork():
    """Call before forking worker processes: OpenCV single-threaded in this process. A child that
    reconfigures a thread pool its parent had started waits forever for the parent's threads (seen:
    a loader worker hung in cv2.setNumThreads after the parent decoded with cv2.cvtColor)."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def init_worker(worker_id):
    # Each worker would otherwise start one thread per core: N workers x N threads oversubscribe.
    torch.set_num_threads(1)
    try:
        import cv2  # degradations may use OpenCV, which has its own thread pool

        cv2.setNumThreads(1)
    except ImportError:
        pass
