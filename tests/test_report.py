"""report.html: self-contained, sliders per sample, summary from eval.json or from validation."""
import json
import math
import re

import pytest
import torch

from workbench.judge.report import write_report
from workbench.judge.summary import fmt, psnr_gain

RECIPE = '[recipe]\nname = "superres"\nseed = 0\n\n[model]\ntype = "unet"\n# a <comment> & "quotes", $title ${x}\n'
ODD = 'odd <b>&"name\'.png'


def metrics_lines(n=3):
    return "".join(json.dumps({
        "epoch": e, "train_loss": 0.1 / e, "loss/l1": 0.08 / e, "loss/perceptual/vgg": 0.02 / e,
        "images_per_s": 50.0, "lr": 1e-3, "seconds": 6.0,
        "valid": {"psnr": 23.0 + e, "ssim": 0.9, "input_psnr": 22.6, "input_ssim": 0.91, "images": 6, "undamaged": 0},
    }) + "\n" for e in range(1, n + 1))


EVAL = {
    "run": "runs/superres-x", "recipe": "superres", "task": "restore",
    "protocol": {"metrics": "PSNR and SSIM on 8-bit images", "crop": 2, "seed": 0, "data": ["/data/Set5"]},
    "methods": ["model", "input", "bicubic"],
    "mean": {"model": {"psnr_y": 36.1, "ssim_y": 0.95, "psnr_rgb": 34.0, "ssim_rgb": 0.94},
             "input": {"psnr_y": 33.7, "ssim_y": 0.93, "psnr_rgb": 31.9, "ssim_rgb": 0.92},
             "bicubic": {"psnr_y": 33.66, "ssim_y": 0.9299, "psnr_rgb": float("inf"), "ssim_rgb": float("nan")}},
    "gain": {"psnr_y": 2.4, "ssim_y": 0.02, "psnr_rgb": 2.1, "ssim_rgb": 0.02},
    "images": [{"name": "baby.png", "size": [512, 512], "metrics": {}}],
    "skipped": [{"name": "broken<1>.png", "reason": "cannot read image"}],
}


def metrics_lines_per_step(n=3, steps=4):
    """Epoch records as training writes them now: with each step's loss and learning rate."""
    lines = []
    for e in range(1, n + 1):
        record = json.loads(metrics_lines(e).splitlines()[-1])
        record.update(step_loss=[0.1 / e + 0.01 * i for i in range(steps)], step_lr=[1e-3 * (e * steps + i) for i in range(steps)])
        lines.append(json.dumps(record) + "\n")
    return "".join(lines)


def make_samples():
    """a.png: two baselines (lanczos the best); ODD: none (a three-way slider); z.png: large, with a mask
    and a restoration that differs from its baseline only in the square ZOOM_AT."""
    g = torch.Generator().manual_seed(0)
    sizes = [(3, 40, 56), (3, 48, 48), (3, 600, 150)]   # tiny (PNG), tiny, large (JPEG, downscaled)
    names = ["a.png", ODD, "z.png"]
    gains = [(30.1, 28.0), (25.0, 26.0), (float("inf"), 31.0)]
    samples = [{"name": n, "damaged": torch.rand(s, generator=g), "restored": torch.rand(s, generator=g),
                "clean": torch.rand(s, generator=g),
                "metrics": {"model": {"psnr_y": m, "ssim_y": 0.9}, "input": {"psnr_y": i, "ssim_y": 0.8}}}
               for n, s, (m, i) in zip(names, sizes, gains)]
    a, z = samples[0], samples[2]
    a["baselines"] = {"bicubic": torch.rand(sizes[0], generator=g), "lanczos": torch.rand(sizes[0], generator=g)}
    a["metrics"].update(bicubic={"psnr_y": 27.0}, lanczos={"psnr_y": 29.5})
    z["baselines"] = {"bicubic": z["restored"].clone()}
    y, x = ZOOM_AT
    z["restored"][:, y:y + 40, x:x + 40] = 1 - z["restored"][:, y:y + 40, x:x + 40]
    z["metrics"]["bicubic"] = {"psnr_y": 30.0}
    z["mask"] = torch.zeros(1, 600, 150, dtype=torch.bool)
    z["mask"][:, 100:200, 20:60] = True
    return samples


ZOOM_AT = (420, 70)   # (y, x) of z.png's 40 x 40 square where the model and its baseline differ


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "superres-20240101-000000"
    d.mkdir()
    (d / "recipe.toml").write_text(RECIPE, encoding="utf-8")
    return d


def assert_self_contained(page):
    for bad in ('src="http', "src='http", 'href="http', "<script src", "<link", "url(http", "@import"):
        assert bad not in page, bad


