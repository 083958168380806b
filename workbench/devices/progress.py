"""Progress bars for work that lasts longer than a second: tqdm on stderr, from rank 0 only.

$WORKBENCH_PROGRESS says when they show. Unset, a bar appears on a terminal only (tqdm's
disable=None) and only once its work has run a second, so a log, a pipe or a test's captured
output gets no carriage-return noise; `1` shows every bar from its start and draws every step,
wherever stderr goes (a log that wants them; the tests); `0` shows none.
"""
import os
import sys

from tqdm import tqdm

from workbench.errors import WorkbenchError

ENV_VAR = "WORKBENCH_PROGRESS"
DELAY = 1.0          # seconds of work before a bar appears: quick commands stay silent
UNSIZED = (80, 24)   # columns, rows for a terminal that reports 0 x 0


def bar(iterable=None, *, desc, total=None, unit="it", leader=None, enabled=True, leave=False, initial=0):
    """A tqdm bar (iterate it, or `update` and `close` it; also a context manager).

    leader: False on torchrun's other ranks (default: whether $RANK is 0), which show none;
    enabled: False shows none whatever $WORKBENCH_PROGRESS says (a caller's quiet mode);
    leave: keep the finished bar (default: it vanishes, and the command's summary line says the rest);
    initial: work already done (a resumed epoch's steps).
    """
    mode = _mode()
    rank0 = int(os.environ.get("RANK", "0")) == 0 if leader is None else leader
    file = sys.stderr   # looked up now, not at import: click's test runner swaps it
    if not enabled or mode == "0" or not rank0:
        return tqdm(iterable, total=total, disable=True)
    forced = mode == "1"
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=file, leave=leave, initial=initial,
                disable=False if forced else None,
                delay=0 if forced else DELAY, mininterval=0 if forced else 0.1, **_size(file))


def say(line):
    """Print a line to stderr without breaking a bar being drawn (what a warning inside a bar's loop uses)."""
    tqdm.write(line, file=sys.stderr)


def _mode():
    mode = os.environ.get(ENV_VAR, "").strip()
    if mode not in ("", "0", "1"):
        raise WorkbenchError(f"{ENV_VAR}={mode!r}: use 1 (progress bars always), 0 (never), or leave it unset "
                             "(bars on a terminal, for work longer than a second).")
    return mode


def _size(file):
    """tqdm's size options: follow the terminal's width, or a fixed size where the terminal reports
    0 x 0 (a pseudo-terminal nobody sized): there tqdm computes a width of -1 and draws nothing."""
    try:
        columns = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):   # not a terminal: a pipe, a file, a test's stream
        return {"dynamic_ncols": True}
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": UNSIZED[0], "nrows": UNSIZED[1]}
