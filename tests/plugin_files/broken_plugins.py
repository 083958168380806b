"""Components that misbehave on purpose, for the reliability tests (a plugin file, like a user's).

The degradations `explode` (raises), `nan` (returns NaN) and `shrink` (returns a smaller image)
behave (return the image unchanged) until the file named by $BROKEN_FLAG exists; the hook below
creates it after epoch $BROKEN_FROM_EPOCH - 1 (default: after epoch 1), so epoch 1 trains and is
checkpointed first. Without $BROKEN_FLAG they fail at once. A flag file, not a counter or an
environment variable, so that DataLoader worker processes forked earlier see it too.

`nan_loss` is the mean squared error, but NaN on calls `start` .. `start + count - 1` (count 0:
for ever); `nan_grad` is finite but from call `start` on has NaN gradients, which turn the weights
to NaN. `slow` is the identity after a sleep, so that a test has time to signal a run.
"""
import os
import time
from pathlib import Path

from torch import nn

from workbench import hookimpl


def _broken():
    flag = os.environ.get("BROKEN_FLAG")
    return flag is None or Path(flag).exists()


class Explode:
    def __call__(self, img, rng):
        if _broken():
            raise RuntimeError("boom")
        return img.clone()


class Nan:
    def __call__(self, img, rng):
        return img * float("nan") if _broken() else img.clone()


class Shrink:
    def __call__(self, img, rng):
        return img[:, 1:, 1:].clone() if _broken() else img.clone()


class Slow:
    def __init__(self, *, seconds=0.05):
        self.seconds = seconds

    def __call__(self, img, rng):
        time.sleep(self.seconds)
        return img.clone()


class NanLoss(nn.Module):
    def __init__(self, *, start=0, count=0):
        super().__init__()
        self.start, self.count, self.calls = start, count, 0

    def forward(self, output, target):
        k, self.calls = self.calls, self.calls + 1
        loss = ((output - target) ** 2).mean()
        bad = k >= self.start and (self.count == 0 or k < self.start + self.count)
        return loss * float("nan") if bad else loss


class NanGrad(nn.Module):
    def __init__(self, *, start=0):
        super().__init__()
        self.start, self.calls = start, 0

    def forward(self, output, target):
        k, self.calls = self.calls, self.calls + 1
        loss = ((output - target) ** 2).mean()
        if k >= self.start:
            # sqrt(|u|) at u = 0 is 0, but its gradient is inf * 0 = NaN
            loss = loss + (output.sum() * 0).abs().sqrt()
        return loss


@hookimpl
def register_degradations(register):
    register("explode", Explode)
    register("nan", Nan)
    register("shrink", Shrink)
    register("slow", Slow)


@hookimpl
def register_losses(register):
    register("nan_loss", NanLoss)
    register("nan_grad", NanGrad)


@hookimpl
def on_epoch_end(epoch):
    flag = os.environ.get("BROKEN_FLAG")
    if flag and epoch >= int(os.environ.get("BROKEN_FROM_EPOCH", "2")) - 1:
        Path(flag).touch()
