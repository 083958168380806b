"""Behaviour pinned by value, each against an independent computation: the hand-made mutations
that once survived every test (issue 17) fail here. Validation PSNR and SSIM against
scikit-image, a resume that replays dropout, the perceptual loss's default weight, tile blending
at tiny overlaps, the model contract's mutation check, and an interrupted checkpoint save."""
import errno
import json

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from test_reliability import TINY, make_recipe, temp_files, train_signalled
from torch import nn

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.author.models import check_model
from workbench.errors import WorkbenchError
from workbench.infer.restore import _windows, restore_tensor, tile_starts
from workbench.runs import checkpoint, rundir
from workbench.tasks import make_task
from workbench.train.loop import train
from workbench.train.objective import build_objective


def levels(t):
    """C x H x W in [0, 1] -> H x W x C uint8, rounded as a saved PNG would be (numpy, not torch)."""
    return np.clip(np.round(t.detach().double().numpy() * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def test_validation_psnr_and_ssim_in_metrics_are_scikit_images(tmp_path):
    """The numbers in metrics.jsonl (and so in the report) are the field's PSNR and SSIM of the
    validation pairs, recomputed here from the run's own recipe and checkpoint."""
    plugins = plugin_manager.load([TINY])
    text = make_recipe(tmp_path, epochs=1, steps=2).read_text().replace("[train]", "[train]\ncpu_bf16 = false")
    (tmp_path / "fp32.toml").write_text(text)
    run = train(recipes.load(str(tmp_path / "fp32.toml"), plugins), plugins, out=tmp_path / "run", device="cpu",
                progress=False)
    logged = rundir.read_metrics(run)[-1]["valid"]
    recipe = recipes.load(str(run / "recipe.toml"), plugins)
    valid = make_task(recipe, plugins).valid
    model = checkpoint.load_model(run, plugins, "last")[0].eval()
    scores = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    with torch.no_grad():
        for i in range(len(valid)):
            item = valid[i]
            damaged, clean = item["damaged"], item["clean"]
            restored = model(damaged[None])[0].clamp(0, 1)
            c, d, r = levels(clean), levels(damaged), levels(restored)
            ssim = lambda a: structural_similarity(a, c, channel_axis=2, data_range=255, gaussian_weights=True,  # noqa: E731
                                                   sigma=1.5, use_sample_covariance=False)
            scores["psnr"].append(peak_signal_noise_ratio(c, r, data_range=255))
            scores["input_psnr"].append(peak_signal_noise_ratio(c, d, data_range=255))
            scores["ssim"].append(ssim(r))
            scores["input_ssim"].append(ssim(d))
    assert logged["images"] == len(valid) >= 1
    for key, values in scores.items():   # the model ran on a batch here on single images: a pixel may round apart
        assert logged[key] == pytest.approx(float(np.mean(values)), abs=1e-6 if key.startswith("input") else 1e-3), key
    assert 10 < logged["input_psnr"] < 60   # a wrong peak (1 instead of 255) would be ~48 dB off


@pytest.mark.parametrize("call, mid_epoch", [(17, False), (30, True)], ids=["after-epoch", "mid-epoch"])
def test_resume_replays_the_random_numbers_a_dropout_model_draws(tmp_path, monkeypatch, call, mid_epoch):
    """Dropout draws from torch's generator on every step: a resume that did not restore its state
    would train on other masks and end with other weights. The degradation's 17th call is the
    first of epoch 1's validation (4 steps of 4 crops before it): the run stops after epoch 1;
    its 30th is a few steps into epoch 2."""
    model = 'type = "tiny"\ndropout = 0.5'
    code, straight = train_signalled(tmp_path, monkeypatch, "straight", call=10**9, model=model)
    assert code == 0
    code, run = train_signalled(tmp_path, monkeypatch, "stopped", call=call, model=model)
    kept = checkpoint.load(run, "last")
    assert code == 130 and kept["epoch"] == 1 and (kept["step"] >= 1) == mid_epoch
    plugins = plugin_manager.load([TINY])
    train(recipes.load(str(run / "recipe.toml"), plugins), plugins, resume=run, device="cpu", progress=False)
    a, b = checkpoint.load(straight, "last")["model"], checkpoint.load(run, "last")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in rundir.read_metrics(run)] == [r["train_loss"] for r in rundir.read_metrics(straight)]
    # each step's loss and learning rate too: a mid-epoch resume keeps the steps before it (last.pt)
    for key in ("step_loss", "step_lr"):
        got, want = ([r[key] for r in rundir.read_metrics(d)] for d in (run, straight))
        assert got == want and all(len(v) == 4 for v in want), key


class Constant(nn.Module):
    """A loss of fixed value, standing in for the perceptual loss (its backbone needs downloaded weights)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, output, target):
        return (output - target).abs().mean() * 0 + self.value


def test_objective_weighs_each_term_by_its_default_or_given_weight(monkeypatch):
    from workbench_plugins.perceptual import Perceptual

    plugins = plugin_manager.load([])
    monkeypatch.setattr(Perceptual, "__init__", lambda self, **kw: (nn.Module.__init__(self), setattr(self, "value", 2.0))[0])
    monkeypatch.setattr(Perceptual, "forward", Constant.forward)
    out, target = torch.full((1, 3, 8, 8), 0.25), torch.zeros(1, 3, 8, 8)
    cases = [([{"type": "l1"}, {"type": "perceptual"}], 0.25 + 0.1 * 2.0),   # Perceptual.default_weight = 0.1
             ([{"type": "l1", "weight": 3.0}, {"type": "perceptual", "weight": 0.5}], 3 * 0.25 + 0.5 * 2.0),
             ([{"type": "mse"}], 0.0625)]
    for losses, expected in cases:
        recipe = recipes.from_dict({"losses": losses}, "r.toml", plugins)
        total, logged = build_objective(recipe, plugins)(out, target)
        assert total.item() == pytest.approx(expected, abs=1e-7), losses
    assert logged == {"loss/mse": pytest.approx(torch.tensor(0.0625))}


class Pointwise(nn.Module):
    """A 1x1 convolution: each output pixel depends on its own input pixel only, so any tiling
    must give exactly the one-pass result, and any error in the blend weights shows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


@pytest.mark.parametrize("overlap", [0, 1, 2, 3])
def test_tiles_blend_to_the_one_pass_result_at_every_small_overlap(overlap):
    model = Pointwise().eval()
    img = torch.rand(3, 41, 53, generator=torch.Generator().manual_seed(overlap))
    with torch.no_grad():
        whole = model(img[None])[0]
    tiled = restore_tensor(model, img, tile=16 + 2 * overlap, overlap=overlap)
    assert torch.isfinite(tiled).all()
    assert torch.allclose(tiled, whole, atol=1e-6), (tiled - whole).abs().max()


@pytest.mark.parametrize("overlap", [1, 2, 3, 8])
def test_facing_ramps_sum_to_one_and_no_pixel_loses_all_weight(overlap):
    """Tiles that overlap by exactly `overlap` pixels: the weights over the side are 1 everywhere
    (no seam for any model), and each tile keeps weight > 0 on every pixel it covers."""
    tile, n = 16 + 2 * overlap, 3 * (16 + overlap) + overlap
    starts = tile_starts(n, tile, overlap)
    assert [b - a for a, b in zip(starts, starts[1:])] == [tile - overlap] * (len(starts) - 1)
    wins, total = _windows(starts, tile, n, overlap)
    assert torch.allclose(total, torch.ones(n), atol=1e-6), total
    assert all((w > 0).all() for w in wins)


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        x.mul_(0.5)   # edits the caller's batch
        return x + self.conv(x)


class Copying(InPlace):
    def forward(self, x):
        return x * 0.5 + self.conv(x * 0.5)


def test_model_contract_catches_a_model_that_edits_its_input():
    rows = {prop: (ok, note) for prop, ok, note in check_model(InPlace())}
    assert rows["no mutation"] == (False, "no mutation: the input batch was modified in place")
    assert rows["shape"][0] and rows["gradients"][0]
    assert all(ok for ok, _ in ({p: (ok, n) for p, ok, n in check_model(Copying())}).values())


def test_a_checkpoint_save_broken_off_keeps_the_previous_file(tmp_path, monkeypatch):
    """A save that fails half-way (a full disk, a crash inside torch.save) leaves the old last.pt whole."""
    path = tmp_path / "checkpoints" / "last.pt"
    checkpoint.save({"epoch": 1, "model": {"w": torch.ones(1000)}, "recipe": {}}, path)
    real = torch.save

    def half_then_fail(obj, f, *a, **kw):
        target = open(f, "wb") if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__") else f
        target.write(b"PK\x03\x04" + b"\0" * 100)   # the first bytes of a zip, as torch.save begins
        target.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(WorkbenchError, match="No space left on device"):
        checkpoint.save({"epoch": 2, "model": {"w": torch.zeros(1000)}, "recipe": {}}, path)
    monkeypatch.setattr(torch, "save", real)
    kept = checkpoint.load(path.parent.parent, "last")
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.ones(1000))
    assert temp_files(tmp_path) == [] and json.dumps(sorted(p.name for p in path.parent.iterdir())) == '["last.pt"]'


