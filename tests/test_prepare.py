"""`workbench prepare`: BasicSR's sub-image cut, honest WebDataset shards, and a folder that is
either complete or absent."""
import io
import json
import re
import zipfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from workbench.data import prepare as prep
from workbench.data.shards import INDEX, MANIFEST, PHOTOS, ShardSource
from workbench.errors import WorkbenchError
from workbench.images.files import read_pixels

SIZE, STEP = 32, 16   # small stand-ins for 480 and 240, so photos of 100 px give several rows and columns


def _photo(path, h, w, seed, **save):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, rng.integers(0, 256, (h, w))], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **save)


@pytest.fixture
def photos(tmp_path):
    """Three 70 x 100 PNGs, a 20 x 30 one (smaller than a crop), a JPEG and a corrupt file."""
    root = tmp_path / "photos"
    for k in range(3):
        _photo(root / f"p{k}.png", 70, 100, k)
    _photo(root / "small.png", 20, 30, 3)
    _photo(root / "shot.jpg", 64, 80, 4, quality=90)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def _prepare(data, out, **options):
    return prep.prepare(data, out, **{"size": SIZE, "step": STEP, "shard_size": 10, "progress": False, **options})


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _basicsr(h, w, crop, step, thresh):
    """scripts/data_preparation/extract_subimages.py (worker), verbatim but for the crop itself."""
    h_space = np.arange(0, h - crop + 1, step)
    if h - (h_space[-1] + crop) > thresh:
        h_space = np.append(h_space, h - crop)
    w_space = np.arange(0, w - crop + 1, step)
    if w - (w_space[-1] + crop) > thresh:
        w_space = np.append(w_space, w - crop)
    return [(int(x), int(y)) for x in h_space for y in w_space]


@pytest.mark.parametrize("h, w, crop, step, thresh", [(1356, 2040, 480, 240, 0), (480, 480, 480, 240, 0), (70, 100, 32, 16, 0),
                                                     (70, 100, 32, 16, 5), (64, 80, 32, 32, 0), (1000, 700, 480, 480, 100)])
def test_positions_follow_basicsr(h, w, crop, step, thresh):
    img = np.zeros((3, h, w), np.uint8)
    got = [(t, l) for t, l, _ in prep.cut(torch.from_numpy(img), crop, step, thresh)]
    assert got == _basicsr(h, w, crop, step, thresh)


def test_sub_images_are_the_photos_crops(photos, tmp_path, capsys):
    out = tmp_path / "prepared"
    done = _prepare(photos, out)
    # 70 x 100: rows 0 16 32 38, columns 0 16 32 48 64 68; 64 x 80: 3 x 4; 20 x 30: whole
    assert (done["count"], done["photos"], done["shards"]) == (3 * 24 + 12 + 1, 5, 9)
    assert [n for n, _ in done["skipped"]] == ["broken.png"]
    assert capsys.readouterr().err.count("warning: skipped") == 1
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["count"] == done["count"] and manifest["size"] == SIZE and manifest["shards"][-1]["count"] == 5
    names = [json.loads(line) for line in (out / PHOTOS).read_text().splitlines()]
    assert names == ["p0.png", "p1.png", "p2.png", "shot.jpg", "small.png"]
    src = ShardSource(out)
    urls = [str(out / s["file"]) for s in manifest["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(len(src))]
    for i, sample in enumerate(samples):
        meta = json.loads(sample["json"])
        assert meta["photo"] == names[src.photo(i)] and meta["label"] is None and src.label(i) is None
        photo = read_pixels(photos / meta["photo"])
        t, l = meta["top"], meta["left"]
        want = photo if meta["photo"] == "small.png" else photo[:, t:t + SIZE, l:l + SIZE]
        assert np.array_equal(src.pixels(i).numpy(), want.numpy())
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(sample["png"]))), want.permute(1, 2, 0).numpy())
    assert not list(tmp_path.glob(".prepared.partial-*"))


