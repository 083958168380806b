"""A plugin file, loaded with --plugin or $WORKBENCH_PLUGINS, as a user tries one out before packaging."""
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param


class Vignette(Degradation):
    """Darken the corners, as cheap lenses do. strength: 0 (none) to 1 (black corners)."""

    def __init__(self, *, strength=[0.3, 0.8]):
        self.strength = Param(strength, name="strength", kind=float, lo=0.0, hi=1.0)

    def __call__(self, img, rng):
        s = self.strength.sample(rng)
        h, w = img.shape[-2:]
        y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        falloff = 1 - s * ((x**2 + y**2) / 2).clamp(0, 1)
        return img * falloff.to(img)


@hookimpl
def register_degradations(register):
    register("vignette", Vignette)
