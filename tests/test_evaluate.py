"""`workbench eval` and `grid`: the published protocol, baselines, skipping bad files, range guard."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from workbench.images.metrics import batch_ssim
from workbench.judge import protocol
from workbench.runs import checkpoint


def photo_array(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x + seed) * np.cos(7 * y)], axis=-1) + rng.normal(0, 0.05, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_protocol_against_independent_computation():
    a, b = photo_array(40, 52, 0), photo_array(40, 52, 1)
    ta, tb = protocol.to_tensor(a), protocol.to_tensor(b)
    got = protocol.measure(ta, tb, crop=2)
    # scikit-image's own BT.601 conversion and metrics, computed separately
    ya, yb = (rgb2ycbcr(x)[2:-2, 2:-2, 0] for x in (a, b))
    assert got["psnr_y"] == pytest.approx(peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-9)
    assert got["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(b[2:-2, 2:-2].astype(float), a[2:-2, 2:-2].astype(float), data_range=255), abs=1e-9)
    assert got["ssim_y"] == pytest.approx(structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), abs=1e-9)
    # and the torch SSIM used during training agrees with scikit-image on RGB
    assert got["ssim_rgb"] == pytest.approx(batch_ssim(ta[None, :, 2:-2, 2:-2], tb[None, :, 2:-2, 2:-2])[0], abs=1e-6)


def test_y_is_limited_range():
    white, black = torch.full((3, 1, 1), 255.0, dtype=torch.float64), torch.zeros(3, 1, 1, dtype=torch.float64)
    assert protocol.rgb_to_y(white)[0, 0, 0] == pytest.approx(235, abs=0.01) and protocol.rgb_to_y(black)[0, 0, 0] == 16


def test_modcrop():
    assert protocol.modcrop(torch.zeros(3, 11, 13), 4).shape == (3, 8, 12)


def test_range_guard_names_the_tensor():
    x = torch.rand(3, 8, 8)
    assert protocol.range_warnings({"input": x, "output": x.clone(), "target": x}) == []
    notes = protocol.range_warnings({"input": x, "output": x - 0.5, "target": x})
    assert len(notes) == 1 and notes[0].startswith("output spans")
    notes = protocol.range_warnings({"input": x, "output": x * 0.3, "target": x})
    assert any(n.startswith("output spans only") for n in notes)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for k, (h, w) in enumerate([(48, 64), (51, 37), (40, 40)]):
        Image.fromarray(photo_array(h, w, k)).save(d / f"p{k}.png")
    (d / "broken.png").write_bytes((d / "p0.png").read_bytes()[:300])
    return d


def make_run(tmp_path, degradations, name="run"):
    from workbench_plugins.unet import UNet
    net = UNet(widths=[8, 16])   # untrained: exactly the identity
    run = tmp_path / name
    checkpoint.save({"format": 1, "model": net.state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": name, "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16]}, "degradations": degradations}},
                    run / "checkpoints" / "best.pt")
    return run


def test_eval_superres_with_baselines_and_skips(run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "downsample", "scale": 2}])
    result = run_cli("eval", run, "--data", folder, "--json", tmp_path / "copy.json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "1 skipped" in result.output
    data = json.loads((run / "eval-photos.json").read_text())
    assert data == json.loads((tmp_path / "copy.json").read_text())
    assert data["methods"] == ["model", "input", "bicubic", "lanczos"]
    assert data["protocol"]["crop"] == 2 and data["protocol"]["images"] == 3 and data["skipped"][0]["name"] == "broken.png"
    # the untrained U-Net is the identity, and the input is the bicubic upsampling itself
    for key in ("psnr_y", "ssim_y", "psnr_rgb"):
        assert data["mean"]["model"][key] == pytest.approx(data["mean"]["input"][key], abs=1e-9)
        assert data["mean"]["bicubic"][key] == pytest.approx(data["mean"]["input"][key], abs=1e-9)
    assert data["gain"]["psnr_y"] == pytest.approx(0, abs=1e-9)
    assert data["images"][0]["size"] == [64, 48] and data["images"][1]["size"] == [36, 50]   # modcrop to x2
    assert "model - input" in result.output and "border crop 2" in result.output


def test_eval_inpainting_baselines_and_mask_psnr(run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "erase", "shape": "box", "area": 0.1, "fill": "constant"}])
    assert run_cli("eval", run, "--data", folder, "--device", "cpu").exit_code == 0
    data = json.loads((run / "eval-photos.json").read_text())
    assert {"telea", "navier-stokes"} <= set(data["methods"])
    assert data["mean"]["telea"]["psnr_mask"] > data["mean"]["input"]["psnr_mask"]   # filling beats a grey box
    assert data["protocol"]["crop"] == 0


def test_eval_without_readable_images_fails(run_cli, tmp_path):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_text("not an image")
    result = run_cli("eval", run, "--data", bad)
    assert result.exit_code == 2 and "no readable images" in result.output


def test_grid_command(run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("grid", run, "--data", folder, "-n", 2, "-o", tmp_path / "g.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    im = Image.open(tmp_path / "g.png")
    assert im.height > 2 * 256 and im.width > 4 * 100   # damaged | bilateral | restored | clean


def test_grid_adds_a_row_of_1to1_crops_for_photos_larger_than_a_tile(run_cli, tmp_path):
    """A 300 x 600 photo scaled to 256 px hides a x2 model's differences; the crops below it do not."""
    from workbench.images.grid import CAPTION, GAP

    big = tmp_path / "big"
    big.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 600, 3), dtype=np.uint8)).save(big / "wide.png")
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("grid", run, "--data", big, "-o", tmp_path / "g.png", "--device", "cpu", "--perceptual", "none")
    assert result.exit_code == 0, result.output
    im = np.asarray(Image.open(tmp_path / "g.png"))
    assert im.shape[0] == 2 * (256 + CAPTION + GAP) + GAP   # the photo's row, then its crops' row
    # the crops' row: the clean crop is the photo's own pixels, 1:1 (no scaling), somewhere in it
    src = np.asarray(Image.open(big / "wide.png"))
    y0 = 256 + CAPTION + GAP + GAP + CAPTION
    row = im[y0:y0 + 256]
    x0 = GAP + 3 * (512 + GAP)   # columns damaged | bilateral | restored | clean, each as wide as the 512 px photo
    clean = row[:, x0:x0 + 256]
    hits = [(y, x) for y in range(0, 300 - 255) for x in range(0, 600 - 255) if (src[y, x] == clean[0, 0]).all()
            and (src[y:y + 256, x:x + 256] == clean).all()]
    assert hits, "the clean crop is not a 1:1 piece of the photo"


