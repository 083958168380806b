"""The degradation contract and the chain runner.

A degradation is built from keyword parameters and called as `deg(img, rng)`: `img` is a float
tensor C x H x W in [0, 1] (RGB) and `rng` a `numpy.random.Generator`. It returns the damaged
image of the same size and never modifies its input; the same generator state gives the same
output. A degradation that destroys known pixels sets `reports_mask = True` and returns
`(img, mask)`, mask a bool tensor 1 x H x W that is True where pixels were destroyed. One that
leaves luma intact (colour removal) sets `keeps_luma = True`: PSNR on Y cannot see that damage,
so judging leads with RGB.
"""
import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.api.params import Param


class Degradation:
    """Optional base class: collects `Param` attributes to tell whether output depends on the seed."""

    reports_mask = False
    keeps_luma = False

    @property
    def is_random(self):
        return any(p.is_random for p in vars(self).values() if isinstance(p, Param))

    def __repr__(self):
        params = ", ".join(f"{k}={p.spec!r}" for k, p in vars(self).items() if isinstance(p, Param))
        return f"{type(self).__name__}({params})"


class Step(tuple):
    """One link of a chain: unpacks as `(name, deg)` like a plain pair, and also knows the plugin
    that registered `name`, so a failure deep in training (or in a DataLoader worker) can name it."""

    def __new__(cls, name, deg, plugin=None):
        step = super().__new__(cls, (name, deg))
        step.plugin = plugin
        return step

    def __getnewargs__(self):   # pickled to spawned DataLoader workers: keep the plugin
        return (*self, self.plugin)


class DegradationError(WorkbenchError):
    """A degradation raised or broke the contract while damaging an image: one line naming it and its plugin."""

    def __init__(self, message):
        # A DataLoader worker's exception is re-raised in the main process as type(e)(text) where
        # text is "Caught ... in DataLoader worker process N. Original Traceback ..." ending in
        # "workbench.api.degradation.DegradationError: MESSAGE": keep MESSAGE, the one line that matters.
        marker = f"{__name__}.{type(self).__name__}: "
        if marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def apply_chain(chain, img, rng):
    """Run degradations in recipe order; returns (damaged, mask or None), masks united."""
    mask = None
    for step in chain:
        name, deg = step
        try:
            out = deg(img, rng)
            if getattr(deg, "reports_mask", False):
                out, m = out
                mask = m if mask is None else mask | m
            img = _checked(out, img)
        except Exception as e:   # whatever the plugin did, the user gets one line naming it
            plugin = getattr(step, "plugin", None)
            who = f"plugin '{plugin}', degradation '{name}'" if plugin else f"degradation '{name}'"
            text = " ".join(str(e).split())   # one line, whatever the plugin's message looks like
            reason = text if isinstance(e, (_Broken, WorkbenchError)) else f"raised {type(e).__name__}: {text}"
            raise DegradationError(f"{who}: {reason}") from e
    return img, mask


class _Broken(ValueError):
    """The output broke the contract (vs. the degradation itself raising)."""


def _checked(out, img):
    """Catch a misbehaving plugin here, naming it, rather than deep inside training."""
    if not isinstance(out, torch.Tensor):
        raise _Broken(f"returned {type(out).__name__}, expected a tensor")
    if out.shape != img.shape:
        raise _Broken(f"changed the image shape from {tuple(img.shape)} to {tuple(out.shape)}")
    if not torch.isfinite(out.abs().amax()):   # max propagates NaN and Inf; 15x cheaper than isfinite(out).all()
        raise _Broken("returned NaN or Inf values")
    return out.to(img.dtype).clamp(0, 1)


# -- helpers shared by the built-in degradations ----------------------------------------------------
def to_uint8_hwc(img):
    """C x H x W float [0, 1] tensor -> H x W x C uint8 array (rounded, as image files store it)."""
    # Rounded in torch, then made contiguous once: OpenCV and Pillow would each copy a strided array.
    return (img.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def from_uint8_hwc(arr, like=None):
    """H x W x C (or H x W) uint8 array or PIL image -> C x H x W float tensor in [0, 1]."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if not arr.flags.writeable:  # np.asarray(PIL image) is read-only; torch wants to own its memory
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255)
    return t if like is None else t.to(dtype=like.dtype, device=like.device)
