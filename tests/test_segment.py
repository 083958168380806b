"""Segmentation: class-map files, scores against hand counts, the images/ + masks/ source, the segmenter and
its losses, and the find-watermark and folder recipes through run, restore, eval and grid."""
import json
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from workbench.errors import WorkbenchError
from workbench.images import classmaps
from workbench.tasks.segment_data import open_segmentation
from workbench_plugins.segmenter import Dice, PixelCrossEntropy, Segmenter

TINY = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "data.size=32", "--set",
        "data.valid_size=32", "--set", "data.batch_size=4", "--set", "data.workers=0", "--set", "model.widths=[8, 16]"]


def palette_png(path, classes):
    im = Image.fromarray(np.asarray(classes, dtype=np.uint8), "P")
    im.putpalette(classmaps.PALETTE.reshape(-1).tolist())
    im.save(path)


def squares(root, n=3, size=40, binary=False):
    """root/images + root/masks: bright squares (class 1) and dark discs (class 2) on noise; a binary set
    draws its masks black and white (0 and 255)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        y, x = 5 + 3 * k, 6 + 2 * k
        img[y:y + 12, x:x + 12] = 230
        mask[y:y + 12, x:x + 12] = 255 if binary else 1
        if not binary:
            yy, xx = np.mgrid[0:size, 0:size]
            disc = (yy - 30) ** 2 + (xx - 28) ** 2 < 25
            img[disc], mask[disc] = 10, 2
            mask[0, 0] = classmaps.IGNORE   # a void pixel, as VOC marks object borders
        Image.fromarray(img).save(root / "images" / f"p{k}.jpg")
        (Image.fromarray(mask, "L").save if binary else lambda p: palette_png(p, mask))(root / "masks" / f"p{k}.png")
    return root


# -- files and scores --------------------------------------------------------------------------------------
def test_a_palette_mask_is_read_as_its_indices_and_written_back_the_same(tmp_path):
    classes = torch.tensor([[0, 1, 2], [255, 1, 0]], dtype=torch.uint8)
    classmaps.write(classes, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "P"
    assert torch.equal(classmaps.read_values(tmp_path / "m.png"), classes.long())
    Image.new("RGB", (3, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(WorkbenchError, match="RGB image; save masks as palette or grayscale"):
        classmaps.read_values(tmp_path / "rgb.png")


def test_scores_match_counts_by_hand_and_ignore_void_pixels():
    truth = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255]])
    guess = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 2]])
    s = classmaps.Confusion(3).add(guess, truth).scores(["bg", "a", "b"])
    # bg: hit 2, truth 3, said 3 -> IoU 2/4; a: hit 2, truth 2, said 3 -> 2/3; b: hit 1, truth 2, said 1 -> 1/2
    assert s["iou"] == pytest.approx({"bg": 0.5, "a": 2 / 3, "b": 0.5})
    assert s["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert s["dice"] == pytest.approx((4 / 6 + 4 / 5 + 2 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    absent = classmaps.Confusion(3).add(torch.zeros(4), torch.zeros(4)).scores()
    assert absent["iou"] == {"class 0": 1.0} and absent["miou"] == 1.0   # classes absent from both have no IoU


def test_overlay_leaves_background_and_colours_the_classes():
    img = torch.full((3, 2, 2), 0.5)
    out = classmaps.overlay(img, torch.tensor([[0, 1], [0, 0]]))
    assert torch.equal(out[:, 0, 0], img[:, 0, 0]) and not torch.allclose(out[:, 0, 1], img[:, 0, 1])
    assert out[0, 0, 1] > out[1, 0, 1]   # class 1 is red


# -- the images/ + masks/ source -----------------------------------------------------------------------------
def test_a_folder_pair_is_one_source_with_the_class_map_as_a_fourth_channel(tmp_path):
    src = open_segmentation(squares(tmp_path / "set"))
    assert len(src) == 3 and src.classes == ["background", "class 1", "class 2"] and not src.binary
    px = src.pixels(0)
    assert px.shape == (4, 40, 40) and px.dtype == torch.uint8
    assert set(px[3].unique().tolist()) == {0, 1, 2, 255}
    (tmp_path / "set" / "classes.txt").write_text("ground\nsquare\ndisc\n")
    assert open_segmentation(tmp_path / "set").classes == ["ground", "square", "disc"]


def test_black_and_white_masks_are_binary_and_their_white_is_class_one(tmp_path):
    src = open_segmentation(squares(tmp_path / "bw", binary=True))
    assert src.binary and src.classes == ["background", "foreground"]
    assert set(src.pixels(1)[3].unique().tolist()) == {0, 1}


def test_missing_and_misfit_masks_name_the_file(tmp_path):
    root = squares(tmp_path / "set")
    Image.new("RGB", (8, 8)).save(root / "images" / "extra.png")
    with pytest.raises(WorkbenchError, match=r"1 of the 4 photos .* have no mask .*first: extra.png"):
        open_segmentation(root)
    Image.new("L", (9, 8)).save(root / "masks" / "extra.png")
    src = open_segmentation(root)
    with pytest.raises(WorkbenchError, match="the mask is 9x8 but its photo is 8x8"):
        src.pixels(src.files.index("extra.png"))


# -- model and losses -------------------------------------------------------------------------------------
@pytest.mark.parametrize("h, w", [(1, 1), (13, 29), (32, 32)])
def test_the_segmenter_gives_one_logit_per_class_and_pixel_at_any_size(h, w):
    model = Segmenter(classes=3, widths=[8, 16, 32]).eval()
    assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)
    with pytest.raises(ValueError, match="classes"):
        Segmenter(classes=1)


def test_dice_is_the_formula_and_cross_entropy_skips_void_pixels():
    logits = torch.randn(2, 3, 5, 4)
    target = torch.randint(0, 3, (2, 5, 4))
    p = logits.softmax(1)
    t = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    want = 1 - ((2 * (p * t).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + t.sum((0, 2, 3)) + 1)).mean()
    assert Dice()(logits, target) == pytest.approx(float(want), abs=1e-6)
    voided = target.clone()
    voided[0, 0] = 255
    keep = voided != 255
    ce = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    assert PixelCrossEntropy()(logits, voided) == pytest.approx(float(ce), abs=1e-6)
    sure = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert Dice()(sure, target) < 1e-6


# -- recipes end to end -----------------------------------------------------------------------------------
def test_find_watermark_runs_restores_evaluates_and_draws(run_cli, tmp_path):
    run = tmp_path / "fw"
    result = run_cli("run", "find-watermark", *TINY, "--out", run)
    assert result.exit_code == 0, result.output
    assert "valid mIoU" in result.output and "all background" in result.output
    for name in ("checkpoints/best.pt", "grid.png", "report.html", "metrics.jsonl"):
        assert (run / name).is_file(), name
    valid = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["valid"]
    assert {"miou", "dice", "pixel_accuracy", "iou", "baselines"} <= set(valid)
    assert "all background" in valid["baselines"] and any(k.startswith("threshold") for k in valid["baselines"])
    assert re.search(r'class="gain[^"]*">mIoU \d\.\d{4}<', (run / "report.html").read_text())   # each sample's header
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (1, 1), "white").save(photos / "dot.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(photos / "noise.jpg")
    out = tmp_path / "masks"
    result = run_cli("restore", run, photos, "-o", out)
    assert result.exit_code == 0 and f"Restored 2 class map(s) into {out}" in result.output, result.output
    for name, size in (("dot.png", (1, 1)), ("noise.png", (90, 70))):
        with Image.open(out / name) as im:
            assert im.mode == "P" and im.size == size and set(np.unique(np.asarray(im))) <= {0, 1}
    result = run_cli("eval", run, "--data", photos)
    assert result.exit_code == 0, result.output
    ev = json.loads((run / "eval-photos.json").read_text())
    assert ev["task"] == "segment" and set(ev["mean"]) >= {"model", "all background"} and len(ev["images"]) == 2
    before = sorted(p.name for p in run.iterdir())
    result = run_cli("eval", run / "checkpoints" / "best.pt", "--data", photos, "--name", "file")
    assert result.exit_code == 0 and "all background" in result.output, result.output   # a checkpoint judges alike
    assert sorted(p.name for p in run.iterdir()) == before   # and has no run directory to write into
    result = run_cli("grid", run, "-o", tmp_path / "g.png", "-n", "2")
    assert result.exit_code == 0 and (tmp_path / "g.png").is_file(), result.output
    shutil.copytree(run, tmp_path / "fw2")
    result = run_cli("compare", run, tmp_path / "fw2")
    assert result.exit_code == 2 and "is a segment run; `workbench compare` puts restorers side by side" in result.output


def train_on_squares(run_cli, tmp_path, losses=("pixel_cross_entropy", "dice")):
    """A tiny segmenter trained on `squares` -> (its images/ + masks/ folder, the run directory)."""
    data = squares(tmp_path / "set", n=4)
    recipe = tmp_path / "seg.toml"
    recipe.write_text(f'[recipe]\nname = "squares"\n[data]\ntrain = "{data}"\n[model]\ntype = "segmenter"\n'
                      + "".join(f'[[losses]]\ntype = "{loss}"\n' for loss in losses))
    run = tmp_path / "run"
    result = run_cli("run", recipe, *TINY, "--out", run)
    assert result.exit_code == 0, result.output
    return data, run


def test_a_folder_recipe_trains_on_masks_and_is_judged_on_them(run_cli, tmp_path):
    data, run = train_on_squares(run_cli, tmp_path)
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "grid.png").is_file()
    assert 'classes = 3' in (run / "recipe.toml").read_text()
    result = run_cli("eval", run, "--data", data)
    assert result.exit_code == 0, result.output
    ev = json.loads((run / "eval-set.json").read_text())
    assert set(ev["iou"]["model"]) <= {"background", "class 1", "class 2"} and len(ev["images"]) == 4


def test_segment_mistakes_are_one_line(run_cli, tmp_path):
    no_masks = tmp_path / "none.toml"
    no_masks.write_text('[recipe]\nname = "x"\n[[degradations]]\ntype = "blur"\n[model]\ntype = "segmenter"\n')
    result = run_cli("run", no_masks, *TINY, "--out", tmp_path / "r1")
    assert result.exit_code == 2 and "a segment recipe needs class maps to learn from" in result.output
    data = squares(tmp_path / "set")
    both = tmp_path / "both.toml"
    both.write_text(f'[recipe]\nname = "x"\n[data]\ntrain = "{data}"\n[[degradations]]\ntype = "blur"\n'
                    '[model]\ntype = "segmenter"\n')
    result = run_cli("run", both, *TINY, "--out", tmp_path / "r2")
    assert result.exit_code == 2 and "takes no [[degradations]]" in result.output
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


@pytest.mark.parametrize("name", ["segmenter", "dice", "pixel_cross_entropy"])
def test_workbench_check_passes_for_the_segmentation_plugins(run_cli, name):
    result = run_cli("check", name)
    assert result.exit_code == 0 and "checks passed" in result.output, result.output


def test_the_model_check_catches_a_segmenter_that_loses_a_column():
    from workbench.author.models import check_model

    class Cropper(Segmenter):
        def forward(self, img, mask=None):
            return super().forward(img)[..., :-1]

    rows = {name: (ok, why) for name, ok, why in check_model(Cropper(classes=2, widths=[8, 16]))}
    assert rows["shape"] == (False, "shape: input (2, 3, 8, 8) gave (2, 2, 8, 7), not B x classes x H x W logits")
    assert all(ok for _, ok, _ in check_model(Segmenter(classes=2, widths=[8, 16])))


def test_a_class_map_restore_wrote_is_a_mask_an_inpainter_reads(tmp_path):
    from workbench.images.masks import read_mask

    classes = torch.zeros(5, 7, dtype=torch.uint8)
    classes[1:3, 2:5], classes[4, 6] = 1, classmaps.IGNORE
    classmaps.write(classes, tmp_path / "found.png")
    assert torch.equal(read_mask(tmp_path / "found.png", (7, 5))[0], classes == 1)   # class 1 is missing; void is not
    with pytest.raises(WorkbenchError, match="the mask is 7x5 but the photo is 8x5"):
        read_mask(tmp_path / "found.png", (8, 5))
    other = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    other.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)   # a user's palette: index 0 is white, so missing
    other.save(tmp_path / "user.png")
    assert read_mask(tmp_path / "user.png", (2, 1)).tolist() == [[[True, False]]]


def test_batch_shows_a_segmentation_folder_as_photo_and_true_classes(run_cli, tmp_path):
    data = squares(tmp_path / "set", n=3)
    recipe = tmp_path / "seg.toml"
    recipe.write_text(f'[recipe]\nname = "squares"\n[data]\ntrain = "{data}"\nsize = 24\n[model]\ntype = "segmenter"\n')
    result = run_cli("batch", recipe, "-o", tmp_path / "b.png", "-n", "3")
    assert result.exit_code == 0 and (tmp_path / "b.png").is_file(), result.output


def test_two_process_eval_of_a_segmenter_matches_one_process(run_cli, tmp_path):
    from test_spread import _lines, one_process, torchrun

    _, run = train_on_squares(run_cli, tmp_path, losses=("pixel_cross_entropy",))
    data = squares(tmp_path / "judge", n=5)
    with Image.open(data / "masks" / "p1.png") as im:
        classes = np.asarray(im).copy()
    classes[-4:, -4:] = 7   # a label this 3-class model has never heard of: said, and left out
    palette_png(data / "masks" / "p1.png", classes)
    (data / "images" / "p2.jpg").write_bytes((data / "images" / "p0.jpg").read_bytes()[:100])   # one unreadable photo
    single = one_process(tmp_path, "eval", run, "--data", data, "--json", tmp_path / "one.json", "--device", "cpu")
    assert single.returncode == 0, single.stderr
    double = torchrun(tmp_path, "eval", run, "--data", data, "--json", tmp_path / "two.json", "--device", "cpu")
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout == single.stdout and double.stdout.count("all background") == 1   # one table, from rank 0
    warnings = _lines(single.stderr, "warning")
    assert _lines(double.stderr, "warning") == warnings and len(warnings) == 2, single.stderr
    assert "p2" in warnings[0] and "16 pixels carry class indices of 3 or more" in warnings[1]
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    one.pop("date"), two.pop("date")
    assert two == one and [r["name"] for r in two["images"]] == ["p0.jpg", "p1.jpg", "p3.jpg", "p4.jpg"]
    assert two["unknown_pixels"] == 16 and [s["name"] for s in two["skipped"]] == ["p2.jpg"]
