"""A run directory: recipe.toml (as resolved), metrics.jsonl, checkpoints/; grid.png and report.html
are drawn by images.grid and judge.report."""
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

from workbench import recipe as recipes
from workbench.errors import WorkbenchError
from workbench.runs import files, lock

RUNS = Path("runs")
OWN = ("recipe.toml", "metrics.jsonl", "checkpoints", "grid.png", "report.html", "eval.json", "tensorboard",
       "trackers.json", "wandb")   # the MLflow/W&B run ids a resume logs into again; W&B's offline runs


def new_run_dir(name, out, held):
    """Create and lock the run directory -> (path, made): `out` if given, else runs/NAME-YYYYmmdd-HHMMSS
    (-2, -3, ... for runs started in the same second). `held` (an ExitStack) keeps the lock until
    the run ends. `made` says whether this call created the folder (else `out` existed, empty).
    A run directory starts empty or is refused: it never shares a folder with the user's files or
    with another run. Everything is decided under the lock, so two commands never both take it."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = RUNS / f"{name}-{stamp}"
        for n in range(1, 1000):
            out = base if n == 1 else base.with_name(f"{base.name}-{n}")
            if _make(out, exist_ok=False):
                held.enter_context(lock.holding(out))
                return out, True
        raise WorkbenchError(f"{base}: a thousand runs named {name} started this second; pass --out.")
    out = Path(out)
    refuse_occupied(out, locked=False)   # the plain mistakes (a file, a folder of photos) before touching anything
    made = _make(out, exist_ok=True)
    held.enter_context(lock.holding(out))
    if refuse_occupied(out, locked=True):
        print(f"note: {out} held a run stopped before its first checkpoint; starting it over.", file=sys.stderr)
        discard(out, made=False)
        _make(out, exist_ok=True)
    return out, made


def refuse_occupied(out, *, locked):
    """One line if `out` cannot become a new run directory: a file, a run, or a folder with contents.
    Returns True for a run killed before its first checkpoint: only a run's own files (recipe.toml
    among them), nothing to resume, so starting over loses nothing. That is known only `locked`
    (before the lock, it may be a run that has just started)."""
    if not out.exists():
        if os.path.lexists(out):
            raise WorkbenchError(f"--out {out} is a broken link; remove it or choose another --out.")
        return False
    if not out.is_dir():
        raise WorkbenchError(f"--out {out} is a file; choose a new or empty folder.")
    held = sorted(p.name for p in out.iterdir() if p.name != lock.NAME and not (p.name == "checkpoints" and _empty(p)))
    if not held:
        return False
    if (out / "checkpoints" / "last.pt").exists():
        raise WorkbenchError(f"{out} already holds a run; continue it with --resume {out}, or choose another --out.")
    if (out / "recipe.toml").is_file() and set(held) <= set(OWN):
        return locked
    shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    raise WorkbenchError(f"--out {out} is not empty (it holds {shown}); a run directory starts empty: choose a new "
                         "or empty folder.")


def _empty(folder):
    return folder.is_dir() and not any(folder.iterdir())


def _make(out, exist_ok):
    """mkdir -> whether it made the folder (False: it was there); checkpoints/ inside, writable."""
    try:
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if exist_ok:
            raise WorkbenchError(f"--out {out}: a file is in the way; choose another --out.") from None
        return False
    except OSError as e:
        raise WorkbenchError(f"cannot write the run directory {out}: {e.strerror or e}; choose another --out.") from e
    try:
        (out / "checkpoints").mkdir(exist_ok=True)
        check_writable(out)   # fail now, not after an hour of training, on a read-only folder
    except OSError as e:
        raise WorkbenchError(f"cannot write the run directory {out}: {e.strerror or e}; choose another --out.") from e
    return made


def discard(run_dir, made):
    """Remove what a run that failed before its first checkpoint left: all of `run_dir` if this
    command made it, else only the run's own files (the folder was the user's, and empty)."""
    run_dir = Path(run_dir)
    if made:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in OWN:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink(missing_ok=True)


def check_writable(folder):
    """Write and delete a small file in `folder`; raises OSError where that fails (read-only, full)."""
    probe = Path(folder) / ".write-test"
    with open(probe, "wb") as f:
        f.write(b"ok")
        f.flush()
        os.fsync(f.fileno())
    probe.unlink()


def write_recipe(run_dir, recipe):
    files.write_text(Path(run_dir) / "recipe.toml", recipes.dumps(recipe.cfg), replace=True, what="the recipe")


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
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in kept), replace=True, what="metrics")
