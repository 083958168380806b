"""Reliability: misbehaving plugins, signals, kills at random moments, divergence, unwritable or full
disks, and hostile text and file names. Every run uses the tiny model plugin and tiny settings."""
import errno
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench import hookimpl
from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.cli import cli
from workbench.runs import checkpoint, files, rundir
from workbench.train.loop import train

HERE = Path(__file__).parent
TINY = HERE / "plugin_files" / "tiny_model.py"
BROKEN = HERE / "plugin_files" / "broken_plugins.py"


def make_recipe(tmp_path, *, degradation='type = "blur"\nsigma = 1.0', loss='type = "l1"', epochs=2, steps=2, workers=0,
                model='type = "tiny"'):
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[recipe]
seed = 1
[data]
size = 24
valid_size = 24
batch_size = 4
workers = {workers}
[[degradations]]
{degradation}
[model]
{model}
[[losses]]
{loss}
[train]
epochs = {epochs}
steps_per_epoch = {steps}
""")
    return path


def child_env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}   # light on a busy machine
    env.pop(plugin_manager.ENV_VAR, None)
    return env


def command(*args):
    return [sys.executable, "-m", "workbench", "--plugin", str(TINY), "--plugin", str(BROKEN), *map(str, args)]


def run_cli(*args, **env):
    return subprocess.run(command(*args), capture_output=True, text=True, env=child_env(**env), timeout=300)


def invoke(*args):
    """The CLI in-process (monkeypatches reach it); result has exit_code, stdout and stderr apart."""
    return CliRunner().invoke(cli, ["--plugin", str(TINY), "--plugin", str(BROKEN), *map(str, args)], catch_exceptions=False)


def one_line(stderr):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def finite(state):
    return all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def epochs_logged(run):
    return [r["epoch"] for r in rundir.read_metrics(run)]


def temp_files(run):
    return sorted(p.name for p in (run / "checkpoints").glob("*.tmp")) if (run / "checkpoints").exists() else []


# -- 1. misbehaving degradation plugins -------------------------------------------------------------
FAILURES = {"explode": "raised RuntimeError: boom", "nan": "returned NaN or Inf values",
            "shrink": "changed the image shape from (3, 24, 24) to (3, 23, 23)"}


def check_plugin_failure(line, name, run):
    assert f"plugin '{BROKEN}'" in line and f"degradation '{name}'" in line and FAILURES[name] in line, line
    last = checkpoint.load(run, "last")   # epoch 1's checkpoint survives the failure in epoch 2
    assert last["epoch"] == 1 and finite(last)
    assert epochs_logged(run) == [1] and temp_files(run) == []


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_failing_degradation_in_a_worker_is_named_in_one_line(tmp_path, name):
    """data.workers = 1: the error crosses the DataLoader's process boundary and still names the
    plugin and the degradation, in one line, with exit status 2."""
    recipe = make_recipe(tmp_path, degradation=f'type = "{name}"', epochs=3, workers=1)
    proc = run_cli("run", recipe, "--out", tmp_path / "run", "--device", "cpu", "-q", BROKEN_FLAG=str(tmp_path / "flag"))
    assert proc.returncode == 2, proc.stderr
    check_plugin_failure(one_line(proc.stderr), name, tmp_path / "run")


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_failing_degradation_in_the_main_process_is_named_in_one_line(tmp_path, monkeypatch, name):
    monkeypatch.setenv("BROKEN_FLAG", str(tmp_path / "flag"))
    recipe = make_recipe(tmp_path, degradation=f'type = "{name}"', epochs=3, workers=0)
    result = invoke("run", recipe, "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 2, result.output
    check_plugin_failure(one_line(result.stderr), name, tmp_path / "run")


# -- 2. SIGINT and SIGTERM --------------------------------------------------------------------------
def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def default_sigint():
    # A child of a non-interactive shell may inherit SIGINT ignored; Python then never raises
    # KeyboardInterrupt. Reset it, so the test sees what a terminal's Ctrl-C does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_resume_finishes(tmp_path, sig):
    # `slow` makes each epoch take about a second, so the signal lands in the middle of epoch 2.
    recipe = make_recipe(tmp_path, degradation='type = "slow"\nseconds = 0.04', epochs=5)
    run = tmp_path / "run"
    proc = subprocess.Popen(command("run", recipe, "--out", run, "--device", "cpu", "-q"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(), preexec_fn=default_sigint)
    try:
        wait_for(run / "checkpoints" / "last.pt", proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted" in out and f"Continue with: workbench run --resume {run}" in out, out
    assert "Traceback" not in err, err
    kept = checkpoint.load(run, "last")
    assert 1 <= kept["epoch"] < 5 and finite(kept) and temp_files(run) == []
    resumed = run_cli("run", "--resume", run, "--device", "cpu", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(run, "last")["epoch"] == 5 and epochs_logged(run) == [1, 2, 3, 4, 5]


def test_signal_during_a_save_waits_for_it(tmp_path, monkeypatch, capsys):
    """SIGTERM arriving while last.pt is being written: the save finishes first, then the run stops
    naming that epoch as kept (in-process: train() turns SIGTERM into a clean stop)."""
    real_save = checkpoint.save

    def save_and_get_signalled(state, path):
        if Path(path).name == "last.pt":
            os.kill(os.getpid(), signal.SIGTERM)
        real_save(state, path)

    monkeypatch.setattr(checkpoint, "save", save_and_get_signalled)
    plugins = plugin_manager.load([TINY])
    r = recipes.load(str(make_recipe(tmp_path, epochs=3)), plugins)
    with pytest.raises(SystemExit) as stopped:
        train(r, plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert stopped.value.code == 130
    assert "saved the state after epoch 1" in capsys.readouterr().out
    assert checkpoint.load(tmp_path / "run", "last")["epoch"] == 1 and temp_files(tmp_path / "run") == []


def train_signalled(tmp_path, monkeypatch, name, *, call, sig="SIGINT", times=1, epochs=3, steps=4, workers=0, model=None):
    """Train in-process with `signal_at` sending signals at its `call`-th image; -> (exit code or 0, run)."""
    monkeypatch.setenv("TINY_SIGNAL_FLAG", str(tmp_path / f"{name}.flag"))
    plugins = plugin_manager.load([TINY])
    spec = f'type = "signal_at"\ncall = {call}\nsig = "{sig}"\ntimes = {times}\nparent = {"true" if workers else "false"}'
    recipe = make_recipe(tmp_path, degradation=spec, epochs=epochs, steps=steps, workers=workers,
                         **({"model": model} if model else {}))
    r = recipes.load(str(recipe), plugins)
    run = tmp_path / name
    # A test run started in the background without job control inherits an ignored SIGINT, which
    # the trainer respects (nohup); these tests are about the signal arriving, so it must be live.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        train(r, plugins, out=run, device="cpu", progress=False)
    except SystemExit as e:
        return e.code, run
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0, run


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_mid_epoch_saves_the_step_and_resume_is_exact(tmp_path, monkeypatch, capsys, sig):
    """A signal in the middle of epoch 2 (the degradation also serves validation, so its 30th call
    is a few steps into epoch 2): the step finishes, last.pt records epoch 1 plus the steps done,
    and the resumed run ends with weights and logged losses identical to an uninterrupted run's."""
    code, straight = train_signalled(tmp_path, monkeypatch, "straight", call=10**9)
    assert code == 0
    code, run = train_signalled(tmp_path, monkeypatch, "stopped", call=30, sig=sig)
    assert code == 130
    kept = checkpoint.load(run, "last")
    assert kept["epoch"] == 1 and 1 <= kept["step"] < 4 and kept["partial"]["steps"] == kept["step"] and finite(kept)
    out = capsys.readouterr().out
    assert f"saved the state after step {kept['step']} of epoch 2 in {run / 'checkpoints' / 'last.pt'}" in out, out
    assert f"Continue with: workbench run --resume {run}" in out
    assert checkpoint.load(run, "best")["epoch"] == 1 and epochs_logged(run) == [1] and temp_files(run) == []

    plugins = plugin_manager.load([TINY])
    train(recipes.load(str(run / "recipe.toml"), plugins), plugins, resume=run, device="cpu", progress=False)
    a, b = checkpoint.load(straight, "last"), checkpoint.load(run, "last")
    assert b["epoch"] == 3 and b["step"] == 0
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    logged = [{k: r[k] for k in ("epoch", "train_loss", "valid")} for r in rundir.read_metrics(run)]
    assert logged == [{k: r[k] for k in ("epoch", "train_loss", "valid")} for r in rundir.read_metrics(straight)]


