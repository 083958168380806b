"""The training engine: run directory, validation metrics, checkpoints, resume, lr-find, events."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench import hookimpl
from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint
from workbench.train.loop import train

HERE = Path(__file__).parent
TINY = HERE / "plugin_files" / "tiny_model.py"
RECIPE = """
[recipe]
seed = 3
[data]
size = 24
valid_size = 32
repeat = 3
batch_size = 4
workers = 0
[[degradations]]
type = "blur"
sigma = [0.5, 1.5]
[model]
type = "tiny"
[[losses]]
type = "l1"
[[losses]]
type = "tiny_mse"
weight = 0.5
[train]
epochs = 2
lr = 3e-3
cpu_bf16 = false   # float32: the comparisons below (DDP, compile) are to 1e-5
"""


@pytest.fixture(scope="module")
def tiny_plugins():
    return plugin_manager.load([TINY])


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    return path


def test_run_directory_contents(tmp_path, recipe_file, tiny_plugins):
    r = recipes.load(str(recipe_file), tiny_plugins)
    run = train(r, tiny_plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert {p.name for p in run.iterdir()} >= {"recipe.toml", "metrics.jsonl", "checkpoints", "grid.png"}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert {"loss/l1", "loss/tiny_mse", "train_loss", "images_per_s", "lr"} <= set(lines[0])
    assert lines[0]["train_loss"] == pytest.approx(lines[0]["loss/l1"] + 0.5 * lines[0]["loss/tiny_mse"], rel=1e-5)
    assert {"psnr", "ssim", "input_psnr", "input_ssim"} <= set(lines[0]["valid"])
    best = checkpoint.load(run, "best")
    assert best["recipe"]["model"]["type"] == "tiny" and "optimizer" not in best
    last = checkpoint.load(run, "last")
    assert last["epoch"] == 2 and {"optimizer", "scheduler", "rng"} <= set(last)
    # The resolved recipe reads back to the same settings.
    again = recipes.load(str(run / "recipe.toml"), tiny_plugins)
    assert again.cfg == r.cfg
    model, _ = checkpoint.load_model(run, tiny_plugins)
    assert isinstance(model, torch.nn.Module)


def test_existing_run_directory_is_not_overwritten(tmp_path, recipe_file, tiny_plugins):
    r = recipes.load(str(recipe_file), tiny_plugins, ["train.epochs=1"])
    train(r, tiny_plugins, out=tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(WorkbenchError, match="already holds a run; continue it with --resume"):
        train(r, tiny_plugins, out=tmp_path / "run", device="cpu", progress=False)


def cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    env.pop("WORKBENCH_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "workbench", "--plugin", str(TINY), *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, recipe_file):
    straight = cli("run", recipe_file, "--out", tmp_path / "straight", "--device", "cpu", "-q")
    assert straight.returncode == 0, straight.stderr
    killed = cli("run", recipe_file, "--out", tmp_path / "killed", "--device", "cpu", "-q",
                 env_extra={"TINY_KILL_AFTER_EPOCH": "1"})
    assert killed.returncode == -9                       # really killed, after epoch 1's checkpoint
    assert checkpoint.load(tmp_path / "killed", "last")["epoch"] == 1
    resumed = cli("run", "--resume", tmp_path / "killed", "--device", "cpu", "-q")
    assert resumed.returncode == 0, resumed.stderr
    a = checkpoint.load(tmp_path / "straight", "last")["model"]
    b = checkpoint.load(tmp_path / "killed", "last")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_resume_refuses_changes(tmp_path, recipe_file):
    proc = cli("run", "--resume", tmp_path, "--data", tmp_path)
    assert proc.returncode == 2 and "give only --resume RUN_DIR" in proc.stderr
    proc = cli("run", "--resume", tmp_path, "--set", "train.lr=1")
    assert proc.returncode == 2 and "a resumed run keeps its recipe" in proc.stderr


def test_lr_find_writes_plot(tmp_path, recipe_file):
    proc = cli("lr-find", recipe_file, "-o", tmp_path / "lr.png", "--steps", 12, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lr.png").stat().st_size > 1000 and "Suggested learning rate" in proc.stdout


def test_events_reach_plugins(tmp_path, recipe_file, tiny_plugins):
    seen = []

    class Logger:
        @hookimpl
        def on_run_start(self, run):
            seen.append(("start", run.epochs))

        @hookimpl
        def on_validation_end(self, epoch, metrics, images):
            seen.append(("valid", epoch, round(metrics["psnr"], 3), len(images), images[0][1].shape[0]))

        @hookimpl
        def on_epoch_end(self, epoch, metrics):
            seen.append(("epoch", epoch, "valid" in metrics))

        @hookimpl
        def on_run_end(self, metrics):
            seen.append(("end", metrics["epoch"]))

    plugins = plugin_manager.load([TINY])
    plugins.pm.register(Logger())
    r = recipes.load(str(recipe_file), plugins, ["train.epochs=1"])
    train(r, plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert [s[0] for s in seen] == ["start", "valid", "epoch", "end"]
    assert seen[1][3] >= 1 and seen[1][4] == 3 and seen[2] == ("epoch", 1, True)


def test_two_process_ddp_matches_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo), batch 4 each, equals one process with batch 8."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE.replace("repeat = 3", "repeat = 8").replace("batch_size = 4", "batch_size = 4\nflip = false"))
    env = {**os.environ, "WORKBENCH_PLUGINS": str(TINY), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "workbench",
                           "run", str(recipe), "--out", str(tmp_path / "ddp"), "--device", "cpu", "-q"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(tmp_path / "ddp")             # only rank 0 speaks and writes
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    single = cli("run", recipe, "--out", tmp_path / "single", "--device", "cpu", "-q", "--set", "data.batch_size=8")
    assert single.returncode == 0, single.stderr
    a = checkpoint.load(tmp_path / "ddp", "last")["model"]
    b = checkpoint.load(tmp_path / "single", "last")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_compiled_training_matches_eager(tmp_path, recipe_file, tiny_plugins):
    """train.compile = true trains the same model (to float tolerance) and saves plain weights."""
    runs = {}
    for flag in ("false", "true"):
        r = recipes.load(str(recipe_file), tiny_plugins, [f"train.compile={flag}", "train.epochs=1"])
        runs[flag] = checkpoint.load(train(r, tiny_plugins, out=tmp_path / flag, device="cpu", progress=False), "last")
    a, b = runs["false"]["model"], runs["true"]["model"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_compile_failure_is_one_clear_error(tmp_path, recipe_file, tiny_plugins, monkeypatch):
    def broken_compile(model):
        def forward(x):
            raise RuntimeError("Compiler: cc not found\nmore detail")
        return forward

    monkeypatch.setattr(torch, "compile", broken_compile)
    r = recipes.load(str(recipe_file), tiny_plugins, ["train.compile=true"])
    with pytest.raises(WorkbenchError, match=r"train.compile = true failed \(Compiler: cc not found\); set train.compile = false"):
        train(r, tiny_plugins, out=tmp_path / "run", device="cpu", progress=False)


def test_cpu_bf16_only_where_the_cpu_has_it(monkeypatch):
    from workbench.devices import device as dev

    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.autocast_dtype(cpu, True, cpu_bf16=True) == torch.bfloat16
    assert dev.autocast_dtype(cpu, True) is None and dev.autocast_dtype(cpu, False, cpu_bf16=True) is None
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.autocast_dtype(cpu, True, cpu_bf16=True) is None   # emulated bf16 would be slower


def test_cpu_bf16_run_trains_and_saves_float32_weights(tmp_path, recipe_file, tiny_plugins, monkeypatch):
    from workbench.devices import device as dev

    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)   # bf16 kernels exist on any CPU, if slowly
    r = recipes.load(str(recipe_file), tiny_plugins, ["train.cpu_bf16=true", "train.epochs=1"])
    last = checkpoint.load(train(r, tiny_plugins, out=tmp_path / "run", device="cpu", progress=False), "last")
    assert all(t.dtype == torch.float32 for t in last["model"].values() if t.is_floating_point())
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


def test_a_run_opens_with_one_line_naming_device_precision_data_steps_and_folder(run_cli, tmp_path, recipe_file):
    result = run_cli("--plugin", TINY, "run", recipe_file, "--out", tmp_path / "run", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("tiny on cpu (float32): ") and first.endswith(f" -> {tmp_path / 'run'}")
    assert "training images in 24-px crops, batch 4;" in first and " validation images; 1 epoch x " in first
    quiet = run_cli("--plugin", TINY, "run", recipe_file, "--out", tmp_path / "quiet", "--set", "train.epochs=1", "-q")
    assert quiet.output.strip() == str(tmp_path / "quiet")
