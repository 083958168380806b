"""A run directory: recipe.toml (as resolved), metrics.jsonl, checkpoints/, grid.png."""
import datetime
import json
import os
from pathlib import Path

from workbench import recipe as recipes
from workbench.errors import WorkbenchError
from workbench.grid import draw_grid
from workbench.metrics import psnr

RUNS = Path("runs")


def new_run_dir(name, out=None):
    """`out` if given (it must not hold a run already), else runs/NAME-YYYYmmdd-HHMMSS."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = RUNS / f"{name}-{stamp}"
    out = Path(out)
    if (out / "checkpoints").exists() or (out / "metrics.jsonl").exists():
        raise WorkbenchError(f"{out} already holds a run; continue it with --resume {out} or choose another --out.")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")   # fail now, not after an hour of training, on a read-only folder
        probe.unlink()
    except OSError as e:
        raise WorkbenchError(f"cannot write the run directory {out}: {e.strerror or e}; choose another --out.") from e
    return out


def write_recipe(run_dir, recipe):
    (Path(run_dir) / "recipe.toml").write_text(recipes.dumps(recipe.cfg), encoding="utf-8")


def append_metrics(run_dir, record):
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_metrics(run_dir, epochs_done):
    """On resume, drop lines of epochs after the checkpoint (written before a crash, never checkpointed)."""
    kept = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= epochs_done]
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def save_grid(run_dir, images):
    """grid.png: damaged | restored | clean for the fixed validation images, with PSNR."""
    if not images:
        return
    rows = [[(d, f"{name}: damaged {psnr(d, c):.2f} dB"), (r, f"restored {psnr(r, c):.2f} dB"), (c, "clean")]
            for name, d, r, c in images]
    draw_grid(rows).save(Path(run_dir) / "grid.png")