def test_signal_mid_epoch_with_loader_workers_resumes_exactly(tmp_path, monkeypatch, capsys):
    """data.workers = 1 (persistent workers that prefetch ahead): the worker signals the training
    process mid-epoch; the resumed run skips exactly the keys trained and matches a straight run."""
    code, straight = train_signalled(tmp_path, monkeypatch, "straight", call=10**9, workers=1)
    assert code == 0
    code, run = train_signalled(tmp_path, monkeypatch, "stopped", call=20, workers=1)
    assert code == 130
    kept = checkpoint.load(run, "last")
    assert (kept["epoch"], kept["step"]) > (0, 0) and "saved the state after" in capsys.readouterr().out
    plugins = plugin_manager.load([TINY])
    train(recipes.load(str(run / "recipe.toml"), plugins), plugins, resume=run, device="cpu", progress=False)
    a, b = checkpoint.load(straight, "last")["model"], checkpoint.load(run, "last")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_second_signal_stops_at_once_keeping_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    code, run = train_signalled(tmp_path, monkeypatch, "run", call=30, times=2)
    assert code == 130
    assert "the checkpoint saved after epoch 1 is kept" in capsys.readouterr().out
    kept = checkpoint.load(run, "last")
    assert (kept["epoch"], kept["step"]) == (1, 0) and temp_files(run) == []



