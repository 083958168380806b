"""The plugin contract as code: every capability has a default, is read through one helper, and is
documented in the plugin guide (docs/plugins.md), so the guide and the engine cannot drift."""
import re
from pathlib import Path

import pytest
import torch

from workbench.api.contracts import CONTRACTS, Degradation, Model, capabilities, capability
from workbench.errors import WorkbenchError
from workbench_plugins.classifier import Classifier
from workbench_plugins.downsample import Downsample
from workbench_plugins.unet import UNet

GUIDE = Path(__file__).parents[1] / "docs" / "plugins.md"


def test_a_bare_callable_gets_every_default():
    def deg(img, rng):
        return img

    assert capability(deg, "reports_mask") is False and capability(deg, "keeps_luma") is False
    assert capability(deg, "is_random") is None and capability(deg, "scale_factor") == 1
    assert capability(deg, "baselines") == () and capability(deg, "outpaint")() is None
    photo = torch.rand(3, 4, 5)
    assert capability(deg, "prepare")(photo) is photo and capability(deg, "shrink")(photo, None) is None
    assert capability(torch.nn.Identity(), "takes_mask") is False and capability(torch.nn.Identity(), "task") == "restore"
    assert capability(torch.nn.L1Loss(), "default_weight") == 1.0 and capability(torch.nn.L1Loss(), "terms") == {}


def test_declared_capabilities_win_on_instances_and_on_classes():
    assert capability(Downsample(scale=[2, 4]), "scale_factor") == 4
    assert capability(Downsample(), "baselines") == ("bicubic", "lanczos")
    assert capability(Classifier, "task") == "classify" and capability(UNet, "task") == "restore"
    assert capability(UNet(widths=[8, 16], masked=True), "takes_mask") is True


def test_a_mask_reporter_is_judged_beside_the_inpainting_baselines_by_default():
    class Holes(Degradation):
        reports_mask = True

    assert capability(Holes(), "baselines") == ("telea", "navier-stokes", "push-pull")


def test_wrappers_are_seen_through():
    net = UNet(widths=[8, 16], masked=True)
    assert capability(torch.nn.DataParallel(net), "takes_mask") is True


def test_a_misspelt_capability_is_an_engine_error():
    with pytest.raises(WorkbenchError, match="unknown capability 'report_mask'"):
        capability(Downsample(), "report_mask")


def test_model_defaults_are_harmless():
    assert capability(object(), "mask_loss")(torch.zeros(1)) is None
    assert list(capability(object(), "encoder_parameters")()) == []
    assert isinstance(Model(), Model)


@pytest.mark.parametrize("kind", sorted(CONTRACTS))
def test_every_capability_is_in_the_plugin_guide(kind):
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([a-z, ]+) \|", GUIDE.read_text(), re.M)}
    for name in capabilities(kind):
        assert name in rows, f"docs/plugins.md has no row for the {kind} capability `{name}`"
        assert kind in rows[name], f"docs/plugins.md: `{name}` should say it is a {kind} capability"


def test_the_guide_documents_no_capability_the_engine_does_not_read():
    rows = re.findall(r"^\| `(\w+)` \| (?:degradation|model|loss)", GUIDE.read_text(), re.M)
    known = {n for kind in CONTRACTS for n in capabilities(kind)}
    assert set(rows) <= known, set(rows) - known


def test_a_capability_is_described_by_its_docstrings_first_line():
    import inspect

    from workbench.api.contracts import CONTRACTS, capabilities

    described = capabilities("degradation")
    first = inspect.getdoc(vars(CONTRACTS["degradation"])["reports_mask"]).split("\n")[0]
    assert described["reports_mask"] == first and " " in first and "\n" not in first

