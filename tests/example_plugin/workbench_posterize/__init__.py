"""Example third-party plugin: a `posterize` degradation and a recipe that uses it."""
from pathlib import Path

import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param


class Posterize(Degradation):
    """Keep only `bits` bits per channel, as old GIFs and cheap displays do."""

    def __init__(self, *, bits=[2, 4]):
        self.bits = Param(bits, name="bits", kind=int, lo=1, hi=8)

    def __call__(self, img, rng):
        levels = 2 ** self.bits.sample(rng) - 1
        return torch.round(img * levels) / levels


@hookimpl
def register_degradations(register):
    register("posterize", Posterize)


@hookimpl
def register_recipes(register):
    register("deposterize", Path(__file__).with_name("deposterize.toml"))
