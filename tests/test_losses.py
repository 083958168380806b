"""Loss plugins: pixel losses, cross-entropy, and the perceptual loss with torchvision weights the
test writes itself (no network) or a classifier run directory from a stand-in model plugin."""
import textwrap
import urllib.error

import pytest
import torch
import torchvision

from workbench.api import pretrained
from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint
from workbench_plugins.losses import L1, MSE, Charbonnier, CrossEntropy
from workbench_plugins.perceptual import Perceptual


def images(seed=0, b=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g)


@pytest.mark.parametrize("make", [MSE, L1, Charbonnier])
def test_pixel_losses(make):
    loss, y = make(), images(0)
    x = images(1).requires_grad_()
    assert loss(y.clone(), y).item() == pytest.approx(0, abs=1e-7)
    value = loss(x, y)
    assert value.ndim == 0 and torch.isfinite(value) and value.item() > 0
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_charbonnier_is_l1_for_large_errors():
    x, y = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert Charbonnier()(x, y).item() == pytest.approx(L1()(x, y).item(), abs=2e-3)


def test_pixel_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        L1()(images(0), images(0, size=16))


@pytest.mark.parametrize("bad", [dict(eps=0), dict(eps=-1), dict(eps="a")])
def test_charbonnier_bad_eps(bad):
    with pytest.raises(ValueError, match="eps"):
        Charbonnier(**bad)


def test_cross_entropy_on_logits():
    logits, labels = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]], requires_grad=True), torch.tensor([0, 2])
    assert CrossEntropy()(logits, labels).item() > CrossEntropy(label_smoothing=0)(logits, labels).item() > 0
    assert CrossEntropy()(logits, torch.tensor([1, 1])).item() > CrossEntropy()(logits, labels).item()
    CrossEntropy()(logits, labels).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropy(label_smoothing=1.0)


def test_losses_are_registered():
    from workbench_plugins import losses, perceptual

    names = {}
    for mod in (losses, perceptual):
        mod.register_losses(lambda name, obj: names.setdefault(name, obj))
    assert set(names) == {"mse", "l1", "charbonnier", "cross_entropy", "perceptual"}
    assert Perceptual.default_weight == 0.1
    for obj in names.values():  # `workbench list losses -v` shows a summary line, then parameter docs
        assert obj.__doc__.strip().splitlines()[0]


# --- perceptual with torchvision weights -----------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    return tmp_path / "torch"


@pytest.fixture
def resnet18_file(torch_home, resnet18_state):
    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert pretrained.weights_path("resnet18") == path  # torchvision's own cache name, under $TORCH_HOME
    path.parent.mkdir(parents=True)
    torch.save(resnet18_state, path)
    return path


def test_perceptual_resnet18_from_cached_file(resnet18_file, resnet18_state):
    loss = Perceptual(net="resnet18")
    assert loss.layers == ["layer1", "layer2", "layer3"]
    for k, v in loss.net.state_dict().items():
        assert torch.equal(v, resnet18_state[k]), k
    assert not any(p.requires_grad for p in loss.net.parameters())

    ran_layer4 = []
    loss.net.layer4.register_forward_hook(lambda *a: ran_layer4.append(1))
    y = images(0)
    assert loss(y.clone(), y).item() == pytest.approx(0, abs=1e-6)
    x = images(1).requires_grad_()
    value = loss(x, y)
    assert value.ndim == 0 and value.item() > 0
    assert set(loss.terms) == {"perceptual/layer1", "perceptual/layer2", "perceptual/layer3"}
    assert value.item() == pytest.approx(sum(loss.terms.values()) / 3, rel=1e-5)
    value.backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.net.parameters())
    assert not ran_layer4  # the forward pass stops after the deepest requested layer

    with torch.no_grad():
        want = loss._features(y)
    assert not any(f.requires_grad for f in want.values())
    loss.train()
    assert loss.training and not loss.net.training  # BatchNorm keeps its ImageNet statistics


def test_perceptual_layer_weights_and_mse(resnet18_file):
    loss = Perceptual(net="resnet18", layers=["layer1", "layer2"], distance="mse", layer_weights=[0, 1])
    loss(images(1), images(0))
    value = loss(images(1), images(0))
    assert value.item() == pytest.approx(loss.terms["perceptual/layer2"], rel=1e-5)


def test_perceptual_downloads_when_cache_is_empty(torch_home, resnet18_state, monkeypatch):
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return resnet18_state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    Perceptual(net="resnet18")
    (url, kwargs), = calls
    assert url == pretrained.weights_url("resnet18")
    assert kwargs["check_hash"] and kwargs["weights_only"]


