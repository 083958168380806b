"""Multi-process training with torch.distributed: `torchrun --nproc-per-node N -m workbench run ...`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; every process trains on its own shard of each
epoch's keys, DistributedDataParallel averages the gradients, and only rank 0 writes files.
"""
import os

import torch
import torch.distributed as dist


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device):
    """Join the process group when launched by torchrun; returns (rank, world_size, device)."""
    if world_size() <= 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def teardown():
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier():
    if dist.is_initialized():
        dist.barrier()


def all_mean(value, device):
    """Mean of a float over all processes (the logged training loss)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def any_rank(flag, device):
    """True on every process if `flag` is true on any (a signal may reach one rank first)."""
    if not dist.is_initialized():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class ShardedSampler(torch.utils.data.Sampler):
    """Every rank takes keys rank, rank + W, ... of the base sampler's epoch order; the list is
    padded by wrapping so all ranks run the same number of steps (DDP needs that). `skip` leaves
    out each rank's first keys, for a resume in the middle of an epoch."""

    def __init__(self, base, rank, world):
        self.base, self.rank, self.world, self.skip = base, rank, world, 0

    def set_epoch(self, epoch, skip=0):
        self.base.set_epoch(epoch)
        self.skip = int(skip)

    def _per_rank(self):
        return -(-len(self.base) // self.world)

    def __len__(self):
        return max(0, self._per_rank() - self.skip)

    def __iter__(self):
        keys = list(self.base)
        keys += keys[: self._per_rank() * self.world - len(keys)]
        return iter(keys[self.rank :: self.world][self.skip:])
