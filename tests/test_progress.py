"""Progress bars: each long command draws one on stderr with WORKBENCH_PROGRESS=1, and none by
default where stderr is no terminal (a log, a pipe, the captured output these tests count lines of)."""
import os
import sys

import pytest
from PIL import Image
from test_evaluate import make_run, photo_array

from workbench.devices import progress
from workbench.errors import WorkbenchError

ERASE = {"type": "erase", "shape": "strip", "side": "random", "strip": 0.25, "fill": "noise"}
LR_FIND = ["--steps", 3, "--device", "cpu", "--set", "data.size=16", "--set", "data.batch_size=2",
           "--set", "data.workers=0", "--set", "model.widths=[8, 16]"]


@pytest.fixture
def shown(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "1")


@pytest.fixture
def photos(tmp_path):
    """Two small PNGs, made here."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, (h, w) in enumerate([(48, 64), (40, 40)]):
        Image.fromarray(photo_array(h, w, k)).save(folder / f"p{k}.png")
    return folder


def drew(res, desc, total):
    """Whether stderr holds the bar `desc` at `total` of `total` (every step is drawn when forced)."""
    assert res.exit_code == 0, res.output
    return any(line.strip().startswith(f"{desc}: 100%") and f"| {total}/{total} [" in line
               for line in res.stderr.split("\r"))


def test_restore_draws_a_bar_over_photos_and_one_over_a_big_photos_tiles(run_cli, tmp_path, photo, shown):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    # 96 x 128 in tiles of 48 overlapping by 8: starts 0, 40, 48 down and 0, 40, 80 across
    res = run_cli("restore", run, photo, "-o", tmp_path / "out", "--tile", 48, "--overlap", 8, "--device", "cpu")
    assert drew(res, "restore", 1) and drew(res, "tiles", 9)
    assert "Restored 1 photo(s)" in res.stdout   # the summary stays on stdout, apart from the bars


def test_eval_and_grid_draw_a_bar_over_images(run_cli, tmp_path, photos, shown):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    assert drew(run_cli("eval", run, "--data", photos, "--device", "cpu", "--perceptual", "none"), "eval", 2)
    res = run_cli("grid", run, "--data", photos, "-n", 1, "-o", tmp_path / "g.png", "--device", "cpu", "--perceptual", "none")
    assert drew(res, "grid", 1)   # -n 1: the images it judges, not the whole folder


def test_a_skipped_image_is_warned_on_a_line_of_its_own_and_still_counted(run_cli, tmp_path, photos, shown):
    (photos / "broken.png").write_bytes((photos / "p0.png").read_bytes()[:300])
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    res = run_cli("eval", run, "--data", photos, "--device", "cpu", "--perceptual", "none")
    assert drew(res, "eval", 3)
    assert [line for line in res.stderr.splitlines() if line.startswith("warning: skipped broken.png")]


def test_degrade_extend_and_prepare_draw_their_bars(run_cli, tmp_path, photos, shown):
    assert drew(run_cli("degrade", "jpeg", photos, "-o", tmp_path / "damaged", "--no-grid"), "degrade", 2)
    run = make_run(tmp_path, [ERASE])
    res = run_cli("extend", run, photos / "p0.png", "-o", tmp_path / "wide.png", "--times", 3, "--device", "cpu")
    assert drew(res, "extend", 3)
    res = run_cli("prepare", photos, "-o", tmp_path / "shards", "--size", 32, "--step", 16, "--workers", 0)
    assert drew(res, "prepare", 2) and "sub-images" in res.stderr


def test_lr_find_draws_its_bar(run_cli, tmp_path, shown):
    assert drew(run_cli("lr-find", "superres", "-o", tmp_path / "lr.png", *LR_FIND), "lr-find", 3)


def test_by_default_a_non_terminal_gets_no_bar(run_cli, tmp_path, photo, photos):
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    runs = [("restore", run, photo, "-o", tmp_path / "out", "--tile", 48, "--overlap", 8, "--device", "cpu"),
            ("eval", run, "--data", photos, "--device", "cpu", "--perceptual", "none"),
            ("degrade", "jpeg", photos, "-o", tmp_path / "damaged", "--no-grid"),
            ("prepare", photos, "-o", tmp_path / "shards", "--size", 32, "--step", 16, "--workers", 0),
            ("lr-find", "superres", "-o", tmp_path / "lr.png", *LR_FIND)]
    for args in runs:
        res = run_cli(*args)
        assert res.exit_code == 0 and res.stderr == "", (args[0], res.stderr)
        assert "\r" not in res.output


def test_zero_turns_bars_off_and_other_values_are_refused(run_cli, tmp_path, photos, monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "0")
    res = run_cli("degrade", "jpeg", photos, "-o", tmp_path / "a", "--no-grid")
    assert res.exit_code == 0 and res.stderr == ""
    monkeypatch.setenv(progress.ENV_VAR, "yes")
    res = run_cli("degrade", "jpeg", photos, "-o", tmp_path / "b", "--no-grid")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "WORKBENCH_PROGRESS='yes'" in res.output
    with pytest.raises(WorkbenchError, match="use 1"):
        progress.bar(desc="x", total=1)


def off(**options):
    with progress.bar(desc="x", total=1, **options) as bar:
        return bar.disable


def test_only_rank_0_and_only_when_enabled(monkeypatch, shown):
    assert not off() and off(leader=False) and off(enabled=False)
    monkeypatch.setenv("RANK", "1")   # torchrun's other ranks, where no Spread is at hand (restore's tiles)
    assert off() and not off(leader=True)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_gets_a_bar_and_one_of_size_0_a_fixed_size(monkeypatch):
    """A pseudo-terminal nobody sized reports 0 x 0; tqdm made that a width of -1 and drew nothing
    at all (how lr-find's bar, the one bar before these, could stay invisible for minutes)."""
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w") as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            bar = progress.bar(desc="x", total=1)
            assert not bar.disable and (bar.ncols, bar.nrows) == progress.UNSIZED and bar.delay == progress.DELAY
            bar.close()
    finally:
        os.close(leader)
