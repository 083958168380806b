"""Extending images by outpainting: geometry, known pixels kept, fills, determinism, files, errors."""
import pytest
import torch
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry
from workbench.errors import WorkbenchError
from workbench.infer.extend import extend_file, extend_image, outpaint_of
from workbench.runs import checkpoint
from workbench_plugins.classifier import Classifier
from workbench_plugins.unet import UNet

ERASE = {"type": "erase", "shape": "strip", "strip": 0.25, "fill": "constant", "value": 0.5}
CFG = {"degradations": [ERASE]}
PLUGINS = registry.load()


def trained(cfg):
    """The `Outpaint` a run of recipe `cfg` extends with, as `extend_file` finds it."""
    return outpaint_of(recipes.from_dict(cfg, "test", PLUGINS).degradation_chain(PLUGINS))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return UNet(widths=[8, 16])  # untrained: returns its input exactly, so it copies the fill


@pytest.fixture
def img():
    return torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(1))


def test_right_three_times_keeps_the_original_and_copies_the_fill(net, img):
    out = extend_image(net, img, side="right", times=3, outpaint=trained(CFG))
    assert out.shape == (3, 32, 70)  # 40 + 3 * round(0.25 * 40)
    assert torch.equal(out[:, :, :40], img)
    assert (out[:, :, 40:] == 0.5).all()


@pytest.mark.parametrize("side, shape, where", [
    ("left", (3, 32, 60), (slice(None), slice(None), slice(20, None))),
    ("top", (3, 48, 40), (slice(None), slice(16, None), slice(None))),
    ("bottom", (3, 48, 40), (slice(None), slice(0, 32), slice(None)))])
def test_other_sides_grow_the_right_way(net, img, side, shape, where):
    out = extend_image(net, img, side=side, times=2, outpaint=trained(CFG))
    assert out.shape == shape
    assert torch.equal(out[where], img)
    new = torch.ones(shape, dtype=torch.bool)
    new[where] = False
    assert (out[new] == 0.5).all()


def perturbed(seed=0):
    """A U-Net that is not the identity, so the new strips depend on the window they saw."""
    torch.manual_seed(seed)
    model = UNet(widths=[8, 16])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_noise_fill_is_deterministic_for_a_seed(img):
    model, cfg = perturbed(), {"degradations": [{"type": "erase", "shape": "strip", "fill": "noise"}]}
    a, b = (extend_image(model, img, times=2, strip=0.2, outpaint=trained(cfg), seed=3) for _ in range(2))
    assert torch.equal(a, b) and a.shape == (3, 32, 56)
    assert torch.equal(a[:, :, :40], img)
    assert not torch.equal(a, extend_image(model, img, times=2, strip=0.2, outpaint=trained(cfg), seed=4))


class Grey(torch.nn.Module):
    """Paints everything 0.25: shows that only the model's strip lands on the canvas, never the fill."""

    def forward(self, x):
        return torch.full_like(x, 0.25)


def test_only_the_models_strip_is_kept(img):
    out = extend_image(Grey(), img, side="left", times=2, outpaint=trained(CFG))
    assert torch.equal(out[:, :, 20:], img) and (out[:, :, :20] == 0.25).all()


def test_mean_fill_and_recipe_settings(net):
    img = torch.full((3, 8, 12), 0.2)
    img[1] = 0.7
    cfg = {"degradations": [{"type": "jpeg"}, {"type": "erase", "shape": ["box", "strip"], "strip": 0.5,
                                               "fill": ["mean", "noise"], "value": [0.1, 0.9]}]}
    settings = trained(cfg)
    assert settings.strip == 0.5 and settings.sides == {"left", "right", "top", "bottom"}
    out = extend_image(net, img, side="bottom", outpaint=trained(cfg))  # strip=None: the recipe's 0.5
    assert out.shape == (3, 12, 12)
    assert torch.allclose(out[:, 8:], img[:, :4])  # a flat image's mean is its colour
    assert trained({"degradations": [{"type": "jpeg"}]}) is None   # no erase: noise, the default strip
    rectangles = trained({"degradations": [{"type": "erase", "strip": [0.1, 0.3]}]})
    assert rectangles.strip is None and not rectangles.sides          # never erased a strip: extend warns


def test_tiny_images(net):
    out = extend_image(net, torch.rand(3, 2, 3), side="top", times=2, strip=0.9, outpaint=trained(CFG))
    assert out.shape == (3, 4, 3)  # at least one known pixel per window: 1 new row per step
    with pytest.raises(WorkbenchError, match="at least 2"):
        extend_image(net, torch.rand(3, 5, 1), side="left")


@pytest.mark.parametrize("kw, name", [({"side": "up"}, "side"), ({"times": 0}, "times"), ({"times": 1.5}, "times"),
                                      ({"strip": 1.0}, "strip"), ({"strip": 0}, "strip"), ({"strip": "a"}, "strip")],
                         ids=str)
def test_bad_arguments_name_themselves(net, img, tmp_path, kw, name):
    with pytest.raises(WorkbenchError, match=name):
        extend_image(net, img, outpaint=trained(CFG), **kw)
    with pytest.raises(WorkbenchError, match=name):  # before any file is touched
        extend_file(tmp_path / "no-run", tmp_path / "no.png", tmp_path / "out.png", **kw)


def save_run(tmp_path, model, recipe, task="restore"):
    state = {"format": 1, "model": model.state_dict(), "recipe": recipe, "task": task}
    checkpoint.save(state, tmp_path / "run" / "checkpoints" / "best.pt")
    return tmp_path / "run"


def test_extend_file_end_to_end(tmp_path, photo, plugins, capsys):
    recipe = {"recipe": {"name": "outpaint"}, "model": {"type": "unet", "widths": [8, 16]}, "degradations": [ERASE]}
    run = save_run(tmp_path, UNet(widths=[8, 16]), recipe)
    out = tmp_path / "wide.png"
    assert extend_file(run, photo, out, times=2, device="cpu", plugins=plugins) == (128 + 2 * 32, 96)
    with Image.open(out) as im:
        assert im.size == (192, 96) and im.getpixel((191, 50)) == (128, 128, 128)
        assert im.crop((0, 0, 128, 96)).tobytes() == Image.open(photo).convert("RGB").tobytes()
    assert "Warning" not in capsys.readouterr().err
    with pytest.raises(WorkbenchError, match="overwrite"):
        extend_file(run, photo, photo, plugins=plugins)


def test_extend_file_warns_for_a_recipe_that_never_outpainted(tmp_path, photo, plugins, capsys):
    recipe = {"recipe": {"name": "dejpeg"}, "model": {"type": "unet", "widths": [8, 16]}, "degradations": [{"type": "jpeg"}]}
    run = save_run(tmp_path, UNet(widths=[8, 16]), recipe)
    assert extend_file(run, photo, tmp_path / "tall.png", side="top", strip=0.5, device="cpu", plugins=plugins) == (128, 144)
    err = capsys.readouterr().err
    assert "Warning" in err and "'dejpeg'" in err and "strip" in err


def test_extend_file_refuses_a_classifier(tmp_path, photo, plugins):
    recipe = {"model": {"type": "classifier", "classes": 2, "widths": [8, 16]}, "degradations": []}
    run = save_run(tmp_path, Classifier(classes=2, widths=[8, 16]), recipe, task="classify")
    with pytest.raises(WorkbenchError, match="classifier"):
        extend_file(run, photo, tmp_path / "out.png", plugins=plugins)
