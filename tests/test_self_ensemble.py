"""Geometric self-ensemble (EDSR+): the mean over the 8 flips and quarter turns, each turned back."""
import json

import numpy as np
import torch
from PIL import Image
from torch import nn

from workbench.infer.restore import restore_tensor
from workbench.runs import checkpoint
from workbench_plugins.unet import UNet

# The 8 symmetries of the square written out by hand (view, and the inverse that turns it back),
# so the test does not share the code it checks.
SYMMETRIES = [
    (lambda t: t, lambda t: t),
    (lambda t: t.rot90(1, (1, 2)), lambda t: t.rot90(-1, (1, 2))),
    (lambda t: t.rot90(2, (1, 2)), lambda t: t.rot90(2, (1, 2))),
    (lambda t: t.rot90(3, (1, 2)), lambda t: t.rot90(1, (1, 2))),
    (lambda t: t.flip(2), lambda t: t.flip(2)),
    (lambda t: t.flip(1), lambda t: t.flip(1)),
    (lambda t: t.transpose(1, 2), lambda t: t.transpose(1, 2)),
    (lambda t: t.flip(1).flip(2).transpose(1, 2), lambda t: t.transpose(1, 2).flip(2).flip(1)),
]


class Tilted(nn.Module):
    """Adds a left-to-right ramp and mixes in the pixel below: not equivariant to flips or turns."""

    def forward(self, x):
        ramp = torch.linspace(0, 0.2, x.shape[-1], device=x.device)
        return 0.7 * x + 0.3 * x.roll(-1, dims=-2) + ramp


class MaskedZero(nn.Module):
    """A masked model that blanks the hole it is told about: equivariant only if the mask turns too."""

    takes_mask = True

    def forward(self, x, mask):
        return x.masked_fill(mask, 0.0)


def photo(h=24, w=40, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def test_self_ensemble_is_the_mean_of_the_eight_views_turned_back():
    img, model = photo(), Tilted()
    expected = sum(back(model(view(img)[None])[0]) for view, back in SYMMETRIES) / 8
    got = restore_tensor(model, img, tile=0, clamp=False, self_ensemble=True)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, restore_tensor(model, img, tile=0, clamp=False), atol=1e-3)


def test_an_equivariant_model_is_unchanged_by_the_ensemble():
    img = photo(31, 45)
    plain = restore_tensor(UNet(widths=[8, 16]), img, tile=0)
    assert torch.allclose(restore_tensor(UNet(widths=[8, 16]), img, tile=0, self_ensemble=True), plain, atol=1e-5)


def test_the_mask_turns_with_the_image():
    img = photo()
    mask = torch.zeros(1, 24, 40, dtype=torch.bool)
    mask[:, 3:9, 5:30] = True
    out = restore_tensor(MaskedZero(), img, mask=mask, tile=0, self_ensemble=True)
    assert (out[:, mask[0]] == 0).all()                    # every view blanked the same pixels
    assert torch.allclose(out, img.masked_fill(mask, 0.0), atol=1e-6)


def test_tiles_are_ensembled_one_by_one():
    img, model = photo(70, 90), Tilted()
    whole = restore_tensor(model, img, tile=0, self_ensemble=True)
    tiled = restore_tensor(model, img, tile=48, overlap=16, self_ensemble=True)
    assert tiled.shape == img.shape
    # Tilted's ramp spans each tile rather than the photo, so tiles differ from one pass; the
    # ensemble averages the ramp to a constant 0.1 in both, leaving only the 1-pixel mixing's edges.
    assert (tiled - whole).abs().mean() < 1e-2


def test_eval_and_restore_take_the_flag(run_cli, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(folder / f"p{k}.png")
    torch.manual_seed(0)
    net = UNet(widths=[8, 16])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # not the identity, so the ensemble changes something
    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": net.state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": "run", "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16]},
                                "degradations": [{"type": "jpeg", "quality": 20}]}},
                    run / "checkpoints" / "best.pt")
    scores = {}
    for flag in ([], ["--self-ensemble"]):
        result = run_cli("eval", run, "--data", folder, "--device", "cpu", *flag)
        assert result.exit_code == 0, result.output
        data = json.loads((run / f"eval-{folder.name}{',x8' if flag else ''}.json").read_text())
        assert data["protocol"]["self_ensemble"] is bool(flag)
        assert ("self-ensembled" in result.output) is bool(flag)
        scores[bool(flag)] = data["mean"]["model"]["psnr_y"]
        assert data["mean"]["input"]["psnr_y"] > 0
    assert scores[True] != scores[False]
    result = run_cli("restore", run, folder / "p0.png", "-o", tmp_path / "out", "--device", "cpu", "--self-ensemble")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "p0.png").size == (40, 32)
