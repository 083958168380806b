"""Split inference work (restore, eval) across torchrun ranks: `torchrun --nproc-per-node N -m workbench ...`.

Every rank checks the whole input list (cheap, and all reach the same verdict), works on its own
share, and hands back its results; they are merged in input order, so the outcome is the one
process's. Rank 0 alone prints and writes the summary. Without torchrun this is rank 0 of 1 and
nothing is sent anywhere.

The rule that keeps ranks from waiting on each other forever: code that can fail on some ranks
only runs inside `Spread.settle` (or before the first or after the last collective of `join`),
so that every rank learns of the failure at the same meeting point and stops.
"""
import contextlib
import os

import torch.distributed as dist

from workbench.devices import distributed
from workbench.devices.device import pick_device
from workbench.errors import WorkbenchError


def env_rank():
    """This process's rank as torchrun set it (0 without torchrun), known before the group is joined."""
    return int(os.environ.get("RANK", "0")) if distributed.world_size() > 1 else 0


class Spread:
    """This process's place among the ranks (rank 0 of 1 without torchrun) and the device it works on."""

    def __init__(self, rank=0, world=1, device=None):
        self.rank, self.world, self.device = rank, world, device

    @property
    def leader(self):
        return self.rank == 0

    def mine(self, items):
        """[(index, item)] of this rank's share: items rank, rank + world, ... A fixed split rather
        than a queue: every rank derives it from the same list, so each item goes to exactly one
        rank whatever the timing, and the same run splits the same way again."""
        return list(enumerate(items))[self.rank::self.world]

    def settle(self, work):
        """Run `work()` here -> every rank's return value, on every rank, in rank order (small
        things: it is pickled to all). If it raised on any rank, every rank raises (`_agree`)."""
        try:
            value, err = work(), None
        except Exception as e:   # any failure, not just a user error, must reach the other ranks, not strand them
            value, err = None, e
        return self._agree(err, value)

    def to_leader(self, obj):
        """On rank 0 the list of every rank's `obj` in rank order, None elsewhere: for big things
        (report images) that only rank 0 uses. Call it on every rank, after a `settle`."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.leader else None
        dist.gather_object(obj, out, dst=0)
        return out

    def _agree(self, err, value=None):
        """The meeting point: every rank sends its value or what went wrong. A rank that failed
        re-raises its own exception (its traceback intact); the others raise a WorkbenchError with
        the first failure's message, so each rank exits non-zero and rank 0 can say what happened."""
        sent = (None, value) if err is None else (_message(err, self.rank), None)
        if self.world == 1:
            parts = [sent]
        else:
            parts = [None] * self.world
            dist.all_gather_object(parts, sent)
        if err is not None:
            raise err
        for message, _ in parts:
            if message is not None:
                raise WorkbenchError(message)
        return [v for _, v in parts]


def _message(err, rank):
    """A user error travels as it is (rank 0 prints what one process would); anything else is a
    bug or a crash, whose traceback the failed rank prints itself."""
    if isinstance(err, WorkbenchError):
        return str(err)
    return f"rank {rank} stopped with {type(err).__name__}: {err} (see its traceback)."


def in_order(parts):
    """Every rank's [(index, value)] list -> one [(index, value)] list in input order."""
    return sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])


@contextlib.contextmanager
def join(device="auto"):
    """Join torchrun's process group for one command -> a Spread whose `device` is this rank's
    (cuda:LOCAL_RANK on CUDA). At the exit the ranks meet once more, so a failure after the last
    `settle` (rank 0 writing its files, say) also stops every rank; the group is always left."""
    sp = Spread(*distributed.setup(pick_device(device)))
    try:
        try:
            yield sp
        except Exception as e:   # any failure is passed on to the other ranks
            sp._agree(e)         # raises e here, and a WorkbenchError on the ranks that got through
        sp._agree(None)
    finally:
        distributed.teardown()
