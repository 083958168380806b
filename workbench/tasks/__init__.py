"""Tasks: what a recipe trains (restore, classify, stylize, segment), its data, its batches and its validation.

A task builds the training and validation datasets from the recipe's [data], turns a batch into
(input, target) and validates, returning the metrics written to metrics.jsonl; `best_key` (and
`higher_is_better`) say which of them picks best.pt. The model's `task` capability chooses it, and a
restorer whose losses declare `task = "stylize"` is a stylizer (no damage: the target is the input).
"""
from workbench.api.contracts import capability


def make_task(recipe, plugins):
    factory = plugins.models.get(recipe["model"]["type"])
    kind = capability(factory, "task")
    if kind == "classify":
        from workbench.tasks.classify import ClassifyTask
        return ClassifyTask(recipe, plugins)
    if kind == "segment":
        from workbench.tasks.segment import SegmentTask
        return SegmentTask(recipe, plugins)
    losses = [plugins.losses.get(spec.get("type", "")) for spec in recipe["losses"]]
    if any(capability(loss, "task") == "stylize" for loss in losses):
        from workbench.tasks.stylize import StylizeTask
        return StylizeTask(recipe, plugins)
    from workbench.tasks.restore import RestoreTask
    return RestoreTask(recipe, plugins)
