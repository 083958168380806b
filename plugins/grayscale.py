"""`grayscale`: drain the colour, the damage colorization undoes (DeOldify; Zhang et al. 2016)."""
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param

# ITU-R BT.601 luma weights, the ones Pillow's convert("L") and most grayscale photos use.
LUMA = torch.tensor([0.299, 0.587, 0.114])


class Grayscale(Degradation):
    """Replace colour by luminance (BT.601) copied into all three channels.

    amount: 1.0 removes all colour; less blends towards the original (faded photos), e.g. [0.6, 1.0].
    """

    keeps_luma = True   # Y is what it keeps: judge colorization on RGB

    def __init__(self, *, amount=1.0):
        self.amount = Param(amount, name="amount", kind=float, lo=0.0, hi=1.0)

    def __call__(self, img, rng):
        amount = self.amount.sample(rng)
        y = torch.einsum("chw,c->hw", img, LUMA.to(img)).expand_as(img)
        return torch.lerp(img, y, amount) if amount < 1 else y.clone()


@hookimpl
def register_degradations(register):
    register("grayscale", Grayscale)