def test_eval_set_changes_the_damage_judged(run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": [10, 50]}])
    assert run_cli("eval", run, "--data", folder, "--set", "degradations.0.quality=90", "--json", tmp_path / "q90.json").exit_code == 0
    assert run_cli("eval", run, "--data", folder, "--set", "degradations.0.quality=10", "--json", tmp_path / "q10.json").exit_code == 0
    q90, q10 = (json.loads((tmp_path / f).read_text()) for f in ("q90.json", "q10.json"))
    assert q90["mean"]["input"]["psnr_y"] > q10["mean"]["input"]["psnr_y"] + 5
    assert "quality=10" in q10["protocol"]["degradations"]


def test_colorization_is_judged_on_rgb(run_cli, tmp_path, folder):
    """Grayscale keeps Y, so Y would rate the damaged input near-perfect: eval, grid and the report lead with RGB."""
    from workbench.judge.report import write_report

    gray = make_run(tmp_path, [{"type": "grayscale"}], name="gray")
    result = run_cli("eval", gray, "--data", folder, "--device", "cpu")
    assert result.exit_code == 0 and "judge by psnr_rgb" in result.output
    data = json.loads((gray / "eval-photos.json").read_text())
    assert data["primary"] == "psnr_rgb" and data["mean"]["input"]["psnr_y"] > data["mean"]["input"]["psnr_rgb"] + 10
    grid = run_cli("grid", gray, "--data", folder, "-n", 1, "-o", tmp_path / "g.png", "--device", "cpu")
    assert grid.exit_code == 0 and "PSNR on RGB" in grid.output
    html = write_report(gray).read_text()
    assert "PSNR (RGB)" in html and "PSNR (Y)" not in html
    jpeg = make_run(tmp_path, [{"type": "jpeg", "quality": 20}], name="jpeg")
    assert run_cli("eval", jpeg, "--data", folder, "--device", "cpu").exit_code == 0
    assert json.loads((jpeg / "eval-photos.json").read_text())["primary"] == "psnr_y"


def test_eval_on_other_data_keeps_every_result_and_the_report_shows_them_all(run_cli, tmp_path):
    """eval.json (the run's validation images), eval-A.json and eval-B.json side by side; each eval
    refreshes report.html with its own section and leaves the others' results and images."""
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.1, "valid": {
        "psnr": 30.5, "ssim": 0.9, "input_psnr": 30.0, "input_ssim": 0.88}}) + "\n")
    for name, size in (("A", 40), ("B", 44)):
        (tmp_path / name).mkdir()
        Image.fromarray(photo_array(size, size + 8, size)).save(tmp_path / name / f"{name.lower()}.png")
    assert run_cli("eval", run, "--data", tmp_path / "A", "--device", "cpu", "--perceptual", "none").exit_code == 0
    first = (run / "eval-A.json").read_text()
    result = run_cli("eval", run, "--data", tmp_path / "B", "--device", "cpu", "--perceptual", "none")
    assert result.exit_code == 0, result.output
    assert f"Results: {run / 'eval-B.json'}; report: {run / 'report.html'}" in result.output
    assert (run / "eval-A.json").read_text() == first and not (run / "eval.json").exists()
    assert json.loads((run / "eval-B.json").read_text())["protocol"]["data"] == [str(tmp_path / "B")]
    page = (run / "report.html").read_text()
    # the run's own validation (metrics.jsonl) heads the page; A and B each have a section with its images
    assert "PSNR (RGB, validation)" in page and "From the validation of epoch 1" in page
    for name, photo in (("A", "a.png"), ("B", "b.png")):
        section = page.split(f'<section class="other-data" id="eval-{name}"><h2>Evaluation on {name}</h2>')[1]
        section = section.split("</section>")[0]
        assert f"From eval-{name}.json: mean over 1 image." in section and f'data-name="{photo}"' in section
    # --name, and a name kept to characters every file system accepts
    assert run_cli("eval", run, "--data", tmp_path / "A", "--name", "my set/1", "--device", "cpu",
                   "--perceptual", "none").exit_code == 0
    assert (run / "eval-my_set_1.json").is_file() and 'id="eval-my_set_1"' in (run / "report.html").read_text()
    assert run_cli("eval", run, "--data", tmp_path / "A", "--name", " ", "--device", "cpu").exit_code == 2


