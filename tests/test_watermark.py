import numpy as np
import pytest
import torch
from PIL import Image

from workbench_plugins.watermark import Watermark

SIZES = [(8, 8), (7, 13), (13, 7), (31, 17), (64, 96)]


def gradient(h, w):
    """A smooth image, so a stamp of any colour shows against it somewhere."""
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    return torch.stack([y, x, (x + y) / 2]).contiguous()


def run(deg, img, seed=3):
    return deg(img, np.random.default_rng(seed))


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kw", [{}, {"kind": "logo"}, {"kind": "both"}, {"tiled": True},
                                {"kind": "both", "tiled": True, "position": "center"}])
def test_contract(hw, kw):
    img = torch.rand(3, *hw)
    before = img.clone()
    out, mask = run(Watermark(**kw), img)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert mask.shape == (1, *hw) and mask.dtype == torch.bool
    assert mask.any()
    outside = (out - img).abs()[:, ~mask[0]]
    assert outside.numel() == 0 or outside.max() < 2 / 255  # outside the mask: barely touched
    assert torch.equal(img, before)


def test_stamp_is_visible():
    img = gradient(64, 96)
    out, mask = run(Watermark(opacity=0.8, color="black"), img)
    assert (out - img).abs().amax(0)[mask[0]].max() > 0.3


def test_same_seed_same_output_and_seeds_differ():
    img, deg = torch.rand(3, 64, 96), Watermark(kind=["text", "logo", "both"])
    a, b = run(deg, img), run(deg, img)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], run(deg, img, seed=4)[0])
    assert deg.is_random


@pytest.mark.parametrize("kw", [{"color": "white"}, {"color": "black"}, {"color": "#ff0000"},
                                {"words": "numbers"}, {"words": "words"}, {"angle": 0.0},
                                {"kind": ["text", "logo"]}, {"tiled": [True, False]}])
def test_options(kw):
    img = gradient(31, 17)
    out, mask = run(Watermark(**kw), img)
    assert mask.any() and out.shape == img.shape


def test_fixed_color_is_used():
    img = torch.zeros(3, 64, 96)
    out, mask = run(Watermark(color="#ff0000", opacity=1.0, size=0.3), img)
    ink = out[:, mask[0]]
    assert (ink[1:] == 0).all() and ink[0].max() > 0.9  # red only


def test_given_text_is_deterministic_except_position():
    img = gradient(64, 96)
    deg = Watermark(text="Hello; rm -rf /", position="center", color="white", opacity=0.5, size=0.2, angle=10.0)
    assert not deg.is_random
    a, b = run(deg, img, seed=1), run(deg, img, seed=2)
    assert torch.equal(a[0], b[0]) and a[1].any()


def test_logo_file(tmp_path):
    logo = np.zeros((20, 30, 4), np.uint8)
    logo[5:15, 5:25] = (0, 255, 0, 255)  # opaque green bar on a transparent background
    path = tmp_path / "logo.png"
    Image.fromarray(logo, "RGBA").save(path)
    img = torch.zeros(3, 64, 96)
    out, mask = run(Watermark(kind="logo", logo=str(path), opacity=1.0, angle=0.0, position="center"), img)
    assert mask.any() and not mask.all()  # the transparent part is not stamped
    ink = out[:, mask[0]]
    assert ink[1].max() > 0.9 and ink[0].max() == 0 and ink[2].max() == 0  # the file's colours kept
    both = run(Watermark(kind="both", logo=str(path), text="ACME"), img)[1]
    assert both.any()


def test_missing_logo_names_the_path(tmp_path):
    path = str(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="nope.png"):
        Watermark(kind="logo", logo=path)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="bad.png"):
        Watermark(kind="logo", logo=str(bad))


def test_tiled_covers_more():
    img, untiled, tiled = torch.rand(3, 96, 128), Watermark(size=0.15), Watermark(size=0.15, tiled=True)
    cover = [np.mean([run(d, img, seed=s)[1].float().mean().item() for s in range(8)]) for d in (untiled, tiled)]
    assert cover[1] > 1.5 * cover[0]


def test_large_image():
    img = torch.rand(3, 300, 450)
    out, mask = run(Watermark(kind="both", tiled=True), img)
    assert out.shape == img.shape and mask.any()


@pytest.mark.parametrize("kw, name", [
    ({"kind": "stamp"}, "kind"), ({"opacity": [0.9, 0.1]}, "opacity"), ({"opacity": 0.0}, "opacity"),
    ({"opacity": 1.5}, "opacity"), ({"color": "pink"}, "color"), ({"color": "#12345"}, "color"),
    ({"position": "corner"}, "position"), ({"words": "letters"}, "words"), ({"size": 0.0}, "size"),
    ({"size": 2.0}, "size"), ({"text": "   "}, "text"), ({"tiled": "yes"}, "tiled"), ({"angle": "steep"}, "angle"),
])
def test_bad_parameters(kw, name):
    with pytest.raises(ValueError, match=name):
        Watermark(**kw)


def test_registered():
    from workbench_plugins import watermark
    seen = {}
    watermark.register_degradations(lambda name, obj: seen.setdefault(name, obj))
    assert seen == {"watermark": Watermark}
