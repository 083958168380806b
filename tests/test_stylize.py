"""The stylize task: the built-in recipe trained through the CLI on tiny photos the test makes, with
ResNet-18 weights the test writes into torchvision's cache (test_losses' fixtures) and test_style's
painting; its validation, best.pt, restore, grid, and the one-line refusals (no style image, offline,
damage, eval)."""
import json
import re

import numpy as np
import pytest
import test_losses
import test_style
import torch
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError
from workbench.images.grid import GAP
from workbench.runs import checkpoint
from workbench.tasks import make_task
from workbench.train.objective import build_objective
from workbench_plugins.perceptual import Perceptual

resnet18_state, torch_home, resnet18_file = test_losses.resnet18_state, test_losses.torch_home, test_losses.resnet18_file
painting = test_style.painting

TINY = ["train.steps_per_epoch=2", "data.size=32", "data.valid_size=32", "data.batch_size=4", "data.workers=0",
        "model.widths=[8, 16]", "model.drop_skips=1", "losses.style.style_size=32"]
KEYS = {"loss", "style", "content", "input_style", "images"}


@pytest.fixture
def photos(tmp_path):
    """Six small photo-like PNGs: shading, a square and noise in different colours."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:56] / 40
    for k in range(6):
        img = np.stack([x * (k % 3) / 2, y, 0.5 + 0.4 * np.sin((k + 3) * x)], -1) + rng.normal(0, 0.03, (40, 56, 3))
        img[8 + k:24, 10:30 + k] = rng.random(3)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"p{k}.png")
    return folder


def settings(painting, photos, epochs=1):
    args = [f"losses.style.style={painting}", f"data.train={photos}", f"train.epochs={epochs}", *TINY]
    return [a for s in args for a in ("--set", s)]


@pytest.fixture
def stylized(run_cli, resnet18_file, painting, photos, tmp_path):
    """A stylize run of the built-in recipe, 2 epochs of 2 steps."""
    run = tmp_path / "run"
    result = run_cli("run", "stylize", *settings(painting, photos, epochs=2), "--out", run, "-q")
    assert result.exit_code == 0, result.output
    return run


def one_line(result):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_run_writes_checkpoints_grid_report_and_the_stylize_metrics(stylized):
    assert {p.name for p in (stylized / "checkpoints").iterdir()} >= {"best.pt", "last.pt"}
    records = [json.loads(line) for line in (stylized / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        valid = r["valid"]
        assert set(valid) == KEYS and valid["images"] >= 1
        assert valid["loss"] == pytest.approx(valid["style"] + valid["content"])
        assert valid["input_style"] > 0 and valid["content"] >= 0
        assert any(k.startswith("loss/style/") for k in r) and any(k.startswith("loss/content/") for k in r)
    assert checkpoint.load(stylized)["task"] == "stylize"
    assert Image.open(stylized / "grid.png").width == 3 * 192 + 4 * GAP   # photo | stylized | style image, 192 px tiles
    page = (stylized / "report.html").read_text()
    assert "task <b>stylize</b>" in page
    assert "unstyled photo" in page and "style image" in page
    text = re.sub(r"data:image/\w+;base64,[\w+/=]+", "", page)
    assert "damaged" not in text.lower() and not re.search(r"\bdB\b", text)   # no PSNR pretending the photo is damage
    assert re.search(r'class="gain[^"]*">style distance \d+\.\d{4} \(lower is better\)<', text)   # each sample's header


def test_best_checkpoint_follows_the_lowest_validation_loss(run_cli, resnet18_file, painting, photos, tmp_path):
    run = tmp_path / "run"
    assert run_cli("run", "stylize", *settings(painting, photos, epochs=3), "--set", "train.lr=2e-2", "--out", run,
                   "-q").exit_code == 0
    losses = [json.loads(line)["valid"]["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = checkpoint.load(run)
    assert best["epoch"] == 1 + int(np.argmin(losses)) and best["metrics"]["loss"] == min(losses)


def test_validation_scores_the_objective_of_the_model_and_of_the_photo(resnet18_file, painting, photos):
    plugins = plugin_manager.load()
    r = recipes.load("stylize", plugins, [f"losses.style.style={painting}", f"data.train={photos}", *TINY])
    task = make_task(r, plugins)
    assert (task.kind, task.best_key, task.higher_is_better) == ("stylize", "loss", False)
    task.objective = build_objective(r, plugins)
    loader = torch.utils.data.DataLoader(task.valid, batch_size=4)
    # The identity "stylizer" returns the photo: its loss is all style, the photo's own, and its content 0.
    metrics, images, samples = task.validate(torch.nn.Identity(), loader, "cpu", None, keep=2)
    assert metrics["content"] == pytest.approx(0, abs=1e-6)
    assert metrics["loss"] == pytest.approx(metrics["input_style"]) == pytest.approx(metrics["style"])
    photo = torch.stack([task.valid[i]["clean"] for i in range(len(task.valid))])
    assert metrics["input_style"] == pytest.approx(float(task.objective(photo, photo)[0]), rel=1e-5)
    # A black output is far from both: content > 0, and a style distance of its own.
    black = task.validate(lambda x: x * 0, loader, "cpu", None, keep=0)[0]
    assert black["content"] > 0 and black["loss"] > metrics["loss"]
    name, shown, out, style = images[0]
    assert shown.shape == out.shape == style.shape and torch.equal(shown, out)
    assert [title for title, _, _ in samples[0]["views"]] == ["style image", "unstyled", "stylized", "photo"]
    assert set(samples[0]["metrics"]) == {"stylized", "unstyled"}


def test_restore_stylizes_photos_of_any_size(stylized, run_cli, tmp_path):
    inputs = tmp_path / "mine"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((200, 300, 3)) * 255).astype(np.uint8)).save(inputs / "wide.png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(inputs / "dot.png")
    Image.new("L", (30, 20), 90).save(inputs / "gray.png")
    Image.new("RGBA", (25, 9), (10, 200, 10, 120)).save(inputs / "clear.png")
    result = run_cli("restore", stylized, inputs, "-o", tmp_path / "out", "--tile", "96", "--overlap", "16")
    assert result.exit_code == 0, result.output
    for name, size in {"wide.png": (300, 200), "dot.png": (1, 1), "gray.png": (30, 20), "clear.png": (25, 9)}.items():
        assert Image.open(tmp_path / "out" / name).size == size, name
    assert Image.open(tmp_path / "out" / "clear.png").mode == "RGBA"   # the photo's transparency comes back
    assert Image.open(tmp_path / "out" / "gray.png").mode == "RGB"   # painted in the style image's colours


def test_eval_refuses_in_one_line_and_grid_draws_photo_stylized_style(stylized, run_cli, photos, tmp_path):
    line = one_line(run_cli("eval", stylized))
    assert "is a stylizer" in line and "workbench grid" in line and "workbench restore" in line
    assert str(stylized / "report.html") in line and not (stylized / "eval.json").exists()
    assert run_cli("export", stylized, "-o", tmp_path / "s.safetensors").exit_code == 0   # an export is refused alike
    assert "is a stylizer" in one_line(run_cli("eval", tmp_path / "s.safetensors"))
    result = run_cli("grid", stylized, "--data", photos, "-n", "2", "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    assert "2 rows" in result.output and "photo | stylized | style image" in result.output
    assert Image.open(tmp_path / "g.png").width > 3 * 256   # three tiles per row at the grid's 256 px height
    one_line(run_cli("grid", stylized, "--baseline", photos / "p0.png", "-o", tmp_path / "h.png"))


def test_no_style_image_says_which_set_to_pass(run_cli, torch_home, photos, tmp_path):
    line = one_line(run_cli("run", "stylize", "--set", f"data.train={photos}", "--out", tmp_path / "run"))
    assert "--set losses.style.style=" in line
    assert not (tmp_path / "run").exists()


def test_offline_says_what_the_perceptual_loss_says(run_cli, torch_home, painting, photos, tmp_path):
    line = one_line(run_cli("run", "stylize", *settings(painting, photos), "--out", tmp_path / "run"))
    with pytest.raises(WorkbenchError) as perceptual:
        Perceptual(net="resnet18")
    assert str(perceptual.value) in line and "TORCH_HOME" in line
    assert not (tmp_path / "run").exists()


def test_damage_is_refused_in_one_line(run_cli, resnet18_file, painting, photos, tmp_path):
    line = one_line(run_cli("run", "stylize", *settings(painting, photos), "--set", "degradations.0.type=grayscale",
                            "--out", tmp_path / "run"))
    assert "remove the [[degradations]] (grayscale)" in line
