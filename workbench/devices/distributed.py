"""Multi-process training with torch.distributed: `torchrun --nproc-per-node N -m workbench run ...`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; every process trains on its own lanes of each
epoch (data/lanes.py), DistributedDataParallel averages the gradients, and only rank 0 writes files.
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
