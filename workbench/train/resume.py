"""What `workbench run --resume RUN` may change, and the check that nothing else did.

A resume continues the run its checkpoint was made by: the recipe in RUN/recipe.toml must be the
one in checkpoints/last.pt. A few keys change nothing a checkpoint holds and may be given with
`--set` (or edited in recipe.toml): they are listed here, with why each is safe.
"""
from workbench import recipe as recipes
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint

RESUMABLE = {
    "train.epochs": "more (or fewer, down to the epochs done) epochs: the one-cycle schedule is stretched to the "
                    "new length from the step reached, so a finished run can be extended",
    "data.workers": "processes that load the data: the batches are the same whatever their number",
    "train.compile": "compiling the forward pass or not: the same model and weights",
}
SHOW = 3   # differing keys named in the refusal


def check_overrides(overrides, run_dir):
    """`--set` on a resume: only the RESUMABLE keys."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in RESUMABLE:
            raise WorkbenchError(f"--set {key}: a resumed run keeps its recipe; only {', '.join(RESUMABLE)} can change "
                                 f"on --resume. For other changes start a new run: workbench run {run_dir}/recipe.toml "
                                 f"--set {item}")


def check_unchanged(recipe, run_dir, plugins):
    """WorkbenchError naming the first differences if `recipe` (RUN/recipe.toml with the --set
    overrides) differs from the checkpoint's in anything but the RESUMABLE keys."""
    state = checkpoint.load(run_dir, which="last")
    saved = recipes.from_dict(state["recipe"], f"{run_dir}/checkpoints/last.pt", plugins).cfg
    now, then = dict(flatten(recipe.cfg)), dict(flatten(saved))
    changed = [k for k in sorted(now.keys() | then.keys()) if now.get(k, ABSENT) != then.get(k, ABSENT) and k not in RESUMABLE]
    if changed:
        shown = "; ".join(f"{k}: {_show(then.get(k, ABSENT))} -> {_show(now.get(k, ABSENT))}" for k in changed[:SHOW])
        more = f" and {len(changed) - SHOW} more" if len(changed) > SHOW else ""
        raise WorkbenchError(f"{run_dir}/recipe.toml is not the recipe its checkpoint was trained with ({shown}{more}); "
                             f"put it back to resume, or start a new run with the change. On --resume only "
                             f"{', '.join(RESUMABLE)} may change.")


class _Absent:
    def __repr__(self):
        return "(absent)"


ABSENT = _Absent()


def _show(v):
    return repr(v) if v is ABSENT else recipes.toml_value(v)


def flatten(cfg, prefix=""):
    """('section.key', value) pairs; a list of tables (degradations, losses) by index: 'losses.0.type'."""
    for key, value in cfg.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
            for i, table in enumerate(value):
                yield from flatten(table, f"{prefix}{key}.{i}.")
        else:
            yield f"{prefix}{key}", value
