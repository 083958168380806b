"""One writer per run directory: an exclusive lock on RUN/.lock, held while a command writes there.

The lock is the operating system's (flock through the `filelock` package), so it is released when
its process ends, however it ends: a `kill -9` leaves no stale lock to clear by hand. On network
file systems without working flock (some NFS set-ups), two machines may not see each other's lock.
"""
import contextlib
from pathlib import Path

from filelock import FileLock, Timeout

from workbench.errors import WorkbenchError

NAME = ".lock"


class RunBusy(WorkbenchError):
    """Another process holds the run directory."""


@contextlib.contextmanager
def holding(run_dir):
    """Hold `run_dir`'s lock for the block; RunBusy at once (no waiting) if another command has it."""
    lock = FileLock(Path(run_dir) / NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunBusy(f"{run_dir} is in use by another workbench command (a run, a resume or an eval "
                      "writing there); wait for it to finish.") from None
    except OSError as e:
        raise WorkbenchError(f"cannot lock the run directory {run_dir}: {e.strerror or e}; check that it is "
                             "writable.") from e
    try:
        yield
    finally:
        lock.release()
