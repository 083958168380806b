"""`restore`, pinned (issue 17's mutation run): the library's defaults are the CLI's, every refusal's
sentence, a mask scaled with a super-resolution input, the sweep of a killed write's leftovers
(and only its own), self-ensemble through restore_files, a checkpoint older than `task`, and the
blending windows at the one-pixel shift."""
import inspect
import subprocess
import sys

import click
import numpy as np
import pytest
import torch
from PIL import Image

from workbench.api import registry as plugin_manager
from workbench.cli import judge
from workbench.errors import WorkbenchError
from workbench.infer import savers
from workbench.infer.restore import _windows, restore_files, restore_tensor
from workbench.runs import checkpoint
from workbench.runs.files import WriteError

MODELS = '''
import torch
from torch import nn
from workbench import hookimpl


class MaskProbe(nn.Module):
    """White where the mask says missing, the input elsewhere; insists the mask fits the input."""
    takes_mask = True

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x, mask):
        assert mask.shape == (x.shape[0], 1, *x.shape[2:]), (tuple(mask.shape), tuple(x.shape))
        return torch.where(mask, torch.ones_like(x), x) + self.w


class Ramp(nn.Module):
    """The input plus a left-to-right ramp: not symmetric, so self-ensemble changes its output."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x * 0.5 + torch.linspace(0, 0.5, x.shape[-1]) + self.w


@hookimpl
def register_models(register):
    register("mask_probe", MaskProbe)
    register("ramp", Ramp)
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugins") / "probe_models.py"
    path.write_text(MODELS)
    return plugin_manager.load([path])


def make_run(folder, model_type, degradations, *, task="restore", plugins):
    _, net = plugin_manager.build(plugins.models, {"type": model_type})
    state = {"format": 1, "model": net.state_dict(), "epoch": 1,
             "recipe": {"recipe": {"name": "probe", "seed": 0}, "data": {"train": "sample"},
                        "model": {"type": model_type}, "degradations": degradations}}
    if task:
        state["task"] = task
    checkpoint.save(state, folder / "checkpoints" / "best.pt")
    return folder


def photo(path, h=20, w=24, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_the_library_defaults_are_the_cli_defaults():
    ctx = click.Context(judge.restore)
    cli = {p.name: p.get_default(ctx) for p in judge.restore.params}
    for fn in (restore_files, restore_tensor):
        params = inspect.signature(fn).parameters
        assert (params["tile"].default, params["overlap"].default) == (cli["tile"], cli["overlap"]) == (512, 32)
        assert params["self_ensemble"].default is False is cli["self_ensemble"]
    assert inspect.signature(restore_files).parameters["overwrite"].default is False is cli["overwrite"]
    assert inspect.signature(restore_files).parameters["device"].default == cli["device"] == "auto"


def test_a_mask_is_scaled_with_a_super_resolution_input(tmp_path, models):
    run = make_run(tmp_path / "run", "mask_probe", [{"type": "downsample", "scale": 2}], plugins=models)
    src = photo(tmp_path / "in" / "a.png")
    hole = np.zeros((20, 24), np.uint8)
    hole[4:8, 10:15] = 255
    Image.fromarray(hole).save(tmp_path / "a_mask.png")
    done = restore_files(run, [src], tmp_path / "out", mask=tmp_path / "a_mask.png", device="cpu", plugins=models)
    assert done[0][2:] == ((24, 20), (48, 40))
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    white = (out == 255).all(axis=-1)
    assert white[8:16, 20:30].all()
    white[8:16, 20:30] = False
    assert white.sum() < 5   # elsewhere the (upsampled) photo, white only by chance


def test_self_ensemble_reaches_the_model_through_restore_files(tmp_path, models):
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "quality": 50}], plugins=models)
    src = photo(tmp_path / "a.png")
    restore_files(run, [src], tmp_path / "plain", device="cpu", plugins=models)
    restore_files(run, [src], tmp_path / "ens", device=torch.device("cpu"), plugins=models, self_ensemble=True)
    plain = np.asarray(Image.open(tmp_path / "plain" / "a.png"), np.int16)
    ens = np.asarray(Image.open(tmp_path / "ens" / "a.png"), np.int16)
    assert np.abs(plain - ens).mean() > 10   # the ramp is averaged out by the flips


def test_tile_and_overlap_reach_the_model_through_restore_files(tmp_path, models):
    # The ramp spans each window it is given, so a tiled restore differs from a whole one.
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "quality": 50}], plugins=models)
    src = photo(tmp_path / "a.png", h=20, w=64)
    restore_files(run, [src], tmp_path / "whole", tile=0, device="cpu", plugins=models)
    restore_files(run, [src], tmp_path / "tiled", tile=24, overlap=4, device="cpu", plugins=models)
    whole, tiled = (np.asarray(Image.open(tmp_path / d / "a.png"), np.int16) for d in ("whole", "tiled"))
    img = torch.from_numpy(np.asarray(Image.open(src))).permute(2, 0, 1).float() / 255
    _, net = plugin_manager.build(models.models, {"type": "ramp"})
    want = restore_tensor(net, img, tile=24, overlap=4)
    want = (want * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    assert np.abs(tiled - want).max() <= 1 and np.abs(whole - tiled).mean() > 10


def test_default_plugins_and_a_checkpoint_older_than_task(tmp_path, monkeypatch):
    builtins = plugin_manager.load()
    run = make_run(tmp_path / "run", "unet", [{"type": "jpeg", "quality": 50}], task=None, plugins=builtins)
    monkeypatch.delenv(plugin_manager.ENV_VAR, raising=False)
    done = restore_files(run, [photo(tmp_path / "a.png")], tmp_path / "out")
    assert [(p.name, d.name) for p, d, *_ in done] == [("a.png", "a.png")]


def test_refusals_name_the_run_the_output_and_the_mask(tmp_path, models, capsys):
    deg = [{"type": "jpeg", "quality": 50}]
    plain = make_run(tmp_path / "plain", "ramp", deg, plugins=models)
    masked = make_run(tmp_path / "masked", "mask_probe", deg, plugins=models)
    classifier = make_run(tmp_path / "cls", "ramp", deg, task="classify", plugins=models)
    src = photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "sub" / "b.png")

    def refused(run, inputs=(src,), out=tmp_path / "out", **kw):
        with pytest.raises(WorkbenchError) as e:
            restore_files(run, list(inputs), out, device="cpu", plugins=models, **kw)
        return str(e.value)

    assert refused(classifier) == (f"{classifier}: is a classifier run; it labels images and cannot restore them. Use "
                                   "the run directory of a restoration recipe (superres, dejpeg, colorize, ...).")
    assert refused(plain, out=tmp_path / "x.PNG") == (
        f"-o {tmp_path / 'x.PNG'} looks like an image file, but restore writes into a folder (the photos keep their "
        "names); give a folder.")
    (tmp_path / "folder.png").mkdir()
    assert restore_files(plain, [src], tmp_path / "folder.png", device="cpu", plugins=models)
    assert refused(plain, inputs=[tmp_path / "empty"]).startswith(f"{tmp_path / 'empty'}")
    assert refused(plain, inputs=[]) == "Nothing to restore: name image files or folders."
    assert refused(plain, mask=tmp_path / "m.png") == (f"{plain}: this model finds the damage by itself and takes "
                                                       "no mask; drop --mask.")
    assert refused(masked).startswith(f"{masked}: this model fills holes it is told about: pass --mask with a mask image")
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "m.png")
    assert refused(masked, inputs=[tmp_path / "in"], mask=tmp_path / "m.png") == (
        f"--mask {tmp_path / 'm.png'} is one file but there are 2 photos: give a folder with a mask under each photo's name.")
    assert refused(masked, mask=tmp_path / "nowhere") == f"--mask {tmp_path / 'nowhere'}: no such file or folder."
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(masks / "a.PNG")   # another suffix, any case: found
    (masks / "sub").mkdir()
    (masks / "sub" / "b.txt").write_text("not a mask")
    (masks / "sub" / "c.png").mkdir()
    assert refused(masked, inputs=[tmp_path / "in"], mask=masks) == (
        f"--mask {masks}: no mask for sub/b.png (looked for {masks / 'sub' / 'b.png'} and other image suffixes).")
    (masks / "sub").rename(tmp_path / "elsewhere")   # the photo's sub-folder is missing from the masks
    assert refused(masked, inputs=[tmp_path / "in"], mask=masks).startswith(f"--mask {masks}: no mask for sub/b.png")
    assert restore_files(masked, [src], tmp_path / "masked-out", mask=masks, device="cpu", plugins=models)


def test_a_damaged_recipe_in_the_checkpoint_names_the_run(tmp_path, models):
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "qualty": 50}], plugins=models)
    with pytest.raises(WorkbenchError, match=rf"^{run}/recipe\.toml"):
        restore_files(run, [photo(tmp_path / "a.png")], tmp_path / "out", device="cpu", plugins=models)


def test_unreadable_inputs_are_warned_once_and_all_unreadable_is_one_line(tmp_path, models, capsys):
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "quality": 50}], plugins=models)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"not a png")
    good = photo(tmp_path / "in" / "b.png")
    done = restore_files(run, [tmp_path / "in"], tmp_path / "out", device="cpu", plugins=models)
    assert [p for p, *_ in done] == [good] and len(done.skipped) == 1
    path, reason = done.skipped[0]
    assert path == tmp_path / "in" / "a.png" and reason.startswith(f"{path}: ")
    assert capsys.readouterr().err == f"Warning: skipped {reason}\n"
    (tmp_path / "bad").mkdir()
    for name in ("x.png", "y.png"):
        (tmp_path / "bad" / name).write_bytes(b"junk")
    with pytest.raises(WorkbenchError) as e:
        restore_files(run, [tmp_path / "bad"], tmp_path / "out2", device="cpu", plugins=models)
    from workbench.images.files import read_image

    with pytest.raises(WorkbenchError) as why:
        read_image(tmp_path / "bad" / "x.png")
    assert str(e.value) == f"None of the 2 inputs could be restored (first: {why.value}); see the warnings above."


def test_a_killed_restores_leftover_is_swept_and_no_other(tmp_path, models):
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "quality": 50}], plugins=models)
    out = tmp_path / "out"
    out.mkdir()
    dead = dead_pid()
    own = out / f".a.png.{dead}.k1.tmp"
    other = out / f".other.png.{dead}.k2.tmp"
    own.write_bytes(b"half")
    other.write_bytes(b"half")
    restore_files(run, [photo(tmp_path / "a.png")], out, device="cpu", plugins=models)
    assert not own.exists() and other.exists() and (out / "a.png").is_file()


def test_a_full_disk_while_writing_is_one_line_naming_the_photo(tmp_path, models, monkeypatch):
    run = make_run(tmp_path / "run", "ramp", [{"type": "jpeg", "quality": 50}], plugins=models)

    def full(img, dst, **kw):
        raise WriteError("x", dst, "No space left on device")

    monkeypatch.setattr(savers, "write_image", full)   # restore writes photos through infer/savers.py
    with pytest.raises(WorkbenchError) as e:
        restore_files(run, [photo(tmp_path / "a.png")], tmp_path / "out", device="cpu", plugins=models)
    assert str(e.value) == (f"{tmp_path / 'out' / 'a.png'}: cannot write the restored photo (No space left on device); "
                            "check the output folder.")


def test_a_tile_shifted_by_one_pixel_still_ramps_in():
    wins, total = _windows([0, 1], 20, 21, 4)
    ramp = torch.sin(torch.pi / 2 * (torch.arange(4) + 0.5) / 4) ** 2
    assert torch.allclose(wins[1][:4], ramp) and torch.allclose(wins[0][-4:], ramp.flip(0))
    assert torch.allclose(total, sum(torch.nn.functional.pad(w, (s, 21 - 20 - s)) for s, w in zip([0, 1], wins)))
