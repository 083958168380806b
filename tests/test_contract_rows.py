"""`workbench check`'s rows, pinned (issue 17's mutation run): every row of a good degradation, model
and loss with its note, and each broken property's full sentence, so that a check made blind, a
message garbled or a property skipped fails a test."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.api.degradation import Degradation, DegradationError
from workbench.api.params import Param
from workbench.author import assert_degradation_contract, assert_loss_contract, assert_model_contract
from workbench.author.degradations import check_degradation, check_speed
from workbench.author.losses import check_loss
from workbench.author.models import _names, check_model
from workbench.author.probes import make_image

AT = " (at 48x64)"   # the first of the check sizes, named in a failure


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rows_of(deg, **kw):
    return check_degradation(deg, "broken", speed=False, **kw)


def failed(rows):
    return {prop: reason for prop, ok, reason in rows if not ok}


# -- degradations --------------------------------------------------------------------------------
class Noise(Degradation):
    def __init__(self):
        self.amount = Param([0.05, 0.1], name="amount")

    def __call__(self, img, rng):
        noise = torch.from_numpy(rng.standard_normal(img.shape).astype(np.float32))
        return (img + self.amount.sample(rng) * noise).clamp(0, 1)


class Gray(Degradation):
    def __call__(self, img, rng):
        return img.mean(0, keepdim=True).expand_as(img).clone()


def test_a_good_degradation_passes_every_row_with_its_note():
    rows = check_degradation(Noise(), "noise")
    assert [r[:2] for r in rows] == [(p, True) for p in ("shape, dtype, range", "determinism", "variety", "no mutation",
                                                          "odd/tiny/non-square sizes", "mask", "chains", "speed")]
    notes = dict((p, n) for p, _, n in rows)
    assert notes["odd/tiny/non-square sizes"] == "1x1, 2x9, 9x2, 8x8, 7x13, 33x20"
    assert notes["mask"] == "no mask claimed" and notes["shape, dtype, range"] == "" and notes["chains"] == ""
    assert re.fullmatch(r"\d+ ms/MP on 512x512", notes["speed"])
    fixed = dict((p, (ok, n)) for p, ok, n in rows_of(Gray()))
    assert fixed["variety"] == (True, "not random (is_random is not True): nothing to compare")
    assert_degradation_contract(Noise(), "noise", speed=False)


def out_of_range(img, rng):
    return img * 2


@pytest.mark.parametrize("fn, prop, reason", [
    (lambda img, rng: (img.clone(), None), "shape, dtype, range",
     "shape: returned a tuple, not a tensor: set reports_mask = True if it returns (img, mask)" + AT),
    (lambda img, rng: img.numpy().copy(), "shape, dtype, range", "shape: returned ndarray, not a tensor" + AT),
    (lambda img, rng: img.double(), "shape, dtype, range", "dtype: input torch.float32 came back as torch.float64" + AT),
    (lambda img, rng: torch.full_like(img, float("nan")), "shape, dtype, range", "range: values span [nan, nan], not [0, 1]" + AT),
    (lambda img, rng: img - 0.5, "shape, dtype, range", None),
    (out_of_range, "shape, dtype, range", None),
])
def test_each_broken_output_is_named_in_full(fn, prop, reason):
    class Broken(Degradation):
        def __call__(self, img, rng):
            return fn(img, rng)

    bad = failed(rows_of(Broken()))
    if reason is None:   # out of range: the span the first check image really reached
        img = make_image(48, 64)
        out = fn(img, None)
        reason = f"range: values span [{out.min().item():.3g}, {out.max().item():.3g}], not [0, 1]" + AT
    assert bad[prop] == reason
    with pytest.raises(AssertionError) as e:
        assert_degradation_contract(Broken(), "broken", speed=False)
    assert str(e.value).startswith(f"degradation 'broken' breaks the workbench contract:\n  {reason}")


def test_masks_are_checked_in_full():
    class NoTuple(Degradation):
        reports_mask = True

        def __call__(self, img, rng):
            return img.clone()

    class FloatMask(Degradation):
        reports_mask = True

        def __call__(self, img, rng):
            return img.clone(), torch.ones(1, *img.shape[1:])

    class Empty(Degradation):
        reports_mask = True

        def __call__(self, img, rng):
            return img.clone(), torch.zeros(1, *img.shape[1:], dtype=torch.bool)

    class Good(Degradation):
        reports_mask = True

        def __call__(self, img, rng):
            mask = torch.zeros(1, *img.shape[1:], dtype=torch.bool)
            mask[..., : max(1, img.shape[1] // 2), :] = True
            return img.clone(), mask

    assert failed(rows_of(NoTuple()))["shape, dtype, range"] == (
        "mask: reports_mask is set but it returned Tensor, not (img, mask)" + AT)
    class Triple(NoTuple):
        def __call__(self, img, rng):
            return img.clone(), None, None

    assert failed(rows_of(Triple()))["shape, dtype, range"] == (
        "mask: reports_mask is set but it returned tuple, not (img, mask)" + AT)
    assert failed(rows_of(FloatMask()))["shape, dtype, range"] == "mask: mask must be a bool tensor of shape (1, 48, 64)" + AT
    assert failed(rows_of(Empty()))["mask"] == "mask: reports_mask is True but the mask is empty for seeds [0, 1, 2, 3, 4]"
    good = dict((p, (ok, n)) for p, ok, n in rows_of(Good()))
    assert good["mask"] == (True, "") and all(ok for ok, _ in good.values())


def test_randomness_is_checked_both_ways():
    class ClaimsRandom(Gray):
        is_random = True

    class GlobalRandom(Degradation):
        def __call__(self, img, rng):
            return (img + 0.01 * torch.rand(1).item()).clamp(0, 1)

    class RandomForSeedZeroOnly(Gray):   # varies: one seed of five differs from the others
        is_random = True

        def __call__(self, img, rng):
            return (img * 0.5).clone() if rng.integers(0, 10 ** 9) == np.random.default_rng(0).integers(0, 10 ** 9) \
                else img.clone()

    assert failed(rows_of(RandomForSeedZeroOnly())).get("variety") is None
    assert failed(rows_of(ClaimsRandom()))["variety"] == (
        "variety: is_random is True but seeds [0, 1, 2, 3, 4] all gave the same output" + AT)
    reason = failed(rows_of(GlobalRandom()))["determinism"]
    assert re.fullmatch(r"determinism: two calls with seed 0 differ by up to [0-9.e-]+" + re.escape(AT), reason)


def test_a_crash_at_an_odd_size_names_the_size_and_the_row():
    class Crashes(Degradation):
        def __call__(self, img, rng):
            if img.shape[1] == 7:
                raise IndexError("block larger than the image\nsecond line")
            return img.clone()

    class Mutates(Degradation):
        def __call__(self, img, rng):
            if img.shape[1] == 2:
                img.mul_(0.5)
            return img.clone()

    bad = failed(rows_of(Crashes()))
    assert bad == {"odd/tiny/non-square sizes": "odd/tiny/non-square sizes: shape: raised IndexError: block larger than "
                                                "the image (at 7x13)"}
    bad = failed(rows_of(Mutates()))
    assert bad == {"odd/tiny/non-square sizes": "odd/tiny/non-square sizes: no mutation: the input image was modified in "
                                                "place (at 2x9)"}


def test_the_chain_row_is_the_engines_own_refusal():
    class Numpy(Degradation):
        def __call__(self, img, rng):
            return img.numpy().copy()

    assert failed(rows_of(Numpy()))["chains"] == (
        "chains: raised DegradationError: degradation 'broken': returned ndarray, expected a tensor")


def test_degradation_errors_from_a_worker_keep_only_the_message():
    marker = "workbench.api.degradation.DegradationError: "
    nested = f"Caught in worker 1.\n{marker}Caught in worker 0.\n{marker}the innermost words"
    assert str(DegradationError(nested)) == "the innermost words"
    text = ("Caught DegradationError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
            "  File ...\nworkbench.api.degradation.DegradationError: degradation 'x' returned uint8")
    assert str(DegradationError(text)) == "degradation 'x' returned uint8"
    assert str(DegradationError("plain words")) == "plain words"


def test_speed_is_the_best_of_its_repeats_and_stops_early_when_far_too_slow(monkeypatch):
    calls = []

    class Timed(Degradation):
        def __call__(self, img, rng):
            calls.append(img.shape)
            return img.clone()

    clock = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])   # three calls: 4 ms, 1 ms, 10 ms
    monkeypatch.setattr("workbench.author.degradations.time.perf_counter", lambda: next(clock))
    assert check_speed(Timed(), side=100) == pytest.approx(1 * 1000 / 0.01 / 1000)   # 1 ms on 0.01 MP = 100 ms/MP
    assert len(calls) == 3 and calls[0] == (3, 100, 100)
    calls.clear()
    clock = iter([0.0, 1.5, 9.0, 9.1])   # the first call alone takes 1.5 s: no second
    monkeypatch.setattr("workbench.author.degradations.time.perf_counter", lambda: next(clock))
    with pytest.raises(AssertionError, match=r"^speed: 150000 ms per megapixel on a 100x100 image, above the 2000 ms/MP limit$"):
        check_speed(Timed(), side=100)
    assert len(calls) == 1
    clock = iter([0.0, 0.02, 1.0, 1.02, 2.0, 2.02])   # exactly at the limit: 20 ms on 0.01 MP is 2000 ms/MP, allowed
    monkeypatch.setattr("workbench.author.degradations.time.perf_counter", lambda: next(clock))
    assert check_speed(Timed(), side=100) == pytest.approx(2000)


# -- models --------------------------------------------------------------------------------------
class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


def test_a_good_model_passes_every_row_with_its_note():
    assert check_model(Residual(), "res") == [("shape", True, "2x3x8x8, 2x3x17x23, 2x3x64x48"), ("finite", True, ""),
                                               ("no mutation", True, ""), ("gradients", True, "2 parameters")]
    assert_model_contract(Residual(), "res")


def test_broken_models_are_named_in_full():
    class Tuple(Residual):
        def forward(self, x):
            return (x,)

    class NaN(Residual):
        def forward(self, x):
            return self.conv(x) * float("nan")

    class Inplace(Residual):
        def forward(self, x):
            return x.add_(0.1) + self.conv(x)

    class Frozen(Residual):
        def __init__(self):
            super().__init__()
            self.conv.requires_grad_(False)

    bad = failed(check_model(Tuple()))
    assert bad["shape"] == "shape: returned tuple, not a tensor"
    assert bad["finite"] == "finite: no output to judge (the shape check failed)"
    bad = failed(check_model(NaN()))
    assert bad["finite"] == "finite: NaN or Inf in the output"
    assert bad["gradients"] == "gradients: NaN or Inf gradients in conv.weight, conv.bias"
    assert failed(check_model(Inplace())) == {"no mutation": "no mutation: the input batch was modified in place"}
    assert failed(check_model(Frozen())) == {"gradients": "gradients: the model has no trainable parameters"}
    with pytest.raises(AssertionError, match="^model 'frozen' breaks the workbench contract:\n  gradients: the model"):
        assert_model_contract(Frozen(), "frozen")
    assert _names(["a", "b", "c"]) == "a, b, c" and _names(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


def test_a_model_told_the_mask_gets_one_of_the_batch_size_with_a_hole():
    from workbench_plugins.unet import UNet

    seen = []

    class Probe(Residual):
        takes_mask = True

        def forward(self, x, mask):
            seen.append((tuple(mask.shape), mask.dtype, float(mask.float().mean())))
            return x + self.conv(x) + mask.float().mean() * 0

    assert all(ok for _, ok, _ in check_model(Probe()))
    assert (seen[0][0], seen[0][1]) == ((2, 1, 8, 8), torch.bool) and 0.2 < seen[0][2] < 0.3   # a quarter missing
    assert all(ok for _, ok, _ in check_model(UNet(widths=[8, 16], masked=True))), check_model(UNet(widths=[8, 16], masked=True))


def test_a_model_that_learns_nothing_is_named():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x * 0 + self.w * 0

    assert failed(check_model(Constant())) == {
        "gradients": "gradients: no parameter got a non-zero gradient from a backward pass"}


# -- losses --------------------------------------------------------------------------------------
def test_good_losses_pass_every_row():
    assert check_loss(lambda o, t: (o - t).abs().mean()) == [
        ("scalar", True, ""), ("finite", True, ""), ("differentiable", True, ""), ("zero for identical", True, ""),
        ("non-negative", True, "")]
    classify = [("scalar", True, "classification loss: logits B x C, class indices B"), ("finite", True, ""),
                ("differentiable", True, ""), ("lower when right", True, ""), ("non-negative", True, "")]
    def ce(logits, target):   # takes logits only: told apart by what it accepts
        assert logits.ndim == 2
        return F.cross_entropy(logits, target)

    assert check_loss(ce) == classify

    class Declared(nn.Module):
        task = "classify"

        def forward(self, logits, target):
            return F.cross_entropy(logits, target)

    assert check_loss(Declared()) == classify

    def constant(logits, target):   # no better for the right classes than for wrong ones
        assert logits.ndim == 2
        return (logits * 0).sum() + 1.0

    assert failed(check_loss(constant))["lower when right"] == (
        "lower when right: 1 for logits favouring the targets, 1 for wrong ones")
    assert_loss_contract(ce, "ce")


def test_broken_losses_are_named_in_full():
    shape = "(2, 3, 32, 32)"
    assert failed(check_loss(lambda o, t: (o - t).abs()))["scalar"] == (
        f"scalar: returned shape {shape}, not a 0-dim tensor (reduce with .mean())")
    assert failed(check_loss(lambda o, t: 0.5))["scalar"] == "scalar: returned float, not a 0-dim tensor (reduce with .mean())"
    assert failed(check_loss(lambda o, t: (o - t).abs().mean() + 0.125))["zero for identical"] == (
        f"zero for identical: 0.125 for identical output and target {shape}")
    assert failed(check_loss(lambda o, t: (o - t).sum() * 0 - 0.5))["non-negative"] == f"non-negative: -0.5 for output {shape}"
    assert failed(check_loss(lambda o, t: (o - t).abs().mean().detach()))["differentiable"] == (
        "differentiable: the value does not depend on the output through autograd")
    assert failed(check_loss(lambda o, t: (o.round() - t).abs().mean()))["differentiable"] == (
        f"differentiable: zero gradient for a different output and target {shape}")
    assert failed(check_loss(lambda o, t: (o - t).abs().mean() * float("inf")))["finite"] == f"finite: inf for output {shape}"
    assert failed(check_loss(lambda o, t: (o - t).abs().mean() * float("inf")))["differentiable"] == (
        f"differentiable: NaN or Inf gradient for output {shape}")

    def backwards(logits, target):
        assert logits.ndim == 2
        return F.cross_entropy(-logits, target)

    reason = failed(check_loss(backwards))["lower when right"]
    target = torch.tensor([0, 1, 2, 3])
    right, wrong = F.one_hot(target, 5).float() * 10, F.one_hot((target + 1) % 5, 5).float() * 10
    r, w = backwards(right, target).item(), backwards(wrong, target).item()
    assert reason == f"lower when right: {r:.3g} for logits favouring the targets, {w:.3g} for wrong ones"
    with pytest.raises(AssertionError, match="^loss 'back' breaks the workbench contract:\n  lower when right: "):
        assert_loss_contract(backwards, "back")


def test_a_classifier_of_the_wrong_shape_and_every_failure_listed():
    class WrongBatch(nn.Module):
        task = "classify"

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 5)

        def forward(self, x):
            return self.fc(x.mean((2, 3)))[:1]

    class ThreeD(WrongBatch):
        def forward(self, x):
            return self.fc(x.mean((2, 3)))[..., None]

    assert failed(check_model(WrongBatch()))["shape"] == "shape: input (2, 3, 8, 8) gave (1, 5), not B x classes logits"
    assert failed(check_model(ThreeD()))["shape"] == "shape: input (2, 3, 8, 8) gave (2, 5, 1), not B x classes logits"
    with pytest.raises(AssertionError) as e:
        assert_loss_contract(lambda o, t: (o - t).abs() - 1, "two")
    lines = str(e.value).split("\n")
    assert lines[0] == "loss 'two' breaks the workbench contract:" and len(lines) >= 3
    assert all(line.startswith("  ") and ": " in line for line in lines[1:])


def test_a_silent_crash_and_a_measured_difference_are_told_exactly():
    class Silent(Degradation):
        def __call__(self, img, rng):
            raise ValueError()

    assert failed(rows_of(Silent()))["determinism"] == "determinism: raised ValueError:  (at 48x64)"

    class Alternates(Degradation):
        def __init__(self):
            self.calls = 0

        def __call__(self, img, rng):
            self.calls += 1
            return img * 0.5 + 0.25 * (self.calls % 2)

    assert failed(rows_of(Alternates()))["determinism"] == "determinism: two calls with seed 0 differ by up to 0.25" + AT