def test_perceptual_offline_without_weights(torch_home):
    with pytest.raises(WorkbenchError) as err:
        Perceptual(net="resnet18")
    message = str(err.value)
    assert str(pretrained.weights_path("resnet18")) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "\n" not in message


def test_corrupt_weights_file(torch_home):
    path = pretrained.weights_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a weights file")
    with pytest.raises(WorkbenchError, match="corrupt") as err:
        Perceptual(net="resnet18")
    assert str(path) in str(err.value)
    torch.save({"unrelated": torch.zeros(1)}, path)
    with pytest.raises(WorkbenchError, match="does not hold resnet18 weights"):
        Perceptual(net="resnet18")


class Evil:
    """A pickle that would create `marker` when unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_weights_file_is_refused(torch_home, tmp_path):
    path, marker = pretrained.weights_path("resnet18"), tmp_path / "pwned"
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": Evil(marker)}, path)
    with pytest.raises(WorkbenchError, match="refused"):
        Perceptual(net="resnet18")
    assert not marker.exists()


def test_vgg16_bn_default_layers_are_relus():
    # The full vgg16_bn state dict is ~500 MB: check the layer names on the meta device instead.
    with torch.device("meta"):
        vgg = torchvision.models.vgg16_bn(weights=None)
    from workbench_plugins.perceptual import DEFAULT_LAYERS
    assert all(isinstance(vgg.get_submodule(k), torch.nn.ReLU) for k in DEFAULT_LAYERS["vgg16_bn"])


def test_bad_layers_and_distance(resnet18_file):
    with pytest.raises(ValueError, match=r"unknown layer 'layr2'.*Did you mean 'layer2'.*layer1"):
        Perceptual(net="resnet18", layers=["layr2"])
    with pytest.raises(ValueError, match="distance"):
        Perceptual(net="resnet18", distance="l3")
    with pytest.raises(ValueError, match="layer_weights"):
        Perceptual(net="resnet18", layer_weights=[1, 2])


def test_unknown_net_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkbenchError, match="Did you mean 'vgg16_bn'"):
        Perceptual(net="vgg16bn")


# --- perceptual with a classifier run directory ----------------------------------------------

TINY_PLUGIN = """
    from torch import nn
    from workbench import hookimpl

    class TinyClf(nn.Module):
        def __init__(self, *, classes=4):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                                        for _ in range(3))
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

        def forward(self, x):
            x = self.stem(x)
            for stage in self.stages:
                x = stage(x)
            return self.head(x)

    @hookimpl
    def register_models(register):
        register("tinyclf", TinyClf)
"""


@pytest.fixture
def classifier_run(tmp_path, monkeypatch):
    plugin = tmp_path / "tiny_plugin.py"
    plugin.write_text(textwrap.dedent(TINY_PLUGIN))
    monkeypatch.setenv(plugin_manager.ENV_VAR, str(plugin))
    torch.manual_seed(0)
    net = plugin_manager.load().models.get("tinyclf")()
    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": net.state_dict(), "recipe": {"model": {"type": "tinyclf"}}},
                    run / "checkpoints" / "best.pt")
    return run, net


def test_perceptual_classifier_run(classifier_run):
    run, net = classifier_run
    loss = Perceptual(net=str(run))
    assert loss.layers == ["stages.0", "stages.1"] and loss.mean is None
    for k, v in loss.net.state_dict().items():
        assert torch.equal(v, net.state_dict()[k])
    y, x = images(0), images(1).requires_grad_()
    assert loss(y.clone(), y).item() == pytest.approx(0, abs=1e-6)
    value = loss(x, y)
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    assert set(loss.terms) == {"perceptual/stages.0", "perceptual/stages.1"}

    named = Perceptual(net=str(run / "checkpoints" / "best.pt"), layers=["stem", "stages.2.0"])
    assert named(x, y).item() > 0 and set(named.terms) == {"perceptual/stem", "perceptual/stages.2.0"}
    with pytest.raises(ValueError, match="Did you mean 'stages.1'"):
        Perceptual(net=str(run), layers=["stage.1"])


def test_malicious_checkpoint_is_refused(classifier_run, tmp_path):
    run, net = classifier_run
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "model": Evil(marker), "recipe": {"model": {"type": "tinyclf"}}},
               run / "checkpoints" / "best.pt")
    with pytest.raises(WorkbenchError, match="refused"):
        Perceptual(net=str(run))
    assert not marker.exists()


def test_missing_run_directory(tmp_path):
    with pytest.raises(WorkbenchError, match="run directory"):
        Perceptual(net=str(tmp_path / "no-such-run"))
