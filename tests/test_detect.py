"""Blind models that learn where the damage is: the detecting U-Net and the engine's mask_loss hook."""
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from workbench.api.contracts import capability
from workbench.author.models import check_model
from workbench_plugins.unet import UNet

TINY = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "data.size=32",
        "--set", "data.batch_size=2", "--set", "data.valid_size=32", "--set", "model.widths=[8, 16]", "-q"]


def stamped(n=4, size=32, seed=0):
    """Smooth random images with a near-white rectangle blended over a random part: (damaged, clean, mask)."""
    g = torch.Generator().manual_seed(seed)
    clean = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear", align_corners=False)
    mask = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for k in range(n):
        top, left = torch.randint(0, size - 12, (2,), generator=g).tolist()
        mask[k, :, top:top + 10, left:left + 12] = True
    damaged = torch.where(mask, torch.lerp(clean, torch.full_like(clean, 0.95), 0.7), clean)
    return damaged, clean, mask


def test_the_untrained_detecting_unet_is_the_identity_and_says_it_learns_the_mask():
    model = UNet(widths=[8, 16, 32], detect=True)
    img = torch.rand(2, 3, 37, 45)
    assert torch.equal(model(img), img)
    assert capability(model, "learns_mask") and not capability(model, "takes_mask")
    assert not capability(UNet(widths=[8, 16]), "learns_mask")
    assert capability(object(), "mask_loss")(torch.zeros(1, 1, 8, 8, dtype=torch.bool)) is None


def test_mask_loss_is_the_weighted_cross_entropy_plus_the_keep_term_of_the_last_forward():
    model = UNet(widths=[8, 16], detect=True, detect_weight=0.5, keep_weight=2.0)
    with pytest.raises(RuntimeError, match="forward pass first"):
        model.mask_loss(torch.zeros(1, 1, 8, 8, dtype=torch.bool))
    for p in model.parameters():   # an untrained net changes nothing: give the keep term something to see
        p.data.add_(torch.randn_like(p) * 0.1)
    damaged, _, mask = stamped(n=2, size=20)
    with torch.no_grad():
        out = model(damaged)
    p = torch.sigmoid(model._logits.float())
    change = (out - damaged) / p          # out = img + p * change, the change ungated
    bce = -(mask * p.log() + (~mask) * (1 - p).log()).mean()
    keep = (change.square() * ~mask).mean()
    assert keep > 0
    expected = 0.5 * bce + 2.0 * keep
    assert capability(model, "mask_loss")(mask).item() == pytest.approx(expected.item(), rel=1e-5)

    # read through a wrapper, as DistributedDataParallel holds the model
    assert capability(torch.nn.DataParallel(model), "mask_loss")(mask).item() == pytest.approx(expected.item(), rel=1e-5)


