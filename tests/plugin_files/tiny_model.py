"""A tiny residual model, a kill switch and a self-signalling degradation for fast engine tests
(a plugin file, like a user's)."""
import os
import signal
import time

from torch import nn

from workbench import hookimpl


class Tiny(nn.Module):
    """Two convolutions added to the input: trains in milliseconds. `dropout` > 0 draws random
    numbers on every training step (what a resume must replay exactly)."""

    def __init__(self, *, width=8, dropout=0.0):
        super().__init__()
        drop = [nn.Dropout2d(dropout)] if dropout else []
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), *drop, nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class SquaredError(nn.Module):
    """Mean squared error, registered by a plugin file to prove third-party losses train."""

    def forward(self, output, target):
        return ((output - target) ** 2).mean()


class SignalAt:
    """The identity, except that its `call`-th use sends `times` `sig` signals to its own process,
    once per flag file (TINY_SIGNAL_FLAG), so that a resumed run is not signalled again. With
    data.workers = 0 it runs in the training process: a Ctrl-C in the middle of a step. `hang`: then
    it sleeps for that many seconds, as a plugin stuck on a network read would."""

    def __init__(self, *, call=1, sig="SIGINT", times=1, parent=False, hang=0.0):
        self.call, self.sig, self.times, self.parent, self.calls = call, getattr(signal, sig), times, parent, 0
        self.hang = hang

    def __call__(self, img, rng):
        self.calls += 1
        flag = os.environ.get("TINY_SIGNAL_FLAG")
        if self.calls == self.call and flag and not os.path.exists(flag):
            open(flag, "w").close()
            for _ in range(self.times):   # parent: from a DataLoader worker, signal the training process
                os.kill(os.getppid() if self.parent else os.getpid(), self.sig)
            time.sleep(self.hang)
        return img.clone()


@hookimpl
def register_degradations(register):
    register("signal_at", SignalAt)


@hookimpl
def register_models(register):
    register("tiny", Tiny)


@hookimpl
def register_losses(register):
    register("tiny_mse", SquaredError)


@hookimpl
def on_epoch_end(run, epoch, metrics):
    # The resume test sets this to kill the process for real after that epoch's checkpoint.
    if os.environ.get("TINY_KILL_AFTER_EPOCH") == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)
