"""The U-Net and classifier plugins: identity at init, any size, gradients, encoder transfer, errors."""
import pytest
import torch

from workbench.api.layers import ResBlock, groups_for, make_stage
from workbench.runs import checkpoint
from workbench_plugins import classifier as classifier_plugin
from workbench_plugins import unet as unet_plugin
from workbench_plugins.classifier import Classifier
from workbench_plugins.unet import UNet

SIZES = [(1, 3, 8, 8), (2, 3, 17, 23), (1, 3, 64, 64), (1, 3, 33, 40)]
CONFIGS = [{}, {"blocks": 2}, {"cross_connections": True}, {"preact": True}, {"norm": "instance"},
           {"norm": "group"}, {"norm": "none"}, {"act": "gelu"}, {"widths": [16, 32]},
           {"act": "leaky", "preact": True, "norm": "none"}, {"widths": [3, 8]}, {"widths": [8]}]


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_untrained_unet_returns_its_input(cfg):
    model = UNet(**cfg)
    for train in (True, False):
        model.train(train)
        for size in SIZES:
            img = torch.rand(size)
            with torch.no_grad():
                out = model(img)
            assert out.shape == img.shape
            assert (out - img).abs().max() <= 1e-6, (cfg, train, size)


def test_identity_holds_with_gradients_and_autocast():
    model, img = UNet(), torch.rand(2, 3, 20, 28)
    assert torch.equal(model(img), img)  # grad mode: the in-place adds take other paths
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(img)
    # The image skip stays float32 under autocast, so the identity is exact and not rounded to bf16.
    assert out.dtype == torch.float32 and torch.equal(out, img)


def test_tiny_images_fall_back_to_replicate_padding():
    model = UNet().eval()
    for size in [(1, 3, 1, 1), (1, 3, 2, 5), (1, 3, 3, 100)]:
        img = torch.rand(size)
        assert torch.equal(model(img), img)


