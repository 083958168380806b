"""A run directory: recipe.toml (as resolved), metrics.jsonl, checkpoints/; grid.png and report.html
are drawn by images.grid and judge.report."""
import datetime
import json
import os
from pathlib import Path

from workbench import recipe as recipes
from workbench.errors import WorkbenchError
from workbench.runs import files

RUNS = Path("runs")


def new_run_dir(name, out=None):
    """`out` if given (it must not hold a run already), else runs/NAME-YYYYmmdd-HHMMSS.

    A run "exists" once it has `checkpoints/last.pt`: a directory whose run was killed before its
    first checkpoint has nothing to resume, so it is started over (its stale metrics dropped)."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = RUNS / f"{name}-{stamp}"
    out = Path(out)
    if (out / "checkpoints" / "last.pt").exists():
        raise WorkbenchError(f"{out} already holds a run; continue it with --resume {out} or choose another --out.")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        check_writable(out)   # fail now, not after an hour of training, on a read-only folder
        files.remove_temporary(out / "checkpoints", "*.pt")
        (out / "metrics.jsonl").unlink(missing_ok=True)   # epochs of a start that never reached a checkpoint
    except OSError as e:
        raise WorkbenchError(f"cannot write the run directory {out}: {e.strerror or e}; choose another --out.") from e
    return out


def check_writable(folder):
    """Write and delete a small file in `folder`; raises OSError where that fails (read-only, full)."""
    probe = Path(folder) / ".write-test"
    with open(probe, "wb") as f:
        f.write(b"ok")
        f.flush()
        os.fsync(f.fileno())
    probe.unlink()


def write_recipe(run_dir, recipe):
    files.write_text(Path(run_dir) / "recipe.toml", recipes.dumps(recipe.cfg), what="the recipe")


def append_metrics(run_dir, record):
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:   # a line cut short by a crash; that epoch has no checkpoint anyway
            continue
    return records


def truncate_metrics(run_dir, epochs_done):
    """On resume, drop lines of epochs after the checkpoint (written before a crash, never checkpointed)."""
    kept = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= epochs_done]
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        # Replaced atomically: a kill here must not leave the earlier epochs' metrics half written.
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in kept), what="metrics")