def test_full_report(run_dir):
    (run_dir / "metrics.jsonl").write_text(metrics_lines(), encoding="utf-8")
    (run_dir / "eval.json").write_text(json.dumps(EVAL), encoding="utf-8")
    path = write_report(run_dir, make_samples())
    assert path == run_dir / "report.html" and path.exists()
    assert not list(run_dir.glob("*.tmp")), "the temp file is renamed, not left behind"
    page = path.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert page.count('type="range"') == 3 + 2 + 3           # n - 1 dividers: 4 pictures, 3 without a baseline
    assert ODD not in page and "odd &lt;b&gt;&amp;&quot;name&#x27;.png" in page
    assert "broken&lt;1&gt;.png" in page                     # skipped images listed, escaped
    assert "# a &lt;comment&gt; &amp; &quot;quotes&quot;, $title ${x}" in page   # recipe verbatim, escaped
    for row in ("<th>model</th>", "<th>input</th>", "<th>bicubic</th>", "model − input"):
        assert row in page
    assert "36.10" in page and "+2.40" in page and "∞" in page and "–" in page
    assert "model beats the best baseline (bicubic) by +2.44 dB PSNR (Y), and the damaged input by +2.40 dB" in page
    assert "model − best baseline" in page and 'title="best baseline: bicubic"' in page
    assert "crop" in page and "/data/Set5" in page            # protocol printed
    assert page.count("data:image/png;base64,") >= 2 + 6       # two curves, tiny samples as PNG
    assert "data:image/jpeg;base64," in page                   # the large sample as JPEG
    gains = re.findall(r'data-gain="([^"]*)"', page)
    assert [float(g) for g in gains] == pytest.approx([2.1, -1.0, math.inf])
    assert "sort by gain ↓" in page and "sort by gain ↑" in page and "sort by name" in page


