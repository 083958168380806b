"""Nothing the user made is lost, and every mistake is one line (issue 17), through the CLI.

Outputs never replace a file the command did not make (without --overwrite) nor an input; a run
directory starts empty and has one writer; a resume refuses an edited recipe and extends a run on
purpose; plugins breaking the contract at train time are named; out-of-memory settings are refused.
"""
import json
import os
import shutil
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.runs import checkpoint


def tiny(**keys):
    """--set options of a run of seconds: 1 epoch of 2 steps of 4 crops of 32 px (`keys` replace or add)."""
    sets = {"train.epochs": 1, "train.steps_per_epoch": 2, "data.size": 32, "data.workers": 0, "data.batch_size": 4,
            "data.valid_size": 32, **{k.replace("__", "."): v for k, v in keys.items()}}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["-q"]


TINY = tiny()


def photo(path, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def identity_run(tmp_path, degradations=({"type": "jpeg", "quality": 30},), name="run"):
    from workbench_plugins.unet import UNet

    net = UNet(widths=[8, 16])   # untrained: the identity
    run = tmp_path / name
    checkpoint.save({"format": 1, "model": net.state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": name, "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16]}, "degradations": list(degradations)}},
                    run / "checkpoints" / "best.pt")
    return run


def one_line(res):
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and lines[-1].startswith("Error: "), res.output
    return lines[-1]


# -- 1, 2, 10: outputs -----------------------------------------------------------------------------
def test_restore_keeps_a_file_it_did_not_make_unless_told(run_cli, tmp_path):
    run = identity_run(tmp_path)
    par = tmp_path / "par"
    photo(par / "sub" / "base.png", seed=1)
    mine = photo(par / "base.png", seed=2).read_bytes()
    line = one_line(run_cli("restore", run, par / "sub", "-o", par, "--device", "cpu"))
    assert "already exists" in line and "--overwrite" in line
    assert (par / "base.png").read_bytes() == mine
    res = run_cli("restore", run, par / "sub", "-o", par, "--device", "cpu", "--overwrite")
    assert res.exit_code == 0, res.output
    assert (par / "base.png").read_bytes() != mine


def test_restore_into_a_folder_inside_its_input_skips_its_own_outputs(run_cli, tmp_path):
    run = identity_run(tmp_path)
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    assert run_cli("restore", run, photos, "-o", photos / "restored", "--device", "cpu").exit_code == 0
    res = run_cli("restore", run, photos, "-o", photos / "restored", "--device", "cpu", "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png")) == ["a.png", "restored/a.png"]
    assert "Restored 1 photo(s)" in res.output


def test_an_output_hard_linked_to_an_input_is_refused(run_cli, tmp_path):
    run = identity_run(tmp_path)
    src = photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    os.link(src, tmp_path / "out" / "a.png")
    before = src.read_bytes()
    line = one_line(run_cli("restore", run, src, "-o", tmp_path / "out", "--device", "cpu", "--overwrite"))
    assert "would overwrite its input" in line
    assert src.read_bytes() == before


def test_degrade_into_its_input_folder_keeps_the_originals(run_cli, tmp_path):
    same = tmp_path / "same"
    photo(same / "a.png")
    photo(same / "b.jpg")
    before = {p.name: p.read_bytes() for p in same.iterdir()}
    line = one_line(run_cli("degrade", "jpeg", same, "-o", same, "--overwrite"))
    assert "would overwrite its input" in line
    assert {p.name: p.read_bytes() for p in same.iterdir()} == before


