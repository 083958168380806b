"""`workbench lr-find`: the learning-rate range test (Smith 2015), as fastai's lr_find.

Train from the recipe's initial weights while the learning rate grows exponentially; the loss
falls, flattens, then explodes. A good peak learning rate sits in the long valley where the loss
keeps falling, or a tenth of the rate where it starts to climb (`suggest`).
"""
import math
import statistics

import torch

from workbench.data import train_loader
from workbench.devices.device import pick_device
from workbench.devices.progress import bar as progress_bar
from workbench.runs.files import atomic_write
from workbench.tasks import make_task
from workbench.train.setup import Learner, check_batch_fits, model_memory


def lr_find(recipe, plugins, *, start=1e-6, end=1.0, steps=100, device="auto", progress=False):
    """Returns (lrs, smoothed losses, suggested lr). The model, objective, optimiser, precision,
    loss scaler and clipping are the trainer's own (workbench.train.setup)."""
    device = pick_device(device)
    check_batch_fits(recipe)
    torch.manual_seed(recipe["recipe"]["seed"])
    task = make_task(recipe, plugins)
    with model_memory(recipe):
        learner = Learner(recipe, plugins, task, device)
    learner.model.train()
    loader, sampler = train_loader(task.train, batch_size=recipe["data"]["batch_size"], workers=recipe["data"]["workers"])
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses, avg, best, epoch = [], [], 0.0, math.inf, 0
    # progress: a bar on a terminal or as $WORKBENCH_PROGRESS says (workbench.devices.progress); False: none
    bar = progress_bar(total=steps, desc="lr-find", unit="step", enabled=progress)
    try:
        while len(lrs) < steps:
            sampler.set_epoch(epoch)
            for batch in loader:
                lr = start * factor ** len(lrs)
                for group in learner.opt.param_groups:
                    group["lr"] = lr
                loss, _, _ = learner.step(batch)
                if loss is None:
                    return lrs, losses, suggest(lrs, losses)
                # Exponential moving average with bias correction, as fastai smooths the curve.
                avg = 0.98 * avg + 0.02 * loss.item()
                smooth = avg / (1 - 0.98 ** (len(lrs) + 1))
                lrs.append(lr)
                losses.append(smooth)
                bar.update()
                best = min(best, smooth)
                if smooth > 4 * best or len(lrs) >= steps:   # diverged, or done
                    return lrs, losses, suggest(lrs, losses)
            epoch += 1
        return lrs, losses, suggest(lrs, losses)
    finally:
        bar.close()


CLIMB = 1.1     # the loss "starts to climb" once it is 10 % above the median of the sweep so far
DROP = 0.1      # a valley must fall by 10 % of its starting loss to be more than noise


def suggest(lrs, losses):
    """The suggested peak learning rate for a sweep's (lrs, smoothed losses).

    1. Where the loss starts to climb: the first point 10 % above the median loss before it.
    2. Before that, the "valley" of fastai's lr_find: the longest stretch over which the loss keeps
       falling (a longest decreasing subsequence); if it falls by at least 10 %, its midpoint.
    3. Otherwise the curve is flat, as it is for a restorer that starts as the identity (a short
       sweep barely moves it): a tenth of the rate where the loss climbs, Smith's (2015) rule of
       thumb. Steepest descent, the old rule, was fooled by the noise of the first steps: it
       suggested the sweep's second value (1.15e-06 for dejpeg, whose recipe trains at 2e-3).
    """
    n = len(losses)
    if n < 3:
        return lrs[0] if lrs else math.nan
    climb = next((i for i in range(2, n) if losses[i] > CLIMB * statistics.median(losses[:i])), n)
    start, end = _valley(losses[:climb])
    if losses[start] - losses[end] >= DROP * losses[start]:
        return lrs[start + (end - start) // 2]
    return lrs[climb] / 10 if climb < n else lrs[start + (end - start) // 2]


def _valley(losses):
    """(first, last) index of the longest decreasing subsequence of `losses` (the earliest of equals)."""
    n = len(losses)
    run, first = [1] * n, list(range(n))   # run[i]: its length ending at i; first[i]: where it starts
    for i in range(1, n):
        for j in range(i):
            if losses[j] > losses[i] and run[j] + 1 >= run[i]:   # ties: the later start, past a plateau
                run[i], first[i] = run[j] + 1, first[j]
    end = max(range(n), key=lambda i: (run[i], -i))
    return first[end], end


def plot(lrs, losses, suggestion, path, *, replace=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if math.isfinite(suggestion):
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2e}")
        ax.legend()
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="learning-rate finder")
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), replace=replace, what="the plot")
    finally:
        plt.close(fig)
