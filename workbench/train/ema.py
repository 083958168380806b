"""An exponential moving average of the weights (`train.ema`), as BasicSR, MMagic and KAIR keep.

torch's own `AveragedModel` holds the copy; BatchNorm's running statistics are averaged with the
weights (use_buffers), so the average is a model that can be judged as it is. The decay warms up as
tf.train.ExponentialMovingAverage's does, min(decay, (1 + n) / (10 + n)) after n updates: a short
run's average would otherwise be mostly its random initial weights (0.999 forgets them only after
a few thousand steps).
"""
import torch
from torch.optim.swa_utils import AveragedModel

from workbench.errors import WorkbenchError


def warming_decay(decay):
    """multi_avg_fn for AveragedModel: an EMA whose decay grows to `decay` with the updates."""

    @torch.no_grad()
    def update(ema, current, n):
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        if torch.is_floating_point(ema[0]):
            torch._foreach_lerp_(ema, current, 1 - d)
        else:   # counters such as BatchNorm's num_batches_tracked: the model's own
            for e, c in zip(ema, current):
                e.copy_(c)

    return update


def make_ema(model, decay):
    """The averaged copy of `model`, or None when `decay` is 0 (off)."""
    if not decay:
        return None
    ema = AveragedModel(model, multi_avg_fn=warming_decay(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


def ema_state(ema):
    """What a checkpoint keeps of the average: its weights (loadable into the bare model) and count."""
    return {"ema": ema.module.state_dict(), "ema_updates": int(ema.n_averaged)}


def load_ema(ema, state, where):
    """Put a checkpoint's average back; a checkpoint without one (EMA off when it was saved) is refused
    by the recipe check before this, so a missing one here is a damaged file."""
    if "ema" not in state:
        raise WorkbenchError(f"{where}: the checkpoint holds no average of the weights although train.ema is on; "
                             "start a new run.")
    ema.module.load_state_dict(state["ema"])
    ema.n_averaged.fill_(state["ema_updates"])