def test_16_bit_photos_are_rounded_to_8_bits(tmp_path):
    value = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40
    (tmp_path / "deep").mkdir()
    Image.fromarray(value).save(tmp_path / "deep" / "d.png")
    _prepare(tmp_path / "deep", tmp_path / "out")
    want = np.floor(value[:SIZE, :SIZE] / 65535 * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(ShardSource(tmp_path / "out").pixels(0)[0].numpy(), want)


def test_workers_give_identical_output(photos, tmp_path):
    _prepare(photos, tmp_path / "w0", workers=0)
    _prepare(photos, tmp_path / "w2", workers=2)
    one, two = _files(tmp_path / "w0"), _files(tmp_path / "w2")
    assert list(one) == list(two) and one == two
    assert np.load(tmp_path / "w0" / INDEX).dtype == np.int64


def test_class_folders_give_labels(tmp_path):
    for cls, k in (("cat", 0), ("cat", 1), ("dog", 2)):
        _photo(tmp_path / "pets" / cls / f"{k}.png", 40, 40, k)
    _prepare(tmp_path / "pets", tmp_path / "out")
    src = ShardSource(tmp_path / "out")
    assert src.classes == ["cat", "dog"]
    assert [src.label(i) for i in range(len(src))] == [0] * 4 + [0] * 4 + [1] * 4
    assert [src.photo(i) for i in range(len(src))] == [0] * 4 + [1] * 4 + [2] * 4


def test_zip_input(photos, tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(photos.iterdir()):
            z.write(p, f"photos/{p.name}")
    done = _prepare(archive, tmp_path / "from-zip")
    assert done["count"] == 85 and len(ShardSource(tmp_path / "from-zip")) == 85


def test_non_empty_out_is_refused_and_untouched(photos, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(WorkbenchError, match="is not empty; choose a new folder or empty it"):
        _prepare(photos, out)
    assert _files(out) == {"mine.txt": b"keep me"}
    (out / "mine.txt").unlink()
    assert _prepare(photos, out)["count"] == 85   # an empty folder is fine


def test_out_inside_the_input_is_refused(photos):
    with pytest.raises(WorkbenchError, match="inside the input folder"):
        _prepare(photos, photos / "prepared")
    assert not list(photos.glob("*prepared*")) and not list(photos.glob(".*"))


@pytest.mark.parametrize("options, word", [({"step": 0}, "--step"), ({"step": SIZE + 1}, "--step"), ({"size": 0}, "--size"),
                                           ({"shard_size": 0}, "--shard-size"), ({"workers": -2}, "--workers"),
                                           ({"thresh": -1}, "--thresh")])
def test_bad_options_are_refused_before_writing(photos, tmp_path, options, word):
    with pytest.raises(WorkbenchError, match=word):
        _prepare(photos, tmp_path / "out", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_preparation_leaves_nothing(photos, tmp_path, monkeypatch, workers):
    calls = []
    real_add = prep._Shards.add

    def add(self, *args):
        calls.append(1)
        if len(calls) == 30:   # the fourth shard, three are finished on disk
            raise KeyboardInterrupt
        real_add(self, *args)

    monkeypatch.setattr(prep._Shards, "add", add)
    with pytest.raises(KeyboardInterrupt):
        _prepare(photos, tmp_path / "out", workers=workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_a_killed_preparations_leftover_is_named(photos, tmp_path, capsys):
    (tmp_path / ".out.partial-k9").mkdir()   # what a kill -9 leaves: hidden, never `out` itself
    _prepare(photos, tmp_path / "out")
    assert f"warning: {tmp_path / '.out.partial-k9'} is left from an interrupted preparation" in capsys.readouterr().err
    assert (tmp_path / ".out.partial-k9").is_dir()   # not deleted: another prepare might be writing it


def test_no_readable_photo_is_an_error(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    with pytest.raises(WorkbenchError, match="no readable image"):
        _prepare(tmp_path / "junk", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_cli_prepares_and_says_how_to_train(run_cli, photos, tmp_path):
    out = tmp_path / "out"
    result = run_cli("prepare", photos, "-o", out, "--size", SIZE, "--step", STEP, "--shard-size", 50, "--workers", 0)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: skipped") == 1 and "broken.png" in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"Prepared 85 sub-images of 5 photos \(2 shards, [\d.]+ MB\) in {re.escape(str(out))}; train with: "
                        rf"workbench run RECIPE --data {re.escape(str(out))}; 1 unreadable photo\(s\) skipped", last)


@pytest.mark.parametrize("args, says", [(["--step", "0"], "--step must be"), (["--workers", "-2"], "--workers must be"),
                                        (["--size", "0"], "--size must be")])
def test_cli_errors_are_one_line(run_cli, photos, tmp_path, args, says):
    result = run_cli("prepare", photos, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and result.output.startswith(f"Error: {says}") and result.output.count("\n") == 1


def test_cli_refuses_busy_out_and_missing_data(run_cli, photos, tmp_path):
    result = run_cli("prepare", photos, "-o", photos)
    assert result.exit_code == 2 and result.output == f"Error: {photos} is not empty; choose a new folder or empty it.\n"
    result = run_cli("prepare", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "does not exist" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
