"""A model from a bare weights file a project published (`--weights FILE`, `eval --baseline FILE`).

The engine does not read such files itself: it builds the model type `defaults.WEIGHTS_MODEL` names with
`weights = FILE`, and that plugin (`published`, through spandrel) finds the architecture, so every error is
one line naming the file.
"""
import sys
from pathlib import Path

from workbench.api.contracts import capability
from workbench.api.registry import build
from workbench.errors import WorkbenchError
from workbench.recipe import defaults


def load_weights(path, plugins):
    """The restorer a published weights file holds, built by the weights-file model plugin."""
    if Path(path).is_dir():
        raise WorkbenchError(f"{path} is a folder; --weights and --baseline take a published model's .pth or "
                             ".safetensors file (a run directory is given as RUN_DIR).")
    _, model = build(plugins.models, {"type": defaults.WEIGHTS_MODEL, "weights": str(path)})
    if capability(model, "task") != "restore":
        raise WorkbenchError(f"{path}: holds a {capability(model, 'task')} model, not a restorer.")
    return model


def describe(path, model):
    """The name a table gives a published model: its label and its file, 'ESRGAN x2 RealESRGAN_x2plus.pth'."""
    return f"{capability(model, 'label')} {Path(path).name}"


def tiling_note(model, tile, who):
    """One warning line where a model wants whole images (its `tiles`) but photos larger than `tile` are cut."""
    if tile and not capability(model, "tiles"):
        print(f"warning: {who} wants whole images (its context spans the image), but photos larger than --tile {tile} "
              "are restored in tiles to bound memory; --tile 0 passes them whole.", file=sys.stderr)
