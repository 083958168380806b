"""`workbench compare`: runs side by side, on the same images (--data) or on what each run already has."""
import json
import os

import pytest
import torch
from PIL import Image
from test_evaluate import make_run, photo_array

from workbench.runs import checkpoint

JPEG = [{"type": "jpeg", "quality": 20}]
OFFLINE = ("--perceptual", "none", "--device", "cpu")


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for k, (h, w) in enumerate([(48, 64), (40, 40), (36, 52)]):
        Image.fromarray(photo_array(h, w, k)).save(d / f"p{k}.png")
    return d


def perturbed_run(tmp_path, name="noisy", degradations=JPEG):
    """A U-Net whose weights are nudged off the identity: it makes the damaged input worse."""
    torch.manual_seed(0)   # make_run's net: the same untrained weights every time
    run = make_run(tmp_path, degradations, name=name)
    state = checkpoint.load(run)
    gen = torch.Generator().manual_seed(0)
    state["model"] = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    state["epoch"] = 7
    checkpoint.save(state, run / "checkpoints" / "best.pt")
    return run


def listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def row(output, label):
    return next(line for line in output.splitlines() if line.startswith(label + " "))


def one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for w in words:
        assert w in result.output, result.output


def test_compare_on_the_same_images_matches_eval_run_by_run(run_cli, tmp_path, photos):
    same, noisy = make_run(tmp_path, JPEG, name="identity"), perturbed_run(tmp_path)
    before = listing(same) + listing(noisy)
    page, out = tmp_path / "cmp.html", tmp_path / "cmp.json"
    result = run_cli("compare", same, noisy, "--data", photos, *OFFLINE, "-n", 2, "-o", page, "--json", out)
    assert result.exit_code == 0, result.output
    assert listing(same) + listing(noisy) == before   # compare writes only what it is told to
    assert "judged alike" not in result.stderr, result.stderr
    assert "noisy: the model's output went outside [0, 1]" in result.output   # eval's warning, with the run it is about
    comp = json.loads(out.read_text())
    assert [r["label"] for r in comp["runs"]] == ["identity", "noisy"] and comp["runs"][1]["epoch"] == 7
    assert comp["metrics"] == ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"] and len(comp["groups"]) == 1
    # the identity net returns the damaged input; the nudged one makes it worse, in every column
    assert comp["best"] == {k: ["identity"] for k in comp["metrics"]}
    assert row(result.output, "identity").count("*") == 4 and "*" not in row(result.output, "noisy")
    assert row(result.output, "input").split()[1] == "(damaged)" and "(best baseline)" in result.output
    # each run's numbers are those `workbench eval --data` writes for it alone
    for run, r in zip((same, noisy), comp["runs"]):
        assert run_cli("eval", run, "--data", photos, *OFFLINE).exit_code == 0
        alone = json.loads((run / "eval-photos.json").read_text())
        for k in comp["metrics"]:
            assert r["model"][k] == pytest.approx(alone["mean"]["model"][k], abs=1e-9)
            assert comp["groups"][0]["input"][k] == pytest.approx(alone["mean"]["input"][k], abs=1e-9)
            assert f"{alone['mean']['model'][k]:.{2 if 'psnr' in k else 4}f}" in row(result.output, r["label"])
        assert comp["results"][r["label"]]["images"] == alone["images"]   # per image, too
    html = page.read_text()
    # -n 2 images, each as damaged | best baseline | identity | noisy | clean, then the same five cropped
    assert html.count("<h3>") == 2 and html.count("data:image/") == 2 * 5 * 2
    assert "identity" in html and "noisy" in html and 'class="best"' in html
    # a second time: refused before any work, the page kept byte for byte; --overwrite replaces it
    kept = page.read_bytes()
    one_line_error(run_cli("compare", same, noisy, "--data", photos, *OFFLINE, "-o", page), str(page), "--overwrite")
    assert page.read_bytes() == kept
    assert run_cli("compare", same, noisy, "--data", photos, *OFFLINE, "-o", page, "--overwrite").exit_code == 0


def test_different_damage_is_warned_and_gets_its_own_input_rows(run_cli, tmp_path, photos):
    a = make_run(tmp_path, JPEG, name="q20")
    b = make_run(tmp_path, [{"type": "jpeg", "quality": 60}], name="q60")
    result = run_cli("compare", a, b, "--data", photos, "--device", "cpu")   # LPIPS, whose weights tests never have
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2, result.stderr   # LPIPS skipped, said once and not once a run; then the damage
    assert "LPIPS was skipped" in warnings[0] and "not judged alike (damage)" in warnings[1], result.stderr
    assert "LPIPS skipped" in result.stdout
    assert row(result.output, "input (q20)") and row(result.output, "input (q60)")


