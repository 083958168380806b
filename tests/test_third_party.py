"""A third-party super-resolution degradation gets restore, eval and the bicubic/Lanczos baselines
through its own capabilities, like the built-in `downsample`: the engine asks, it never names."""
import numpy as np
import pytest
from conftest import HERE
from PIL import Image

from workbench.api import registry
from workbench.api.pixels import from_uint8_hwc, to_uint8_hwc
from workbench.author.degradations import check_degradation
from workbench.images.files import read_image
from workbench.infer.restore import restore_files
from workbench.judge import protocol
from workbench.judge.evaluate import evaluate
from workbench.runs import checkpoint
from workbench_plugins.unet import UNet

PLUGIN = HERE / "plugin_files" / "area_downsample.py"
RECIPE = {"model": {"type": "unet", "widths": [8, 16]}, "degradations": [{"type": "area-downsample", "scale": 2}]}


@pytest.fixture(scope="module")
def plugins():
    return registry.load([PLUGIN])


@pytest.fixture
def run_dir(tmp_path):
    """A run of the third-party degradation with an untrained U-Net, which returns its input exactly."""
    checkpoint.save({"format": 1, "model": UNet(widths=[8, 16]).state_dict(), "recipe": RECIPE, "task": "restore"},
                    tmp_path / "run" / "checkpoints" / "best.pt")
    return tmp_path / "run"


def photos(folder, sizes=((37, 50), (48, 64))):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x) * np.cos(7 * y)], -1) + rng.normal(0, 0.03, (h, w, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_it_keeps_the_contract(plugins):
    rows = check_degradation(plugins.degradations.get("area-downsample")(), "area-downsample", speed=False)
    assert all(ok for _, ok, _ in rows), rows


def test_restore_upsamples_a_real_low_res_photo_by_its_scale(plugins, run_dir, tmp_path):
    done = restore_files(run_dir, [photos(tmp_path / "low")], tmp_path / "out", plugins=plugins, device="cpu")
    assert sorted(size_out for *_, size_out in done) == [(100, 74), (128, 96)]
    out = read_image(tmp_path / "out" / "p0.png")
    # an untrained U-Net is the identity: the output is the plugin's own bicubic `prepare`
    low = Image.open(tmp_path / "low" / "p0.png").convert("RGB")
    expect = from_uint8_hwc(np.asarray(low.resize((100, 74), Image.BICUBIC)))
    assert (out - expect).abs().max() <= 1 / 255 + 1e-6


def test_eval_judges_it_beside_bicubic_and_lanczos_with_its_scale(plugins, run_dir, tmp_path):
    result, _ = evaluate(run_dir, plugins, data=[photos(tmp_path / "clean")], device="cpu")
    assert result["methods"] == ["model", "input", "bicubic", "lanczos", "nearest"]   # nearest: its own hook
    assert result["protocol"]["modcrop"] == 2 and result["protocol"]["crop"] == 2
    assert [r["size"] for r in result["images"]] == [[50, 36], [64, 48]]   # cropped to a multiple of the scale
    # the identity model's output is the damaged input, which is the bicubic upsampling of the plugin's low-res image
    assert result["mean"]["model"]["psnr_y"] == pytest.approx(result["mean"]["bicubic"]["psnr_y"], abs=1e-9)
    assert result["mean"]["lanczos"]["psnr_y"] != pytest.approx(result["mean"]["bicubic"]["psnr_y"], abs=1e-3)
    assert result["mean"]["nearest"]["psnr_y"] < result["mean"]["bicubic"]["psnr_y"]
    # and the Lanczos row is exactly Lanczos of the plugin's own shrink, measured by the protocol
    clean = protocol.modcrop(read_image(tmp_path / "clean" / "p1.png"), 2)
    deg = plugins.degradations.get("area-downsample")(scale=2)
    small = Image.fromarray(to_uint8_hwc(deg.shrink(clean, np.random.default_rng(0))))
    lanczos = from_uint8_hwc(np.asarray(small.resize((64, 48), Image.LANCZOS)))
    assert result["images"][1]["metrics"]["lanczos"] == pytest.approx(protocol.measure(lanczos, clean, crop=2))


def test_a_random_scale_gets_no_upsampling_baseline(plugins, run_dir, tmp_path):
    # random shrinking: a baseline could not see the low-res image the model saw, so none is shown
    result, _ = evaluate(run_dir, plugins, data=[photos(tmp_path / "clean")], device="cpu",
                         overrides=["degradations.0.scale=[2, 3]"])
    assert result["methods"] == ["model", "input"] and result["protocol"]["modcrop"] == 3


def test_a_degradation_naming_an_unknown_baseline_is_one_line(plugins, run_dir, tmp_path, monkeypatch):
    cls = type(plugins.degradations.get("area-downsample")())
    monkeypatch.setattr(cls, "baselines", ("bicubic", "sharpen"))
    with pytest.raises(Exception, match="asks for the baseline 'sharpen', which no plugin registers"):
        evaluate(run_dir, plugins, data=[photos(tmp_path / "clean")], device="cpu")


BROKEN = HERE / "plugin_files" / "broken_baselines.py"


@pytest.mark.parametrize("name, message", [
    ("asks-explodes", "baseline 'explodes' (plugin '{plugin}') failed for degradation 'asks-explodes': RuntimeError: factory exploded"),
    ("asks-wrong", "baseline 'wrong' (plugin '{plugin}') returned str, not an image of the clean image's shape (3, 48, 64)"),
    ("asks-missing", "asks for the baseline 'nonexistent', which no plugin registers"),
    ("asks-string", "baselines = 'bicubic' must be a tuple of baseline names"),
    ("no-shrink", "names an upsampling baseline but its shrink() returns no low-res image"),
])
def test_workbench_check_catches_what_eval_would_fail_on(name, message):
    from workbench.author.components import check_one

    plugins = registry.load([BROKEN])
    rows = check_one(plugins, "degradations", name)
    prop, ok, reason = rows[-1]
    assert prop == "baselines and scale" and not ok
    assert message.format(plugin=BROKEN) in reason, reason


def test_a_broken_baseline_in_eval_is_one_line_naming_it(tmp_path, run_cli):
    recipe = {"model": {"type": "unet", "widths": [8, 16]}, "degradations": [{"type": "asks-wrong"}]}
    checkpoint.save({"format": 1, "model": UNet(widths=[8, 16]).state_dict(), "recipe": recipe, "task": "restore"},
                    tmp_path / "run" / "checkpoints" / "best.pt")
    res = run_cli("--plugin", BROKEN, "eval", tmp_path / "run", "--data", photos(tmp_path / "clean"), "--device", "cpu",
                  "--perceptual", "none")   # offline, LPIPS would add its own warning line
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "baseline 'wrong'" in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_a_scale_without_prepare_is_caught_by_check():
    from workbench.author.components import check_judging
    from workbench.author.probes import ContractViolation

    deg = type("Big", (registry.load([PLUGIN]).degradations.get("area-downsample"),), {"prepare": lambda self, p: p})()
    with pytest.raises(ContractViolation, match="restore` would not enlarge it"):
        check_judging(deg, "big", registry.load([PLUGIN]))
