"""The `style` loss: Gram matrices of a frozen ResNet's features (random weights the test writes into
torchvision's cache), checked against a hand-written Gatys loss on features taken here, and its mistakes."""
import numpy as np
import pytest
import test_losses
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from workbench.errors import WorkbenchError
from workbench_plugins.style import Style

# test_losses' fixtures: ResNet-18 weights the test writes into a torchvision cache, and an offline torch hub
resnet18_state, torch_home, resnet18_file = test_losses.resnet18_state, test_losses.torch_home, test_losses.resnet18_file


@pytest.fixture
def painting(tmp_path):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:60, 0:90] / 60
    img = np.stack([np.sin(9 * x), np.cos(7 * y), np.sin(5 * (x + y))], -1) * 0.4 + 0.5 + rng.normal(0, 0.05, (60, 90, 3))
    path = tmp_path / "painting.png"
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def by_hand(resnet18_state, painting, out, target, style_size, sw, cw):
    """Gatys et al. by hand: ImageNet-normalised input, relu/layer1/layer2/layer3 of a plain torchvision
    ResNet-18 for style, layer2 for content; G = F F^T / (C H W); mean squared differences."""
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(resnet18_state)
    net.eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feats(img):
        x = (img - mean) / std
        r = net.relu(net.bn1(net.conv1(x)))
        l1 = net.layer1(net.maxpool(r))
        l2 = net.layer2(l1)
        return {"relu": r, "layer1": l1, "layer2": l2, "layer3": net.layer3(l2)}

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return torch.einsum("bik,bjk->bij", f, f) / (c * h * w)

    style = np.asarray(Image.open(painting).convert("RGB"), dtype=np.float32) / 255
    s = torch.from_numpy(style).permute(2, 0, 1)[None]
    h, w = s.shape[-2:]
    k = style_size / max(h, w)
    s = F.interpolate(s, size=(round(h * k), round(w * k)), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    with torch.no_grad():
        fs, fo, ft = feats(s), feats(out), feats(target)
    style_term = sum(((gram(fo[k]) - gram(fs[k])) ** 2).mean() for k in ("relu", "layer1", "layer2", "layer3"))
    content_term = ((fo["layer2"] - ft["layer2"]) ** 2).mean()
    return sw * style_term + cw * content_term, style_term, content_term


def test_style_equals_a_hand_written_gram_loss_on_the_same_features(resnet18_file, resnet18_state, painting):
    torch.manual_seed(1)
    out, target = torch.rand(2, 3, 40, 48), torch.rand(2, 3, 40, 48)
    loss = Style(style=str(painting), net="resnet18", style_weight=1e3, content_weight=0.5, style_size=64)
    got = loss(out, target)
    want, style_term, content_term = by_hand(resnet18_state, painting, out, target, 64, 1e3, 0.5)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    terms = loss.terms
    assert set(terms) == {"style/relu", "style/layer1", "style/layer2", "style/layer3", "content/layer2"}
    assert sum(v for k, v in terms.items() if k.startswith("style/")) == pytest.approx(style_term.item(), rel=1e-5)
    assert terms["content/layer2"] == pytest.approx(content_term.item(), rel=1e-5)
    # gradients reach the output, and the style image's own Gram is zero distance from itself
    out.requires_grad_(True)
    loss(out, target).backward()
    assert out.grad.abs().sum() > 0


def test_chosen_layers_and_weights(resnet18_file, painting):
    loss = Style(style=str(painting), net="resnet18", style_layers=["layer1"], content_layers=["layer3"], content_weight=0)
    assert loss.style_layers == ["layer1"] and loss.content_layers == ["layer3"]
    x = torch.rand(1, 3, 32, 32)
    assert set(loss.terms) == set() and loss(x, x).item() >= 0 and set(loss.terms) == {"style/layer1"}


def test_mistakes_are_one_line(resnet18_file, painting, tmp_path):
    with pytest.raises(ValueError, match="style image"):
        Style(net="resnet18")
    with pytest.raises(WorkbenchError, match="no such image file"):
        Style(style=str(tmp_path / "missing.jpg"), net="resnet18")
    (tmp_path / "not.png").write_text("text")
    with pytest.raises(WorkbenchError, match="not.png"):
        Style(style=str(tmp_path / "not.png"), net="resnet18")
    with pytest.raises(ValueError, match="style_weight"):
        Style(style=str(painting), net="resnet18", style_weight=-1)
    with pytest.raises(ValueError, match="unknown layer"):
        Style(style=str(painting), net="resnet18", style_layers=["layer9"])


def test_offline_without_weights_says_what_to_download(torch_home, painting):
    with pytest.raises(WorkbenchError, match="resnet18"):
        Style(style=str(painting), net="resnet18")