def write_eval(run, psnr, lpips, names=("a.png", "b.png")):
    """An eval.json as `workbench eval RUN` writes it, numbers chosen by the test."""
    run.mkdir(parents=True, exist_ok=True)
    mean = {"model": {"psnr_y": psnr, "ssim_y": 0.9, "lpips": lpips}, "input": {"psnr_y": 25.0, "ssim_y": 0.8, "lpips": 0.4},
            "bilateral": {"psnr_y": 25.5, "ssim_y": 0.81, "lpips": 0.38}}
    (run / "eval.json").write_text(json.dumps({
        "run": str(run), "recipe": "dejpeg", "task": "restore", "epoch": 5, "methods": list(mean), "mean": mean,
        "primary": "psnr_y", "protocol": {"seed": 0, "crop": 0, "degradations": "JPEG(quality=20)", "images": len(names),
                                          "data": ["the run's validation images"]},
        "images": [{"name": n} for n in names]}))
    return run


def test_without_data_it_reads_each_runs_results(run_cli, tmp_path):
    sharp = write_eval(tmp_path / "l1", 30.0, 0.30)
    perceptual = write_eval(tmp_path / "perceptual", 29.0, 0.20)
    out = tmp_path / "c.json"
    result = run_cli("compare", sharp, perceptual, "--json", out)
    assert result.exit_code == 0, result.output
    assert not result.stderr.strip(), result.stderr
    assert "30.00*" in row(result.output, "l1") and "0.3000 " in row(result.output, "l1")
    assert "29.00 " in row(result.output, "perceptual") and "0.2000*" in row(result.output, "perceptual")   # LPIPS: lower wins
    assert "eval.json" in row(result.output, "l1") and "bilateral" in result.output
    comp = json.loads(out.read_text())
    assert comp["best"]["psnr_y"] == ["l1"] and comp["best"]["lpips"] == ["perceptual"]
    # a run with only its training validation is measured differently: one warning line, and its source named
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "metrics.jsonl").write_text(json.dumps({"epoch": 3, "valid": {"psnr": 28.0, "ssim": 0.85, "input_psnr": 26.0,
                                                                              "input_ssim": 0.8, "images": 4}}) + "\n")
    (trained / "recipe.toml").write_text('[recipe]\nname = "dejpeg"\n[data]\ntrain = "sample"\n[[degradations]]\ntype = "jpeg"\n')
    page = tmp_path / "c.html"
    result = run_cli("compare", sharp, trained, "-o", page)
    assert result.exit_code == 0, result.output
    assert "metrics.jsonl (validation, epoch 3)" in row(result.output, "trained")
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and "not apples to apples" in warnings[0] and "--data" in warnings[0]
    assert "not judged alike" in page.read_text() and "<img" not in page.read_text()
    # different validation images (by name): warned as well
    other = write_eval(tmp_path / "other", 31.0, 0.25, names=("c.png",))
    warned = run_cli("compare", sharp, other).stderr
    assert "not judged alike (images)" in warned
    # two runs with one folder name are told apart by their paths
    twin = write_eval(tmp_path / "elsewhere" / "l1", 30.5, 0.3)
    result = run_cli("compare", sharp, twin)
    assert row(result.output, str(sharp)) and row(result.output, str(twin))


def test_one_line_errors(run_cli, tmp_path, photos):
    a, b = write_eval(tmp_path / "a", 30.0, 0.3), write_eval(tmp_path / "b", 29.0, 0.2)
    one_line_error(run_cli("compare", a), "at least two runs")
    one_line_error(run_cli("compare", a, a), "same run")
    os.symlink(a, tmp_path / "link")
    one_line_error(run_cli("compare", a, tmp_path / "link"), "same run")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run_cli("compare", a, empty), "no results to compare", "workbench eval")
    one_line_error(run_cli("compare", a, empty, "--data", photos), "no checkpoints/best.pt")
    one_line_error(run_cli("compare", a, b, "--seed", 3), "--seed only applies with --data")
    # an output is never an input, must be HTML, and must be writable
    one_line_error(run_cli("compare", a, b, "--json", a / "eval.json", "--overwrite"), "its input")
    one_line_error(run_cli("compare", a, b, "-o", tmp_path / "c.png"), ".html")
    (tmp_path / "file").write_text("")
    one_line_error(run_cli("compare", a, b, "-o", tmp_path / "file" / "c.html"), "cannot be made")
    one_line_error(run_cli("compare", a, b, "-o", tmp_path / "c.html", "--json", tmp_path / "c.html"), "both be written")
    # classifiers are not compared, with --data (by the checkpoint) or without (by the validation)
    restorer = make_run(tmp_path, JPEG, name="restorer")
    state = checkpoint.load(restorer)
    checkpoint.save({**state, "task": "classify"}, tmp_path / "classifier" / "checkpoints" / "best.pt")
    one_line_error(run_cli("compare", restorer, tmp_path / "classifier", "--data", photos), "classifier run", "tasks differ")
    for name in ("c1", "c2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "valid": {"accuracy": 0.5}}) + "\n")
    one_line_error(run_cli("compare", tmp_path / "c1", tmp_path / "c2"), "c1 is a classifier run")
    # a --set that one of the runs cannot take is refused before the other is judged
    one_line_error(run_cli("compare", restorer, perturbed_run(tmp_path), "--data", photos, "--set", "degradations.3.quality=5"))
