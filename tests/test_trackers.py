"""The experiment-tracker plugins: a short run read back from a local MLflow file store and from a
W&B offline run; resume logs into the same tracker run; a missing package is one line at start; a
tracker that fails mid-run never stops training."""
import glob
import json
import struct
import sys

import pytest
from conftest import HERE

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.runs import rundir
from workbench.train.loop import train

TINY = HERE / "plugin_files" / "tiny_model.py"
EPOCHS, STEPS = 2, 2


@pytest.fixture(scope="module")
def plugins():
    return plugin_manager.load([TINY])


def tiny(plugins, track, epochs=EPOCHS):
    return recipes.from_dict({"recipe": {"name": "tiny"}, "data": {"size": 24, "valid_size": 24, "batch_size": 4, "workers": 0},
                              "degradations": [{"type": "blur"}], "model": {"type": "tiny"},
                              "train": {"epochs": epochs, "steps_per_epoch": STEPS}, "track": track}, "tiny", plugins)


def resume(plugins, run, epochs):
    r = recipes.load(str(run / "recipe.toml"), plugins, [f"train.epochs={epochs}"])
    return train(r, plugins, resume=run, device="cpu", progress=False)


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install -e '.[wandb]')")
    for var, sub in [("WANDB_DIR", "wandb-dir"), ("WANDB_CACHE_DIR", "wandb-cache"), ("WANDB_CONFIG_DIR", "wandb-config"),
                     ("WANDB_DATA_DIR", "wandb-data")]:
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path / "wandb-dir" / "wandb"


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # what the plugin sets for a file store; restored after
    return tmp_path / "mlruns"


