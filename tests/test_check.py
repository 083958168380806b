"""`workbench check`: every built-in keeps the contract; deliberately broken components are caught by name."""
import json
import re
import time

import pytest
import torch
from torch import nn

from workbench.api import registry as plugin_manager
from workbench.api.degradation import Degradation
from workbench.api.params import Param
from workbench.author import (
    assert_degradation_contract,
    assert_loss_contract,
    assert_model_contract,
)
from workbench.author.components import (
    check_component,
    find_kinds,
    format_rows,
    to_json,
)
from workbench.author.degradations import check_degradation, check_speed
from workbench.author.losses import check_loss
from workbench.author.models import check_model
from workbench.errors import WorkbenchError

ALL = plugin_manager.load()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny convolutions run several times faster on one thread than on threads contending for cores.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def failed(rows):
    return {prop: reason for prop, ok, reason in rows if not ok}


def only(name, kind):
    (found,) = [rows for k, rows in check_component(ALL, name) if k == kind]
    return found


@pytest.mark.parametrize("name", ALL.degradations.names())
def test_builtin_degradations_pass(name):
    rows = only(name, "degradation")
    assert not failed(rows), format_rows(name, "degradation", rows)
    assert [p for p, _, _ in rows] == ["build", "shape, dtype, range", "determinism", "variety", "no mutation",
                                       "odd/tiny/non-square sizes", "mask", "chains", "speed", "baselines and scale"]


# `published` needs a weights file to build (tests/test_published.py checks it on small published nets)
@pytest.mark.parametrize("name", [n for n in ALL.models.names() if n != "published"])
def test_builtin_models_pass(name):
    rows = only(name, "model")
    assert not failed(rows), format_rows(name, "model", rows)


def test_classifier_is_built_with_classes():
    assert ("build", True, "built with classes=3") in only("classifier", "model")


@pytest.mark.parametrize("name", [n for n in ALL.losses.names() if n not in ("perceptual", "style")])   # both need weights (style: and an image)
def test_builtin_losses_pass(name):
    rows = only(name, "loss")
    assert not failed(rows), format_rows(name, "loss", rows)


def test_missing_pretrained_weights_are_a_failing_row_not_a_crash(monkeypatch, tmp_path):
    # Offline, as here: an empty torch cache and a download that fails.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    rows = only("perceptual", "loss")
    assert [p for p, _, _ in rows] == ["build"]
    reason = failed(rows)["build"]
    assert reason.startswith("build: loss 'perceptual'") and "not available offline" in reason and "\n" not in reason


# -- broken degradations: each caught by the property it breaks -------------------------------------
class Mutates(Degradation):
    def __call__(self, img, rng):
        return img.mul_(0.5)


class IgnoresSeed(Degradation):
    """Random, but from torch's global generator instead of rng."""

    def __init__(self):
        self.amount = Param([0.1, 0.3], name="amount")

    def __call__(self, img, rng):
        return (img + self.amount.sample(rng) * torch.rand_like(img)).clamp(0, 1)


class Shrinks(Degradation):
    def __call__(self, img, rng):
        return img[:, ::2, ::2].clone()


class EmptyMask(Degradation):
    reports_mask = True

    def __call__(self, img, rng):
        return img.clone(), torch.zeros(1, *img.shape[1:], dtype=torch.bool)


class CrashesWhenTiny(Degradation):
    def __call__(self, img, rng):
        if min(img.shape[1:]) < 3:
            raise IndexError("block larger than the image")
        return img.clone()


@pytest.mark.parametrize("deg, prop, words", [
    (Mutates(), "no mutation", "modified in place"),
    (IgnoresSeed(), "determinism", "two calls with seed 0 differ"),
    (Shrinks(), "shape, dtype, range", "came back as"),
    (EmptyMask(), "mask", "mask is empty"),
    (CrashesWhenTiny(), "odd/tiny/non-square sizes", "raised IndexError: block larger than the image (at 1x1)"),
], ids=lambda v: type(v).__name__ if isinstance(v, Degradation) else None)
def test_broken_degradation_is_caught(deg, prop, words):
    bad = failed(check_degradation(deg, "broken", speed=False))
    assert prop in bad, bad
    assert bad[prop].startswith(prop.split(",")[0]) and words in bad[prop] and "\n" not in bad[prop]
    with pytest.raises(AssertionError, match=re.escape(words)):
        assert_degradation_contract(deg, "broken", speed=False)


