"""The CLI as a user meets it: listings, degrade, and one-line errors with exit status 2."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from workbench.images.files import read_image
from workbench.images.metrics import psnr


def test_list_degradations_shows_all_builtins(run_cli):
    result = run_cli("list", "degradations")
    assert result.exit_code == 0
    names = {line.split("(")[0] for line in result.output.splitlines()}
    assert {"downsample", "grayscale", "jpeg", "watermark", "erase", "noise", "blur"} <= names
    assert 'jpeg(quality=30, subsampling="4:2:0")  [workbench_plugins.jpeg]' in result.output


def test_list_everything_and_recipes(run_cli):
    result = run_cli("list")
    assert "degradations:" in result.output and "recipes:" in result.output and "  colorize" in result.output
    result = run_cli("recipes")
    assert result.exit_code == 0 and "colorize" in result.output and "grayscale" in result.output


def test_plugins_json(run_cli):
    from conftest import VIGNETTE
    data = json.loads(run_cli("--plugin", VIGNETTE, "plugins").output)
    by_name = {p["name"]: p for p in data}
    assert by_name["workbench_plugins.jpeg"]["degradations"] == ["jpeg"]
    assert by_name[str(VIGNETTE)]["degradations"] == ["vignette"]


def test_degrade_jpeg_q10_psnr(run_cli, photo, tmp_path):
    out = tmp_path / "out"
    result = run_cli("degrade", "jpeg", "--set", "quality=10", photo, "-o", out)
    assert result.exit_code == 0, result.output
    damaged, clean = read_image(out / "photo.png"), read_image(photo)
    assert damaged.shape == clean.shape
    assert 20 < psnr(damaged, clean) < 32        # quality 10 is heavy damage
    assert f"{psnr(damaged, clean):.2f} dB" in result.output
    grid = Image.open(out / "grid.png")
    assert grid.width > 2 * 128 and grid.height >= 192


def test_degrade_recipe_folder_seed_and_masks(run_cli, photo, tmp_path):
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    Image.open(photo).save(folder / "a.jpg")
    Image.open(photo).save(tmp_path / "in" / "b.png")
    for out in ("o1", "o2"):
        assert run_cli("degrade", "inpaint", tmp_path / "in", "-o", tmp_path / out, "--seed", 3, "--masks").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o1").rglob("*.*")) == ["a.jpg", "a.png", "b.png", "b.png", "grid.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o1/b.png")), np.asarray(Image.open(tmp_path / "o2/b.png")))
    mask = np.asarray(Image.open(tmp_path / "o1/masks/b.png"))
    assert 0 < (mask > 127).mean() < 1


def test_degrade_sample_photos(run_cli, tmp_path):
    result = run_cli("degrade", "colorize", "sample", "-o", tmp_path, "--no-grid")
    assert result.exit_code == 0 and "astronaut.png" in result.output
    img = read_image(tmp_path / "astronaut.png")
    assert (img[0] - img[1]).abs().max() < 2 / 255


def test_plugin_file_from_env(run_cli, photo, tmp_path, monkeypatch):
    from conftest import VIGNETTE
    monkeypatch.setenv("WORKBENCH_PLUGINS", str(VIGNETTE))
    from click.testing import CliRunner

    from workbench.cli import cli
    result = CliRunner().invoke(cli, ["degrade", "vignette", str(photo), "-o", str(tmp_path / "v")])
    assert result.exit_code == 0 and (tmp_path / "v" / "photo.png").exists()


def bad_cases(tmp_path, photo):
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text('[train]\nepoch = 3\n[[degradations]]\ntype = "jpeg"\n')
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photo.read_bytes()[:600])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    return [
        (["degrade", "colorise", photo], "Unknown recipe 'colorise'. Did you mean 'colorize'?"),
        (["degrade", bad_key, photo], "unknown key 'train.epoch'. Did you mean 'epochs'?"),
        (["degrade", "dejpeg", "--set", "train.epochs=many", photo], "train.epochs must be an integer"),
        (["degrade", "jpeg", "--set", "quality=ten", photo], "quality must be an integer"),
        (["degrade", "jpeg", truncated], "truncated.png: cannot read image"),
        (["degrade", "jpeg", text], "notes.jpg: cannot read image"),
        (["degrade", "jpeg", tmp_path / "missing.png"], "missing.png: no such file"),
        (["degrade", "pixelate", photo], "Unknown recipe 'pixelate'"),
        (["list", "degradatons"], "Invalid value"),
    ]


def test_bad_input_one_line_exit_2(run_cli, tmp_path, photo):
    for args, words in bad_cases(tmp_path, photo):
        result = run_cli(*args, "-o", tmp_path / "o") if args[0] == "degrade" else run_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_unknown_degradation_in_recipe_lists_available(run_cli, tmp_path, photo):
    r = tmp_path / "r.toml"
    r.write_text('[[degradations]]\ntype = "pixelate"\n')
    result = run_cli("degrade", r, photo, "-o", tmp_path / "o")
    assert result.exit_code == 2
    assert "Unknown degradation 'pixelate'" in result.output and "Available: blur, downsample" in result.output


def test_console_script_errors_have_no_traceback(tmp_path, photo):
    """The real process: python -m workbench, stderr one line, exit status 2."""
    proc = subprocess.run([sys.executable, "-m", "workbench", "degrade", "jpeg", "--set", "quality=0", str(photo), "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "out of range: allowed 1 to 100" in proc.stderr


def test_webp_outputs_are_lossless(tmp_path):
    import torch

    from workbench.images.files import write_image
    img = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    write_image(img, tmp_path / "x.webp")
    # 8-bit levels round half up (torch.round would take a value at k + 0.5 to the even level)
    assert torch.equal(read_image(tmp_path / "x.webp"), torch.floor(img * 255 + 0.5) / 255)


def test_batch_previews_training_pairs(run_cli, photo, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        Image.open(photo).save(folder / f"p{k}.png")
    result = run_cli("batch", "inpaint", "--data", folder, "-n", 3, "--set", "data.size=32", "-o", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    assert "3 train pairs" in result.output and "3 images" in result.output   # --data replaced the sample photos
    grid = Image.open(tmp_path / "b.png")
    assert grid.height >= 3 * 128 and grid.width >= 3 * 128                   # damaged | clean | mask per row


def test_degrade_says_undamaged_not_inf(run_cli, tmp_path, photo):
    from PIL import Image

    gray = tmp_path / "gray.png"
    Image.open(photo).convert("L").convert("RGB").save(gray)
    result = run_cli("degrade", "grayscale", gray, photo, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "gray.png: undamaged (identical to the clean image)" in lines and "inf" not in result.output
    assert any(line.startswith("photo.png: PSNR ") and line.endswith(" dB") for line in lines)
    assert "(mean PSNR to clean " in lines[-1] and " over 1; 1 undamaged, not in the mean)" in lines[-1]
    alone = run_cli("degrade", "grayscale", gray, "-o", tmp_path / "alone")
    assert "(all 1 undamaged: this damage leaves them as they are)" in alone.output
