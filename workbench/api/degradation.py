"""Running degradations: the chain in recipe order, each output checked against the contract
(workbench.api.contracts) and every failure one line naming the plugin. Plugins subclass the
`Degradation` base class from here."""
import torch

from workbench.api.contracts import Degradation, Outpaint, capability
from workbench.errors import WorkbenchError

__all__ = ["Degradation", "DegradationError", "Outpaint", "Step", "apply_chain"]   # the first two: for plugins


STRICT_CALLS = 8   # first calls of each step (per process) checked as `workbench check` does


class Step(tuple):
    """One link of a chain: unpacks as `(name, deg)` like a plain pair, and also knows the plugin
    that registered `name`, so a failure deep in training (or in a DataLoader worker) can name it.
    Its first STRICT_CALLS calls are checked in full: float dtype, [0, 1] range, input untouched
    (a plugin returning 0-255 values would otherwise be clamped to white and train to nonsense)."""

    def __new__(cls, name, deg, plugin=None):
        step = super().__new__(cls, (name, deg))
        step.plugin = plugin
        step.strict_left = STRICT_CALLS
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
        strict = getattr(step, "strict_left", 0) > 0
        try:
            before = img.clone() if strict else None
            out = deg(img, rng)
            if capability(deg, "reports_mask"):
                out, m = out
                mask = m if mask is None else mask | m
            if strict:
                step.strict_left -= 1
                _strictly(out, img, before)
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


RANGE_SLACK = 1e-4   # float rounding of an honest [0, 1] computation; 0-255 values are far beyond it


def _strictly(out, img, before):
    """The contract's cheap checks (workbench.author.degradations) on one call."""
    if not torch.equal(img, before):
        raise _Broken("modified its input image in place; work on a copy (img = img.clone()) and return that")
    if isinstance(out, torch.Tensor) and out.dtype != img.dtype:
        hint = " (divide 0-255 values by 255)" if not out.is_floating_point() else ""
        raise _Broken(f"returned a {str(out.dtype).removeprefix('torch.')} image, expected {str(img.dtype).removeprefix('torch.')} "
                      f"in [0, 1] like its input{hint}")
    if isinstance(out, torch.Tensor) and out.numel() and out.shape == img.shape:
        lo, hi = out.min().item(), out.max().item()
        if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
            hint = "; 0-255 values must be divided by 255" if hi > 2 else ""
            raise _Broken(f"returned values in [{lo:.3g}, {hi:.3g}], outside the contract's [0, 1]{hint}")


def _checked(out, img):
    """Catch a misbehaving plugin here, naming it, rather than deep inside training."""
    if not isinstance(out, torch.Tensor):
        raise _Broken(f"returned {type(out).__name__}, expected a tensor")
    if out.shape != img.shape:
        raise _Broken(f"changed the image shape from {tuple(img.shape)} to {tuple(out.shape)}")
    if not torch.isfinite(out.abs().amax()):   # max propagates NaN and Inf; 15x cheaper than isfinite(out).all()
        raise _Broken("returned NaN or Inf values")
    return out.to(img.dtype).clamp(0, 1)