def test_degrade_masks_that_would_share_a_name_are_refused_before_any_work(run_cli, tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    photo(photos / "a.png")
    out = tmp_path / "out"
    line = one_line(run_cli("degrade", "erase", photos, "-o", out, "--masks"))
    assert "a.jpg" in line and "a.png" in line and "masks/a.png" in line
    assert not out.exists()
    # a photo that is itself under masks/: its damaged copy and x.png's mask would be one file
    photos2 = tmp_path / "photos2"
    photo(photos2 / "x.png")
    photo(photos2 / "masks" / "x.png")
    line = one_line(run_cli("degrade", "erase", photos2, "-o", out, "--masks"))
    assert "masks/x.png" in line
    assert not out.exists()


def test_grid_lr_find_batch_extend_outputs_are_checked_before_the_work(run_cli, tmp_path):
    run = identity_run(tmp_path)
    mine = photo(tmp_path / "mine.png")
    before = mine.read_bytes()
    assert "already exists" in one_line(run_cli("grid", run, "-o", mine, "-n", "1", "--device", "cpu"))
    assert "already exists" in one_line(run_cli("batch", "colorize", "-o", mine))
    assert "already exists" in one_line(run_cli("lr-find", "colorize", "-o", mine, "--steps", "3"))
    assert mine.read_bytes() == before
    for name in ("photo", "x.txt"):
        line = one_line(run_cli("grid", run, "-o", tmp_path / name, "-n", "1", "--device", "cpu"))
        assert "cannot tell the image format" in line
    assert "is a file" in one_line(run_cli("lr-find", "colorize", "-o", mine / "x.png", "--steps", "3"))


def test_an_unwritable_json_is_refused_before_the_evaluation(run_cli, tmp_path):
    run = identity_run(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    line = one_line(run_cli("eval", run, "--data", photo(tmp_path / "p" / "a.png"), "--json", blocker / "e.json",
                            "--device", "cpu"))
    assert "is a file" in line and not (run / "eval.json").exists()
    assert blocker.read_text() == "mine"


def test_a_write_that_lost_the_race_keeps_the_file_that_appeared(tmp_path):
    """The writer itself refuses to replace a name taken since the command checked its outputs."""
    from workbench.runs.files import WriteError, write_text

    path = tmp_path / "x.txt"
    path.write_text("user")
    with pytest.raises(WriteError) as e:
        write_text(path, "ours")
    assert e.value.exists and path.read_text() == "user" and list(tmp_path.iterdir()) == [path]
    write_text(path, "ours", replace=True)
    assert path.read_text() == "ours"


# -- 3: run directories ----------------------------------------------------------------------------
def test_run_out_refuses_a_folder_with_the_users_files(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text("my notes\n")
    (out / "grid.png").write_bytes(b"my picture")
    line = one_line(run_cli("run", "colorize", "--out", out, *TINY))
    assert "is not empty" in line and "grid.png" in line
    assert (out / "metrics.jsonl").read_text() == "my notes\n" and (out / "grid.png").read_bytes() == b"my picture"
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "metrics.jsonl"]


def test_a_run_directory_has_one_writer(run_cli, tmp_path, monkeypatch):
    from workbench.runs.lock import holding

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r"
    assert run_cli("run", "colorize", "--out", out, *TINY).exit_code == 0
    lines = (out / "metrics.jsonl").read_text()
    with holding(out):   # as a second `run --resume` or a training run holds it
        line = one_line(run_cli("run", "--resume", out, "--set", "train.epochs=2", "-q"))
        assert "in use by another workbench command" in line
        res = run_cli("eval", out, "--device", "cpu")   # judges, but leaves the run's files alone
        assert res.exit_code == 0 and "eval.json and report.html were not written" in res.output
    assert (out / "metrics.jsonl").read_text() == lines and not (out / "eval.json").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "bad_model.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        from workbench import hookimpl

        class Half(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.ones(1))

            def forward(self, x):
                return (x * self.w)[..., ::2, ::2]

        @hookimpl
        def register_models(register):
            register("half", Half)
    '''))
    recipe = tmp_path / "half.toml"
    recipe.write_text('[[degradations]]\ntype = "grayscale"\n[model]\ntype = "half"\n')
    line = one_line(run_cli("--plugin", plugin, "run", recipe, *TINY))
    assert "model 'half' (plugin '" in line and "bad_model.py')" in line and "returned shape" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- 5: resume -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch colorize run, copied by each test that edits it."""
    from click.testing import CliRunner

    from workbench.cli import cli

    where = tmp_path_factory.mktemp("finished")
    old = os.getcwd()
    os.chdir(where)
    try:
        res = CliRunner().invoke(cli, ["run", "colorize", "--out", "r", *TINY], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert res.exit_code == 0, res.output
    return where / "r"


def copy_of(run, tmp_path):
    dst = tmp_path / "r"
    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize("edit, key", [("steps_per_epoch = 2", "train.steps_per_epoch"), ("lr = ", "train.lr"),
                                       ('type = "unet"', "model.type")])
def test_resume_refuses_an_edited_recipe(run_cli, finished, tmp_path, monkeypatch, edit, key):
    monkeypatch.chdir(tmp_path)
    run = copy_of(finished, tmp_path)
    text = (run / "recipe.toml").read_text()
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(edit))
    lines[i] = {"train.steps_per_epoch": "steps_per_epoch = 3", "train.lr": "lr = 0.01",
                "model.type": 'type = "edsr"'}[key]
    (run / "recipe.toml").write_text("\n".join(lines) + "\n")
    line = one_line(run_cli("run", "--resume", run, "--set", "train.epochs=2", "-q"))
    assert "is not the recipe its checkpoint was trained with" in line and key in line
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_resume_refuses_a_set_it_cannot_honour(run_cli, finished, tmp_path):
    run = copy_of(finished, tmp_path)
    line = one_line(run_cli("run", "--resume", run, "--set", "train.lr=0.1", "-q"))
    assert "--set train.lr" in line and "train.epochs" in line


def test_resume_with_more_epochs_extends_a_finished_run_on_the_stretched_schedule(run_cli, finished, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = copy_of(finished, tmp_path)
    assert "extend it with" in one_line(run_cli("run", "--resume", run, "-q"))
    res = run_cli("run", "--resume", run, "--set", "train.epochs=3", "-q")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert "epochs = 3" in (run / "recipe.toml").read_text()
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and state["recipe"]["train"]["epochs"] == 3
    # the learning rate after epoch 2 is the 3-epoch one-cycle schedule's at step 4 (2 steps an epoch)
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=state["recipe"]["train"]["lr"], total_steps=3 * 2 + 1)
    for _ in range(4):
        opt.step()
        sched.step()
    assert records[1]["lr"] == pytest.approx(sched.get_last_lr()[0], rel=1e-9)


def test_resume_refuses_training_data_that_changed(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    for k in range(4):
        photo(photos / f"{k}.png", 64, 64, seed=k)
    out = tmp_path / "r"
    res = run_cli("run", "colorize", "--data", photos, "--out", out,
                  *tiny(train__steps_per_epoch=0, data__repeat=1, data__crops_per_image=1, data__valid_fraction=0.25))
    assert res.exit_code == 0, res.output
    for k in range(4, 12):
        photo(photos / f"{k}.png", 64, 64, seed=k)
    line = one_line(run_cli("run", "--resume", out, "--set", "train.epochs=2", "-q"))
    assert "the training images" in line and "changed" in line


# -- 7, 8, 9: one line for each mistake ------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["eval", "RUN", "--seed", "-1"], "--seed"),
    (["eval", "RUN", "--seed", str(2**64)], "--seed"),
    (["eval", "RUN", "--device", "meta"], "--device meta"),
    (["eval", "RUN", "--device", "xpu"], "--device xpu"),
    (["run", "colorize", "--set", "recipe.seed=-1"], "recipe.seed"),
    (["run", "colorize", "--set", "data.size=100000"], "lower data.size"),
    (["run", "colorize", "--set", 'data.train=""'], "data.train is empty"),
])
def test_mistakes_are_one_line(run_cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    run = identity_run(tmp_path)
    res = run_cli(*[str(run) if a == "RUN" else a for a in args])
    assert res.exit_code == 2 and "Traceback" not in res.output and words in res.output, res.output
    assert not (tmp_path / "runs").exists()


def test_a_model_too_big_for_memory_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line(run_cli("run", "colorize", "--set", "model.widths=[65536]", *TINY))
    assert "out of memory" in line and "model.widths = [65536]" in line
    assert not (tmp_path / "runs").exists()


def test_out_of_memory_in_a_training_step_names_the_settings_and_leaves_nothing(run_cli, tmp_path, monkeypatch):
    from workbench.train import setup

    def oom(self, batch, forward=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(setup.Learner, "step", oom)
    line = one_line(run_cli("run", "colorize", *TINY))
    assert "out of memory" in line and "data.batch_size (now 4)" in line and "data.size (now 32)" in line
    assert not any((tmp_path / "runs").iterdir())


def test_a_recipe_without_degradations_is_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "nothing.toml"
    recipe.write_text('[recipe]\nname = "nothing"\n[model]\ntype = "unet"\nwidths = [8, 16]\n')
    assert "no [[degradations]]" in one_line(run_cli("run", recipe, *TINY))


def test_data_train_empty_does_not_read_the_current_folder(run_cli, tmp_path, monkeypatch):
    photo(tmp_path / "deep" / "inside" / "x.png")
    monkeypatch.chdir(tmp_path)
    assert "data.train is empty" in one_line(run_cli("run", "colorize", "--data", " ", *TINY))


BAD_DEGRADATIONS = '''
import torch
from workbench import hookimpl

class Bytes:
    def __call__(self, img, rng):
        return (img * 255).to(torch.uint8)

class Levels:
    def __call__(self, img, rng):
        return img * 255

class InPlace:
    def __call__(self, img, rng):
        return img.mul_(0.5)

class SumLoss(torch.nn.Module):
    def forward(self, out, target):
        return (out - target).abs().flatten(1).mean(1)   # one value per image: not a scalar

@hookimpl
def register_degradations(register):
    register("bytes", Bytes)
    register("levels", Levels)
    register("inplace", InPlace)

@hookimpl
def register_losses(register):
    register("per_image", SumLoss)
'''


@pytest.mark.parametrize("kind, words", [("bytes", "returned a uint8 image"), ("levels", "0-255 values"),
                                         ("inplace", "modified its input image in place")])
def test_the_degradation_contract_holds_at_train_time(run_cli, tmp_path, monkeypatch, kind, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD_DEGRADATIONS)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[degradations]]\ntype = "{kind}"\n[model]\ntype = "unet"\nwidths = [8, 16]\n')
    line = one_line(run_cli("--plugin", tmp_path / "bad.py", "run", recipe, *TINY))
    assert f"bad.py', degradation '{kind}'" in line and words in line


def test_a_loss_returning_a_batch_is_named(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD_DEGRADATIONS)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[degradations]]\ntype = "grayscale"\n[model]\ntype = "unet"\nwidths = [8, 16]\n'
                      '[[losses]]\ntype = "per_image"\n')
    line = one_line(run_cli("--plugin", tmp_path / "bad.py", "run", recipe, *TINY))
    assert "loss 'per_image' (plugin '" in line and "bad.py')" in line and "scalar" in line


def test_a_second_run_into_a_live_first_epoch_is_refused_and_deletes_nothing(run_cli, tmp_path, monkeypatch):
    """A run in its first epoch looks like one killed before its first checkpoint: only the lock
    tells them apart, so the folder is judged under it."""
    from workbench.runs.lock import holding

    monkeypatch.chdir(tmp_path)
    live = tmp_path / "X"
    (live / "checkpoints").mkdir(parents=True)
    (live / "recipe.toml").write_text('[recipe]\nname = "live"\n')
    with holding(live):
        line = one_line(run_cli("run", "colorize", "--out", live, *TINY))
    assert "in use by another workbench command" in line
    assert (live / "recipe.toml").read_text() == '[recipe]\nname = "live"\n'
    # once that run is gone (killed: its lock released), the folder is started over
    res = run_cli("run", "colorize", "--out", live, *TINY)
    assert res.exit_code == 0 and "starting it over" in res.output, res.output
    assert (live / "checkpoints" / "last.pt").exists()
