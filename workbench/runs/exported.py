"""Exported .safetensors files: a model's weights plus, as metadata, what rebuilds it (the recipe).

`workbench export RUN -o model.safetensors` writes one; `restore` (through `checkpoint.load`) reads it back
as the state a checkpoint gives. safetensors metadata maps text to text, so the resolved recipe is kept
as JSON under `workbench.recipe`; `workbench.format` marks a file as the workbench's. Reading never
unpickles anything: the safetensors loader reads raw tensors only (Hugging Face's format, safe by design).
"""
import json
from pathlib import Path

from workbench import __version__
from workbench.errors import WorkbenchError, first_line

FORMAT = "1"            # of the metadata below; a later workbench may write "2"
MARK = "workbench.format"
SUFFIX = ".safetensors"
GRAPHS = {".onnx": "an ONNX graph, for onnxruntime", ".torchscript": "a TorchScript graph, for torch.jit.load"}
SUFFIXES = (SUFFIX, *GRAPHS)   # what `workbench export` writes


def metadata(state, *, task, source):
    """The str -> str metadata of an export of checkpoint `state` (read from file `source`)."""
    return {MARK: FORMAT, "workbench.version": __version__, "workbench.task": task,
            "workbench.recipe": json.dumps(state["recipe"], allow_nan=True),
            "workbench.trained_with": json.dumps(state.get("versions", {})),
            "workbench.epoch": str(state.get("epoch", "")), "workbench.source": Path(source).name}


def header(path):
    """The metadata of a .safetensors file (reads its header only), or None when the file is no safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception:   # safetensors says SafetensorError for a bad header, OSError and others for the rest
        return None


def is_export(path):
    """Whether `path` is a .safetensors file whose metadata says `workbench export` wrote it."""
    path = Path(path)
    return path.suffix.lower() == SUFFIX and path.is_file() and MARK in (header(path) or {})


def read(path):
    """The state an exported .safetensors file holds, shaped as a checkpoint's: {"format", "model", "recipe",
    "task", "versions", "epoch", "metrics", "exported"}; a foreign or damaged file, or an exported graph (ONNX,
    TorchScript: no recipe to rebuild from), is a WorkbenchError (one line)."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() in GRAPHS:
        raise WorkbenchError(f"{path}: is {GRAPHS[path.suffix.lower()]}, which holds no recipe; give the run directory, "
                             "a checkpoint or the model exported to .safetensors.")
    meta = header(path)
    if meta is None:
        raise WorkbenchError(f"{path}: cannot read it as a .safetensors file; the file is damaged or not safetensors.")
    if MARK not in meta:
        raise WorkbenchError(f"{path}: a .safetensors file without workbench metadata (not written by `workbench export`), "
                             "so nothing says how to rebuild its model; give a run directory, a checkpoint or an "
                             "exported file (published weights: --weights FILE).")
    if meta[MARK] != FORMAT:
        raise WorkbenchError(f"{path}: workbench export format {meta[MARK]!r}, this workbench ({__version__}) reads "
                             f"format {FORMAT}; upgrade it.")
    try:
        recipe = json.loads(meta["workbench.recipe"])
        versions = json.loads(meta.get("workbench.trained_with", "{}"))
        if not isinstance(recipe, dict) or not isinstance(recipe.get("model"), dict):
            raise ValueError("no [model] table")
    except (KeyError, ValueError) as e:
        raise WorkbenchError(f"{path}: its workbench metadata is damaged (the recipe: {e}); export the run again.") from e
    try:
        with safe_open(str(path), framework="pt") as f:
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:   # a truncated or edited tensor section
        raise WorkbenchError(f"{path}: cannot read its weights ({first_line(e)}); "
                             "the file is damaged; export the run again.") from e
    state = {"format": 1, "model": weights, "recipe": recipe, "versions": versions, "metrics": {}, "exported": str(path)}
    if meta.get("workbench.task"):   # else checkpoint.task_of asks the model
        state["task"] = meta["workbench.task"]
    if meta.get("workbench.epoch", "").isdigit():
        state["epoch"] = int(meta["workbench.epoch"])
    return state
