"""Models told where the holes are: the push-pull fill, the masked U-Net, and every command that feeds it a mask."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry
from workbench.api.contracts import call_model, capability
from workbench.author.models import check_model
from workbench.errors import WorkbenchError
from workbench.images.masks import push_pull, read_mask
from workbench.infer.extend import extend_image, outpaint_of
from workbench.infer.restore import restore_tensor
from workbench_plugins.unet import UNet

PLUGINS = registry.load()

SMALL = ["--set", "data.size=32", "--set", "data.batch_size=2", "--set", "data.valid_size=32", "--set", "model.widths=[8, 16]"]
TINY = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", *SMALL, "-q"]


def box(h, w, top, left, bh, bw, batch=1):
    hole = torch.zeros(batch, 1, h, w, dtype=torch.bool)
    hole[..., top:top + bh, left:left + bw] = True
    return hole


# -- push-pull --------------------------------------------------------------------------------------
@pytest.mark.parametrize("h, w", [(32, 32), (17, 23), (1, 9)])
def test_push_pull_keeps_known_pixels_and_fills_inside_their_range(h, w):
    img = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    hole = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(1)) < 0.4
    out = push_pull(img, hole)
    known = ~hole.expand_as(img)
    assert torch.equal(out[known], img[known])
    # Each filled value is a weighted average of known ones: never outside their range (per image, channel).
    for b in range(2):
        for c in range(3):
            k = img[b, c][~hole[b, 0]]
            filled = out[b, c][hole[b, 0]]
            assert filled.min() >= k.min() - 1e-6 and filled.max() <= k.max() + 1e-6


def test_push_pull_reproduces_a_flat_image_and_bridges_a_gradient():
    flat = torch.full((1, 3, 40, 40), 0.3)
    hole = box(40, 40, 5, 5, 30, 30)
    assert torch.allclose(push_pull(flat + torch.rand_like(flat) * hole, hole), flat, atol=1e-6)
    # Left half dark, right half bright, a vertical band erased between: the fill rises from one to the other.
    img = torch.zeros(1, 3, 32, 64)
    img[..., 32:] = 1.0
    hole = box(32, 64, 0, 16, 32, 32)
    row = push_pull(img, hole)[0, 0, 16, 16:48]
    assert row[0] < 0.5 < row[-1]
    assert (row[1:] - row[:-1] >= -1e-6).all()


def test_push_pull_without_any_known_pixel_is_mid_grey():
    img = torch.rand(1, 3, 9, 7)
    assert torch.allclose(push_pull(img, torch.ones(1, 1, 9, 7, dtype=torch.bool)), torch.full_like(img, 0.5))


def test_push_pull_fills_each_image_of_a_batch_from_its_own_pixels():
    img = torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16)])
    hole = box(16, 16, 4, 4, 8, 8, batch=2)
    out = push_pull(img, hole)
    assert torch.equal(out[0], img[0]) and torch.equal(out[1], img[1])


# -- the masked U-Net -------------------------------------------------------------------------------
def test_untrained_masked_unet_is_the_push_pull_fill_and_keeps_known_pixels():
    torch.manual_seed(0)
    net = UNet(widths=[8, 16, 32], masked=True).eval()
    img = torch.rand(2, 3, 29, 35, generator=torch.Generator().manual_seed(2))
    hole = box(29, 35, 6, 8, 12, 20, batch=2)
    with torch.no_grad():
        out = net(img, hole)
    assert torch.allclose(out, push_pull(img, hole), atol=1e-6)
    assert torch.equal(out[~hole.expand_as(img)], img[~hole.expand_as(img)])
    # Whatever was under the holes does not matter: the network never sees it.
    with torch.no_grad():
        again = net(torch.where(hole, torch.rand_like(img), img), hole)
    assert torch.equal(out, again)


def test_masked_unet_learns_inside_the_holes_only():
    torch.manual_seed(0)
    net = UNet(widths=[8, 16], masked=True)
    img = torch.rand(2, 3, 16, 16)
    hole = box(16, 16, 4, 4, 8, 8, batch=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (net(img, hole) - img.flip(-1)).square().mean().backward()
        opt.step()
    with torch.no_grad():
        out = net(img, hole)
    known = ~hole.expand_as(img)
    assert torch.equal(out[known], img[known])
    assert not torch.allclose(out[~known], push_pull(img, hole)[~known])


def test_masked_unet_passes_the_model_contract_and_says_it_takes_the_mask():
    net = UNet(widths=[8, 16], masked=True)
    assert capability(net, "takes_mask") and not capability(UNet(widths=[8, 16]), "takes_mask")
    assert all(passed for _, passed, _ in check_model(net))


def test_masked_unet_configuration_errors_name_the_value():
    with pytest.raises(ValueError, match="masked = 'yes'"):
        UNet(masked="yes")
    with pytest.raises(ValueError, match="encoder"):
        UNet(masked=True, encoder="some/run")
    with pytest.raises(ValueError, match="needs the mask"):
        UNet(widths=[8, 16], masked=True)(torch.rand(1, 3, 8, 8))
    with pytest.raises(WorkbenchError, match="--mask"):
        call_model(UNet(widths=[8, 16], masked=True), torch.rand(1, 3, 8, 8), None)


def test_tiled_restore_gives_each_tile_its_part_of_the_mask():
    torch.manual_seed(0)
    net = UNet(widths=[8, 16], masked=True)
    img = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(3))
    hole = box(70, 90, 20, 30, 25, 30)[0]
    tiled = restore_tensor(net, img, mask=hole, tile=48, overlap=8)
    known = ~hole.expand_as(img)
    assert torch.allclose(tiled[known], img[known], atol=1e-6)   # blended tiles: equal up to rounding
    assert (tiled[~known] - img[~known]).abs().mean() > 0.05   # the random content under the hole is replaced


def test_extend_tells_a_masked_model_where_the_new_strip_is():
    torch.manual_seed(0)
    net = UNet(widths=[8, 16], masked=True)
    img = torch.zeros(3, 24, 40)
    img[..., 20:] = 1.0
    cfg = {"degradations": [{"type": "erase", "shape": "strip", "fill": "noise"}]}
    out = extend_image(net, img, side="right", times=2, outpaint=outpaint_of(recipes.from_dict(cfg, "test", PLUGINS).degradation_chain(PLUGINS)))
    assert out.shape == (3, 24, 60) and torch.equal(out[..., :40], img)
    new = out[..., 40:]
    # Told where the strip is, the (untrained) model fills it from the bright edge, not from the noise fill:
    # every row alike, as the image's rows are, and nearer the bright edge than the dark half.
    assert torch.allclose(new, new[:, :1].expand_as(new), atol=1e-6) and new.min() > 0.5


def test_read_mask_thresholds_at_half_and_checks_the_size(tmp_path):
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:9] = 200
    m[6, 6] = 100   # below half: known
    Image.fromarray(m).save(tmp_path / "m.png")
    hole = read_mask(tmp_path / "m.png", (12, 10))
    assert hole.shape == (1, 10, 12) and hole.sum() == 18 and not hole[0, 6, 6]
    with pytest.raises(WorkbenchError, match="12x10 but the photo is 12x11"):
        read_mask(tmp_path / "m.png", (12, 11))


# -- end to end: train, eval, restore ----------------------------------------------------------------
@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    out = tmp_path_factory.mktemp("masked") / "run"
    res = CliRunner().invoke(cli, ["run", "inpaint", "--out", str(out), "--set", "model.masked=true", *TINY],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_a_masked_inpaint_run_trains_and_judges_with_the_mask(masked_run, run_cli, photo, tmp_path):
    record = json.loads((masked_run / "metrics.jsonl").read_text().splitlines()[-1])
    # The push-pull start already fills the holes: far above the noise-filled input from the first epoch.
    assert record["valid"]["psnr"] > record["valid"]["input_psnr"] + 3
    res = run_cli("eval", masked_run, "--data", photo.parent, "--json", tmp_path / "eval.json")
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "eval.json").read_text())
    assert {"telea", "push-pull"} <= set(result["methods"])
    assert result["mean"]["model"]["psnr_mask"] > result["mean"]["input"]["psnr_mask"] + 3


def test_restore_with_a_mask_keeps_the_rest_of_the_photo(masked_run, run_cli, photo, tmp_path):
    mask = np.zeros((96, 128), np.uint8)
    mask[30:50, 40:80] = 255
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    Image.fromarray(mask).save(masks_dir / "photo.bmp")   # another suffix than the photo's is found too
    res = run_cli("restore", masked_run, photo, "-o", tmp_path / "out", "--mask", masks_dir)
    assert res.exit_code == 0, res.output
    before = np.asarray(Image.open(photo)).astype(int)
    after = np.asarray(Image.open(tmp_path / "out" / "photo.png")).astype(int)
    hole = mask > 0
    assert (before[~hole] == after[~hole]).all()
    assert (before[hole] != after[hole]).any()


def test_restore_mask_mistakes_are_one_sentence(masked_run, run_cli, photo, tmp_path):
    res = run_cli("restore", masked_run, photo, "-o", tmp_path / "a")
    assert res.exit_code == 2 and "pass --mask" in res.output and "Traceback" not in res.output
    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    res = run_cli("restore", masked_run, photo, other, "-o", tmp_path / "b", "--mask", photo)
    assert res.exit_code == 2 and "is one file but there are" in res.output
    (tmp_path / "empty").mkdir()
    res = run_cli("restore", masked_run, photo, "-o", tmp_path / "c", "--mask", tmp_path / "empty")
    assert res.exit_code == 2 and "no mask for photo.png" in res.output
    small = tmp_path / "small-mask.png"
    Image.new("L", (7, 5), 255).save(small)
    res = run_cli("restore", masked_run, photo, "-o", tmp_path / "d", "--mask", small)
    assert res.exit_code == 2 and "None of the 1 inputs could be restored (first: " in res.output
    assert "7x5" in res.output and "Traceback" not in res.output   # the reason: the mask's size
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_a_model_that_finds_the_damage_itself_refuses_a_mask(run_cli, photo, tmp_path):
    run = tmp_path / "plain"
    assert run_cli("run", "inpaint", "--out", run, "--set", "model.masked=false", *TINY).exit_code == 0
    res = run_cli("restore", run, photo, "-o", tmp_path / "out", "--mask", photo)
    assert res.exit_code == 2 and "takes no mask; drop --mask" in res.output


def test_lr_find_feeds_the_mask_to_a_masked_model(run_cli, tmp_path):
    res = run_cli("lr-find", "inpaint", "-o", tmp_path / "lr.png", "--steps", 4, "--device", "cpu",
                  "--set", "model.masked=true", *SMALL)
    assert res.exit_code == 0, res.output
    assert "Suggested learning rate" in res.output and (tmp_path / "lr.png").exists()