def test_shrinking_degradation_fails_shape_only_where_expected():
    bad = failed(check_degradation(Shrinks(), "broken", speed=False))
    assert bad["shape, dtype, range"] == "shape: input (3, 48, 64) came back as (3, 24, 32) (at 48x64)"
    assert "determinism" not in bad and "no mutation" not in bad


def test_slow_degradation_is_flagged():
    class Slow(Degradation):
        def __call__(self, img, rng):
            time.sleep(0.01)  # 10 ms for 64 x 64 pixels is about 2400 ms per megapixel
            return img.clone()
    with pytest.raises(AssertionError, match="speed: .* ms per megapixel on a 64x64 image, above the 2000 ms/MP limit"):
        check_speed(Slow(), side=64)
    assert check_speed(Shrinks(), side=64) < 2000


# -- broken models and losses -----------------------------------------------------------------------
class Unpadded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x):
        return self.conv(x)


class UnusedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.spare = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(2, 2)

    def forward(self, x):
        return x + self.conv(x)


def test_broken_models_are_caught():
    bad = failed(check_model(Unpadded(), "broken"))
    assert bad["shape"] == "shape: input (2, 3, 8, 8) came back as (2, 3, 6, 6)"
    bad = failed(check_model(UnusedLayer(), "broken"))
    assert list(bad) == ["gradients"] and "2 of 4 parameters got no gradient" in bad["gradients"]
    assert "spare.weight, spare.bias" in bad["gradients"]
    with pytest.raises(AssertionError, match="model 'broken' breaks the workbench contract:\n  shape: "):
        assert_model_contract(Unpadded(), "broken")


def test_model_check_leaves_the_model_untouched():
    model = UnusedLayer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_model(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("loss, prop", [
    (lambda out, target: (out - target).abs().mean() + 0.1, "zero for identical"),
    (lambda out, target: -(out - target).abs().mean(), "non-negative"),
    (lambda out, target: (out - target).abs(), "scalar"),
    (lambda out, target: (out - target).abs().mean().detach(), "differentiable"),
    (lambda out, target: (out - target).abs().mean() / (out - target).abs().amin(), "finite"),
])
def test_broken_losses_are_caught(loss, prop):
    bad = failed(check_loss(loss, "broken"))
    assert prop in bad and bad[prop].startswith(f"{prop}: "), bad
    with pytest.raises(AssertionError, match=prop):
        assert_loss_contract(loss, "broken")


# -- finding names, output forms and the command line --------------------------------------------
def test_unknown_name_lists_what_is_available():
    with pytest.raises(WorkbenchError, match=r"Unknown degradation, model or loss 'jpg'\. Did you mean 'jpeg'\? "
                                             r"Available degradations: blur, .*; models: classifier, .*; losses: "):
        find_kinds(ALL, "jpg")


def test_format_and_json():
    rows = [("build", True, "default parameters"), ("no mutation", False, "no mutation: the input image was modified in place")]
    assert format_rows("x", "degradation", rows).splitlines() == [
        "degradation 'x': 1 of 2 checks failed", "  PASS  build  (default parameters)",
        "  FAIL  no mutation: the input image was modified in place"]
    assert json.loads(json.dumps(to_json("x", "degradation", rows)))["checks"][1] == {
        "property": "no mutation", "passed": False, "reason": "no mutation: the input image was modified in place"}


BROKEN_PLUGIN = '''
from workbench import hookimpl

class Inplace:
    def __init__(self):
        pass
    def __call__(self, img, rng):
        return img.clamp_(0, 0.5)

@hookimpl
def register_degradations(register):
    register("inplace", Inplace)
'''


def test_cli_exit_status(run_cli, tmp_path):
    result = run_cli("check", "grayscale", "l1")
    assert result.exit_code == 0, result.output
    assert "degradation 'grayscale': all 10 checks passed" in result.output and "loss 'l1': all 6" in result.output
    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN_PLUGIN)
    result = run_cli("--plugin", plugin, "check", "inplace", "--json")
    assert result.exit_code == 1, result.output   # a failed check, not a usage mistake (2)
    (entry,) = json.loads(result.output)
    assert entry["name"] == "inplace" and entry["passed"] is False
    assert "no mutation: the input image was modified in place (at 48x64)" in [c["reason"] for c in entry["checks"]]
    result = run_cli("check", "grayscale", "jpg")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Did you mean 'jpeg'?" in result.output
