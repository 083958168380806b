"""Which classical baselines judge a chain: each degradation names those that fit its damage (its
`baselines` capability) and plugins register them by name (the `register_baselines` hook; the
built-ins are in plugins/baselines.py). The engine knows none of them by name.

A plugin's baseline that raises or returns something other than an image of the clean image's
shape is one line naming it and its plugin, never a traceback (`eval`, `grid`, `workbench check`).
"""
import torch

from workbench.api.contracts import capability
from workbench.errors import WorkbenchError


def names(name, deg):
    """The baseline names a degradation asks for, checked to be a tuple or list of strings."""
    asked = capability(deg, "baselines")
    if isinstance(asked, str) or not isinstance(asked, (tuple, list)) or not all(isinstance(m, str) for m in asked):
        raise WorkbenchError(f"degradation '{name}': baselines = {asked!r} must be a tuple of baseline names, "
                             "e.g. (\"bicubic\",).")
    return asked


def for_chain(chain, plugins):
    """{baseline name: fn(clean, damaged, mask) -> image} for the degradations in `chain`, in the
    order they name them; a baseline that cannot judge this chain honestly (its factory returns
    None) is left out."""
    found = {}
    for name, deg in chain:
        for method in names(name, deg):
            if method in found:
                continue
            if method not in plugins.baselines:
                raise WorkbenchError(f"degradation '{name}' asks for the baseline '{method}', which no plugin registers; "
                                     f"registered: {', '.join(plugins.baselines.names()) or 'none'}.")
            who = f"baseline '{method}' (plugin '{plugins.baselines.plugin_of(method)}')"
            try:
                fn = plugins.baselines.get(method)(deg, chain)
            except Exception as e:
                raise WorkbenchError(f"{who} failed for degradation '{name}': {_first(e)}") from e
            if fn is not None:
                found[method] = _checked(fn, who)
    return found


def _checked(fn, who):
    def run(clean, damaged, mask):
        try:
            out = fn(clean, damaged, mask)
        except WorkbenchError:
            raise
        except Exception as e:
            raise WorkbenchError(f"{who} failed: {_first(e)}") from e
        if not isinstance(out, torch.Tensor) or out.shape != clean.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise WorkbenchError(f"{who} returned {got}, not an image of the clean image's shape {tuple(clean.shape)}.")
        return out
    return run


def _first(e):
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