RANGE_MODELS = '''
import torch
from torch import nn
from workbench import hookimpl


class Overshoot(nn.Module):
    """The identity with two pixels past the range, as a sharpening restorer's edges are."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        y = x.clone() + self.w
        y[..., 0, 0], y[..., 1, 1] = 1.3, -0.25
        return y


class Shifted(nn.Module):
    """The lesson's bug: images in [-0.5, 0.5]."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x - 0.5 + self.w


@hookimpl
def register_models(register):
    register("overshoot", Overshoot)
    register("shifted", Shifted)
'''


@pytest.mark.parametrize("model, says", [
    ("overshoot", "it was clamped to [0, 1] before scoring, as restore writes it, so the scores stand."),
    ("shifted", "and its mean moved: a value-range bug? The scores, of the output clamped to [0, 1], would be "
                "meaningless."),
])
def test_an_output_outside_the_range_is_told_once_with_whether_the_scores_stand(run_cli, tmp_path, folder, model, says):
    from workbench.api import registry as plugin_manager

    plugin = tmp_path / "range_models.py"
    plugin.write_text(RANGE_MODELS)
    _, net = plugin_manager.build(plugin_manager.load([plugin]).models, {"type": model})
    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": net.state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": "r", "seed": 0}, "data": {"train": "sample"}, "model": {"type": model},
                                "degradations": [{"type": "jpeg", "quality": 30}]}}, run / "checkpoints" / "best.pt")
    result = run_cli("--plugin", plugin, "eval", run, "--data", folder, "--device", "cpu", "--perceptual", "none")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "outside [0, 1]" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: the model's output went outside [0, 1] on 3 of 3 images ")
    assert warned[0].endswith(says), warned[0]
    data = json.loads((run / "eval-photos.json").read_text())
    assert data["protocol"]["range_warnings"][-1] == warned[0].removeprefix("warning: ")
    assert all(len(r["output_range"]) == 4 for r in data["images"])


def test_an_undamaged_image_is_left_out_of_every_mean(run_cli, tmp_path, folder):
    """A gray photo to colorize is its own clean image: the input scores inf there and the model
    whatever it adds. Every row's mean is over the same (damaged) images, and the table says which were not."""
    from workbench_plugins.unet import UNet

    gray = np.asarray(Image.open(folder / "p0.png").convert("L").convert("RGB"))
    Image.fromarray(gray).save(folder / "gray.png")
    net = UNet(widths=[8, 16], keep_luma=True)
    with torch.no_grad():
        for p in net.parameters():   # a colorizer that adds some colour everywhere
            p.add_(torch.randn_like(p) * 0.05)
    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": net.state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": "c", "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16], "keep_luma": True},
                                "degradations": [{"type": "grayscale"}]}}, run / "checkpoints" / "best.pt")
    result = run_cli("eval", run, "--data", folder, "--device", "cpu", "--perceptual", "none")
    assert result.exit_code == 0, result.output
    data = json.loads((run / "eval-photos.json").read_text())
    assert data["undamaged"] == ["gray.png"] and data["protocol"]["images"] == 4
    rows = {r["name"]: r["metrics"] for r in data["images"]}
    assert rows["gray.png"]["input"]["psnr_rgb"] == np.inf and np.isfinite(rows["gray.png"]["model"]["psnr_rgb"])
    for method in ("model", "input"):
        for key in ("psnr_rgb", "ssim_rgb"):
            by_hand = np.mean([rows[n][method][key] for n in ("p0.png", "p1.png", "p2.png")])
            assert data["mean"][method][key] == pytest.approx(by_hand, abs=1e-9)
    assert "1 undamaged (the input is the clean image: gray.png), not in the means" in result.output