@functools.lru_cache
def trained_on_stamps(keep_weight):
    """A small detecting U-Net after 150 steps on stamped images; its output and gate on unseen ones."""
    torch.manual_seed(0)
    model = UNet(widths=[8, 16], norm="none", detect=True, detect_weight=1.0, keep_weight=keep_weight)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        damaged, clean, mask = stamped(seed=step)
        loss = F.mse_loss(model(damaged), clean) + model.mask_loss(mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    damaged, clean, mask = stamped(n=8, seed=1000)   # images it has not seen
    with torch.no_grad():
        out = model(damaged)
    return model, out, (damaged, clean, mask)


def test_training_finds_the_damage_and_corrects_only_there():
    model, out, (damaged, clean, mask) = trained_on_stamps(1.0)
    p = torch.sigmoid(model._logits)
    assert p[mask].mean() > p[~mask].mean() + 0.4                 # it knows where the stamps are (0.80 vs 0.02)
    change = (out - damaged).abs().mean(1, keepdim=True)
    assert change[mask].mean() > 10 * change[~mask].mean()          # and changes the photo there
    assert F.mse_loss(out, clean) < 0.6 * F.mse_loss(damaged, clean)   # measured 0.34


def test_the_keep_term_makes_a_false_alarm_cheap():
    # Gated by p ~ 0, the correction outside the stamps gets no gradient and drifts (RMS 0.31
    # measured); the keep term holds it near the input (0.04), so a false alarm changes little.
    def drift(keep_weight):
        model, _, (_, _, mask) = trained_on_stamps(keep_weight)
        return model._change.square().mean(1, keepdim=True)[~mask].mean().sqrt().item()
    assert drift(1.0) < 0.3 * drift(0.0)


def test_detect_configuration_errors_name_the_value():
    with pytest.raises(ValueError, match="choose one"):
        UNet(widths=[8, 16], detect=True, masked=True)
    with pytest.raises(ValueError, match="detect_weight = 0 must be a number above 0"):
        UNet(widths=[8, 16], detect=True, detect_weight=0)
    with pytest.raises(ValueError, match="keep_weight = -1 must be a number of at least 0"):
        UNet(widths=[8, 16], detect=True, keep_weight=-1)
    with pytest.raises(ValueError, match="detect = 'yes' must be true or false"):
        UNet(widths=[8, 16], detect="yes")


def test_the_detecting_unet_passes_the_model_contract_even_after_a_training_pass():
    model = UNet(widths=[8, 16], detect=True)
    model(torch.rand(1, 3, 16, 16))   # leaves the pass's logits on the model; check_model deep-copies it
    report = check_model(model)
    assert all(ok for _, ok, _ in report), report
    assert model._logits is not None   # the copy dropped them, the original keeps them for mask_loss


def test_the_dewatermark_recipe_logs_the_mask_loss_and_restores_without_a_mask(run_cli, photo, tmp_path):
    run = tmp_path / "run"   # the recipe's U-Net detects (model.detect = true)
    res = run_cli("run", "dewatermark", "--out", run, *TINY)
    assert res.exit_code == 0, res.output
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    terms = {k: v for k, v in record.items() if k.startswith("loss/")}
    assert terms["loss/mask"] > 0 and len(terms) == 2 and record["train_loss"] == pytest.approx(sum(terms.values()))
    res = run_cli("restore", run, photo, "-o", tmp_path / "out")   # blind: no --mask at restore time
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "photo.png").exists()
    res = run_cli("lr-find", "dewatermark", "-o", tmp_path / "lr.png", "--steps", "4", "--set", "data.size=32",
                  "--set", "data.batch_size=2", "--set", "model.widths=[8, 16]")
    assert res.exit_code == 0, res.output


def test_detection_without_a_mask_to_learn_from_is_one_sentence(run_cli, tmp_path):
    res = run_cli("run", "dejpeg", "--out", tmp_path / "run", "--set", "model.detect=true", *TINY)
    assert res.exit_code == 2 and "none of the recipe's degradations (jpeg) reports one" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "run" / "checkpoints").exists()


def test_detect_errors_splits_the_error_of_a_detecting_run(run_cli, photo, tmp_path):
    """benchmarks/detect_errors.py: a line per photo and the folder's error split by the true mask."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "detect_errors.py"
    run, plain = tmp_path / "run", tmp_path / "plain"
    assert run_cli("run", "dewatermark", "--out", run, *TINY).exit_code == 0
    proc = subprocess.run([sys.executable, str(script), str(run), "--data", str(photo.parent)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.strip().startswith("photo.png"))
    assert "p inside" in line and "oracle gate" in line
    folder = re.search(r"input ([\d.]+), model ([\d.]+), oracle gate ([\d.]+); squared error inside the mask: "
                       r"input ([\d.]+), model ([\d.]+); outside it: model ([\d.]+)", proc.stdout)
    assert folder and float(folder[4]) > 0    # the stamp put its error inside the mask
    assert run_cli("run", "dewatermark", "--out", plain, "--set", "model.detect=false", *TINY).exit_code == 0
    proc = subprocess.run([sys.executable, str(script), str(plain), "--data", str(photo.parent)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "does not detect the damage (model.detect = false)" in proc.stderr
