"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, then stop.

A signal only sets a flag; the training loop looks at it between steps, where the model, the
optimiser and the data order are in a consistent state that a resume can continue from exactly.
A second signal stops at once (the previous checkpoint stays), except while a checkpoint is
being written: then it waits for the write, so the file on disk is whole.
"""
import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into `requested` (the first signal's number)."""

    def __init__(self, announce=True):
        self.requested = 0
        self.announce = announce
        self._saving = False
        self._previous = {}

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere (a notebook's worker thread,
        # a test runner) the caller's own handling stays in charge.
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:   # nohup and `&` ignore SIGINT on purpose
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)   # None: set outside Python
        self._previous.clear()
        return False

    @contextlib.contextmanager
    def saving(self):
        """A second signal during this block waits for it to end instead of breaking it off."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def _handle(self, signum, frame):
        if self.requested and not self._saving:
            raise KeyboardInterrupt   # asked twice: stop now
        self.requested = self.requested or signum
        if self.announce:
            # os.write, not print: a handler may run in the middle of another write to sys.stderr.
            _write_stderr("\nStopping after this step; a checkpoint will be saved (press Ctrl-C again to stop at once).\n")


def _write_stderr(text):
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):
        pass   # no usable stderr (closed, or replaced by an object without a file descriptor)
