"""Checkpoints: written atomically, read with `weights_only=True`, enough to rebuild the model.

A checkpoint is a dict: {"format", "model" (state dict), "recipe" (resolved cfg), "versions",
"epoch" (epochs completed), "metrics"} plus, in `last.pt`, what a resume needs ("optimizer",
"scheduler", "rng", "best").
"""
import os
import pickle
import re
import tempfile
from pathlib import Path

import torch

from workbench import __version__
from workbench.errors import WorkbenchError

FORMAT = 1
TEMP_SUFFIX = ".tmp"   # of the half-written file `save` renames into place


def versions():
    from importlib.metadata import PackageNotFoundError, version

    try:   # the installed version, without importing torchvision (slow, and ~165 MB) at every save
        vision = version("torchvision")
    except PackageNotFoundError:
        vision = "absent"
    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {"workbench": __version__, "torch": str(torch.__version__), "torchvision": vision}


def save(state, path):
    """Write `state` to `path` so that a crash at any moment leaves either the old or the new file.
    A full disk or an unwritable folder is a WorkbenchError (one line); the old file stays intact."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # torch.save may report a failed write as a RuntimeError raised while handling the OSError
        err = e if isinstance(e, OSError) else e.__context__ if isinstance(e, RuntimeError) else None
        if not isinstance(err, OSError):
            raise
        raise WorkbenchError(f"cannot write checkpoint {path}: {err.strerror or err}; the previous {path.name} (if any) is "
                             f"kept. Free some disk space and continue with --resume.") from e
    fsync_dir(path.parent)


def remove_temporary(folder):
    """Delete half-written `.NAME.pt.*.tmp` files that a kill during `save` left behind; returns how many."""
    stale = [p for p in Path(folder).glob(f".*.pt.*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def fsync_dir(folder):
    """Make the rename itself durable (POSIX); not possible, and not needed, on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f"it references {found.group(1)}" if found else "it is not a weights-only file"
        raise WorkbenchError(f"{path}: refused to load: {what}, a Python object that could run code; "
                             f"a workbench checkpoint holds only weights and settings.") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WorkbenchError(f"{path}: cannot read checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__}); the file is corrupt or not a checkpoint.") from e
    if not isinstance(state, dict) or "model" not in state or "recipe" not in state:
        raise WorkbenchError(f"{path}: not a workbench checkpoint (no model weights and recipe inside).")
    return state


def model_spec(recipe_cfg):
    """The [model] table to rebuild a trained model: pretrained-encoder paths are not needed, the
    weights are in the checkpoint."""
    return {k: v for k, v in recipe_cfg["model"].items() if k != "encoder"}


def task_of(state, plugins):
    """'restore' or 'classify'; checkpoints from before `task` was saved tell by their model."""
    if "task" in state:
        return state["task"]
    factory = plugins.models.get(state["recipe"]["model"].get("type", "unet"))
    return getattr(factory, "task", "restore")


def load_model(where, plugins, which="best", map_location="cpu"):
    """Rebuild the model a checkpoint was trained with and load its weights -> (model, state)."""
    from workbench.api.registry import build

    state = load(where, which, map_location)
    _, model = build(plugins.models, model_spec(state["recipe"]), where=f"{where}: [model]")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise WorkbenchError(f"{where}: the weights do not fit the model the recipe describes ({str(e).splitlines()[0]}).") from e
    return model, state
