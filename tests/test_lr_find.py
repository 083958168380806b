"""lr-find suggests a usable learning rate: on flat and on valley-shaped curves, and on real recipes."""
import math
import statistics

import pytest
import torch

from workbench import recipe as recipes
from workbench.tasks import make_task
from workbench.train.lr_find import lr_find, suggest
from workbench.train.setup import Learner


def sweep(n=100, start=1e-6, end=1.0):
    factor = (end / start) ** (1 / (n - 1))
    return [start * factor**i for i in range(n)]


def test_a_flat_curve_suggests_a_tenth_of_where_the_loss_climbs():
    lrs = sweep()
    # an identity-initialised restorer: noise around a plateau, then divergence from 1e-2 on
    noise = [0.001 * math.sin(7 * i) for i in range(100)]
    losses = [0.02 + noise[i] + (0.5 * math.log10(lr / 1e-2) * 0.02 if lr > 1e-2 else 0) for i, lr in enumerate(lrs)]
    climb = next(i for i in range(2, 100) if losses[i] > 1.1 * statistics.median(losses[:i]))
    assert lrs[climb] > 1e-2
    assert suggest(lrs, losses) == pytest.approx(lrs[climb] / 10)
    assert 1e-4 < suggest(lrs, losses) < 1e-2
    assert suggest(lrs, losses) != lrs[1]   # the old steepest-descent rule picked the second value


def test_a_real_valley_suggests_its_middle():
    lrs = sweep()
    # falls steadily from 1e-5 to 1e-2, then explodes
    losses = [1.0 if lr < 1e-5 else 1.0 - 0.3 * math.log10(lr / 1e-5) if lr < 1e-2 else 0.1 + 3 * math.log10(lr / 1e-2)
              for lr in lrs]
    got = suggest(lrs, losses)
    assert 1e-4 < got < 1e-3   # about the geometric middle of the valley, 3e-4


def test_short_sweeps():
    assert suggest([1e-3], [1.0]) == 1e-3 and math.isnan(suggest([], []))


@pytest.mark.parametrize("name", ["superres", "dejpeg"])
def test_on_recipes_the_suggestion_is_within_ten_times_the_recipes_own_lr(plugins, name):
    recipe = recipes.load(name, plugins, ["data.workers=0"])
    lrs, losses, got = lr_find(recipe, plugins, steps=100, device="cpu")
    assert len(lrs) >= 60
    assert recipe["train"]["lr"] / 10 <= got <= recipe["train"]["lr"] * 10, (got, recipe["train"]["lr"])


def test_lr_find_and_run_share_one_set_up(plugins):
    # fp16 needs a loss scaler and the recipe's clipping applies: both come from the trainer's Learner
    recipe = recipes.load("dejpeg", plugins, ["train.grad_clip=0.5", "data.workers=0"])
    learner = Learner(recipe, plugins, make_task(recipe, plugins), torch.device("cpu"))
    assert learner.grad_clip == 0.5 and isinstance(learner.scaler, torch.amp.GradScaler)
    batch = next(iter(torch.utils.data.DataLoader(learner.task.valid, batch_size=2)))
    before = [p.detach().clone() for p in learner.model.parameters()]
    loss, terms, n = learner.step(batch)
    assert loss is not None and n == 2 and "loss/l1" in terms
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
