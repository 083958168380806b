"""The EDSR plugin: identity at init, any size, training moves it, gradients reach the head, errors."""
import pytest
import torch

from workbench_plugins import edsr as edsr_plugin
from workbench_plugins.edsr import EDSR

SIZES = [(1, 3, 8, 8), (2, 3, 17, 23), (1, 3, 16, 9), (1, 3, 1, 1)]
SMALL = dict(channels=8, blocks=2)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("cfg", [{}, {"act": "gelu", "res_scale": 1.0}, {"act": "leaky", "blocks": 1, "channels": 4}], ids=str)
def test_untrained_edsr_returns_its_input(cfg):
    model = EDSR(**cfg).eval()  # no batch norm: train and eval modes compute the same
    for size in SIZES:
        img = torch.rand(size)
        with torch.no_grad():
            out = model(img)
        assert out.shape == img.shape
        assert (out - img).abs().max() <= 1e-6, (cfg, size)


def test_identity_holds_with_gradients_and_autocast():
    model, img = EDSR(**SMALL), torch.rand(2, 3, 12, 10)
    assert torch.equal(model(img), img)  # grad mode too
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(img)
    assert out.dtype == torch.float32 and torch.equal(out, img)


def loss_of(model, img):
    return (model(img) - img.flip(-1)).abs().mean()


def test_one_step_changes_the_output_and_gradients_reach_the_head():
    model, img = EDSR(**SMALL), torch.rand(4, 3, 16, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_of(model, img).backward()
    # At init the zero tail blocks the path back: only the tail learns in the first step ...
    assert model.tail.weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    # ... after which every layer, the head included, gets a gradient.
    loss_of(model, img).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead
    model.eval()
    for size in [(1, 3, 17, 23), (1, 3, 8, 8)]:
        x = torch.rand(size)
        with torch.no_grad():
            out = model(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert (out - x).abs().max() > 1e-4


def reference(model, img):
    """EDSR's forward written out of place, from the same weights."""
    x = feat = model.head(img)
    for block in model.body[:-1]:
        x = x + block.res_scale * block.convs(x)
    return img + model.tail(model.body[-1](x) + feat)


def test_in_place_ops_leave_autograd_correct():
    """The in-place scale and adds must not corrupt what autograd saved: same gradients as out of place."""
    model, img = EDSR(channels=4, blocks=2, res_scale=0.5), torch.rand(2, 3, 6, 7)
    with torch.no_grad():
        model.tail.weight.normal_(0, 0.1)  # off zero, so every path carries gradient
    grads = []
    for fwd in (model, lambda x: reference(model, x)):
        model.zero_grad()
        loss_of(fwd, img).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


@pytest.mark.parametrize("kw, name", [({"channels": 0}, "channels"), ({"channels": 2.5}, "channels"),
                                      ({"blocks": 0}, "blocks"), ({"blocks": True}, "blocks"),
                                      ({"res_scale": 0}, "res_scale"), ({"res_scale": -1.0}, "res_scale"),
                                      ({"res_scale": "big"}, "res_scale"), ({"act": "tanh"}, "act")], ids=str)
def test_bad_options_name_the_option(kw, name):
    with pytest.raises(ValueError, match=name):
        EDSR(**kw)


def test_registers_and_documents_itself():
    names = {}
    edsr_plugin.register_models(lambda name, obj: names.setdefault(name, obj))
    assert names == {"edsr": EDSR}
    doc = EDSR.__doc__  # `workbench list models -v` shows the first line and the parameters
    assert doc.splitlines()[0] and all(f"{k}:" in doc for k in ("channels", "blocks", "res_scale", "act"))


def test_parameter_count_is_reported():
    n = sum(p.numel() for p in EDSR().parameters())
    print(f"EDSR() has {n:,} parameters")
    assert n > 0
