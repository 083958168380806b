"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, then stop.

A signal only sets a flag; the training loop looks at it between steps, where the model, the
optimiser and the data order are in a consistent state that a resume can continue from exactly.
A second signal stops at once (the previous checkpoint stays), except while a checkpoint is
being written: then it waits for the write, so the file on disk is whole. A step that has not
finished GRACE seconds after the first signal (a plugin stuck on a read, a hung loader) counts as
the second signal: a scheduler's single SIGTERM is enough.
"""
import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_ENV = "WORKBENCH_STOP_GRACE"
GRACE = 30.0   # seconds; a step of a big model on a CPU can take several, a hang takes forever


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into `requested` (the first signal's number)."""

    def __init__(self, announce=True):
        self.requested = 0
        self.announce = announce
        self._saving = False
        self._previous = {}
        self._overdue = None   # the timer started by the first signal
        self._main = threading.main_thread().ident

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere (a notebook's worker thread,
        # a test runner) the caller's own handling stays in charge.
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:   # nohup and `&` ignore SIGINT on purpose
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        if self._overdue is not None:
            self._overdue.cancel()
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
        first = not self.requested
        self.requested = self.requested or signum
        if first:
            self._overdue = threading.Timer(grace(), self._stop_overdue, args=(signum,))
            self._overdue.daemon = True
            self._overdue.start()
        if self.announce and first:
            # os.write, not print: a handler may run in the middle of another write to sys.stderr.
            _write_stderr("\nStopping after this step; a checkpoint will be saved (press Ctrl-C again to stop at once).\n")

    def _stop_overdue(self, signum):
        if self._previous:   # still installed: the run has not stopped by itself
            _write_stderr(f"\nThe step did not finish within {self._overdue.interval:g} s of the signal (a plugin or the data may "
                          "hang); stopping without saving it.\n")
            # A real signal to the main thread: it also breaks off a blocking call (sleep, read)
            # that a simulated one (_thread.interrupt_main) would wait for.
            signal.pthread_kill(self._main, signum)


def grace():
    """Seconds a step may take after the first signal (WORKBENCH_STOP_GRACE, else GRACE)."""
    try:
        return max(float(os.environ.get(GRACE_ENV, GRACE)), 0.0)
    except ValueError:
        return GRACE


def _write_stderr(text):
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):
        pass   # no usable stderr (closed, or replaced by an object without a file descriptor)