def train_step(model, img, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss = (model(img) - img.flip(-1)).abs().mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("cfg", [{}, {"cross_connections": True, "preact": True}, {"norm": "none", "act": "silu"},
                                 {"norm": "group", "act": "gelu"}, {"norm": "instance", "act": "leaky", "blocks": 2}], ids=str)
def test_training_changes_the_output_and_keeps_any_size(cfg):
    model = UNet(widths=[8, 16, 32], **cfg)
    train_step(model, torch.rand(4, 3, 32, 32))
    model.eval()
    for size in [(1, 3, 17, 23), (2, 3, 9, 40), (1, 3, 64, 64)]:
        img = torch.rand(size)
        with torch.no_grad():
            out = model(img)
        assert out.shape == img.shape and torch.isfinite(out).all()
        assert (out - img).abs().max() > 1e-4


def test_gradients_reach_every_parameter():
    model = UNet(widths=[8, 16, 32], cross_connections=True)
    img = torch.rand(4, 3, 32, 32)
    (model(img) - img.flip(-1)).abs().mean().backward()
    # At init the zeroed last layers block the path back, but the encoder is still in the graph.
    assert all(p.grad is not None for p in model.encoder_parameters())
    model.zero_grad()
    train_step(model, img)
    (model(img) - img.flip(-1)).abs().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_unet_structure_and_stride():
    model = UNet(widths=[8, 16, 32, 64], blocks=2)
    assert model.stride == 8
    assert len(model.down) == 3 and len(model.up) == 4 and model.cross is None
    assert all(len(stage) == 2 for stage in model.down)
    assert {id(p) for p in model.encoder_parameters()} == {id(p) for m in (model.start, model.down) for p in m.parameters()}
    assert len(UNet(widths=[8, 16], cross_connections=True).cross) == 1


@pytest.mark.parametrize("size", [32, 64])
def test_classifier_output(size):
    model = Classifier(classes=7, widths=[8, 16, 32])
    assert model(torch.rand(3, 3, size, size)).shape == (3, 7)
    model.eval()
    assert model(torch.rand(1, 3, size + 1, size - 3)).shape == (1, 7)
    assert Classifier(classes=2, preact=True, widths=[8, 16])(torch.rand(2, 3, size, size)).shape == (2, 2)


def test_classifier_and_unet_encoder_share_structure():
    clf, net = Classifier(classes=3), UNet()
    theirs = {k.replace("stem.", "start.", 1).replace("stages.", "down.", 1): v.shape
              for k, v in clf.state_dict().items() if k.startswith(("stem.", "stages."))}
    mine = {k: v.shape for k, v in net.state_dict().items() if k.startswith(("start.", "down."))}
    assert theirs == mine


def save_classifier(tmp_path, **params):
    clf = Classifier(classes=5, **params)
    clf.train()(torch.rand(4, 3, 16, 16))  # move the batch-norm statistics away from their defaults
    state = {"format": 1, "model": clf.state_dict(), "recipe": {"model": {"type": "classifier", "classes": 5, **params}}}
    checkpoint.save(state, tmp_path / "run" / "checkpoints" / "best.pt")
    return clf


def test_encoder_transfer(tmp_path):
    clf = save_classifier(tmp_path, widths=[16, 32, 64])
    net = UNet(widths=[16, 32], encoder=str(tmp_path / "run"))
    ours = net.state_dict()
    for k, v in clf.state_dict().items():
        if k.startswith("stem."):
            assert torch.equal(ours["start." + k[5:]], v), k
        elif k.startswith("stages.0."):
            assert torch.equal(ours["down." + k[7:]], v), k
    file = tmp_path / "run" / "checkpoints" / "best.pt"
    assert torch.equal(UNet(widths=[16, 32], encoder=str(file)).start.convs[0][0].weight, clf.stem.convs[0][0].weight)
    img = torch.rand(1, 3, 16, 16)
    assert torch.equal(net.eval()(img), img)  # the pretrained encoder leaves the identity at init intact


def test_encoder_mismatch_is_an_error_naming_both(tmp_path):
    save_classifier(tmp_path, widths=[16, 32, 64])
    with pytest.raises(ValueError, match=r"\[16, 32, 64\].*\[8, 16\]"):
        UNet(widths=[8, 16], encoder=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="norm = 'batch'.*norm = 'group'"):
        UNet(widths=[16, 32], norm="group", encoder=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="neither a run directory"):
        UNet(encoder=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("factory", [UNet, lambda **kw: Classifier(classes=3, **kw)])
@pytest.mark.parametrize("kw, option", [({"widths": []}, "widths"), ({"widths": [32, -1]}, "widths"),
                                        ({"widths": 32}, "widths"), ({"blocks": 0}, "blocks"),
                                        ({"norm": "layer"}, "norm"), ({"act": "tanh"}, "act")])
def test_bad_options_name_the_option(factory, kw, option):
    with pytest.raises(ValueError, match=option) as err:
        factory(**kw)
    assert repr(next(iter(kw.values())))[:6] in str(err.value)


def test_classifier_needs_classes():
    with pytest.raises(ValueError, match="classes >= 1"):
        Classifier()
    with pytest.raises(ValueError, match="dropout"):
        Classifier(classes=2, dropout=1.5)


def test_layers():
    assert groups_for(64) == 32 and groups_for(48) == 24 and groups_for(3) == 3
    stage = make_stage(8, 16, blocks=3, stride=2, act="silu", norm="group")
    assert len(stage) == 3 and stage(torch.rand(2, 8, 9, 9)).shape == (2, 16, 5, 5)
    block = ResBlock(8, 8, final_act=False).zero_()
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(block(x), x)  # zeroed residual branch + untouched identity
    with pytest.raises(ValueError, match="project=True"):
        ResBlock(8, 8).zero_(identity=True)


def test_plugins_register_their_models():
    names = {}
    unet_plugin.register_models(lambda name, obj: names.setdefault(name, obj))
    classifier_plugin.register_models(lambda name, obj: names.setdefault(name, obj))
    assert names == {"unet": UNet, "classifier": Classifier}
    for cls in names.values():  # `workbench list models -v` shows the first line and the parameters
        assert cls.__doc__.splitlines()[0] and "widths:" in cls.__doc__ and "act:" in cls.__doc__


@pytest.mark.parametrize("kw", [dict(full_res_blocks=2), dict(full_res_blocks=3, norm="none", widths=[16, 32])])
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 3, 17, 23)])
def test_full_res_blocks_start_as_identity_and_learn(kw, shape):
    net = UNet(**kw)
    x = torch.rand(shape)
    for mode in ("train", "eval"):
        getattr(net, mode)()
        with torch.no_grad():
            assert (net(x) - x).abs().max() <= 1e-6
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (net(x) - torch.rand_like(x)).abs().mean().backward()
        opt.step()
    with torch.no_grad():
        assert (net.eval()(x) - x).abs().max() > 1e-4


