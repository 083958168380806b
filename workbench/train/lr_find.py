"""`workbench lr-find`: the learning-rate range test (Smith 2015), as fastai's lr_find.

Train from the recipe's initial weights while the learning rate grows exponentially; the loss
falls, flattens, then explodes. A good peak learning rate sits where the loss falls fastest,
well before the minimum.
"""
import math

import torch

from workbench.images import masks
from workbench.data import train_loader
from workbench.devices.device import autocast, autocast_dtype, pick_device
from workbench.train.objective import build_objective
from workbench.api.registry import build
from workbench.train.task import make_task


def lr_find(recipe, plugins, *, start=1e-6, end=1.0, steps=100, device="auto"):
    """Returns (lrs, smoothed losses, suggested lr)."""
    device = pick_device(device)
    torch.manual_seed(recipe["recipe"]["seed"])
    task = make_task(recipe, plugins)
    spec = task.configure_model(dict(recipe["model"] or {"type": "unet"}))
    _, model = build(plugins.models, spec, where=f"{recipe.source}: [model]")
    model.to(device).train()
    objective = build_objective(recipe, plugins, default=task.default_loss).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=start, weight_decay=recipe["train"]["weight_decay"])
    loader, sampler = train_loader(task.train, batch_size=recipe["data"]["batch_size"], workers=recipe["data"]["workers"])
    amp = autocast_dtype(device, recipe["train"]["mixed_precision"], recipe["train"]["cpu_bf16"])
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses, avg, best, epoch = [], [], 0.0, math.inf, 0
    while len(lrs) < steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            lr = start * factor ** len(lrs)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = task.inputs(batch, device)
            with autocast(device, amp):
                loss, _ = objective(masks.forward(model, x, batch.get("mask")).float(), y, model, batch.get("mask"))
            if not torch.isfinite(loss):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            # Exponential moving average with bias correction, as fastai smooths the curve.
            avg = 0.98 * avg + 0.02 * loss.item()
            smooth = avg / (1 - 0.98 ** (len(lrs) + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if smooth > 4 * best or len(lrs) >= steps:
                return lrs, losses, suggest(lrs, losses)
        else:
            epoch += 1
            continue
        break
    return lrs, losses, suggest(lrs, losses)


def suggest(lrs, losses):
    """The learning rate of steepest descent of the (log-lr, loss) curve, before the minimum."""
    if len(lrs) < 3:
        return lrs[0] if lrs else math.nan
    stop = min(range(len(losses)), key=losses.__getitem__)
    stop = max(stop, 2)
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(stop)]
    return lrs[min(range(len(slopes)), key=slopes.__getitem__)]


def plot(lrs, losses, suggestion, path):
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
