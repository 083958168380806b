"""Tasks: what a recipe trains (restore, classify, stylize, segment), its data, its batches and its validation.

A task builds the training and validation datasets from the recipe's [data], turns a batch into
(input, target) and validates, returning the metrics written to metrics.jsonl; `best_key` (and
`higher_is_better`) say which of them picks best.pt. The model's `task` capability chooses it, and a
restorer whose losses declare `task = "stylize"` is a stylizer (no damage: the target is the input).
"""
import tomllib
from pathlib import Path

from workbench.api.contracts import capability
from workbench.errors import WorkbenchError


def kind_of(recipe, plugins):
    """'classify', 'segment', 'stylize' or 'restore': what `recipe` (a Recipe, or a saved one's tables) trains."""
    from workbench.recipe import defaults

    recipe = getattr(recipe, "cfg", recipe)
    kind = capability(plugins.models.get((recipe.get("model") or {}).get("type", defaults.MODEL)), "task")
    if kind in ("classify", "segment"):
        return kind
    losses = [plugins.losses.get(spec.get("type", "")) for spec in recipe.get("losses") or []]
    return "stylize" if any(capability(loss, "task") == "stylize" for loss in losses) else "restore"


def kind_of_run(where, plugins):
    """What `where` trained: a run directory by its recipe.toml, a checkpoint or exported .safetensors by the
    task it saved. None where that cannot be read (not a run, a damaged one): the restorer's path says why."""
    from workbench.runs import checkpoint

    path = Path(where or "")
    try:
        if path.is_file():
            return checkpoint.task_of(checkpoint.load(path), plugins)
        return kind_of(tomllib.loads((path / "recipe.toml").read_text(encoding="utf-8")), plugins)
    except (OSError, ValueError, AttributeError, KeyError, WorkbenchError):
        return None


def make_task(recipe, plugins):
    kind = kind_of(recipe, plugins)
    if kind == "classify":
        from workbench.tasks.classify import ClassifyTask
        return ClassifyTask(recipe, plugins)
    if kind == "segment":
        from workbench.tasks.segment import SegmentTask
        return SegmentTask(recipe, plugins)
    if kind == "stylize":
        from workbench.tasks.stylize import StylizeTask
        return StylizeTask(recipe, plugins)
    from workbench.tasks.restore import RestoreTask
    return RestoreTask(recipe, plugins)
