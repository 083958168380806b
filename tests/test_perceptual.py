"""LPIPS and DISTS in `eval` and `grid`: the library's own numbers on the very pixels PSNR sees,
with backbone weights the test writes (no download), and one line when the weights are missing."""
import json
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from test_evaluate import make_run, photo_array
from torchmetrics.functional.image.dists import deep_image_structure_and_texture_similarity
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from workbench.api import pretrained
from workbench.judge import perceptual
from workbench.judge.evaluate import evaluate


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A torchvision cache holding random AlexNet and VGG16 weights (half precision: half the disk),
    saved under the names torchvision downloads them as."""
    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    for name in pretrained.METRIC_NETS:
        net = torchvision.models.get_model(name, weights=None)
        path = home / "hub" / "checkpoints" / pretrained.weights_path(name).name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() for k, v in net.state_dict().items()}, path)
    return home


@pytest.fixture
def weights(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)   # a test must never reach the network
    return torch_home


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for k, (h, w) in enumerate([(48, 64), (51, 37)]):
        Image.fromarray(photo_array(h, w, k)).save(d / f"p{k}.png")
    return d


def quantised(img, crop):
    """Independently of the workbench: 8-bit levels (round half up), border off, back to [0, 1]."""
    levels = np.floor(np.clip(img.numpy().astype(np.float64), 0, 1) * 255 + 0.5)
    if crop:
        levels = levels[:, crop:-crop, crop:-crop]
    return torch.from_numpy(levels / 255).float()[None]


def library(metric):
    """The library's own metric object, used one image pair at a time."""
    def score(a, b):
        metric.reset()
        return metric(a, b).item()
    return score


def test_lpips_and_dists_equal_the_librarys_on_the_same_pixels(weights, tmp_path, folder, plugins):
    run = make_run(tmp_path, [{"type": "downsample", "scale": 2}])
    result, samples = evaluate(run, plugins, data=[folder], device="cpu", keep=2, metrics=("lpips", "dists"), report=False)
    assert result["skipped_metrics"] == {} and len(samples) == 2
    crop = result["protocol"]["crop"]
    lpips = library(LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True))
    for s in samples:
        methods = [("model", s["restored"]), ("input", s["damaged"]), *s["baselines"].items()]
        clean = quantised(s["clean"], crop)
        # DISTS: the library's function on all methods at once (it builds its VGG16 per call)
        want_dists = deep_image_structure_and_texture_similarity(
            torch.cat([quantised(img, crop) for _, img in methods]), clean.expand(len(methods), -1, -1, -1),
            reduction="none")
        for (method, img), dists in zip(methods, want_dists.tolist()):
            assert s["metrics"][method]["lpips"] == pytest.approx(lpips(quantised(img, crop), clean), abs=1e-6), method
            assert s["metrics"][method]["dists"] == pytest.approx(dists, abs=1e-6), (s["name"], method)
    # the means are the means of those rows, and the clean image is at distance 0 from itself
    rows = [r["metrics"]["lanczos"]["lpips"] for r in result["images"]]
    assert result["mean"]["lanczos"]["lpips"] == pytest.approx(sum(rows) / 2, abs=1e-12)
    score = perceptual.load("lpips", "cpu")
    assert score(samples[0]["clean"], samples[0]["clean"]) == pytest.approx(0, abs=1e-7)


def test_eval_prints_the_columns_and_their_direction(weights, run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("eval", run, "--data", folder, "--device", "cpu", "--perceptual", " LPIPS ")
    assert result.exit_code == 0, result.output
    head = result.output.splitlines()[0].split()
    assert head[0] == "method" and head[-2:] == ["ssim_rgb", "lpips"]
    assert "LPIPS (AlexNet): lower is better" in result.output
    data = json.loads((run / "eval-photos.json").read_text())
    assert "lpips" in data["mean"]["input"] and data["gain"]["lpips"] == pytest.approx(
        data["mean"]["model"]["lpips"] - data["mean"]["input"]["lpips"])


def test_offline_without_weights_one_line_and_the_rest_reported(run_cli, tmp_path, folder, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("eval", run, "--data", folder, "--device", "cpu")
    assert result.exit_code == 0, result.output
    path = tmp_path / "empty" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and str(path) in warned[0] and "download https://download.pytorch.org/models/" in warned[0]
    assert "LPIPS was skipped; the other scores stand." in warned[0] and "Traceback" not in result.output
    data = json.loads((run / "eval-photos.json").read_text())
    assert set(data["skipped_metrics"]) == {"lpips"} and "lpips" not in data["mean"]["model"]
    assert data["mean"]["model"]["psnr_y"] > 20 and "LPIPS skipped (weights missing)" in result.output
    assert not path.exists()


def test_perceptual_none_and_unknown_names(run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("eval", run, "--data", folder, "--device", "cpu", "--perceptual", "none")
    assert result.exit_code == 0 and "warning" not in result.output and "lpips" not in result.output
    result = run_cli("eval", run, "--data", folder, "--perceptual", "lpips,fid")
    assert result.exit_code == 2 and "unknown perceptual metric fid: choose from lpips, dists, or none" in result.output
    assert "Traceback" not in result.output


def test_big_photos_are_scored_on_near_equal_tiles(weights, monkeypatch):
    assert perceptual._spans(2500) == [(0, 834), (834, 1668), (1668, 2500)]   # no 452-px sliver
    assert perceptual._spans(1024) == [(0, 1024)] and perceptual._spans(31) == [(0, 31)]
    monkeypatch.setattr(perceptual, "TILE", 40)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 70, 100, generator=g), torch.rand(3, 70, 100, generator=g)
    got = perceptual.load("lpips", "cpu")(a, b)
    qa, qb = quantised(a, 0), quantised(b, 0)
    want, area, lpips = 0.0, 0, library(LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True))
    for top, bottom in [(0, 35), (35, 70)]:
        for left, right in [(0, 34), (34, 68), (68, 100)]:
            n = (bottom - top) * (right - left)
            want += n * lpips(qa[..., top:bottom, left:right], qb[..., top:bottom, left:right])
            area += n
    assert got == pytest.approx(want / area, abs=1e-6)
    assert np.isnan(perceptual.load("lpips", "cpu")(a[:, :31], b[:, :31]))   # below the backbone's reach: NaN, as SSIM


def test_grid_labels_carry_lpips(weights, run_cli, tmp_path, folder):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    result = run_cli("grid", run, "--data", folder, "-n", 1, "-o", tmp_path / "g.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "LPIPS: lower is better" in result.output