def test_full_res_blocks_validated():
    with pytest.raises(ValueError, match="full_res_blocks"):
        UNet(full_res_blocks=-1)


def test_keep_luma_changes_colour_only_and_stays_in_gamut():
    import torch

    from workbench_plugins.unet import UNet, _luma

    torch.manual_seed(0)
    net = UNet(widths=[8, 16], keep_luma=True).eval()
    gray = torch.rand(2, 1, 20, 24).expand(2, 3, 20, 24).contiguous()
    with torch.no_grad():
        assert torch.equal(net(gray), gray)   # untrained: the gray photo itself
        for p in net.parameters():             # a trained one: whatever colour, the same luma, in [0, 1]
            p.add_(torch.randn_like(p) * 0.5)
        out = net(gray)
    assert (out - _luma(out)).abs().max() > 0.01 and out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    assert torch.allclose(_luma(out), gray[:, :1], atol=1e-5)


def test_chroma_gain_scales_the_colour_when_restoring_not_when_training():
    import torch

    from workbench_plugins.unet import UNet, _luma

    torch.manual_seed(0)
    nets = {g: UNet(widths=[8, 16], keep_luma=True, chroma_gain=g) for g in (1.0, 0.3)}
    with torch.no_grad():
        for p in nets[1.0].parameters():
            p.add_(torch.randn_like(p) * 0.05)   # a mild colorizer: most pixels stay in gamut
        nets[0.3].load_state_dict(nets[1.0].state_dict())
        gray = (torch.rand(2, 1, 20, 24) * 0.5 + 0.25).expand(2, 3, 20, 24).contiguous()
        full, hedged = (nets[g].eval()(gray) - gray for g in (1.0, 0.3))
        assert full.abs().max() > 0.01
        assert torch.allclose(hedged, 0.3 * full, atol=1e-5)   # chroma 30 %, luma the input's
        assert torch.allclose(_luma(hedged + gray), gray[:, :1], atol=1e-5)
        assert torch.equal(nets[0.3].train()(gray), nets[1.0].train()(gray))   # training sees the full colour
    for bad, match in ((-0.1, "from 0 to 2"), (True, "from 0 to 2"), (2.5, "from 0 to 2")):
        with pytest.raises(ValueError, match=match):
            UNet(keep_luma=True, chroma_gain=bad)
    with pytest.raises(ValueError, match="set keep_luma = true"):
        UNet(chroma_gain=0.5)


def test_drop_skips_leaves_out_the_top_skips_and_the_input():
    """drop_skips = N: the N highest-resolution skips and the input added back are gone: the untrained net
    returns black rather than its input; a dropped level's cross connection has no weights, a kept one
    changes the output; every parameter still gets a gradient (DDP-safe)."""
    import torch

    from workbench_plugins.unet import UNet

    img = torch.rand(2, 3, 32, 32)
    assert torch.equal(UNet(widths=[8, 16, 32]).eval()(img), img)
    assert torch.equal(UNet(widths=[8, 16, 32], drop_skips=1).eval()(img), torch.zeros_like(img))
    torch.manual_seed(0)
    nets = {d: UNet(widths=[8, 16, 32], drop_skips=d, cross_connections=True) for d in (0, 1)}
    with torch.no_grad():
        for p in nets[0].parameters():
            p.add_(torch.randn_like(p) * 0.2)
        nets[1].load_state_dict({k: v for k, v in nets[0].state_dict().items() if not k.startswith("cross.0.")})
        assert len(nets[1].cross[0]) == 0 and len(nets[1].cross[1]) > 0
        outs = {d: n.eval()(img) for d, n in nets.items()}
        assert not torch.allclose(outs[0], outs[1])
        for d, n in nets.items():   # the level-1 skip is used by both; level 0's only by drop_skips = 0
            for j, changed in ((0, d == 0), (1, True)):
                saved = [p.clone() for p in n.cross[j].parameters()]
                for p in n.cross[j].parameters():
                    p.add_(1.0)
                assert (not torch.allclose(n(img), outs[d])) == changed, (d, j)
                for p, v in zip(n.cross[j].parameters(), saved):
                    p.copy_(v)
    net = nets[1].train()
    net(img).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    for bad in (-1, 3, True, 1.5):
        with pytest.raises(ValueError, match="drop_skips"):
            UNet(widths=[8, 16, 32], drop_skips=bad)
    with pytest.raises(ValueError, match="style transfer"):
        UNet(widths=[8, 16, 32], drop_skips=1, masked=True)