def test_one_signal_stops_a_step_that_hangs(tmp_path, monkeypatch, capfd):
    """A plugin stuck in the training process (data.workers = 0) cannot reach the end of its step;
    one SIGTERM still stops the run once the grace period is over, keeping the last checkpoint."""
    monkeypatch.setenv("WORKBENCH_STOP_GRACE", "0.5")
    plugins = plugin_manager.load([TINY])
    monkeypatch.setenv("TINY_SIGNAL_FLAG", str(tmp_path / "hang.flag"))
    spec = 'type = "signal_at"\ncall = 30\nsig = "SIGTERM"\nhang = 600.0'
    r = recipes.load(str(make_recipe(tmp_path, degradation=spec, epochs=3, steps=4)), plugins)
    started = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        train(r, plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert stopped.value.code == 130 and time.monotonic() - started < 300   # not the 600 s hang
    assert "did not finish within 0.5 s of the signal" in capfd.readouterr().err
    kept = checkpoint.load(tmp_path / "run", "last")
    assert (kept["epoch"], kept["step"]) == (1, 0) and temp_files(tmp_path / "run") == []

def test_signal_in_the_first_step_saves_a_resumable_state(tmp_path, monkeypatch):
    code, run = train_signalled(tmp_path, monkeypatch, "run", call=1, epochs=1)
    assert code == 130
    kept = checkpoint.load(run, "last")
    assert (kept["epoch"], kept["step"]) == (0, 1)
    plugins = plugin_manager.load([TINY])
    train(recipes.load(str(run / "recipe.toml"), plugins), plugins, resume=run, device="cpu", progress=False)
    assert checkpoint.load(run, "last")["epoch"] == 1 and epochs_logged(run) == [1]


# -- 3. SIGKILL at random moments -------------------------------------------------------------------
def test_sigkill_at_random_moments_never_corrupts_and_resume_completes(tmp_path):
    """Kill -9 at seeded random moments (during start-up, training, validation or a save), then
    resume, or start again when no checkpoint was written yet. Checkpoints always load."""
    epochs = 6
    recipe = make_recipe(tmp_path, degradation='type = "slow"\nseconds = 0.02', epochs=epochs)
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"

    def start():
        args = ("run", "--resume", run) if last.exists() else ("run", recipe, "--out", run)
        return subprocess.Popen(command(*args, "--device", "cpu", "-q"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=child_env())

    rng, log = random.Random(7), []
    for _ in range(4):
        resumed, proc = last.exists(), start()
        delay = rng.uniform(1.0, 6.0)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
        _, err = proc.communicate()
        if proc.returncode == 0:
            break   # it finished before the kill
        assert proc.returncode == -signal.SIGKILL, err
        for which in ("last", "best"):
            path = run / "checkpoints" / f"{which}.pt"
            if path.exists():
                state = checkpoint.load(path)   # never half written
                assert 1 <= state["epoch"] <= epochs and finite(state)
        # A kill during a save may leave its temporary file: harmless, and removed by the next start.
        assert all(name.startswith((".last.pt.", ".best.pt.")) for name in temp_files(run)), temp_files(run)
        log.append((round(delay, 2), "resumed" if resumed else "fresh", checkpoint.load(last)["epoch"] if last.exists() else 0))
    print("kills (delay s, start, epochs in last.pt after the kill):", log)
    assert len(log) >= 2, f"the delays are too long to test anything: the run finished first ({log})"
    if not (last.exists() and checkpoint.load(last)["epoch"] == epochs):
        proc = start()
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert checkpoint.load(run, "last")["epoch"] == epochs
    assert epochs_logged(run) == list(range(1, epochs + 1))
    assert temp_files(run) == []


class StopAfterFirstEpoch:
    """An event plugin that acts like Ctrl-C right after epoch 1's checkpoint, once."""

    fired = False

    @hookimpl
    def on_epoch_end(self, epoch):
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt


def test_resume_and_fresh_start_remove_stray_temporary_files(tmp_path):
    plugins = plugin_manager.load([TINY])
    plugins.pm.register(StopAfterFirstEpoch())
    r = recipes.load(str(make_recipe(tmp_path, epochs=2)), plugins)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train(r, plugins, out=run, device="cpu", progress=False)
    assert stopped.value.code == 130 and checkpoint.load(run, "last")["epoch"] == 1
    stray = [run / "checkpoints" / ".last.pt.k1ll3d.tmp", run / "checkpoints" / ".best.pt.abc.tmp"]
    for p in stray:
        p.write_bytes(b"half a checkpoint")
    train(r, plugins, resume=run, device="cpu", progress=False)
    assert temp_files(run) == [] and checkpoint.load(run, "last")["epoch"] == 2

    # Killed before its first checkpoint: its recipe.toml, an empty checkpoints/ folder and a
    # metrics line do not block starting over in the same directory, and the leftovers go.
    fresh = tmp_path / "fresh"
    (fresh / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "recipe.toml", fresh / "recipe.toml")
    (fresh / "checkpoints" / ".last.pt.xyz.tmp").write_bytes(b"")
    (fresh / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 9}\n{"epo')
    train(r, plugins, out=fresh, device="cpu", progress=False)
    assert temp_files(fresh) == [] and epochs_logged(fresh) == [1, 2]
    assert rundir.read_metrics(fresh)[0]["train_loss"] != 9


# -- 4. divergence ----------------------------------------------------------------------------------
def test_diverging_loss_stops_after_ten_bad_steps_keeping_finite_checkpoints(tmp_path):
    # NaN from the 4th step on: epochs 2-4 skip all 3 steps each (9), the 10th bad step in epoch 5
    # stops the run. The count must run across epochs, or short epochs would never stop.
    recipe = make_recipe(tmp_path, loss='type = "nan_loss"\nstart = 3', epochs=6, steps=3)
    result = invoke("run", recipe, "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert "training diverged: 10 non-finite losses in a row at epoch 5" in line and "lower train.lr" in line, line
    last = checkpoint.load(tmp_path / "run", "last")
    assert last["epoch"] == 4 and finite(last) and finite(checkpoint.load(tmp_path / "run", "best"))


def test_nan_weights_never_replace_a_checkpoint(tmp_path):
    """A loss with a finite value but NaN gradients turns the weights to NaN in epoch 2: the run
    stops there, and last.pt still holds epoch 1's finite weights."""
    recipe = make_recipe(tmp_path, loss='type = "nan_grad"\nstart = 2', epochs=3, steps=2)
    result = invoke("run", recipe, "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert "training diverged: the weights became NaN or Inf in epoch 2" in line and "lower train.lr" in line, line
    assert "checkpoint of epoch 1 is kept" in line
    last = checkpoint.load(tmp_path / "run", "last")
    assert last["epoch"] == 1 and finite(last) and temp_files(tmp_path / "run") == []
    assert epochs_logged(tmp_path / "run") == [1]   # the NaN epoch was neither judged nor logged


def test_a_single_nan_step_is_skipped_and_the_run_finishes(tmp_path):
    recipe = make_recipe(tmp_path, loss='type = "nan_loss"\nstart = 2\ncount = 1', epochs=2, steps=3)
    result = invoke("run", recipe, "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    last = checkpoint.load(tmp_path / "run", "last")
    assert last["epoch"] == 2 and finite(last)
    assert all(math.isfinite(r["train_loss"]) for r in rundir.read_metrics(tmp_path / "run"))


# -- 5. read-only folder, full disk -----------------------------------------------------------------
def test_read_only_folder_fails_before_training(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a 0o555 folder anyway; test_unwritable_run_directory_fails_before_training simulates it")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_cli("run", make_recipe(tmp_path), "--out", ro / "run", "--device", "cpu")
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert f"cannot write the run directory {ro / 'run'}" in line and "Permission denied" in line, line
    assert "epoch 1/" not in proc.stdout and list(ro.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC], ids=["read-only", "full"])
def test_unwritable_run_directory_fails_before_training(tmp_path, monkeypatch, code):
    """Where chmod cannot stop us (root), the write probe's own open() fails as a read-only or
    full file system would make it fail."""
    real_open = open

    def refusing_open(path, *args, **kw):
        if Path(path).name == ".write-test":
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(rundir, "open", refusing_open, raising=False)   # rundir's own open() only
    trained = []
    monkeypatch.setattr("workbench.train.loop._Trainer._train_epoch", lambda self, *args: trained.append(args))
    result = invoke("run", make_recipe(tmp_path), "--out", tmp_path / "run", "--device", "cpu", "-q")
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert f"cannot write the run directory {tmp_path / 'run'}: {os.strerror(code)}" in line, line
    assert trained == [] and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_save, real_mkstemp, temps, saves = torch.save, files.tempfile.mkstemp, [], []

    def recording_mkstemp(*args, **kw):   # the atomic writer writes through an fd: learn its file name
        fd, name = real_mkstemp(*args, **kw)
        temps.append(name)
        return fd, name

    def filling_save(state, f, *args, **kw):
        if Path(temps[-1]).name.startswith(".last.pt."):
            saves.append(temps[-1])
            if len(saves) == 2:   # epoch 2's last.pt: half written, then the disk is full
                f.write(b"\0" * 1000)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(state, f, *args, **kw)

    monkeypatch.setattr(files.tempfile, "mkstemp", recording_mkstemp)
    monkeypatch.setattr(checkpoint.torch, "save", filling_save)
    result = invoke("run", make_recipe(tmp_path, epochs=3), "--out", tmp_path / "run", "--device", "cpu", "-q")
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert f"cannot write checkpoint {tmp_path / 'run' / 'checkpoints' / 'last.pt'}: No space left on device" in line, line
    last = checkpoint.load(tmp_path / "run", "last")
    assert last["epoch"] == 1 and finite(last)
    assert temp_files(tmp_path / "run") == [] and len(saves) == 2 and not Path(saves[1]).exists()


# -- 6. hostile text and file names never reach a shell ---------------------------------------------
def test_watermark_text_and_file_names_never_reach_a_shell(tmp_path):
    # HOME points into tmp_path: were the text ever run by a shell, `rm -rf ~` would delete only
    # that folder, and the sentinel's absence would fail the test.
    home = tmp_path / "home"
    home.mkdir()
    (home / "sentinel").write_text("still here")
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["a;touch PWNED.png", "$(touch PWNED2).png", "`touch PWNED3` & echo.png"]
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(inputs / name)
    text = "$(touch PWNED); rm -rf ~ `echo hi`"
    proc = subprocess.run(command("degrade", "watermark", *(inputs / n for n in names), "-o", "out",
                                  "--set", f"text={text}", "--set", "kind=text", "--set", "opacity=1.0"),
                          capture_output=True, text=True, cwd=tmp_path, env=child_env(HOME=str(home)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in names:
        out = np.asarray(Image.open(tmp_path / "out" / name))
        assert out.shape == (48, 64, 3) and not np.array_equal(out, np.asarray(Image.open(inputs / name)))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*names, "grid.png"])
    assert not [p for p in tmp_path.rglob("PWNED*")], "a shell ran the text or a file name"
    assert (home / "sentinel").exists()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_samplers_skip_exactly_the_keys_a_resume_has_seen(world):
    from workbench.data.lanes import LaneSampler

    class Pairs:   # seven steps per epoch, whatever the lanes
        def lane_steps(self, lanes):
            return 7

    for rank in range(world):
        sampler = LaneSampler(Pairs(), batch_size=4, rank=rank, world=world, groups=2)
        sampler.set_epoch(4)
        full = list(sampler)
        assert {lane for *_, lanes in full for lane in lanes} == set(range(rank * 4, rank * 4 + 4))
        sampler.set_epoch(4, skip=3)
        assert list(sampler) == full[3 * 2:] and len(sampler) == len(full) - 3 * 2
