import numpy as np
import pytest
import torch

from workbench_plugins.erase import Erase

SIZES = [(8, 8), (7, 13), (13, 7), (31, 17), (64, 96)]
SHAPES = [{"shape": "rectangles"}, {"shape": "strokes"}, {"shape": "box"}, {"shape": "strip"},
          {"shape": "strip", "side": "top", "strip": [0.1, 0.9]}, {"shape": ["box", "strokes"]}]


def run(deg, img, seed=3):
    return deg(img, np.random.default_rng(seed))


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kw", SHAPES)
@pytest.mark.parametrize("fill", ["noise", "constant", "mean"])
def test_contract(hw, kw, fill):
    img = torch.rand(3, *hw)
    before = img.clone()
    out, mask = run(Erase(fill=fill, **kw), img)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert mask.shape == (1, *hw) and mask.dtype == torch.bool
    assert mask.any() and not mask.all()
    assert torch.equal(out[:, ~mask[0]], img[:, ~mask[0]])  # outside the mask: exactly unchanged
    assert torch.equal(img, before)


def test_fills():
    img = torch.rand(3, 31, 17)
    out, mask = run(Erase(shape="box", area=0.3, fill="constant", value=0.25), img)
    assert (out[:, mask[0]] == 0.25).all()
    out, mask = run(Erase(shape="box", area=0.3, fill="mean"), img)
    assert torch.allclose(out[:, mask[0]], img.mean(dim=(1, 2))[:, None].expand(3, int(mask.sum())))
    out, mask = run(Erase(shape="box", area=0.3, fill="noise"), torch.zeros(3, 31, 17))
    assert out[:, mask[0]].std() > 0.2  # uniform noise has std 0.29


@pytest.mark.parametrize("kw", SHAPES)
def test_same_seed_same_output_and_seeds_differ(kw):
    img, deg = torch.rand(3, 64, 96), Erase(**kw)
    a, b = run(deg, img), run(deg, img)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert deg.is_random
    assert not torch.equal(a[0], run(deg, img, seed=4)[0])


@pytest.mark.parametrize("kw", [{"shape": "box", "area": 0.2, "fill": "constant"},
                                {"shape": "box", "area": 0.2, "fill": "mean", "count": [1, 9]},
                                {"shape": "strip", "side": "left", "strip": 0.3, "fill": "constant", "value": 0.1},
                                {"shape": "strip", "side": "bottom", "fill": "mean", "width": [0.1, 0.2]}])
def test_deterministic_configurations(kw):
    img, deg = torch.rand(3, 31, 17), Erase(**kw)
    assert not deg.is_random
    a, b = run(deg, img, seed=1), run(deg, img, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kw", [{"shape": "box", "area": [0.1, 0.2], "fill": "constant"},
                                {"shape": "box", "area": 0.2, "fill": "noise"},
                                {"shape": "box", "area": 0.2, "fill": "constant", "value": [0.1, 0.9]},
                                {"shape": "strip", "side": "random", "fill": "mean"},
                                {"shape": "strip", "side": ["left", "top"], "fill": "mean"},
                                {"shape": "strip", "side": "left", "strip": [0.1, 0.3], "fill": "mean"},
                                {"shape": "rectangles", "count": 1, "area": 0.1, "fill": "mean"},
                                {"shape": "box", "area": 0.2, "fill": ["mean", "constant"]}])
def test_random_configurations(kw):
    assert Erase(**kw).is_random


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_strip_side(side):
    img = torch.rand(3, 20, 40)
    mask = run(Erase(shape="strip", side=side, strip=0.25), img)[1][0]
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    expect = {"left": (cols.max() == 9), "right": (cols.min() == 30), "top": (rows.max() == 4), "bottom": (rows.min() == 15)}
    assert expect[side] and mask.sum() == 200  # 10 of 40 columns or 5 of 20 rows


def test_box_is_centred_with_the_asked_area():
    mask = run(Erase(shape="box", area=0.25, fill="mean"), torch.rand(3, 40, 60))[1][0]
    assert mask.sum() == 20 * 30 and mask[10:30, 15:45].all()


def test_more_rectangles_cover_more():
    img = torch.rand(3, 64, 96)
    cover = [np.mean([run(Erase(count=n, area=0.05), img, seed=s)[1].float().mean().item() for s in range(8)]) for n in (1, 6)]
    assert cover[1] > 2 * cover[0]


def test_never_the_whole_image():
    img = torch.rand(3, 4, 4)
    for kw in [{"shape": "strokes", "width": 1.0, "count": 20}, {"shape": "rectangles", "area": 0.99, "count": 10},
               {"shape": "box", "area": 0.99}, {"shape": "strip", "strip": 0.99}]:
        for s in range(5):
            mask = run(Erase(**kw), img, seed=s)[1]
            assert mask.any() and not mask.all()


def test_large_image():
    img = torch.rand(3, 300, 450)
    out, mask = run(Erase(shape="strokes"), img)
    assert mask.any() and torch.equal(out[:, ~mask[0]], img[:, ~mask[0]])


@pytest.mark.parametrize("kw, name", [
    ({"shape": "circle"}, "shape"), ({"strip": 1.0}, "strip"), ({"strip": 0.0}, "strip"), ({"strip": [0.5, 1.0]}, "strip"),
    ({"side": "middle"}, "side"), ({"fill": "blur"}, "fill"), ({"value": 1.5}, "value"), ({"area": 1.0}, "area"),
    ({"area": [0.3, 0.1]}, "area"), ({"count": 0}, "count"), ({"count": 2.5}, "count"), ({"width": 0.0}, "width"),
])
def test_bad_parameters(kw, name):
    with pytest.raises(ValueError, match=name):
        Erase(**kw)


def test_registered():
    from workbench_plugins import erase
    seen = {}
    erase.register_degradations(lambda name, obj: seen.setdefault(name, obj))
    assert seen == {"erase": Erase}
