"""Bad image files everywhere: one clear sentence from read_image, skipped (and counted) by training,
degrade, eval and restore; a folder with no readable image fails before anything is written."""
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import HERE
from PIL import Image

from workbench import hookimpl
from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.data import PairDataset, make_loader, open_source, open_splits
from workbench.data.pairs import decode_skipped
from workbench.data.samplers import EpochSampler
from workbench.errors import WorkbenchError
from workbench.images.files import read_image
from workbench.runs import checkpoint
from workbench.train.loop import train

TINY = HERE / "plugin_files" / "tiny_model.py"


def save(path, h=24, w=32, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def png_header(w, h):
    """A tiny PNG file that claims w x h pixels (1-bit gray): a decompression bomb costs a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def broken(path, kind):
    """Write an unreadable file of `kind` at path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image, just a note")
    else:   # truncated png / jpg: the first half of a real file
        good = path.with_name("whole" + path.suffix)
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(good)
        data = good.read_bytes()
        good.unlink()
        path.write_bytes(data[: len(data) // 2])
    return path


def one_sentence(msg, path):
    assert "\n" not in msg and msg.startswith(str(path)), msg


# -- read_image -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind, words", [
    ("zero.png", "empty", "the file is empty"),
    ("notes.png", "text", "not an image file"),
    ("cut.png", "truncated", "truncated"),
    ("cut.jpg", "truncated", "truncated"),
])
def test_unreadable_files_give_one_clear_sentence(tmp_path, name, kind, words):
    path = broken(tmp_path / name, kind)
    with pytest.raises(WorkbenchError) as e:
        read_image(path)
    msg = str(e.value)
    one_sentence(msg, path)
    assert "cannot read image" in msg and words in msg
    assert "remove it" in msg or "check the file" in msg or "copy it again" in msg   # says what to do


def test_modes_read_as_rgb(tmp_path):
    # CMYK JPEG (Pillow undoes Adobe's inverted CMYK)
    Image.new("RGB", (8, 8), (200, 100, 50)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert torch.allclose(read_image(tmp_path / "cmyk.jpg")[:, 4, 4] * 255, torch.tensor([200.0, 100, 50]), atol=3)
    # 16-bit PNG keeps its precision: 257 and 258 would be one 8-bit level
    Image.fromarray(np.array([[0, 257, 258, 32768, 65535]], dtype=np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    deep = read_image(tmp_path / "deep.png")
    assert deep.shape == (3, 1, 5) and torch.allclose(deep[0, 0] * 65535, torch.tensor([0.0, 257, 258, 32768, 65535]), atol=0.05)
    # palette with a transparent index and LA: alpha composited on white
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert torch.equal(read_image(tmp_path / "pal.png")[:, 0] * 255, torch.tensor([[255.0, 200], [255, 100], [255, 50]]))
    Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), "LA").save(tmp_path / "la.png")
    assert torch.equal(read_image(tmp_path / "la.png")[:, 0], torch.tensor([[1.0, 0], [1, 0], [1, 0]]))
    # a single pixel
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "dot.png")
    assert torch.equal(read_image(tmp_path / "dot.png"), torch.tensor([1.0, 0, 0]).view(3, 1, 1))


@pytest.mark.parametrize("side", [20000, 10000])
def test_decompression_bombs_are_refused_naming_the_limit(tmp_path, side):
    """20000^2 is past Pillow's hard limit; 10000^2 = 100 MP is past its warning limit (about 89 MP),
    which we treat as an error too: a clear refusal that names the limit and what to do."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    assert path.stat().st_size < 200
    with pytest.raises(WorkbenchError) as e:
        read_image(path)
    msg = str(e.value)
    one_sentence(msg, path)
    assert "too large" in msg and f"{side * side:,} pixels" in msg and f"{Image.MAX_IMAGE_PIXELS:,}" in msg
    assert "downscale" in msg


def test_bomb_limit_is_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (20, 32, 64):   # under, just over (Pillow's warning), over twice (Pillow's error)
        save(tmp_path / f"{side}.png", side, side)
    assert read_image(tmp_path / "20.png").shape == (3, 20, 20)
    for side in (32, 64):
        with pytest.raises(WorkbenchError, match=f"{side * side:,} pixels, over the limit of 1,000 pixels"):
            read_image(tmp_path / f"{side}.png")


# -- training data --------------------------------------------------------------------------------
class Identity:
    def __call__(self, img, rng):
        return img.clone()


@pytest.fixture
def folder(tmp_path):
    """a.png, b.png (broken), c.png, d.png (empty)."""
    root = tmp_path / "photos"
    save(root / "a.png", seed=1)
    broken(root / "b.png", "truncated")
    save(root / "c.png", seed=3)
    broken(root / "d.png", "empty")
    return root


def test_dataset_uses_the_next_readable_image_and_warns_once(folder, capsys):
    src = open_source(folder)
    ds = PairDataset(src, range(4), [("id", Identity())], size=16, train=False)
    item = ds[1]                                           # b.png is broken: c.png takes its place
    assert item["index"] == 2 and set(decode_skipped(item).values()) == {"b.png"}
    assert torch.equal(item["clean"], ds[2]["clean"]) and ds[2]["skipped"] == ""
    assert ds[3]["index"] == 0 and set(decode_skipped(ds[3]).values()) == {"d.png"}   # wraps around
    ds[1], ds[3]                                           # asked again: no second warning
    err = capsys.readouterr().err
    assert err.count("warning: skipped") == 2 and err.count("b.png") == 1 and err.count("d.png") == 1
    assert "truncated" in err and "empty" in err


def test_workers_leave_the_warning_to_the_main_process(folder, capfd):
    ds = PairDataset(open_source(folder), range(4), [("id", Identity())], size=16, train=False)
    loader = make_loader(ds, EpochSampler(4, shuffle=False), batch_size=4, workers=1)
    batch = next(iter(loader))
    assert batch["index"].tolist() == [0, 2, 2, 0]
    assert sorted(decode_skipped(batch).values()) == ["b.png", "d.png"]
    assert "warning" not in capfd.readouterr().err


def test_no_readable_image_is_a_clear_error(tmp_path):
    for k, kind in enumerate(["text", "empty"]):
        broken(tmp_path / "bad" / f"{k}.png", kind)
    with pytest.raises(WorkbenchError) as e:
        open_source(tmp_path / "bad")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("data.train: no readable image in") and str(tmp_path / "bad") in msg
    assert "2 file(s) could not be read" in msg and "0.png: cannot read image" in msg
    # and a PairDataset over only broken files of a readable folder says so too
    save(tmp_path / "mixed" / "a.png")
    broken(tmp_path / "mixed" / "b.png", "text")
    ds = PairDataset(open_source(tmp_path / "mixed"), [1], [], size=8)
    with pytest.raises(WorkbenchError, match="no readable image in .*mixed: none of its 1 images"):
        ds[0]


def test_region_hold_out_skips_unreadable_images(folder):
    (_, _), (valid_src, _) = open_splits(str(folder))
    assert valid_src.min_side() == 8   # a quarter of 32, over the readable images only


def test_one_pixel_images_still_give_full_crops(tmp_path):
    save(tmp_path / "a.png")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "dot.png")
    (train_src, train_idx), (valid_src, valid_idx) = open_splits(str(tmp_path))   # a region hold-out: 2 images
    for src, idx, is_train in ((train_src, train_idx, True), (valid_src, valid_idx, False)):
        ds = PairDataset(src, idx, [("id", Identity())], size=16, pad=4, train=is_train)
        dot = ds[(0, 1)]["clean"]
        assert dot.shape == (3, 16, 16) and torch.equal(dot, torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 16, 16))


RECIPE = """
[data]
train = "{data}"
size = 16
valid_size = 16
repeat = 2
batch_size = 4
workers = {workers}
[[degradations]]
type = "blur"
sigma = 1.0
[model]
type = "tiny"
[train]
epochs = 2
"""


class Spy:
    """Catches run.skipped at the end of the run."""

    seen = None

    @hookimpl
    def on_run_end(self, run, metrics):
        Spy.seen = list(run.skipped)


@pytest.mark.parametrize("workers", [0, 1])
def test_training_skips_unreadable_files_and_counts_them(tmp_path, folder, capfd, workers):
    plugins = plugin_manager.load([TINY])
    plugins.pm.register(Spy())
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.format(data=folder, workers=workers))
    run = train(recipes.load(str(path), plugins), plugins, out=tmp_path / "run", device="cpu", progress=False)
    err = capfd.readouterr().err
    # one warning per file (worker or not), then the count at the end
    assert err.count("b.png: cannot read image") == 1 and err.count("d.png: cannot read image") == 1, err
    assert "warning: skipped 2 unreadable image(s): b.png, d.png" in err
    assert Spy.seen == ["b.png", "d.png"]
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 2 and last["skipped"] == ["b.png", "d.png"]


def make_run(tmp_path):
    """A run directory with an untrained (identity) U-Net and a jpeg chain."""
    from workbench_plugins.unet import UNet

    run = tmp_path / "run"
    checkpoint.save({"format": 1, "model": UNet(widths=[8, 16]).state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": "run", "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16]}, "degradations": [{"type": "jpeg", "quality": 20}]}},
                    run / "checkpoints" / "best.pt")
    return run


# -- degrade, eval, restore -----------------------------------------------------------------------
def test_degrade_skips_unreadable_inputs(run_cli, folder, tmp_path):
    result = run_cli("degrade", "jpeg", folder, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Wrote 2 damaged image(s)" in result.output
    assert "b.png: cannot read image" in result.output and "2 unreadable input(s) skipped: b.png, d.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png", "grid.png"]
    bad = tmp_path / "bad"
    for k in range(2):
        broken(bad / f"{k}.png", "text")
    result = run_cli("degrade", "jpeg", bad, "-o", tmp_path / "none")
    assert result.exit_code == 2 and "Error: None of the 2 inputs could be read" in result.output


def test_eval_and_restore_skip_unreadable_files(run_cli, folder, tmp_path):
    run = make_run(tmp_path)
    result = run_cli("eval", run, "--data", folder, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "2 skipped" in result.output and "b.png" in result.output and "d.png" in result.output
    assert [s["name"] for s in json.loads((run / f"eval-{folder.name}.json").read_text())["skipped"]] == ["b.png", "d.png"]
    result = run_cli("restore", run, folder, "-o", tmp_path / "restored", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Restored 2 photo(s)" in result.output and "2 unreadable skipped" in result.output


@pytest.fixture
def zoo(tmp_path):
    """Every kind of file a user's photo folder holds: 7 odd-but-valid images and 4 unreadable ones."""
    root = tmp_path / "zoo"
    root.mkdir()
    rgb = np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(root / "deep16.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(root / "palette.png")
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(root / "alpha.png")
    Image.fromarray(rgb).convert("L").save(root / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 degrees when shown: the image is 40 wide once turned
    Image.fromarray(rgb).save(root / "rotated.jpg", exif=exif)
    Image.fromarray(rgb[:1, :1]).save(root / "dot.png")
    broken(root / "truncated.png", "truncated")
    broken(root / "empty.jpg", "empty")
    broken(root / "notes.png", "text")
    (root / "bomb.png").write_bytes(png_header(20000, 20000))
    return root


def test_every_command_survives_the_zoo(run_cli, zoo, tmp_path, capfd):
    readable, unreadable = 7, 4   # eval also skips the 1x1 dot: nothing is left after the x2 border crop
    # degrade
    result = run_cli("degrade", "jpeg", zoo, "-o", tmp_path / "damaged", "--no-grid")
    assert result.exit_code == 0 and f"{unreadable} unreadable skipped" in result.output
    assert Image.open(tmp_path / "damaged" / "rotated.jpg").size == (40, 56)
    # run, a few steps, folder as training data (tiny images are padded up to the crop)
    recipe = tmp_path / "sr.toml"
    recipe.write_text('[data]\nsize = 24\nvalid_size = 24\nbatch_size = 4\nworkers = 0\n'
                      '[[degradations]]\ntype = "downsample"\nscale = 2\n[model]\ntype = "tiny"\n'
                      '[train]\nepochs = 1\nsteps_per_epoch = 2\n')
    result = run_cli("--plugin", TINY, "run", recipe, "--data", zoo, "--out", tmp_path / "run", "-q")
    err = capfd.readouterr().err
    assert result.exit_code == 0, result.output + err
    assert checkpoint.load(tmp_path / "run")["epoch"] == 1
    # eval and restore
    result = run_cli("--plugin", TINY, "eval", tmp_path / "run", "--data", zoo, "--device", "cpu")
    assert result.exit_code == 0 and f"{unreadable + 1} skipped" in result.output, result.output
    assert json.loads((tmp_path / "run" / f"eval-{zoo.stem}.json").read_text())["protocol"]["images"] == readable - 1
    result = run_cli("--plugin", TINY, "restore", tmp_path / "run", zoo, "-o", tmp_path / "restored", "--device", "cpu")
    assert result.exit_code == 0 and f"{unreadable} unreadable skipped" in result.output
    assert Image.open(tmp_path / "restored" / "dot.png").size == (2, 2)          # x2 super-resolution
    assert Image.open(tmp_path / "restored" / "rotated.jpg").size == (80, 112)   # upright, then x2