def test_mlflow_file_store_holds_params_metrics_and_grid(plugins, mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    run = train(tiny(plugins, {"mlflow": f"file:{mlflow_store}"}), plugins, out=tmp_path / "run", device="cpu", progress=False)
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client = MlflowClient(mlflow_store.as_uri())
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert client.get_experiment(logged.info.experiment_id).name == "tiny"   # track.mlflow_experiment = "": the recipe's
    params = logged.data.params
    assert params["train.lr"] == "0.002" and params["model.type"] == "tiny" and params["degradations.0.type"] == "blur"
    assert params["data.flip"] == "true" and params["data.valid"] == ""
    records = rundir.read_metrics(run)
    steps = client.get_metric_history(run_id, "step/loss")
    assert sorted(m.step for m in steps) == list(range(1, EPOCHS * STEPS + 1))
    assert [m.value for m in sorted(steps, key=lambda m: m.step)] == pytest.approx([v for r in records for v in r["step_loss"]])
    assert len(client.get_metric_history(run_id, "step/lr")) == EPOCHS * STEPS
    psnr = sorted(client.get_metric_history(run_id, "valid/psnr"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in psnr] == [(r["epoch"], pytest.approx(r["valid"]["psnr"])) for r in records]
    assert {"train_loss", "loss/l1", "lr", "valid/ssim", "valid/input_psnr"} <= set(logged.data.metrics)
    assert {a.path for a in client.list_artifacts(run_id)} >= {"grid.png", "recipe.toml"}
    grid = client.download_artifacts(run_id, "grid.png", str(tmp_path))
    assert open(grid, "rb").read() == (run / "grid.png").read_bytes()   # the last epoch's grid

    # A resume (here extending the run) logs into the same MLflow run, on the same step axis.
    resume(plugins, run, EPOCHS + 1)
    assert json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"] == run_id
    assert len(client.search_runs([logged.info.experiment_id])) == 1
    assert sorted(m.step for m in client.get_metric_history(run_id, "step/loss")) == list(range(1, (EPOCHS + 1) * STEPS + 1))
    assert sorted(m.step for m in client.get_metric_history(run_id, "valid/psnr")) == [1, 2, 3]
    assert client.get_run(run_id).info.status == "FINISHED"
    # params cannot change in MLflow: the first value stays, the recipe.toml artifact is the resumed recipe
    assert client.get_run(run_id).data.params["train.epochs"] == str(EPOCHS)
    toml = client.download_artifacts(run_id, "recipe.toml", str(tmp_path / "dl"))
    assert f"epochs = {EPOCHS + 1}" in open(toml).read()


def wandb_records(path):
    """The protobuf records of a W&B transaction log (run-ID.wandb): a 7-byte header, then LevelDB-style
    32 KiB blocks of chunks (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, block = open(path, "rb").read(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:   # too little left in the block for a chunk header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_run(folder):
    """(config, history rows) of one offline-run folder, values decoded from JSON."""
    config, history = {}, []
    for path in glob.glob(str(folder / "run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "config":
                config.update({u.key: json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return config, history


def test_wandb_offline_run_holds_config_history_and_grid(plugins, wandb_offline, tmp_path):
    run = train(tiny(plugins, {"wandb": "workbench-test"}), plugins, out=tmp_path / "run", device="cpu", progress=False)
    run_id = json.loads((run / "trackers.json").read_text())["wandb"]["id"]
    (folder,) = wandb_offline.glob(f"offline-run-*-{run_id}")
    config, history = wandb_run(folder)
    assert config["train.lr"] == 0.002 and config["model.type"] == "tiny" and config["track.wandb_mode"] == "offline"
    records = rundir.read_metrics(run)
    steps = [(row["_step"], row["step/loss"]) for row in history if "step/loss" in row]
    assert steps == [(s + 1, pytest.approx(v)) for s, v in enumerate(v for r in records for v in r["step_loss"])]
    epochs = [row for row in history if "valid/psnr" in row]
    assert [(row["epoch"], row["_step"]) for row in epochs] == [(e, e * STEPS) for e in range(1, EPOCHS + 1)]
    assert [row["valid/psnr"] for row in epochs] == pytest.approx([r["valid"]["psnr"] for r in records])
    assert all(row["grid/_type"] == "image-file" for row in epochs)
    assert len(list((folder / "files" / "media" / "images").glob("grid_*.png"))) == EPOCHS
    assert (folder / "files" / "recipe.toml").read_text() == (run / "recipe.toml").read_text()

    # Offline W&B cannot resume a run: the resume writes a second folder under the same id, its
    # steps going on from the first's (so `wandb sync` appends it).
    resume(plugins, run, EPOCHS + 1)
    folders = sorted(wandb_offline.glob(f"offline-run-*-{run_id}"))
    assert len(folders) == 2 and json.loads((run / "trackers.json").read_text())["wandb"]["id"] == run_id
    _, more = wandb_run(next(f for f in folders if f != folder))
    assert [row["_step"] for row in more if "step/loss" in row] == [EPOCHS * STEPS + s for s in range(1, STEPS + 1)]


def test_wandb_writes_into_the_run_directory_without_wandb_dir(plugins, wandb_offline, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR")
    run = train(tiny(plugins, {"wandb": "workbench-test"}), plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert not wandb_offline.exists()


@pytest.mark.parametrize("key, module", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_without_its_package_is_one_line_at_start(run_cli, tmp_path, monkeypatch, key, module):
    monkeypatch.setitem(sys.modules, module, None)   # `import mlflow` now raises ImportError
    value = f"file:{tmp_path / 'mlruns'}" if key == "mlflow" else "proj"
    result = run_cli("--plugin", TINY, "run", recipe_file(tmp_path), "--out", tmp_path / "run", "--device", "cpu", "-q",
                     "--set", f"track.{key}={value}")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: track.{key} needs {module}: pip install -e '.[{key}]'"
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()   # stopped before the first checkpoint: nothing left behind


def test_wandb_mode_is_checked(run_cli, tmp_path):
    result = run_cli("--plugin", TINY, "run", recipe_file(tmp_path), "--out", tmp_path / "run", "--device", "cpu", "-q",
                     "--set", "track.wandb_mode=onlien")
    assert result.exit_code == 2 and 'track.wandb_mode = "onlien": use "offline"' in result.output


def recipe_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('[data]\nsize = 24\nvalid_size = 24\nbatch_size = 4\nworkers = 0\n[[degradations]]\ntype = "blur"\n'
                    f'[model]\ntype = "tiny"\n[train]\nepochs = {EPOCHS}\nsteps_per_epoch = {STEPS}\n')
    return path


def test_a_store_that_cannot_be_written_stops_a_new_run_at_start(run_cli, mlflow_store, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")   # root may write anywhere; nobody makes a folder inside a file
    result = run_cli("--plugin", TINY, "run", recipe_file(tmp_path), "--out", tmp_path / "run", "--device", "cpu", "-q",
                     "--set", f"track.mlflow=file:{tmp_path / 'a-file' / 'mlruns'}")
    assert result.exit_code == 2 and "cannot start logging" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_tracker_failing_mid_run_warns_once_and_training_goes_on(plugins, mlflow_store, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from workbench_plugins import mlflow as plugin

    def gone(*args, **kwargs):
        raise ConnectionError("tracking server gone")

    logs = plugin._Mlflow.epoch
    monkeypatch.setattr(plugin._Mlflow, "epoch", gone)
    run = train(tiny(plugins, {"mlflow": f"file:{mlflow_store}"}), plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert [r["epoch"] for r in rundir.read_metrics(run)] == list(range(1, EPOCHS + 1))
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "report.html").is_file()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "track.mlflow" in line]
    assert warnings == ["warning: track.mlflow: MLflow logging failed (ConnectionError: tracking server gone); "
                        "training goes on without it"]
    # The tracker is back: the resume first logs the epochs it missed, then its own.
    monkeypatch.setattr(plugin._Mlflow, "epoch", logs)
    resume(plugins, run, EPOCHS + 1)
    client, run_id = MlflowClient(mlflow_store.as_uri()), json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    assert sorted(m.step for m in client.get_metric_history(run_id, "valid/psnr")) == [1, 2, 3]
    assert sorted(m.step for m in client.get_metric_history(run_id, "step/loss")) == list(range(1, (EPOCHS + 1) * STEPS + 1))


def test_a_resume_whose_store_is_gone_trains_on_without_it(plugins, mlflow_store, tmp_path, capsys):
    import shutil

    run = train(tiny(plugins, {"mlflow": f"file:{mlflow_store}"}), plugins, out=tmp_path / "run", device="cpu", progress=False)
    shutil.rmtree(mlflow_store)
    mlflow_store.write_text("the store folder is now a file")
    resume(plugins, run, EPOCHS + 1)
    assert [r["epoch"] for r in rundir.read_metrics(run)] == list(range(1, EPOCHS + 2))
    assert "cannot start logging" in capsys.readouterr().err
