"""Running degradations: the chain in recipe order, each output checked against the contract
(workbench.api.contracts) and every failure one line naming the plugin. Plugins subclass the
`Degradation` base class from here."""
import torch

from workbench.api.contracts import Degradation, Outpaint, capability
from workbench.errors import WorkbenchError

__all__ = ["Degradation", "Outpaint", "DegradationError", "Step", "apply_chain"]   # the first two: for plugins


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
            if capability(deg, "reports_mask"):
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