# -- the evaluation protocol at its edges (survivors of benchmarks/mutation.py) ------------------------
def test_mask_psnr_is_scikit_images_over_the_missing_pixels_with_and_without_a_crop():
    from workbench.judge import protocol

    g = torch.Generator().manual_seed(3)
    out, ref = torch.rand(3, 20, 24, generator=g), torch.rand(3, 20, 24, generator=g)
    mask = torch.zeros(1, 20, 24, dtype=torch.bool)
    mask[:, 1:9, 2:20] = True
    for crop in (0, 4):
        got = protocol.measure(out, ref, crop=crop, mask=mask)
        sl = (slice(crop, 20 - crop), slice(crop, 24 - crop))
        m = mask[0][sl].numpy()
        a, b = levels(out)[sl][m], levels(ref)[sl][m]
        assert got["psnr_mask"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9), crop
    assert protocol.measure(out, ref) == protocol.measure(out, ref, crop=0)   # no crop unless asked
    assert protocol.measure(out, ref)["psnr_rgb"] == pytest.approx(
        peak_signal_noise_ratio(levels(ref), levels(out), data_range=255), abs=1e-9)


def test_ssim_is_defined_from_exactly_one_window():
    from workbench.images.metrics import ssim

    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 11, 11, generator=g), torch.rand(3, 11, 11, generator=g)
    expected = structural_similarity(levels(a), levels(b), channel_axis=2, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert np.isnan(ssim(a[:, :10], b[:, :10]))


def test_range_warnings_at_their_thresholds():
    from workbench.judge.protocol import range_warnings, to_tensor

    x = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert range_warnings({}) == []
    assert range_warnings({"output": x * 1.4 - 0.2, "target": x * 1.4 - 0.2}) == []   # exactly [-0.2, 1.2]: an overshoot
    assert [w.split(" spans")[0] for w in range_warnings({"output": x + 0.5, "target": x})] == ["output"]
    narrow = {"input": x, "output": x * 0.5 + 0.25, "target": x}   # half the width, exactly: not flagged
    assert range_warnings(narrow) == []
    narrower = {"input": x, "output": x * 0.3 + 0.35, "target": x}  # lo > 0: the width is hi - lo
    assert [w.split(" spans")[0] for w in range_warnings(narrower)] == ["output"]
    assert range_warnings({"input": x * 0.5, "output": x * 0.2, "target": x * 0.5}) == []   # widest 0.5: all small
    wide = {"input": x * 0.8 + 0.1, "output": x * 0.5 + 0.2, "target": x * 0.8 + 0.1}   # 0.5 >= half of 0.8
    assert range_warnings(wide) == []
    both = range_warnings({"input": x, "output": x + 1, "target": x * 0.3 + 0.3})
    assert [w.split(" spans")[0] for w in both] == ["output", "target"]   # one warning does not hide another
    assert to_tensor(np.zeros((2, 3, 3), np.uint8)).dtype == torch.float32


# -- the objective term by term (survivors of benchmarks/mutation.py) -----------------------------------
class Detector(nn.Module):
    """A model that learns where the damage is: its mask loss is the mean of the mask, times 10."""

    learns_mask = True

    def mask_loss(self, mask):
        return mask.float().mean() * 10


class Parts(nn.Module):
    """A loss that reports two parts of itself (as the perceptual loss reports its layers)."""

    terms = {"parts/a": 1.0, "parts/b": 2.0}

    def forward(self, output, target):
        return (output - target).abs().mean()


def test_objective_adds_the_mask_loss_of_a_model_that_learns_it():
    from workbench.train.objective import Objective

    out, target = torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    objective = Objective([("l1", 1.0, nn.L1Loss()), ("parts", 2.0, Parts())])
    total, logged = objective(out, target, model=Detector(), mask=mask)
    assert total.item() == pytest.approx(0.5 + 2 * 0.5 + 5.0)
    assert logged == {"loss/l1": pytest.approx(torch.tensor(0.5)), "loss/parts": pytest.approx(torch.tensor(0.5)),
                      "loss/parts/a": 1.0, "loss/parts/b": 2.0, "loss/mask": pytest.approx(torch.tensor(5.0))}
    for model, m in ((Detector(), None), (Parts(), mask)):   # no mask, or a model that does not learn one
        total, logged = objective(out, target, model=model, mask=m)
        assert total.item() == pytest.approx(1.5) and "loss/mask" not in logged
    assert objective.plugins == [None, None]


class Returning(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, output, target):
        return self.value


@pytest.mark.parametrize("value, plugin, said", [
    (torch.ones(2), None, "loss 'bad' returned a tensor of shape (2,) and dtype torch.float32; a loss returns a scalar "
                          "float tensor (reduce it with .mean())."),
    (0.5, "mine.py", "loss 'bad' (plugin 'mine.py') returned float; a loss returns a scalar float tensor (reduce it "
                     "with .mean())."),
    (torch.tensor(1), None, "loss 'bad' returned a tensor of shape () and dtype torch.int64; a loss returns a scalar "
                            "float tensor (reduce it with .mean())."),
])
def test_a_loss_breaking_its_contract_is_named_with_what_it_returned(value, plugin, said):
    from workbench.train.objective import Objective

    objective = Objective([("bad", 1.0, Returning(value))], [plugin])
    with pytest.raises(WorkbenchError) as e:
        objective(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    assert str(e.value) == said


@pytest.mark.parametrize("weight, ok", [(0, True), (0.0, True), (2, True), (-0.5, False), (True, False), ("1", False)])
def test_loss_weights_are_numbers_from_zero(weight, ok):
    plugins = plugin_manager.load([])
    recipe = recipes.from_dict({"losses": [{"type": "l1"}, {"type": "mse", "weight": weight}]}, "r.toml", plugins)
    if ok:
        assert build_objective(recipe, plugins).weights == [1.0, float(weight)]
        return
    with pytest.raises(WorkbenchError) as e:
        build_objective(recipe, plugins)
    assert str(e.value) == f"r.toml: [[losses]] #2: weight must be a number >= 0, got {weight!r}."


def test_a_recipe_without_losses_trains_on_the_tasks_default():
    plugins = plugin_manager.load([])
    recipe = recipes.from_dict({}, "r.toml", plugins)
    recipe.cfg["losses"] = []
    assert build_objective(recipe, plugins).names == ["l1"]
    assert build_objective(recipe, plugins, default="mse").names == ["mse"]
    recipe.cfg["losses"] = [{"type": "l1"}, {"type": "l1", "weight": 0.5}]
    assert build_objective(recipe, plugins).names == ["l1", "l1#2"]
    recipe.cfg["losses"] = [{"type": "l1"}, {"type": "l1", "bogus": 1}]
    with pytest.raises(WorkbenchError, match=r"^r.toml: \[\[losses\]\] #2: loss 'l1' .*'bogus'"):
        build_objective(recipe, plugins)


def test_a_detecting_model_without_a_reporting_degradation_names_the_chain():
    from workbench.train.objective import check_mask_source

    class Plain:
        pass

    for chain, names in (([("jpeg", Plain()), ("blur", Plain())], "jpeg, blur"), ([], "none")):
        with pytest.raises(WorkbenchError, match=rf"none of the recipe's degradations \({names}\) reports one"):
            check_mask_source(Detector(), chain)
    check_mask_source(Plain(), [])   # a model that does not learn the mask needs none
