"""Keys and loaders: `EpochSampler` yields (epoch, i) keys in a seeded order, so an item is a
function of its key whatever the worker count; `make_loader` wraps a dataset and sampler in the
DataLoader training and validation use (training batches in lanes come from data/lanes.py)."""
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from workbench.data import lanes as lanes_
from workbench.errors import WorkbenchError


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
    if workers > 0:
        lanes_.before_fork()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        # A ragged last batch is dropped in training, unless that would leave an epoch empty.
        drop_last=drop_last and len(sampler) >= batch_size,
        pin_memory=torch.cuda.is_available(),  # page-locked memory only helps copies to a GPU
        persistent_workers=workers > 0,  # keys carry the epoch, so reused workers stay reproducible
        worker_init_fn=lanes_.init_worker if workers > 0 else None,
    )

