"""A tiny residual model and a kill switch for fast engine tests (a plugin file, like a user's)."""
import os
import signal

from torch import nn

from workbench import hookimpl


class Tiny(nn.Module):
    """Two convolutions added to the input: trains in milliseconds."""

    def __init__(self, *, width=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class SquaredError(nn.Module):
    """Mean squared error, registered by a plugin file to prove third-party losses train."""

    def forward(self, output, target):
        return ((output - target) ** 2).mean()


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
