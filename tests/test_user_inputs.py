"""What users hand the workbench (issue 17, items 4, 11, 12): masks painted on a transparent layer,
control characters in paths and names, multi-frame images, pipes given as images."""
import os
import tomllib

import numpy as np
import torch
from PIL import Image

from workbench.images import masks
from workbench.recipe import toml_value


def test_strokes_on_a_transparent_layer_mark_only_the_strokes(tmp_path):
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., :3] = 255                 # white everywhere, as an editor stores a cleared layer
    rgba[2:4, 3:7, 3] = 255             # ... but opaque only where painted
    rgba[6, 0, :] = (0, 0, 0, 255)      # an opaque black pixel: known
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    hole = masks.read_mask(tmp_path / "m.png", (10, 8))
    expected = torch.zeros(1, 8, 10, dtype=torch.bool)
    expected[:, 2:4, 3:7] = True
    assert torch.equal(hole, expected)
    # an opaque mask without alpha keeps the old rule: white = missing
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    assert masks.read_mask(tmp_path / "rgb.png", (10, 8)).sum() == 8 * 10 - 1


MASK_ECHO = """
import torch
from workbench import hookimpl
from workbench.api.contracts import Model

class MaskEcho(Model, torch.nn.Module):
    takes_mask = True

    def __init__(self):
        torch.nn.Module.__init__(self)

    def forward(self, x, mask):
        return mask.float().expand(-1, 3, -1, -1)   # white exactly where it was told pixels are missing

@hookimpl
def register_models(register):
    register("mask_echo", MaskEcho)
"""


def test_restore_with_a_transparent_layer_mask_repaints_only_the_strokes(run_cli, tmp_path):
    from test_never_lost import photo

    from workbench.runs import checkpoint

    (tmp_path / "echo.py").write_text(MASK_ECHO)
    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": {}, "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": "echo", "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "mask_echo"}, "degradations": [{"type": "erase"}]}},
                    run / "checkpoints" / "best.pt")
    src = photo(tmp_path / "a.png", 16, 20)
    rgba = np.zeros((16, 20, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[4:8, 4:8, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
    res = run_cli("--plugin", tmp_path / "echo.py", "restore", run, src, "-o", tmp_path / "out",
                  "--mask", tmp_path / "mask.png", "--device", "cpu")
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert (out[4:8, 4:8] == 255).all() and out.sum() == 16 * 3 * 255   # the strokes, and nothing else


def test_any_text_round_trips_through_recipe_toml():
    for text in ["a\x1bb", "bell\x07", "line\nbreak", 'quote"back\\slash', "tab\tdel\x7f", "ü 🙂"]:
        assert tomllib.loads(f"v = {toml_value(text)}")["v"] == text


def test_a_run_with_a_control_character_in_its_data_path_can_be_resumed(run_cli, tmp_path, monkeypatch):
    from test_never_lost import TINY, photo

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "ph\x1botos"
    for k in range(3):
        photo(data / f"{k}.png", 48, 48, seed=k)
    assert run_cli("run", "colorize", "--data", data, "--out", tmp_path / "r", *TINY).exit_code == 0
    assert tomllib.loads((tmp_path / "r" / "recipe.toml").read_text())["data"]["train"] == str(data)
    res = run_cli("run", "--resume", tmp_path / "r", "--set", "train.epochs=2", "-q")
    assert res.exit_code == 0, res.output


def test_recipe_name_must_be_one_folder_name(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../x", "a/b", ".hidden", "bell\x07"):
        res = run_cli("run", "colorize", "--set", f"recipe.name={toml_value(name)}", "-q")
        assert res.exit_code == 2 and "cannot name a run directory" in res.output, res.output
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_a_multi_frame_image_says_it_uses_the_first_frame(run_cli, tmp_path):
    frames = [Image.fromarray(np.full((12, 12, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    res = run_cli("degrade", "jpeg", tmp_path / "pages.tif", "-o", tmp_path / "out", "--no-grid")
    assert res.exit_code == 0 and "pages.tif has 2 frames; using the first" in res.output, res.output


def test_a_pipe_given_as_an_image_is_refused_not_waited_on(run_cli, tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    res = run_cli("degrade", "jpeg", tmp_path / "pipe.png", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "not a regular file" in res.output
    # inside a folder it is passed over: the folder's real photo is degraded
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    res = run_cli("degrade", "jpeg", tmp_path, "-o", tmp_path / "out", "--no-grid")
    assert res.exit_code == 0 and "Wrote 1 damaged" in res.output, res.output


def test_a_gif_is_degraded_into_a_png_of_its_first_frame(run_cli, tmp_path):
    frames = [Image.fromarray(np.full((12, 12, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    res = run_cli("degrade", "jpeg", tmp_path / "anim.gif", "-o", tmp_path / "out", "--no-grid")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "anim.png")).mean() < 60   # frame 1 (10), not 200 or 90


def test_an_output_folder_that_refuses_new_files_is_refused_before_the_work(run_cli, tmp_path, monkeypatch):
    """Permission bits do not tell for root, /sys or some network shares: a probe file does."""
    import errno
    import tempfile

    real = tempfile.mkstemp
    refused = tmp_path / "refuses"
    refused.mkdir()

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and os.path.samefile(dir, refused):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    res = run_cli("degrade", "jpeg", tmp_path / "a.png", "-o", refused)
    assert res.exit_code == 2
    assert res.output.strip() == f"Error: cannot write in {refused} (Permission denied); choose another output."
