"""Restoring photos: tiling agrees with one pass, leaves no seams, and files of every mode go through."""
import numpy as np
import pytest
import torch
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry
from workbench.errors import WorkbenchError
from workbench.infer.restore import (
    prepare_input,
    restore_files,
    restore_tensor,
    tile_starts,
)
from workbench.runs import checkpoint
from workbench_plugins.unet import UNet

WIDTHS = [8, 16, 32]


def perturbed_unet(seed=0, amount=0.1):
    """A tiny U-Net that is not the identity (the untrained one returns its input exactly)."""
    torch.manual_seed(seed)
    model = UNet(widths=WIDTHS)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * amount)
    return model.eval()


def photo_tensor(h, w, seed=0):
    """Smooth shading plus a little noise: a seam would stand out against its small gradients."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([x, y, 0.5 + 0.3 * torch.sin(12 * x) * torch.cos(9 * y)])
    return (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)


def test_one_tile_matches_one_pass():
    model, img = perturbed_unet(), photo_tensor(40, 56)
    tiled = restore_tensor(model, img, tile=64, overlap=8)
    assert tiled.shape == img.shape and tiled.dtype == torch.float32
    assert torch.allclose(tiled, restore_tensor(model, img, tile=0), atol=1e-4)


def _seam_ratio(diff, edges):
    """Mean jump of `diff` between neighbouring columns at tile edges, over the mean jump anywhere."""
    jumps = (diff[:, :, 1:] - diff[:, :, :-1]).abs().mean(dim=(0, 1))   # jumps[k]: column k -> k + 1
    return (jumps[[e - 1 for e in edges]].mean() / jumps.mean()).item()


def test_tiles_agree_with_one_pass_and_leave_no_seams():
    model, img = perturbed_unet(), photo_tensor(150, 200)
    whole = restore_tensor(model, img, tile=0)
    xs = tile_starts(200, 64, 16)
    edges = sorted({s for s in xs if s > 0} | {s + 64 for s in xs if s + 64 < 200})
    before = img.clone()
    tiled = restore_tensor(model, img, tile=64, overlap=16)
    assert torch.equal(img, before)          # tiles are views of the image: the model must not write into them
    # Pixels within the receptive field of a tile edge see padding, not their true neighbours, so
    # tiles cannot match one pass exactly; the blend gives those pixels little weight. This net
    # changes its input by ~0.3 on average, so 2e-2 is under a tenth of what it does (measured: 8e-3).
    assert (tiled - whole).abs().mean() < 2e-2
    # A seam is a jump in the tiling error at a tile edge. Blended: no bigger there than elsewhere
    # (measured 1.2); hard-cut tiles (overlap 0) show the test can see seams (measured 6.7).
    assert _seam_ratio(tiled - whole, edges) < 2
    hard_xs = tile_starts(200, 64, 0)
    hard_edges = sorted({s for s in hard_xs if s > 0} | {s + 64 for s in hard_xs if s + 64 < 200})
    assert _seam_ratio(restore_tensor(model, img, tile=64, overlap=0) - whole, hard_edges) > 3


def test_identity_net_returns_input_exactly_at_odd_sizes():
    img = torch.rand(3, 97, 131, generator=torch.Generator().manual_seed(1))
    out = restore_tensor(UNet(widths=WIDTHS), img, tile=48, overlap=8)
    assert (out - img).abs().max() < 1e-5


def test_tile_starts_cover_the_side_with_full_tiles():
    assert tile_starts(97, 48, 8) == [0, 40, 49]
    assert tile_starts(48, 48, 8) == [0] and tile_starts(30, 48, 8) == [0]


@pytest.mark.parametrize("tile, overlap", [(40, 16), (-1, 0), (64, -1), (1, 0), (64.0, 8)])
def test_bad_tile_or_overlap_is_a_value_error(tile, overlap):
    with pytest.raises(ValueError, match="tile|overlap"):
        restore_tensor(UNet(widths=WIDTHS), torch.rand(3, 8, 8), tile=tile, overlap=overlap)


def test_tile_error_names_both_values():
    with pytest.raises(ValueError, match=r"tile = 40 with overlap = 16"):
        restore_tensor(UNet(widths=WIDTHS), torch.rand(3, 8, 8), tile=40, overlap=16)


def test_prepare_input_upsamples_for_superresolution_only():
    plugins = registry.load()
    chain = lambda *tables: recipes.from_dict({"degradations": list(tables)}, "test", plugins).degradation_chain(plugins)  # noqa: E731
    img = torch.rand(3, 10, 14)
    big, scale = prepare_input(img, chain({"type": "downsample", "scale": 2}))
    assert scale == 2 and big.shape == (3, 20, 28)
    for spec in ([2, 4], {"choices": [2, 4]}, [4, 2, 3]):
        big, scale = prepare_input(img, chain({"type": "grayscale"}, {"type": "downsample", "scale": spec}))
        assert scale == 4 and big.shape == (3, 40, 56)
    same, scale = prepare_input(img, chain({"type": "jpeg", "quality": 30}))
    assert scale == 1 and same is img


def _save_run(tmp_path, model, recipe_extra=None, task="restore"):
    recipe = {"model": {"type": "unet", "widths": WIDTHS}, "degradations": [{"type": "downsample", "scale": 2}]}
    checkpoint.save({"format": 1, "model": model.state_dict(), "recipe": recipe | (recipe_extra or {}), "task": task},
                    tmp_path / "run" / "checkpoints" / "best.pt")
    return tmp_path / "run"


def _write_inputs(folder):
    """Every mode read_image handles; returns {name: (w, h) as displayed}."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(folder / "rgba.png")
    Image.fromarray(rgb).quantize(16).save(folder / "palette.png")
    Image.fromarray((rng.integers(0, 65536, (24, 40))).astype(np.uint16)).save(folder / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6                    # orientation 6: displayed rotated 90 degrees clockwise
    Image.fromarray(rgb).save(folder / "turned.jpg", exif=exif)
    assert Image.open(folder / "gray.png").mode == "L" and Image.open(folder / "palette.png").mode == "P"
    assert Image.open(folder / "deep.png").mode.startswith("I;16")
    sizes = {n: (40, 24) for n in ("rgb.png", "gray.png", "rgba.png", "palette.png", "deep.png")}
    return sizes | {"turned.jpg": (24, 40)}


def test_restore_files_end_to_end(tmp_path, plugins, capsys):
    run = _save_run(tmp_path, perturbed_unet(amount=0.02))
    sizes = _write_inputs(tmp_path / "in")
    album = tmp_path / "album"
    (album / "sub").mkdir(parents=True)
    Image.fromarray(np.full((16, 20, 3), 128, np.uint8)).save(album / "a.png")
    Image.fromarray(np.full((12, 18, 3), 64, np.uint8)).save(album / "sub" / "b.jpg")
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "in" / "broken.png").write_bytes(data[: len(data) // 2])

    files = [tmp_path / "in" / n for n in [*sizes, "broken.png"]]
    results = restore_files(run, [*files, album], tmp_path / "out", tile=32, overlap=4, device="cpu", plugins=plugins)

    assert len(results) == len(sizes) + 2 and [p for p, _ in results.skipped] == [tmp_path / "in" / "broken.png"]
    assert "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "out" / "broken.png").exists()
    by_name = {src.name: (dst, size_in, size_out) for src, dst, size_in, size_out in results}
    for name, (w, h) in sizes.items():
        dst, size_in, size_out = by_name[name]
        assert dst == tmp_path / "out" / name and size_in == (w, h) and size_out == (2 * w, 2 * h)
        assert Image.open(dst).size == (2 * w, 2 * h)
    assert Image.open(tmp_path / "out" / "turned.jpg").format == "JPEG"
    assert Image.open(tmp_path / "out" / "a.png").size == (40, 32)
    assert Image.open(tmp_path / "out" / "sub" / "b.jpg").size == (36, 24)


def test_restore_files_errors(tmp_path, plugins):
    run = _save_run(tmp_path, UNet(widths=WIDTHS))
    (tmp_path / "x").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "x" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(WorkbenchError, match="a.png"):     # two inputs, one output name
        restore_files(run, [tmp_path / "a.png", tmp_path / "x"], tmp_path / "out", device="cpu", plugins=plugins)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(WorkbenchError, match="None of the 1 inputs"):
        restore_files(run, [tmp_path / "bad.png"], tmp_path / "out", device="cpu", plugins=plugins)
    with pytest.raises(WorkbenchError, match="overwrite"):
        restore_files(run, [tmp_path / "a.png"], tmp_path, device="cpu", plugins=plugins)
    with pytest.raises(ValueError, match="overlap"):
        restore_files(run, [tmp_path / "a.png"], tmp_path / "out", tile=20, overlap=8, plugins=plugins)


def test_a_classifier_cannot_restore(tmp_path, plugins):
    from workbench_plugins.classifier import Classifier

    spec = {"type": "classifier", "classes": 3, "widths": WIDTHS}
    run = _save_run(tmp_path / "c", Classifier(classes=3, widths=WIDTHS), {"model": spec}, task="classify")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(WorkbenchError, match="classifier"):
        restore_files(run, [tmp_path / "a.png"], tmp_path / "out", device="cpu", plugins=plugins)


class MaskAware(torch.nn.Module):
    """A pointwise model told where the holes are: it paints them gray. Any tiling must give the
    one-pass result, so each tile must receive its own part of the mask."""

    takes_mask = True

    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = gain

    def forward(self, x, mask):
        return torch.where(mask.expand_as(x), torch.full_like(x, 0.5), x * self.gain)


class Spy(torch.nn.Module):
    """The identity, recording the size of every input it is given."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return x


@pytest.mark.parametrize("tile", [0, 20])
def test_each_tile_gets_its_part_of_the_mask(tile):
    img = photo_tensor(37, 45)
    mask = torch.zeros(1, 37, 45, dtype=torch.bool)
    mask[:, 5:30:3, 7:40:4] = True   # holes scattered over every tile
    got = restore_tensor(MaskAware(), img, mask=mask, tile=tile, overlap=2)
    assert torch.allclose(got, torch.where(mask.expand(3, -1, -1), torch.full_like(img, 0.5), img), atol=1e-6)


@pytest.mark.parametrize("tile", [0, 20])
def test_clamp_false_keeps_the_raw_output(tile):
    img = photo_tensor(30, 41)
    mask = torch.zeros(1, 30, 41, dtype=torch.bool)
    raw = restore_tensor(MaskAware(gain=3.0), img, mask=mask, tile=tile, overlap=2, clamp=False)
    assert torch.allclose(raw, img * 3, atol=1e-6) and raw.max() > 1.5        # eval checks this range
    clamped = restore_tensor(MaskAware(gain=3.0), img, mask=mask, tile=tile, overlap=2)   # clamped by default
    assert torch.allclose(clamped, (img * 3).clamp(0, 1), atol=1e-6) and clamped.max() == 1


@pytest.mark.parametrize("h, w, calls", [(24, 24, [(24, 24)]), (24, 25, [(24, 24), (24, 24)]),
                                         (25, 24, [(24, 24), (24, 24)]), (20, 10, [(20, 10)])])
def test_an_image_no_larger_than_a_tile_is_one_pass(h, w, calls):
    spy = Spy()
    restore_tensor(spy, torch.rand(3, h, w), tile=24, overlap=2)
    assert spy.sizes == calls


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8), (2, 3, 8, 8)])
def test_only_a_three_channel_image_is_restored(shape):
    with pytest.raises(ValueError, match=rf"img must be 3 x H x W, got shape \({', '.join(map(str, shape))}\)"):
        restore_tensor(Spy(), torch.rand(*shape), tile=0)


@pytest.mark.parametrize("overlap", [1.5, True, -1])
def test_overlap_must_be_a_whole_number(overlap):
    with pytest.raises(ValueError, match=rf"overlap = {overlap!r} must be an integer >= 0"):
        restore_tensor(Spy(), torch.rand(3, 8, 8), tile=64, overlap=overlap)


def test_tile_error_says_the_smallest_tile():
    with pytest.raises(ValueError, match=r"or at least 2 \* overlap \+ 16 = 48$"):
        restore_tensor(Spy(), torch.rand(3, 8, 8), tile=40, overlap=16)


def test_prepare_input_scale_is_a_whole_number():
    plugins = registry.load()
    chain = recipes.from_dict({"degradations": [{"type": "downsample", "scale": 3}]}, "test", plugins).degradation_chain(plugins)
    _, scale = prepare_input(torch.rand(3, 10, 14), chain)
    assert scale == 3 and isinstance(scale, int)
