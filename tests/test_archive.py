"""A .zip as data: extracted once beside itself and reused; a malicious or broken archive is
refused with one line naming it and the bad member, leaving nothing behind."""
import io
import os
import shutil
import stat
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data import archive, open_source, open_splits
from workbench.errors import WorkbenchError
from workbench.runs import checkpoint

TINY = Path(__file__).parent / "plugin_files" / "tiny_model.py"


def png(seed, side=20, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def make_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    """members: {name or ZipInfo: bytes}, written in order."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def photos_zip(tmp_path):
    members = {f"photos/{rel}": png(k) for k, rel in enumerate(["a.png", "b.png", "sub/c.png"])}
    members["__MACOSX/photos/._a.png"] = b"resource fork, not an image"
    return make_zip(tmp_path / "photos.zip", members)


def tiny_imagenet_zip(path):
    members, notes = {"tiny-imagenet-200/wnids.txt": b"n02\nn01\n"}, []
    for c, wnid in enumerate(["n02", "n01"]):
        for k in range(2):
            members[f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{k}.JPEG"] = png(10 * c + k, 64, "JPEG")
        members[f"tiny-imagenet-200/train/{wnid}/{wnid}_boxes.txt"] = b"x\t0\t0\t1\t1\n"
    for k, wnid in enumerate(["n01", "n02", "n02", "n01"]):
        members[f"tiny-imagenet-200/val/images/val_{k}.JPEG"] = png(100 + k, 64, "JPEG")
        notes.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    members["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(notes).encode() + b"\n"
    return make_zip(path, members)


@pytest.fixture
def writes(monkeypatch):
    """Counts members written, and fails any shell or blind extractall."""
    count = {"n": 0}
    real = archive._write

    def counted(*args):
        count["n"] += 1
        return real(*args)

    def forbidden(*args, **kwargs):
        raise AssertionError("extraction must not use a shell or extractall")

    monkeypatch.setattr(archive, "_write", counted)
    for target, name in [(zipfile.ZipFile, "extractall"), (zipfile.ZipFile, "extract"),
                         (subprocess, "Popen"), (os, "system")]:
        monkeypatch.setattr(target, name, forbidden)
    return count


def test_zip_of_a_folder_is_extracted_once_and_reused(photos_zip, writes):
    src = open_source(photos_zip)
    root = photos_zip.parent / archive.EXTRACTED / "photos"
    assert src.root == root / "photos"   # the one top folder, as if unzipped by hand
    assert [src.name(i) for i in range(len(src))] == ["a.png", "b.png", "sub/c.png"]   # no __MACOSX
    assert src.load(2).shape == (3, 20, 20) and writes["n"] == 3
    marker = root / archive.MARKER
    before = marker.stat().st_mtime_ns
    assert len(open_source(photos_zip)) == 3
    assert writes["n"] == 3 and marker.stat().st_mtime_ns == before   # reused, not re-extracted
    # A half-finished extraction (no marker) is redone, stray files and all.
    marker.unlink()
    (root / "photos" / "stray.png").write_bytes(png(9))
    assert len(open_source(photos_zip)) == 3 and writes["n"] == 6
    # A re-downloaded archive (new mtime) is extracted afresh.
    os.utime(photos_zip, ns=(before, before + 10**9))
    assert len(open_source(photos_zip)) == 3 and writes["n"] == 9
    assert [p.name for p in root.parent.iterdir()] == ["photos"]   # no temporary folder left over


def test_tiny_imagenet_zip_opens_as_a_tiny_imagenet_root(tmp_path, writes):
    path = tiny_imagenet_zip(tmp_path / "tiny-imagenet-200.zip")
    (tr_src, tr), (va_src, va) = open_splits(str(path))
    assert tr_src.classes == ["n01", "n02"] and [tr_src.label(i) for i in tr] == [0, 0, 1, 1]
    assert [va_src.label(i) for i in va] == [0, 1, 1, 0] and va_src.name(0) == "images/val_0.JPEG"
    n = writes["n"]
    assert [open_source(path, split="valid").label(i) for i in range(4)] == [0, 1, 1, 0]
    assert writes["n"] == n   # the second use found the finished extraction


def test_cli_run_trains_on_a_zip(run_cli, tmp_path, capfd):
    path = tiny_imagenet_zip(tmp_path / "tiny-imagenet-200.zip")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[degradations]]\ntype = "noise"\n[model]\ntype = "tiny"\n')
    result = run_cli("--plugin", TINY, "run", recipe, "--data", path, "--set", "train.epochs=1",
                     "--set", "train.steps_per_epoch=1", "--set", "data.size=16", "--set", "data.valid_size=16",
                     "--set", "data.workers=0", "--device", "cpu", "-q", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output + capfd.readouterr().err
    assert checkpoint.load(tmp_path / "run")["epoch"] == 1


def assert_refused(path, *words, via=open_source):
    with pytest.raises(WorkbenchError) as info:
        via(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and all(w in msg for w in words), msg
    assert not (path.parent / archive.EXTRACTED).exists()   # nothing left behind, not even a temp folder
    return msg


@pytest.mark.parametrize("name, why", [
    ("/tmp/evil.png", "absolute path"),
    ("C:/evil.png", "absolute path"),
    ("../evil.png", "'..'"),
    ("photos/../../evil.png", "'..'"),
    ("photos\\..\\..\\evil.png", "'..'"),
])
def test_paths_escaping_the_target_are_refused(tmp_path, name, why):
    # A good member first: checking must happen before anything is written.
    (tmp_path / "data").mkdir()
    path = make_zip(tmp_path / "data" / "evil.zip", {"photos/a.png": png(0), name: png(1)})
    assert_refused(path, f"member '{name}'", why)
    assert not list(tmp_path.rglob("evil.png")) and not Path("/tmp/evil.png").exists()


def test_cli_prints_a_refusal_as_one_line(run_cli, tmp_path):
    path = make_zip(tmp_path / "evil.zip", {"photos/a.png": png(0), "../evil.png": png(1)})
    result = run_cli("run", "colorize", "--data", path, "--device", "cpu", "-q", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and "member '../evil.png'" in result.output, result.output


def test_symlink_and_encrypted_members_are_refused(tmp_path):
    link = zipfile.ZipInfo("photos/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = make_zip(tmp_path / "link.zip", {"photos/a.png": png(0), link: b"/etc/passwd"})
    assert_refused(path, "member 'photos/link.png'", "symbolic link")
    path = make_zip(tmp_path / "locked.zip", {"photos/locked.png": png(0)})
    patch_member(path, "photos/locked.png", "<H", 6, 8, 0x1)   # the flag bit "encrypted"
    assert_refused(path, "member 'photos/locked.png'", "encrypted")


def test_a_bomb_member_is_refused_by_its_ratio(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {"photos/a.png": png(0), "photos/bomb.png": bytes(8 * 1024**2)},
                    compression=zipfile.ZIP_BZIP2)
    assert_refused(path, "member 'photos/bomb.png'", "zip bomb")


def test_total_size_is_capped_by_the_limit_and_free_space(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "big.zip", {"photos/a.png": png(0), "photos/b.png": png(1)})
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    assert_refused(path, "MAX_TOTAL_BYTES")
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10**12)
    free = type("Usage", (), {"free": 1000})
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda p: free)
    assert_refused(path, "free there")


def patch_member(path, name, fmt, local_at, central_at, value):
    """Rewrite a field of member `name` in both its local and its central header."""
    data, encoded = bytearray(path.read_bytes()), name.encode()
    for sig, name_at, field_at in [(b"PK\x03\x04", 30, local_at), (b"PK\x01\x02", 46, central_at)]:
        at = data.find(sig)
        while data[at + name_at: at + name_at + len(encoded)] != encoded:
            at = data.find(sig, at + 1)
        struct.pack_into(fmt, data, at + field_at, value)
    path.write_bytes(bytes(data))
    return path


def test_declared_sizes_are_not_trusted(tmp_path, monkeypatch):
    # 64 KB that declares 1000 bytes: zipfile stops at 1000 and the CRC fails; nothing is kept.
    path = make_zip(tmp_path / "liar.zip", {"photos/a.png": png(0), "photos/b.png": bytes(64 * 1024)})
    patch_member(path, "photos/b.png", "<I", 22, 24, 1000)   # the uncompressed size
    assert_refused(path, "member 'photos/b.png'")
    # Our own count stops a stream that yields more than declared, whatever zipfile does.
    path = make_zip(tmp_path / "more.zip", {"photos/a.png": png(0)})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(bytes(info.file_size + 1)))
    assert_refused(path, "member 'photos/a.png'", "more than the")


def test_corrupt_archives_give_one_clear_line(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_text("<html>404 Not Found</html>")
    assert_refused(path, "not a readable zip archive")
    good = make_zip(tmp_path / "good.zip", {"photos/a.png": png(0), "photos/b.png": png(1)}).read_bytes()
    path = tmp_path / "truncated.zip"
    path.write_bytes(good[: len(good) // 2])   # an interrupted download: no central directory
    assert_refused(path, "not a readable zip archive")
    path = tmp_path / "damaged.zip"
    start = good.find(b"photos/b.png") + len("photos/b.png") + 40
    path.write_bytes(good[:start] + bytes(200) + good[start + 200:])   # member data overwritten
    assert_refused(path, "is damaged", "photos/b.png")
    assert_refused(tmp_path / "missing.zip", "does not exist")


# Pinned: each refusal's exact reason, the size and ratio boundaries, and where extraction writes.

class Listing:
    """A stand-in for ZipFile that lists members with the sizes and flags a test declares."""

    def __init__(self, *infos):
        self.infos = infos

    def infolist(self):
        return list(self.infos)


def member(name, size, packed=None, flags=0):
    info = zipfile.ZipInfo(name)
    info.file_size, info.compress_size, info.flag_bits = size, size if packed is None else packed, flags
    return info


def checked(tmp_path, *infos):
    return archive._checked(tmp_path / "x.zip", Listing(*infos), tmp_path)


@pytest.mark.parametrize("name, why", [
    ("/tmp/evil.png", "has an absolute path"),
    ("\\tmp\\evil.png", "has an absolute path"),   # a Windows root, no drive letter
    ("photos/../../evil.png", "climbs out of the target folder with '..'"),
])
def test_each_refusal_reads_in_full(tmp_path, name, why):
    path = make_zip(tmp_path / "evil.zip", {"photos/a.png": png(0), name: png(1)})
    msg = assert_refused(path, via=archive.extracted)
    assert msg == (f"refusing to extract {path}: member '{name}' {why}; nothing was extracted. "
                   "Get the archive again from a source you trust."), msg


def test_a_member_through_a_link_in_the_target_is_refused(tmp_path):
    # The fresh temporary folder holds no links; this is the last guard should one ever be there.
    (tmp_path / "out").symlink_to(tmp_path.parent)
    with pytest.raises(WorkbenchError) as e:
        checked(tmp_path, member("out/x.png", 10))
    assert str(e.value).startswith(f"refusing to extract {tmp_path / 'x.zip'}: member 'out/x.png' resolves outside "
                                   "the target folder; ")


def test_sizes_are_told_in_binary_gigabytes():
    assert archive._gb(int(1.253 * 1024 ** 3)) == "1.3 GB" and archive._gb(2 * 1024 ** 3) == "2.0 GB"


def test_link_and_encrypted_reasons_read_in_full(tmp_path):
    link = member("photos/link.png", 10)
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(WorkbenchError, match=r"member 'photos/link.png' is a symbolic link; nothing was extracted"):
        checked(tmp_path, link)
    with pytest.raises(WorkbenchError, match=r"member 'photos/locked.png' is encrypted; nothing was extracted"):
        checked(tmp_path, member("photos/locked.png", 10, flags=0x1))
    # Other flag bits (compression options 0x2/0x4, a data descriptor 0x8, UTF-8 names 0x800) are fine.
    assert len(checked(tmp_path, *(member(f"photos/{f}.png", 10, flags=f) for f in (0x2, 0x4, 0x8, 0x800)))) == 4


def test_ratio_refusal_only_for_big_members_past_the_limit(tmp_path):
    big, limit = archive.RATIO_MIN_BYTES, archive.MAX_RATIO
    # Exactly at either bound passes: a 4 MiB member of any ratio, or a big one at exactly 1000:1.
    assert len(checked(tmp_path, member("a.png", big, packed=1), member("b.png", 1000 * 8000, packed=8000))) == 2
    assert len(checked(tmp_path, member("c.png", big + 1, packed=big + 1))) == 1   # a big photo, 1:1
    with pytest.raises(WorkbenchError) as info:
        checked(tmp_path, member("d.png", 1000 * 8000 + 1, packed=8000))
    assert f"member 'd.png' expands 1000:1 (more than {limit}:1 is a zip bomb)" in str(info.value)
    with pytest.raises(WorkbenchError, match=r"member 'e.png' expands 4194305:1 \("):
        checked(tmp_path, member("e.png", big + 1, packed=1))
    with pytest.raises(WorkbenchError, match=r"member 'f.png' expands 4194305:1 \("):
        checked(tmp_path, member("f.png", big + 1, packed=0))   # nothing stored: counted as one byte


def test_total_is_the_sum_of_members_and_the_limit_itself_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 30)
    assert len(checked(tmp_path, member("a.png", 10), member("b.png", 20))) == 2
    with pytest.raises(WorkbenchError, match="declares 0.0 GB of files"):
        checked(tmp_path, member("a.png", 10), member("b.png", 20), member("c.png", 1))


def test_total_refusal_names_the_limit_or_the_free_space_in_gb(tmp_path, monkeypatch):
    gb = 1024**3
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 2 * gb)
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda p: type("Usage", (), {"free": 2 * gb}))
    with pytest.raises(WorkbenchError) as info:
        checked(tmp_path, member("a.png", 3 * gb // 2), member("b.png", gb))
    assert str(info.value) == (
        f"refusing to extract {tmp_path / 'x.zip'}: it declares 2.5 GB of files, more than workbench's 2.0 GB limit "
        "(archive.MAX_TOTAL_BYTES); nothing was extracted (unzip it yourself where there is room, and pass that folder).")
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda p: type("Usage", (), {"free": gb // 4}))
    with pytest.raises(WorkbenchError, match=r"declares 0.5 GB of files, more than the 0.2 GB free there;"):
        checked(tmp_path, member("a.png", gb // 2))


def test_resource_forks_are_skipped_wherever_they_are_listed(tmp_path):
    path = make_zip(tmp_path / "mac.zip", {"__MACOSX/photos/._a.png": b"fork", "photos/a.png": png(0),
                                           "__MACOSX/photos/._b.png": b"fork", "photos/b.png": png(1)})
    src = open_source(path)
    assert [src.name(i) for i in range(len(src))] == ["a.png", "b.png"]
    assert not (src.root.parent / "__MACOSX").exists()


@pytest.mark.parametrize("names, top", [
    (["photos/a.png", "photos/b.png"], "photos"),    # one top folder: that folder
    (["a/x.png", "b/y.png"], None),                  # two top folders: the extraction itself
    (["x.png"], None),                               # one top file: the extraction itself
])
def test_extracted_gives_the_one_top_folder_only(tmp_path, names, top):
    path = make_zip(tmp_path / "set.zip", {name: png(k) for k, name in enumerate(names)})
    dest = tmp_path / archive.EXTRACTED / "set"
    assert archive.extracted(path) == (dest / top if top else dest)


def test_directory_members_in_any_order(tmp_path):
    # A folder listed after a file inside it, and a nested folder whose parent is not listed.
    path = make_zip(tmp_path / "dirs.zip", {"photos/sub/c.png": png(0), "photos/sub/": b"", "photos/deep/er/": b"",
                                            "photos/a.png": png(1)})
    root = archive.extracted(path)
    assert (root / "sub" / "c.png").is_file() and (root / "deep" / "er").is_dir() and (root / "a.png").is_file()


def test_members_are_written_into_a_hidden_sibling_then_renamed(tmp_path, monkeypatch, capsys):
    # Beside the final folder (so the rename is atomic, on the same disk), hidden, named for the archive.
    seen, real = [], archive._write
    monkeypatch.setattr(archive, "_write", lambda a, zf, info, out: (seen.append(out), real(a, zf, info, out)))
    path = make_zip(tmp_path / "photos.zip", {"photos/a.png": png(0)})
    archive.extracted(path)
    tmp = seen[0].parent.parent
    assert tmp.parent == tmp_path / archive.EXTRACTED and tmp.name.startswith(".photos-") and not tmp.exists()
    dest = tmp_path / archive.EXTRACTED / "photos"
    assert capsys.readouterr().err == f"Extracting {path} to {dest} (once: later runs reuse it)\n"


def test_a_stream_longer_than_declared_is_counted_across_chunks(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "more.zip", {"photos/a.png": png(0)})
    monkeypatch.setattr(archive, "_CHUNK", 16)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(bytes(info.file_size + 1)))
    assert_refused(path, "member 'photos/a.png' holds more than the")


def test_unwritable_folder_and_full_disk_read_in_full(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "photos.zip", {"photos/a.png": png(0)})
    where = tmp_path / archive.EXTRACTED

    def denied(**kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(archive.tempfile, "mkdtemp", denied)
        msg = assert_refused(path, via=archive.extracted)
    assert msg == f"cannot extract {path}: {where} is not writable (Permission denied); unzip it yourself and pass the folder."

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "_write", full)
    msg = assert_refused(path, via=archive.extracted)
    assert msg == (f"cannot extract {path} into {where} (No space left on device); free some space or make the "
                   "folder writable, or unzip it yourself and pass the folder.")


def test_a_rank_that_loses_the_rename_race_uses_the_winners_copy(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "photos.zip", {"photos/a.png": png(0)})
    dest = tmp_path / archive.EXTRACTED / "photos"
    real = os.rename

    def race(stamp):
        def rename(src, dst):
            if Path(dst) == dest:   # another process finishes first, between our check and our rename
                dest.mkdir()
                (dest / archive.MARKER).write_text(stamp(path))
                (dest / "winner").mkdir()
                raise OSError(39, "Directory not empty")
            return real(src, dst)
        return rename

    st = path.stat()
    ours = lambda p: f"{st.st_size} {st.st_mtime_ns}\n"   # noqa: E731
    monkeypatch.setattr(archive.os, "rename", race(ours))
    assert archive.extracted(path) == dest / "winner"
    # A folder that appears with another archive's stamp is not taken for ours.
    shutil.rmtree(dest)
    monkeypatch.setattr(archive.os, "rename", race(lambda p: "1 2\n"))
    with pytest.raises(WorkbenchError, match="Directory not empty"):
        archive.extracted(path)

