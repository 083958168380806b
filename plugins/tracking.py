"""What the built-in event plugins share: metrics flattened, each step on one global axis, the
recipe as flat parameters, and, for the experiment trackers (mlflow, wandb), the package check,
the tracker state in RUN_DIR/trackers.json and `Live`, which starts them and sees that a tracker
never stops training.

Not a plugin itself (it implements no hook and has no entry point).
"""
import json
import sys
from pathlib import Path

from workbench import recipe as recipes
from workbench.errors import WorkbenchError
from workbench.runs import files, rundir
from workbench.train.resume import flatten

STATE = "trackers.json"   # {"mlflow": {...}, "wandb": {...}}: what a resume needs to find its tracker run again


def scalars(metrics, prefix=""):
    """Flatten {"train_loss": .., "valid": {"psnr": ..}} into ("train_loss", ..), ("valid/psnr", ..)."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            yield from scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
            yield f"{prefix}{key}", float(value)


def steps(epoch, metrics):
    """(global step, {"step/loss": .., "step/lr": ..}) for each step of `epoch` (1-based), counted over
    the whole run (epochs of equal length, as a run's are); a skipped non-finite step has no loss."""
    logged = {"step/loss": metrics.get("step_loss") or [], "step/lr": metrics.get("step_lr") or []}
    n = max(len(v) for v in logged.values())
    for i in range(n):
        values = {k: float(v[i]) for k, v in logged.items() if i < len(v) and v[i] is not None}
        yield (epoch - 1) * n + i + 1, values


def params(recipe):
    """The resolved recipe as flat ("train.lr", 0.002), ("losses.0.type", "l1"), ... pairs."""
    return list(flatten(recipe.cfg))


def text(value):
    """A parameter as text, as recipe.toml writes it (strings bare)."""
    return value if isinstance(value, str) else recipes.toml_value(value)


def settings(run):
    """The recipe's [track] table ({} for a recipe without one)."""
    cfg = getattr(run.recipe, "cfg", {})
    return cfg.get("track") or {}


def require(key, module, extra):
    """Import `module`, or one line saying how to install it: 'track.mlflow needs mlflow: pip ...'."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WorkbenchError(f"{key} needs {module}: pip install -e '.[{extra}]'") from None


def resuming(run):
    """Whether this run continues a checkpoint (a new run has none when it starts)."""
    return (Path(run.dir) / "checkpoints" / "last.pt").exists()


def backlog(run, done):
    """The metrics.jsonl records of epochs after `done`, the last one the tracker logged: a resume logs
    them first (a kill between the checkpoint and the tracker's turn, a tracker that failed mid-run)."""
    return [r for r in rundir.read_metrics(run.dir) if r.get("epoch", 0) > done]


def read_state(run_dir, name):
    """What tracker `name` stored for this run directory, or {}."""
    try:
        return json.loads((Path(run_dir) / STATE).read_text(encoding="utf-8")).get(name) or {}
    except (OSError, ValueError, AttributeError):
        return {}


def write_state(run_dir, name, value):
    path = Path(run_dir) / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    state = {**(state if isinstance(state, dict) else {}), name: value}
    files.write_text(path, json.dumps(state, indent=2) + "\n", replace=True, what="the tracker state")


def first_line(e, limit=300):
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class Live:
    """The trackers of one kind (key "track.mlflow": package and extra "mlflow") logging now, by run
    directory, fed by that plugin's hooks; a tracker has `epoch(run, epoch, metrics)` and `finish()`.
    Only rank 0 logs. A tracker must never stop or corrupt training: its first failure during the run
    warns once on stderr and turns it off for the rest of the run (a dead server is not asked again)."""

    def __init__(self, key, what):
        self.key, self.what, self.trackers = key, what, {}

    def start(self, run, value, make):
        """`make()` -> the tracker, when `value` (the key's) turns it on. A new run that cannot start it
        stops here, before its first step (one line, exit 2: nothing is lost yet). A resumed run trains
        on without it and says so: track.* cannot change on --resume, and a tracker gone for good must
        not make a run unresumable."""
        if not value or run.rank != 0 or run.dir is None:
            return
        name = self.key.split(".")[-1]
        require(self.key, name, name)
        try:
            self.trackers[str(run.dir)] = make()
        except Exception as e:
            msg = f"{self.key} = {recipes.toml_value(value)}: cannot start logging: {first_line(e)}"
            if not resuming(run):
                raise WorkbenchError(msg) from e
            warn(f"{msg}; the run goes on without it")

    def epoch_end(self, run, epoch, metrics):
        self._call(run, "epoch", run, epoch, metrics)

    def run_end(self, run):
        self._call(run, "finish")
        self.trackers.pop(str(run.dir), None)

    def _call(self, run, method, *args):
        tracker = self.trackers.get(str(run.dir))
        if tracker is None:
            return
        try:
            getattr(tracker, method)(*args)
        except Exception as e:
            del self.trackers[str(run.dir)]
            warn(f"{self.key}: {self.what} logging failed ({first_line(e)}); training goes on without it")
