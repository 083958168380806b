"""What a command writes: through the one atomic writer, never over its input, one line when it cannot."""
import os

import numpy as np
import pytest
from PIL import Image

from workbench.runs import files
from workbench.runs.files import WriteError


def test_a_file_where_a_folder_should_be_is_not_a_directory(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(WriteError, match=r"cannot write image .*x\.png: Not a directory: .*afile"):
        files.atomic_write(tmp_path / "afile" / "sub" / "x.png", lambda f: f.write(b"x"), what="image")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    files.write_text(path, "old")

    def half(f):
        f.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match="No space left on device; the previous r.json"):
        files.atomic_write(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        mode = files.write_text(tmp_path / "report.html", "<p>").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o666 & ~files._UMASK


def test_degrade_refuses_to_write_over_its_inputs(run_cli, tmp_path):
    same = tmp_path / "same"
    same.mkdir()
    Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(same / "a.png")
    before = (same / "a.png").read_bytes()
    res = run_cli("degrade", "jpeg", same, "-o", same, "--no-grid")
    assert res.exit_code == 2 and "would overwrite its input" in res.output
    assert (same / "a.png").read_bytes() == before


def test_degrade_sweeps_what_a_killed_write_left(run_cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(src / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.png.k1ll3d.tmp").write_bytes(b"")
    (out / ".mine.txt.tmp").write_text("not ours: another name")
    live = f".a.png.{os.getpid()}.abcd.tmp"   # a write in progress by a running process: not stale
    (out / live).write_bytes(b"")
    assert run_cli("degrade", "jpeg", src, "-o", out, "--no-grid").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [live, ".mine.txt.tmp", "a.png"]


def test_lr_find_that_diverges_at_once_says_so(run_cli, tmp_path):
    res = run_cli("lr-find", "superres", "-o", tmp_path / "lr.png", "--steps", 5, "--start", 1e30, "--end", 1e31,
                  "--device", "cpu", "--set", "data.size=16", "--set", "data.workers=0")
    assert res.exit_code == 2 and "diverged after" in res.output and "lower --start" in res.output
    res = run_cli("lr-find", "superres", "-o", tmp_path / "lr.png", "--start", 0.5, "--end", "inf")
    assert res.exit_code == 2 and "both finite" in res.output
