"""Checkpoints: written atomically, read with `weights_only=True`, enough to rebuild the model.

A checkpoint is a dict: {"format", "model" (state dict), "recipe" (resolved cfg), "versions",
"epoch" (epochs completed), "metrics"} plus, in `last.pt`, what a resume needs ("optimizer",
"scheduler", "rng", "best").
"""
import pickle
import re
from pathlib import Path

import torch

from workbench import __version__
from workbench.api.contracts import capability
from workbench.errors import WorkbenchError, first_line
from workbench.recipe import defaults
from workbench.runs import exported
from workbench.runs.files import atomic_write

FORMAT = 1


def versions():
    from importlib.metadata import PackageNotFoundError, version

    try:   # the installed version, without importing torchvision (slow, and ~165 MB) at every save
        vision = version("torchvision")
    except PackageNotFoundError:
        vision = "absent"
    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {"workbench": __version__, "torch": str(torch.__version__), "torchvision": vision}


def save(state, path):
    """Write `state` to `path` atomically (workbench.runs.files): a crash at any moment leaves either
    the old or the new file. A full disk or an unwritable folder is a WorkbenchError (one line)."""
    atomic_write(path, lambda f: torch.save(state, f), replace=True, what="checkpoint",
                 hint="Free some disk space and continue with --resume.")


def locate(where, which="best"):
    """A checkpoint file, or a run directory's checkpoints/{which}.pt (falling back to last.pt)."""
    path = Path(where)
    if path.is_file():
        return path
    if not path.is_dir():
        raise WorkbenchError(f"{path} is neither a run directory nor a checkpoint file; check the path.")
    for name in (which, "last"):
        candidate = path / "checkpoints" / f"{name}.pt"
        if candidate.is_file():
            return candidate
    raise WorkbenchError(f"{path} has no checkpoints/{which}.pt or checkpoints/last.pt; is it a finished or started run directory?")


def load(where, which="best", map_location="cpu"):
    """Read a checkpoint safely: tensors and plain data only, never arbitrary pickled objects."""
    path = locate(where, which)
    if path.suffix.lower() in exported.SUFFIXES:   # what `workbench export` writes: .safetensors is read, a graph refused
        return exported.read(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f"it references {found.group(1)}" if found else "it is not a weights-only file"
        raise WorkbenchError(f"{path}: refused to load: {what}, a Python object that could run code; "
                             f"a workbench checkpoint holds only weights and settings.") from e
    except Exception as e:   # a damaged file can make torch's safe unpickler raise almost anything (IndexError, ...)
        raise WorkbenchError(f"{path}: cannot read checkpoint ({first_line(e)}); the file is corrupt or not a checkpoint.") from e
    if not isinstance(state, dict) or "model" not in state or "recipe" not in state:
        raise WorkbenchError(f"{path}: not a workbench checkpoint (no model weights and recipe inside).")
    return state


def model_spec(recipe_cfg):
    """The [model] table to rebuild a trained model: pretrained-encoder paths are not needed, the
    weights are in the checkpoint."""
    return {k: v for k, v in recipe_cfg["model"].items() if k != "encoder"}


def task_of(state, plugins):
    """'restore', 'classify', 'segment' or 'stylize'; checkpoints from before `task` was saved tell by their
    model (they predate segmenters and stylizers)."""
    if "task" in state:
        return state["task"]
    factory = plugins.models.get(state["recipe"]["model"].get("type", defaults.MODEL))
    return capability(factory, "task")


def weights(state):
    """The weights to judge and use: the average (train.ema) where the run kept one, else the trained ones."""
    return state["ema"] if "ema" in state else state["model"]


def rebuild(plugins, spec, state_dict, *, where):
    """The model its checkpoint's weights describe (its `from_state_dict`: a published architecture, whose
    original file a moved run directory may lack), or None: build it from the [model] table."""
    factory = plugins.models.get(spec.get("type", defaults.MODEL))
    try:
        return capability(factory, "from_state_dict")({k: v for k, v in spec.items() if k != "type"}, state_dict)
    except (ValueError, TypeError) as e:
        raise WorkbenchError(f"{where}: {e}") from e


def load_model(where, plugins, which="best", map_location="cpu"):
    """Rebuild the model a checkpoint was trained with and load its weights -> (model, state)."""
    from workbench.api.registry import build

    state = load(where, which, map_location)
    model = rebuild(plugins, model_spec(state["recipe"]), weights(state), where=f"{where}: [model]")
    if model is None:
        _, model = build(plugins.models, model_spec(state["recipe"]), where=f"{where}: [model]")
    try:
        model.load_state_dict(weights(state))
    except RuntimeError as e:
        raise WorkbenchError(f"{where}: the weights do not fit the model the recipe describes ({str(e).splitlines()[0]}).") from e
    return model, state
