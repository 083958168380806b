"""Built-in event plugin: a run logged to MLflow when its recipe names a tracking URI in track.mlflow.

Off unless asked, since a tracker sends data somewhere: `track.mlflow = "file:./mlruns"` (a folder:
works offline) or a server's URL, with the extra installed (`pip install -e ".[mlflow]"`: the
mlflow-skinny client, without the server and UI). Logged: the resolved recipe as params
(`train.lr`, ...) and `recipe.toml`, each step's loss and learning rate on a global step axis
(`step/loss`, `step/lr`), each epoch's metrics (`valid/psnr`, ... at step = epoch) and the latest
`grid.png`. The MLflow run id is kept in RUN_DIR/trackers.json, so a resume logs into the same run.
"""
import contextlib
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from workbench import hookimpl
from workbench_plugins import tracking

KEY = "track.mlflow"
METRICS, PARAMS = 1000, 100   # per log_batch call: MLflow's limits
PARAM_CHARS = 6000            # MLflow's longest param value
BAD_CHARS = re.compile(r"[^\w./\- ]")   # MLflow's keys: letters, digits, _ . / - and spaces (a plugin's loss term may hold more)
START_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}   # at start only
_live = tracking.Live(KEY, "MLflow")


@hookimpl
def on_run_start(run):
    uri = tracking.settings(run).get("mlflow")
    _live.start(run, uri, lambda: _Mlflow(run, uri))


@hookimpl
def on_epoch_end(run, epoch, metrics):
    _live.epoch_end(run, epoch, metrics)


@hookimpl
def on_run_end(run, metrics):
    _live.run_end(run)


def file_store(uri):
    """The folder of a file-store URI ("file:./mlruns", "./mlruns", "file:///abs/mlruns"), else None."""
    parsed = urlparse(uri)
    if uri in ("databricks", "databricks-uc", "uc"):   # MLflow's names for a workspace, not folders
        return None
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path) or ".").expanduser().resolve()   # as MLflow reads it
    if not parsed.scheme or len(parsed.scheme) == 1:   # a bare path (or a Windows drive letter)
        return Path(uri).expanduser().resolve()
    return None


class _Mlflow:
    """One MLflow run, through MlflowClient (never mlflow's global active run: the user's own code may have one)."""

    def __init__(self, run, uri):
        from mlflow.tracking import MlflowClient

        state = tracking.read_state(run.dir, "mlflow")
        same = state.get("uri") == uri and state.get("run_id")
        folder = file_store(uri)
        # The store a resume finds again from any working directory: a relative folder made absolute.
        self.store = state.get("store") if same and state.get("store") else folder.as_uri() if folder else uri
        if file_store(self.store) is not None:
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless told; naming a
            # folder in track.mlflow is that telling (set MLFLOW_ALLOW_FILE_STORE=false to refuse it).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.store)
        with _brief_retries(START_RETRIES):
            run_id = self._existing(state["run_id"]) if same else None
            done = state.get("epochs", 0) if run_id else 0
            if run_id is None:
                run_id = self._create(run)
            else:
                self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            self.state = {"uri": uri, "store": self.store, "run_id": run_id, "epochs": done}
            tracking.write_state(run.dir, "mlflow", self.state)
            self._log_recipe(run)
        for record in tracking.backlog(run, done):   # epochs trained but never logged (a crash, a failed tracker)
            self.epoch(run, record["epoch"], record, grid=False)

    def _existing(self, run_id):
        """run_id if the store still has that run (a resume continues it), else None (a new one)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.run_id
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        tracking.warn(f"{KEY}: MLflow run {run_id} is not in {self.store}; logging to a new MLflow run")
        return None

    def _create(self, run):
        from mlflow.exceptions import MlflowException

        name = tracking.settings(run).get("mlflow_experiment") or run.recipe.name
        with self._store_lock():
            experiment = self.client.get_experiment_by_name(name)
            try:
                exp_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            except MlflowException as e:   # a server: another run created it since
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp_id = self.client.get_experiment_by_name(name).experiment_id
        tags = {"workbench.run_dir": str(Path(run.dir).resolve()), "workbench.recipe": run.recipe.name}
        return self.client.create_run(exp_id, run_name=Path(run.dir).name, tags=tags).info.run_id

    @contextlib.contextmanager
    def _store_lock(self):
        """Two runs starting at once against one file store must not both create the experiment (the
        file store does not check names atomically; a server does)."""
        folder = file_store(self.store)
        if folder is None:
            yield
            return
        from filelock import FileLock

        self.client.search_experiments(max_results=1)   # the store makes its folder (and experiment 0) first
        with FileLock(folder / ".workbench.lock", timeout=60):
            yield

    def _log_recipe(self, run):
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params   # params cannot change: a resume adds only new ones
        flat = {BAD_CHARS.sub("_", k): tracking.text(v)[:PARAM_CHARS] for k, v in tracking.params(run.recipe)}
        items = [Param(k, v) for k, v in flat.items() if k not in logged]
        for i in range(0, len(items), PARAMS):
            self.client.log_batch(self.run_id, params=items[i:i + PARAMS])
        self.client.log_artifact(self.run_id, str(Path(run.dir) / "recipe.toml"))   # the resolved recipe, as resumed

    def finish(self):
        self.client.set_terminated(self.run_id, "FINISHED")

    def epoch(self, run, epoch, metrics, grid=True):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for step, values in tracking.steps(epoch, metrics) for k, v in values.items()]
        items += [Metric(BAD_CHARS.sub("_", k), v, now, epoch) for k, v in tracking.scalars(metrics)]
        for i in range(0, len(items), METRICS):
            self.client.log_batch(self.run_id, metrics=items[i:i + METRICS])
        picture = Path(run.dir) / "grid.png"
        if grid and picture.is_file():
            self.client.log_artifact(self.run_id, str(picture))   # replaces the last epoch's: the latest, as in RUN_DIR
        self.state["epochs"] = epoch
        tracking.write_state(run.dir, "mlflow", self.state)


@contextlib.contextmanager
def _brief_retries(retries):
    """MLflow retries a request to a server 7 times over minutes, which rides out a restart mid-run; a
    server that is not there when the run starts is a wrong URL, said within seconds. A value the user
    set in the environment is kept."""
    saved = {k: os.environ.get(k) for k in retries}
    os.environ.update({k: v for k, v in retries.items() if saved[k] is None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
