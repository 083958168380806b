"""Checkpoints and resume, pinned (issue 17's mutation run): what each checkpoint holds, every
message that names what was kept, the fallbacks for checkpoints older than a key, the schedule
stretched on `--set train.epochs`, the refusals of an edited recipe, and a safe load that an
environment variable cannot turn off. The trainer's checkpoint code runs on a small stand-in
(`Trainer` below), so that each case costs milliseconds, not a training run."""
import contextlib
import importlib.metadata
import json
import pickle
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench import __version__
from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint
from workbench.train import resume, state
from workbench.train.loop import train
from workbench.train.state import CheckpointState

TINY = Path(__file__).parent / "plugin_files" / "tiny_model.py"
RECIPE = """
[recipe]
seed = 1
[data]
size = 24
valid_size = 32
batch_size = 4
workers = 0
[[degradations]]
type = "blur"
sigma = [0.5, 1.5]
[model]
type = "tiny"
[train]
epochs = 1
steps_per_epoch = 2
lr = 2e-3
"""


@pytest.fixture(scope="module")
def tiny_plugins():
    return plugin_manager.load([TINY])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_plugins):
    """A real one-epoch run of the tiny model."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "tiny.toml").write_text(RECIPE)
    r = recipes.load(str(folder / "tiny.toml"), tiny_plugins)
    return train(r, tiny_plugins, out=folder / "run", device="cpu", progress=False)


# -- what a checkpoint holds ---------------------------------------------------------------------
def test_best_and_last_hold_exactly_what_was_promised(finished):
    best = checkpoint.load(finished, "best")
    last = checkpoint.load(finished, "last")
    valid = json.loads((finished / "metrics.jsonl").read_text().splitlines()[-1])["valid"]
    common = {"format", "model", "recipe", "versions", "epoch", "metrics", "task"}
    assert set(best) == common
    assert set(last) == common | {"optimizer", "scheduler", "scaler", "rng", "best", "step", "partial", "bad"}
    assert best["format"] == checkpoint.FORMAT == 1 and best["epoch"] == last["epoch"] == 1 and best["task"] == "restore"
    assert best["metrics"] == last["metrics"] == valid and last["best"] == valid["psnr"]
    assert (last["step"], last["partial"], last["bad"]) == (0, {}, 0)
    assert best["versions"] == {"workbench": __version__, "torch": str(torch.__version__),
                                "torchvision": importlib.metadata.version("torchvision")}
    assert best["recipe"]["model"]["type"] == "tiny" and set(last["rng"]) == {"torch"}


def test_versions_say_when_torchvision_is_absent(monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name == "torchvision":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert checkpoint.versions()["torchvision"] == "absent"


def test_locate_prefers_the_named_checkpoint_then_last(tmp_path):
    with pytest.raises(WorkbenchError) as e:
        checkpoint.locate(tmp_path / "nope")
    assert str(e.value) == f"{tmp_path / 'nope'} is neither a run directory nor a checkpoint file; check the path."
    with pytest.raises(WorkbenchError) as e:
        checkpoint.locate(tmp_path)
    assert str(e.value) == (f"{tmp_path} has no checkpoints/best.pt or checkpoints/last.pt; is it a finished or "
                            "started run directory?")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    assert checkpoint.locate(tmp_path) == tmp_path / "checkpoints" / "last.pt"
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"")
    assert checkpoint.locate(tmp_path) == tmp_path / "checkpoints" / "best.pt"
    assert checkpoint.locate(tmp_path, "last") == tmp_path / "checkpoints" / "last.pt"
    assert checkpoint.locate(tmp_path / "checkpoints" / "best.pt", "last") == tmp_path / "checkpoints" / "best.pt"


class Payload:
    def __reduce__(self):
        return (print, ("ran",))


@pytest.mark.parametrize("force", [None, "1"])
def test_load_refuses_code_even_when_the_environment_turns_safe_loading_off(tmp_path, monkeypatch, force):
    if force:   # torch's switch that makes weights_only=False the default: our explicit True still holds
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", force)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "recipe": {}, "x": Payload()}, path)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    assert str(e.value) == (f"{path}: refused to load: it references print, a Python object that could run "
                            "code; a workbench checkpoint holds only weights and settings.")


def test_load_names_a_file_that_is_not_weights_only_without_a_global(tmp_path):
    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2) + b"junk")
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"\x80\x02}q\x00."[:4]])
def test_load_names_a_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: cannot read checkpoint (") and message.endswith(
        "); the file is corrupt or not a checkpoint.")
    inner = message[len(f"{path}: cannot read checkpoint ("):-len("); the file is corrupt or not a checkpoint.")]
    assert inner and "\n" not in inner


def test_load_names_an_empty_error_by_its_type(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    path.write_bytes(b"x")

    def fail(*a, **k):
        raise EOFError()

    monkeypatch.setattr(checkpoint.torch, "load", fail)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    assert str(e.value) == f"{path}: cannot read checkpoint (EOFError); the file is corrupt or not a checkpoint."

    def multi(*a, **k):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(checkpoint.torch, "load", multi)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    assert str(e.value) == f"{path}: cannot read checkpoint (first line); the file is corrupt or not a checkpoint."


@pytest.mark.parametrize("content", [{"model": {}}, {"recipe": {}}, ["model", "recipe"], {"weights": {}}])
def test_load_wants_weights_and_a_recipe(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load(path)
    assert str(e.value) == f"{path}: not a workbench checkpoint (no model weights and recipe inside)."


def test_load_and_load_model_map_the_tensors_where_asked(finished, tiny_plugins):
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage

    checkpoint.load(finished, "best", map_location=where)
    assert seen and set(seen) == {"cpu"}
    seen.clear()
    model, st = checkpoint.load_model(finished, tiny_plugins, "last", map_location=where)
    assert seen and "optimizer" in st and isinstance(model, nn.Module)


def test_load_model_names_the_checkpoint_when_the_model_cannot_be_built_or_loaded(finished, tiny_plugins, tmp_path):
    st = checkpoint.load(finished)
    bad = tmp_path / "unknown.pt"
    torch.save({**st, "recipe": {**st["recipe"], "model": {"type": "tiny", "depth": 3}}}, bad)
    with pytest.raises(WorkbenchError, match=rf"^{bad}: \[model\]: unknown key 'depth' for model 'tiny'"):
        checkpoint.load_model(bad, tiny_plugins)
    wrong = tmp_path / "wrong.pt"
    torch.save({**st, "recipe": {**st["recipe"], "model": {"type": "tiny", "width": 4}}}, wrong)
    with pytest.raises(WorkbenchError) as e:
        checkpoint.load_model(wrong, tiny_plugins)
    assert str(e.value).startswith(f"{wrong}: the weights do not fit the model the recipe describes (Error(s) in loading")
    assert str(e.value).endswith(").") and "\n" not in str(e.value)


def test_model_spec_drops_only_the_pretrained_encoder():
    assert checkpoint.model_spec({"model": {"type": "unet", "encoder": "x.pt", "widths": [8]}}) == {"type": "unet", "widths": [8]}


def test_task_of_reads_the_checkpoint_then_the_model(tiny_plugins):
    assert checkpoint.task_of({"task": "classify", "recipe": {"model": {"type": "tiny"}}}, tiny_plugins) == "classify"
    assert checkpoint.task_of({"recipe": {"model": {"type": "classifier"}}}, tiny_plugins) == "classify"
    assert checkpoint.task_of({"recipe": {"model": {"type": "tiny"}}}, tiny_plugins) == "restore"
    assert checkpoint.task_of({"recipe": {"model": {}}}, tiny_plugins) == "restore"


def test_a_checkpoint_that_cannot_be_saved_says_to_free_space_and_resume(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkbenchError) as e:
        checkpoint.save({"model": {}}, tmp_path / "file" / "last.pt")
    assert str(e.value).startswith(f"cannot write checkpoint {tmp_path / 'file' / 'last.pt'}: ")
    assert str(e.value).endswith("(if any) is kept. Free some disk space and continue with --resume.")


# -- resume: what may change ---------------------------------------------------------------------
def test_set_on_resume_names_the_key_and_the_way_to_start_anew(tmp_path):
    resume.check_overrides(["train.epochs=3", " data.workers = 2", "train.compile=true"], tmp_path)
    with pytest.raises(WorkbenchError) as e:
        resume.check_overrides(["train.epochs=3", "recipe.name=a=b"], tmp_path)
    assert str(e.value) == ("--set recipe.name: a resumed run keeps its recipe; only train.epochs, data.workers, "
                            "train.compile can change on --resume. For other changes start a new run: workbench run "
                            f"{tmp_path}/recipe.toml --set recipe.name=a=b")


def edited(finished, tiny_plugins, *overrides):
    return recipes.load(str(finished / "recipe.toml"), tiny_plugins, list(overrides))


def test_an_unchanged_recipe_and_resumable_keys_pass(finished, tiny_plugins):
    resume.check_unchanged(edited(finished, tiny_plugins), finished, tiny_plugins)
    resume.check_unchanged(edited(finished, tiny_plugins, "train.epochs=5", "data.workers=1", "train.compile=true"),
                           finished, tiny_plugins)


def test_an_edited_recipe_is_refused_naming_three_changes_and_counting_the_rest(finished, tiny_plugins):
    tail = "; put it back to resume, or start a new run with the change. On --resume only " \
           "train.epochs, data.workers, train.compile may change."
    with pytest.raises(WorkbenchError) as e:
        resume.check_unchanged(edited(finished, tiny_plugins, "train.lr=0.5"), finished, tiny_plugins)
    assert str(e.value) == (f"{finished}/recipe.toml is not the recipe its checkpoint was trained with "
                            f"(train.lr: 0.002 -> 0.5){tail}")
    three = ["train.lr=0.5", "data.size=16", "recipe.seed=2"]
    with pytest.raises(WorkbenchError) as e:
        resume.check_unchanged(edited(finished, tiny_plugins, *three), finished, tiny_plugins)
    assert "(data.size: 24 -> 16; recipe.seed: 1 -> 2; train.lr: 0.002 -> 0.5); put" in str(e.value)
    with pytest.raises(WorkbenchError) as e:
        resume.check_unchanged(edited(finished, tiny_plugins, *three, "data.batch_size=2", "data.valid_size=16"),
                               finished, tiny_plugins)
    assert "(data.batch_size: 4 -> 2; data.size: 24 -> 16; data.valid_size: 32 -> 16 and 2 more); put" in str(e.value)


def test_a_key_on_one_side_only_is_shown_as_absent(finished, tiny_plugins, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = checkpoint.load(finished, "last")
    last["recipe"]["degradations"] = [{"type": "jpeg", "quality": 30}]
    checkpoint.save(last, run / "checkpoints" / "last.pt")
    with pytest.raises(WorkbenchError) as e:
        resume.check_unchanged(edited(finished, tiny_plugins), run, tiny_plugins)
    assert ("(degradations.0.quality: 30 -> (absent); degradations.0.sigma: (absent) -> [0.5, 1.5]; "
            'degradations.0.type: "jpeg" -> "blur"); put') in str(e.value)


def test_a_damaged_recipe_in_the_checkpoint_is_named_by_its_file(finished, tiny_plugins, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = checkpoint.load(finished, "last")
    last["recipe"]["train"]["no_such_key"] = 1
    checkpoint.save(last, run / "checkpoints" / "last.pt")
    with pytest.raises(WorkbenchError, match=rf"{run}/checkpoints/last\.pt"):
        resume.check_unchanged(edited(finished, tiny_plugins), run, tiny_plugins)


# -- the trainer's checkpoint code, on a stand-in -----------------------------------------------
class Trainer(CheckpointState):
    """What CheckpointState reads of the trainer: a one-layer model, AdamW, a one-cycle schedule of
    `epochs` x `steps`, an enabled GradScaler (its scale is state a resume must restore)."""

    def __init__(self, run_dir, *, epochs=2, steps=3, lr=1e-3, progress=False):
        torch.manual_seed(0)
        self.model = nn.Conv2d(3, 3, 1)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=lr, total_steps=epochs * steps + 1)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
        self.recipe = recipes.Recipe({"train": {"epochs": epochs, "lr": lr}, "data": {"train": "photos"}}, "test")
        self.task = types.SimpleNamespace(kind="restore", best_key="psnr")
        self.run = types.SimpleNamespace(dir=Path(run_dir), history=[])
        self.stop = types.SimpleNamespace(saving=contextlib.nullcontext, requested=0)
        self.rank, self.device, self.progress, self.steps = 0, torch.device("cpu"), progress, steps
        self.best, self.saved, self.partial, self.bad = -float("inf"), (0, 0), {}, 0
        self.ema = None   # train.ema off (tests/test_ema.py covers it on)

    def step(self, n=1):
        for _ in range(n):
            self.opt.step()
            self.sched.step()


def test_best_is_kept_on_a_tie_and_on_a_missing_score(tmp_path):
    t = Trainer(tmp_path)
    t._save(1, {"psnr": 30.0})
    assert checkpoint.load(tmp_path, "best")["epoch"] == 1 and t.best == 30.0 and t.saved == (1, 0)
    t._save(2, {"psnr": 30.0})
    assert checkpoint.load(tmp_path, "best")["epoch"] == 1 and checkpoint.load(tmp_path, "last")["epoch"] == 2
    t._save(3, {"ssim": 0.9})   # no psnr: not an improvement, whatever came before
    assert checkpoint.load(tmp_path, "best")["epoch"] == 1 and t.best == 30.0
    last = checkpoint.load(tmp_path, "last")
    assert last["metrics"] == {"ssim": 0.9} and last["best"] == 30.0 and last["scaler"]["scale"] == 256.0
    assert last["scheduler"] == t.sched.state_dict() and last["optimizer"]["param_groups"][0]["lr"] == t.opt.param_groups[0]["lr"]
    fresh = Trainer(tmp_path / "fresh")
    fresh._save(1, {"ssim": 0.9})
    assert not (tmp_path / "fresh" / "checkpoints" / "best.pt").exists()


def test_a_mid_epoch_save_keeps_the_last_validation_and_the_running_loss(tmp_path):
    t = Trainer(tmp_path)
    t._save_mid_epoch(0, 2, {"l1": 0.5}, 2)
    last = checkpoint.load(tmp_path, "last")
    assert (last["epoch"], last["step"], last["partial"], last["metrics"]) == (0, 2, {"totals": {"l1": 0.5}, "steps": 2}, {})
    assert t.saved == (0, 2)
    t.run.history = [{"epoch": 1, "train_loss": 1.0}]
    t._save_mid_epoch(1, 1, {}, 1)
    assert checkpoint.load(tmp_path, "last")["metrics"] == {}
    t.run.history.append({"epoch": 2, "valid": {"psnr": 31.0}})
    t._save_mid_epoch(2, 1, {}, 1)
    assert checkpoint.load(tmp_path, "last")["metrics"] == {"psnr": 31.0}


def test_nan_weights_are_never_saved_and_the_message_says_what_is_kept(tmp_path):
    t = Trainer(tmp_path)
    t._save_mid_epoch(1, 2, {}, 2)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        t.model.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(WorkbenchError) as e:
        t._save_mid_epoch(2, 3, {}, 3)
    assert str(e.value) == ("training diverged: the weights became NaN or Inf in epoch 3; lower train.lr (now 0.001) and "
                            f"start again. The checkpoint after step 2 of epoch 2 is kept in {tmp_path}.")
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    t.saved = (2, 0)
    assert t._diverged("x").endswith(f"The checkpoint of epoch 2 is kept in {tmp_path}.")
    t.saved = (0, 0)
    assert t._diverged("x") == "training diverged: x; lower train.lr (now 0.001) and start again. No checkpoint was written."


def test_an_interruption_says_what_was_kept(tmp_path, capsys):
    t = Trainer(tmp_path)
    t.saved = (1, 2)
    t._report_interruption(tmp_path, True)
    t.saved = (2, 0)
    t._report_interruption(tmp_path, False)
    t.saved = (0, 0)
    t._report_interruption(tmp_path, False)
    t._report_interruption(tmp_path, False, removed=True)
    t.rank = 1
    t._report_interruption(tmp_path, True)
    assert capsys.readouterr().out.split("\n") == [
        "", f"Interrupted: saved the state after step 2 of epoch 2 in {tmp_path / 'checkpoints' / 'last.pt'}. "
            f"Continue with: workbench run --resume {tmp_path}",
        "", f"Interrupted: the checkpoint saved after epoch 2 is kept. Continue with: workbench run --resume {tmp_path}",
        "", f"Interrupted during the first epoch: nothing was saved yet in {tmp_path}.",
        "", f"Interrupted during the first epoch: nothing was saved yet; {tmp_path} was removed.", ""]


def saved_run(tmp_path, *, drop=(), epoch=1, step=0, **kw):
    """A run directory whose last.pt was saved by a Trainer after `epoch` epochs (+ `step`)."""
    t = Trainer(tmp_path, **kw)
    t.step(epoch * t.steps + step)
    t.scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    t.best, t.bad = 29.0, 2
    st = t._state(epoch, {"psnr": 29.0})
    t._save_last(st, step, {"totals": {"l1": 1.5}, "steps": step} if step else None)
    last = checkpoint.load(tmp_path, "last")
    for key in drop:   # what checkpoints from before the key was saved lack
        del last[key]
    checkpoint.save(last, tmp_path / "checkpoints" / "last.pt")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    return t


def test_a_resume_restores_every_state_and_says_where_it_goes_on(tmp_path, capsys):
    saved = saved_run(tmp_path, epoch=1, step=2)
    t = Trainer(tmp_path, progress=True)
    assert t._load_state(tmp_path) == (1, 2)
    assert t.sched.last_epoch == saved.sched.last_epoch == 5 and t.scaler.get_scale() == 512.0
    assert (t.best, t.bad) == (29.0, 2) and t.partial["totals"] == {"l1": 1.5} and t.partial["steps"] == 2
    assert torch.equal(t.model.weight, saved.model.weight)
    assert torch.equal(t.partial["rng"]["torch"], checkpoint.load(tmp_path, "last")["rng"]["torch"])
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    assert capsys.readouterr().out == f"Resuming {tmp_path} after step 2 of epoch 2 of 2.\n"
    saved_run(tmp_path / "b", epoch=2)
    Trainer(tmp_path / "b", progress=True)._load_state(tmp_path / "b")
    assert capsys.readouterr().out == f"Resuming {tmp_path / 'b'} after epoch 2 of 2.\n"


def test_a_resume_at_an_epoch_end_replays_the_random_state_and_a_mid_epoch_one_defers_it(tmp_path):
    for step in (0, 1):
        run = tmp_path / str(step)
        saved_run(run, epoch=1, step=step)
        last = checkpoint.load(run, "last")
        torch.manual_seed(123)
        last["rng"] = state.rng_state()
        expected = torch.rand(3)
        checkpoint.save(last, run / "checkpoints" / "last.pt")
        t = Trainer(run)
        torch.manual_seed(999)
        unchanged = torch.get_rng_state()
        t._load_state(run)
        if step:   # the epoch's loader replays it from partial["rng"], after the skipped steps
            assert torch.equal(torch.get_rng_state(), unchanged)
        else:
            assert torch.equal(torch.rand(3), expected)


def test_checkpoints_older_than_a_key_resume_with_its_default(tmp_path):
    saved_run(tmp_path, drop=("bad", "step", "partial"), epoch=1)
    t = Trainer(tmp_path)
    assert t._load_state(tmp_path) == (1, 0)
    assert t.bad == 0 and set(t.partial) == {"rng"}


def test_a_resume_with_a_changed_epoch_length_is_refused(tmp_path):
    saved_run(tmp_path, epoch=1, steps=3)
    with pytest.raises(WorkbenchError) as e:
        Trainer(tmp_path, steps=4)._load_state(tmp_path)
    assert str(e.value) == (f"{tmp_path}: an epoch is now 4 steps but was 3 when the checkpoint was saved: the training "
                            "images (data.train = 'photos') changed. Put them back to resume, or start a new run.")


def test_the_schedule_is_stretched_to_more_epochs_from_the_step_reached(tmp_path):
    saved_run(tmp_path, epoch=1, epochs=2, steps=3)   # 3 of 7 steps done
    t = Trainer(tmp_path, epochs=4, steps=3)
    t._load_state(tmp_path)
    reference = Trainer(tmp_path / "ref", epochs=4, steps=3)
    reference.step(3)
    assert t.sched.total_steps == 13 and t.sched.last_epoch == 3
    assert t.opt.param_groups[0]["lr"] == pytest.approx(reference.opt.param_groups[0]["lr"], rel=1e-12)


@pytest.mark.parametrize("done", [4, 5, 6])   # of a new total of 6 steps: 4 still stretches; 5, 6 are the end
def test_no_schedule_is_made_when_no_step_is_left(tmp_path, done):
    t = Trainer(tmp_path, epochs=3, steps=2)
    t.step(done)
    original = t.sched
    t._stretch_schedule(6)
    if done == 4:
        assert t.sched is not original and t.sched.total_steps == 6 and t.sched.last_epoch == 4
    else:
        assert t.sched is original


def test_cuda_random_state_is_saved_and_restored_when_there_is_a_gpu(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["gpu0"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    saved = state.rng_state()
    assert saved["cuda"] == ["gpu0"] and set(saved) == {"torch", "cuda"}
    state.set_rng_state(saved)
    state.set_rng_state({"torch": saved["torch"]})   # saved on a machine without one
    assert restored == [["gpu0"]]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state.set_rng_state(saved)   # resumed on a machine without one
    assert restored == [["gpu0"]] and set(state.rng_state()) == {"torch"}
