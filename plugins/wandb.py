"""Built-in event plugin: a run logged to Weights & Biases when its recipe names a project in track.wandb.

Off unless asked, since a tracker sends data somewhere: `track.wandb = "PROJECT"`, with the extra
installed (`pip install -e ".[wandb]"`). Offline by default (`track.wandb_mode = "offline"`): the run
is written to RUN_DIR/wandb (or $WANDB_DIR) and nothing leaves the machine until `wandb sync`;
"online" sends it as it trains (after `wandb login`). Logged: the resolved recipe as config
(`train.lr`, ...) and `recipe.toml`, each step's loss and learning rate (`step/loss`, `step/lr`,
W&B's step = the global step), each epoch's metrics (`valid/psnr`, ..., with `epoch`) and
`grid.png` as the image `grid`. The W&B run id is kept in RUN_DIR/trackers.json: a resume logs
under the same id (online, into the same run; offline W&B cannot resume, so it writes a second
offline-run folder with that id, which `wandb sync` uploads after the first).
"""
import os
import shutil
from pathlib import Path

from workbench import hookimpl
from workbench.errors import WorkbenchError
from workbench.recipe import toml_value
from workbench_plugins import tracking

KEY = "track.wandb"
MODES = ("offline", "online")
_live = tracking.Live(KEY, "W&B")


@hookimpl
def on_run_start(run):
    cfg = tracking.settings(run)
    project, mode = cfg.get("wandb"), cfg.get("wandb_mode", "offline")
    if mode not in MODES:
        raise WorkbenchError(f"track.wandb_mode = {toml_value(mode)}: use \"offline\" (the default: nothing leaves "
                             "the machine) or \"online\".")
    _live.start(run, project, lambda: _Wandb(run, project, mode))


@hookimpl
def on_epoch_end(run, epoch, metrics):
    _live.epoch_end(run, epoch, metrics)


@hookimpl
def on_run_end(run, metrics):
    _live.run_end(run)


class _Wandb:
    """One W&B run, through the Run object wandb.init returns (never wandb.run: the user's code may have one)."""

    def __init__(self, run, project, mode):
        import wandb

        state = tracking.read_state(run.dir, "wandb")
        same = state.get("project") == project and state.get("id")
        run_id, done = (state["id"], state.get("epochs", 0)) if same else (None, 0)   # None: W&B picks one
        where = {} if os.environ.get("WANDB_DIR") else {"dir": str(run.dir)}   # W&B makes its wandb/ folder there
        resume = {"resume": "allow"} if mode == "online" else {}              # offline W&B ignores it, with a warning
        # console off: W&B would otherwise wrap stdout and stderr (the progress bar, the CLI's own lines).
        quiet = wandb.Settings(console="off", silent=True, disable_git=True, save_code=False)
        self.wb = wandb.init(project=project, id=run_id, name=Path(run.dir).name, mode=mode, settings=quiet,
                             reinit="create_new", **where, **resume)
        self.state = {"project": project, "id": self.wb.id, "epochs": done}
        tracking.write_state(run.dir, "wandb", self.state)
        # allow_val_change: a resume may extend train.epochs
        self.wb.config.update(dict(tracking.params(run.recipe)), allow_val_change=True)
        # A copy in the W&B run's files folder, not a link into RUN_DIR: an offline run synced later
        # still has it if the run directory moved.
        copy = Path(self.wb.dir) / "recipe.toml"
        shutil.copyfile(Path(run.dir) / "recipe.toml", copy)
        self.wb.save(str(copy), base_path=self.wb.dir, policy="now")
        for record in tracking.backlog(run, done):   # epochs trained but never logged (a crash, a failed tracker)
            self.epoch(run, record["epoch"], record, grid=False)

    def finish(self):
        self.wb.finish()

    def epoch(self, run, epoch, metrics, grid=True):
        import wandb

        last = 0
        for last, values in tracking.steps(epoch, metrics):
            self.wb.log(values, step=last)
        row = {**dict(tracking.scalars(metrics)), "epoch": epoch}
        picture = Path(run.dir) / "grid.png"
        if grid and picture.is_file():
            row["grid"] = wandb.Image(str(picture), caption=f"epoch {epoch}")
        self.wb.log(row, step=max(last, 1))   # with the epoch's last step: W&B's steps only go up
        self.state["epochs"] = epoch
        tracking.write_state(run.dir, "wandb", self.state)