def test_the_headline_names_a_baseline_that_beats_the_model(run_dir):
    ev = json.loads(json.dumps(EVAL))
    ev["methods"] = ["model", "input", "bicubic", "lanczos"]
    ev["mean"]["model"].update(psnr_y=33.98, lpips=0.21)
    ev["mean"]["input"].update(psnr_y=33.70, lpips=0.30)
    ev["mean"]["bicubic"].update(psnr_y=33.66, lpips=0.25)
    ev["mean"]["lanczos"] = {"psnr_y": 34.20, "ssim_y": 0.94, "lpips": 0.24}
    ev["gain"].update(psnr_y=0.28, lpips=-0.09)
    (run_dir / "eval.json").write_text(json.dumps(ev), encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert ("the lanczos baseline beats the model by 0.22 dB PSNR (Y); the model beats the damaged input by "
            "+0.28 dB PSNR (Y)") in page
    assert '<p class="verdict neg">the lanczos baseline' in page
    assert "<th>LPIPS ↓</th>" in page and "lower is better" in page
    # model − best baseline, per metric: PSNR-Y against lanczos (−0.22), LPIPS against lanczos (0.21 − 0.24)
    row = page.split("<th>model − best baseline</th>")[1].split("</tr>")[0]
    assert '<td class="neg" title="best baseline: lanczos">-0.22' in row
    assert '<td class="pos" title="best baseline: lanczos">-0.0300' in row


def test_large_sample_is_downscaled_to_512(run_dir):
    import base64
    import io

    from PIL import Image

    page = write_report(run_dir, make_samples()[2:]).read_text(encoding="utf-8")
    sizes = {Image.open(io.BytesIO(base64.b64decode(b))).size for b in re.findall(r"data:image/jpeg;base64,([^\"]+)", page)}
    assert sizes == {(128, 512)}


def test_only_recipe(run_dir):
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "superres" in page and "no validation results yet" in page and 'type="range"' not in page


@pytest.mark.parametrize("eval_json", ["not json", '{"mean": {"model": {"psnr_y": "high"}}, "gain": null, "protocol": [1], "skipped": [2]}'])
def test_empty_dir_and_garbage(tmp_path, eval_json):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": NaN}\n{"epoch": 2, "trai', encoding="utf-8")
    (tmp_path / "eval.json").write_text(eval_json, encoding="utf-8")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "recipe.toml not found" in page


def test_metrics_without_eval_says_validation(run_dir):
    (run_dir / "metrics.jsonl").write_text(metrics_lines(), encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "From the validation of epoch 3" in page
    assert "model beats the damaged input by +3.40 dB PSNR (RGB, validation)" in page
    assert page.count("data:image/png;base64,") == 3     # loss, learning rate, validation
    assert 'alt="Training loss per epoch"' in page and 'alt="Learning rate per epoch"' in page


def test_curves_per_step_when_the_run_logged_each_step(run_dir):
    (run_dir / "metrics.jsonl").write_text(metrics_lines_per_step(), encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert 'alt="Training loss per step"' in page and 'alt="Learning rate per step"' in page
    assert 'alt="Validation per epoch"' in page
    # one record without its steps (a run from before): all drawn per epoch, never a mixed axis
    lines = metrics_lines_per_step().splitlines()
    (run_dir / "metrics.jsonl").write_text(metrics_lines(1) + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert 'alt="Training loss per epoch"' in page and "per step" not in page


def test_each_sample_shows_its_best_baseline_zoom_crops_error_maps_and_mask(run_dir):
    import base64
    import io

    from PIL import Image

    page = write_report(run_dir, make_samples()).read_text(encoding="utf-8")
    a, odd, z = page.split('<article class="sample"')[1:]
    assert 'alt="lanczos: a.png"' in a and "bicubic: a.png" not in a   # the best baseline by PSNR, not the first
    assert "damaged | lanczos (best baseline) | restored | clean" in a and 'data-n="4"' in a
    assert 'data-n="3"' in odd and "where the model changed the damaged input most" in odd
    assert a.count("data-err=") == 3 + 3 and "show-mask" not in a   # damaged, baseline, restored; frame and crops
    assert 'class="show-mask"' in z and 'class="mask" hidden' in z
    # z.png's crops: 96 x 96 at full resolution (the frame is downscaled to 512), where the model and
    # the baseline differ: the 40 x 40 square at ZOOM_AT lies inside
    head = re.search(r"1:1 crops \((\d+)×(\d+) px at x (\d+), y (\d+)\)", z)
    w, h, x, y = map(int, head.groups())
    assert (w, h) == (96, 96) and x <= ZOOM_AT[1] and x + w >= ZOOM_AT[1] + 40 and y <= ZOOM_AT[0] and y + h >= ZOOM_AT[0] + 40
    crops = re.findall(r'class="zoom" width="96" height="96" src="data:image/png;base64,([^"]+)"', z)
    assert len(crops) == 4 and {Image.open(io.BytesIO(base64.b64decode(c))).size for c in crops} == {(96, 96)}
    assert "where the model differs most from bicubic" in z
    # the mask overlay: red where missing, transparent elsewhere, at the frame's size
    mask = re.search(r'class="mask" hidden src="data:image/png;base64,([^"]+)"', z).group(1)
    im = Image.open(io.BytesIO(base64.b64decode(mask)))
    assert im.mode == "RGBA" and im.size == (128, 512)
    alpha = im.getchannel("A")
    assert alpha.getpixel((34, 128)) > 100 and alpha.getpixel((100, 400)) == 0


def test_zoom_box_and_best_baseline():
    from workbench.judge.pictures import best_baseline, zoom_box

    a = torch.zeros(3, 50, 70)
    b = a.clone()
    b[:, 30:40, 5:15] = 1
    x, y, w, h = zoom_box(a, b, side=16)
    assert (w, h) == (16, 16) and x <= 5 and x + 16 >= 15 and y <= 30 and y + 16 >= 40
    assert zoom_box(a[:, :8, :5], b[:, :8, :5], side=16) == (0, 0, 5, 8)   # smaller than a crop: the whole image
    metrics = {"bicubic": {"psnr_y": 30.0}, "lanczos": {"psnr_y": 31.0}, "telea": {"lpips": 0.1}}
    assert best_baseline(metrics, ["bicubic", "lanczos"]) == "lanczos"
    assert best_baseline({"x": {"lpips": 0.3}, "y": {"lpips": 0.2}}, ["x", "y"]) == "y"   # a distance: the lowest
    assert best_baseline({}, ["bicubic"]) == "bicubic" and best_baseline({}, []) is None


def test_classifier(run_dir):
    line = {"epoch": 1, "train_loss": 2.0, "loss/cross_entropy": 2.0, "valid": {"accuracy": 0.5, "loss": 1.9}}
    (run_dir / "metrics.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "validation accuracy 50.0%" in page and "0.5000" in page


def test_helpers():
    assert fmt(float("nan")) == "–" and fmt(float("inf")) == "∞" and fmt(None) == "–"
    assert fmt(-1.0, sign=True) == "-1.00" and fmt(0.91234, "ssim") == "0.9123"
    assert psnr_gain({"model": {"psnr": 24.4, "psnr_rgb": 1}, "input": {"psnr": 22.4}}) == ("psnr", pytest.approx(2.0))
    assert psnr_gain({"model": {"psnr_y": 3}, "input": {}})[0] is None


def test_worse_than_input(run_dir):
    line = {"epoch": 1, "train_loss": 0.1, "valid": {"psnr": 20.0, "ssim": 0.8, "input_psnr": 22.6, "input_ssim": 0.9}}
    (run_dir / "metrics.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "model is 2.60 dB worse than the damaged input in PSNR (RGB, validation)" in page


def test_the_report_says_when_validation_comes_from_the_training_photos(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.1, "valid": {
        "psnr": 30.0, "ssim": 0.9, "input_psnr": 29.0, "input_ssim": 0.88}}) + "\n")
    (run / "recipe.toml").write_text('[data]\ntrain = "sample"\nvalid = ""\n')
    assert "held-out strips of the training photos themselves" in write_report(run).read_text()
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        (photos / f"{i}.png").write_bytes(b"")
    (run / "recipe.toml").write_text(f'[data]\ntrain = "{photos}"\nvalid = ""\n')
    page = write_report(run).read_text()
    assert "photos held out of the training folder" in page and "strips" not in page
    (run / "recipe.toml").write_text(f'[data]\ntrain = "{photos}"\nvalid = "{photos}"\n')
    assert "held out" not in write_report(run).read_text()
