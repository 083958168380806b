"""The atomic writer and the output check, pinned: each refusal's full sentence, the temporary
file's name and place, which errors become a one-line WriteError and which propagate, the
no-hard-links fallback, and the sweep of what killed writers left (issue 17's mutation run)."""
import errno
import os
import subprocess
import sys

import pytest

from workbench.errors import WorkbenchError
from workbench.runs import files, outputs
from workbench.runs.files import WriteError, atomic_write, remove_temporary, write_text
from workbench.runs.outputs import Outputs, check_file, check_folder, check_suffix


def dead_pid():
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- atomic_write -------------------------------------------------------------------------------
def test_the_temporary_file_is_a_hidden_sibling_named_for_the_target_and_the_writer(tmp_path):
    seen = []

    def write(f):
        seen.extend(p.name for p in tmp_path.iterdir())
        f.write(b"new")

    atomic_write(tmp_path / "a.png", write)
    assert len(seen) == 1 and seen[0].startswith(f".a.png.{os.getpid()}.") and seen[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"] and (tmp_path / "a.png").read_bytes() == b"new"


def test_an_existing_file_is_kept_with_the_full_refusal(tmp_path):
    (tmp_path / "a.png").write_bytes(b"theirs")
    with pytest.raises(WriteError) as e:
        write_text(tmp_path / "a.png", "ours")
    assert str(e.value) == (f"{tmp_path / 'a.png'} exists and was not made by this command; it is kept. Pass "
                            "--overwrite to replace it, or choose another output.")
    assert e.value.path == tmp_path / "a.png" and e.value.reason == os.strerror(errno.EEXIST) and e.value.exists
    assert (tmp_path / "a.png").read_bytes() == b"theirs" and len(list(tmp_path.iterdir())) == 1
    write_text(tmp_path / "a.png", "ours", replace=True)
    assert (tmp_path / "a.png").read_text() == "ours"


def test_a_failed_write_names_what_the_path_the_reason_and_the_default_hint(tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "sub" / "a.json"
    with pytest.raises(WriteError) as e:
        write_text(target, "{}")
    reason = f"Not a directory: {tmp_path / 'file'}"
    assert str(e.value) == (f"cannot write file {target}: {reason}; the previous a.json (if any) is kept. "
                            "Check that the folder is writable and has free space.")
    assert (e.value.path, e.value.reason, e.value.exists) == (target, reason, False)
    with pytest.raises(WriteError, match=r"^cannot write report .*; the previous a.json \(if any\) is kept\. Try B\.$"):
        write_text(target, "{}", what="report", hint="Try B.")


def test_a_file_in_the_way_of_a_folder_is_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as e:
        files._make_folder(tmp_path / "file" / "a" / "b")
    assert e.value.errno == errno.ENOTDIR and e.value.strerror == f"Not a directory: {tmp_path / 'file'}"


def test_an_os_error_without_strerror_gives_its_text(tmp_path):
    def write(f):
        raise OSError("the device went away")

    with pytest.raises(WriteError, match=r": the device went away; the previous") as e:
        atomic_write(tmp_path / "a.bin", write)
    assert e.value.reason == "the device went away" and list(tmp_path.iterdir()) == []


def test_an_os_error_reported_as_another_error_is_still_a_write_error(tmp_path):
    def write(f):   # what torch.save does with a full disk: a RuntimeError raised while handling the OSError
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data") from None

    with pytest.raises(WriteError, match="No space left on device"):
        atomic_write(tmp_path / "a.pt", write)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("context", [None, KeyError("k")])
def test_other_errors_propagate_and_remove_the_temporary(tmp_path, context):
    def write(f):
        f.write(b"half")
        if context is None:
            raise ValueError("a bug in the caller")
        try:
            raise context
        except KeyError:
            raise ValueError("a bug in the caller") from None

    with pytest.raises(ValueError, match="a bug in the caller"):
        atomic_write(tmp_path / "a.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_failing_write_is_not_turned_into_an_error_message(tmp_path):
    def write(f):
        try:
            raise OSError(errno.EIO, "Input/output error")
        except OSError:
            raise KeyboardInterrupt from None

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_swept_by_someone_else_before_the_failure_is_fine(tmp_path):
    def write(f):
        for p in tmp_path.iterdir():
            p.unlink()
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match="No space left on device"):
        atomic_write(tmp_path / "a.bin", write)


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK])
def test_without_hard_links_the_writer_checks_then_renames(tmp_path, monkeypatch, code):
    def no_links(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "link", no_links)
    write_text(tmp_path / "a.txt", "one")
    assert (tmp_path / "a.txt").read_text() == "one" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(WriteError) as e:
        write_text(tmp_path / "a.txt", "two")
    assert e.value.exists and e.value.reason == os.strerror(errno.EEXIST)
    assert (tmp_path / "a.txt").read_text() == "one" and len(list(tmp_path.iterdir())) == 1
    os.symlink(tmp_path / "nowhere", tmp_path / "b.txt")   # a dangling link is taken too
    with pytest.raises(WriteError, match="exists and was not made by this command"):
        write_text(tmp_path / "b.txt", "two")


def test_a_failing_hard_link_for_another_reason_is_a_write_error(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "link", broken)
    with pytest.raises(WriteError, match=r"cannot write file .*a\.txt: Input/output error;"):
        write_text(tmp_path / "a.txt", "one")
    assert list(tmp_path.iterdir()) == []


def test_write_text_is_utf8(tmp_path):
    write_text(tmp_path / "a.txt", "café ✓")
    assert (tmp_path / "a.txt").read_bytes() == "café ✓".encode()


# -- remove_temporary ---------------------------------------------------------------------------
def test_the_sweep_removes_dead_writers_files_and_keeps_live_ones(tmp_path):
    dead = dead_pid()
    stale = [tmp_path / f".a.png.{dead}.x1y2.tmp", tmp_path / f".b.pt.{dead}.zz.tmp"]
    live = tmp_path / f".c.png.{os.getpid()}.q.tmp"
    other = [tmp_path / "a.png", tmp_path / ".a.png.tmp", tmp_path / f".a.png.{dead}.x.part"]
    for p in (*stale, live, *other):
        p.write_text("x")
    assert remove_temporary(tmp_path, "*.pt") == 1
    assert remove_temporary(tmp_path) == 2   # ".a.png.tmp" has no PID: not a writer's, but stale
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, other[0], other[2]))


def test_the_sweep_counts_only_what_it_removed(tmp_path, monkeypatch):
    dead = dead_pid()
    (tmp_path / f".a.png.{dead}.r.tmp").write_text("x")
    gone = tmp_path / f".b.png.{dead}.r.tmp"
    gone.write_text("x")
    real = files._writing

    def racing(p):   # another command sweeps this one first
        if p == gone:
            p.unlink()
        return real(p)

    monkeypatch.setattr(files, "_writing", racing)
    assert remove_temporary(tmp_path) == 2   # removed by someone: gone all the same


def test_a_writer_is_alive_by_its_pid(tmp_path, monkeypatch):
    assert files._writing(tmp_path / f".a.png.{os.getpid()}.abc.tmp") is True
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])   # another command, writing
    try:
        assert files._writing(tmp_path / f".a.png.{other.pid}.abc.tmp") is True
        with pytest.raises(subprocess.TimeoutExpired):   # asked whether it lives, not signalled: it lives on
            other.wait(timeout=0.3)
    finally:
        other.kill()
        other.wait()
    assert files._writing(tmp_path / f".a.png.{dead_pid()}.abc.tmp") is False
    assert files._writing(tmp_path / f".a.png.{2 ** 80}.abc.tmp") is False
    assert files._writing(tmp_path / ".a.png.abc.tmp") is False

    def not_ours(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "kill", not_ours)
    assert files._writing(tmp_path / ".a.png.1.abc.tmp") is True


# -- Outputs ------------------------------------------------------------------------------------
def test_existing_outputs_are_refused_naming_three_and_counting_the_rest(tmp_path):
    made = [tmp_path / f"{i}.png" for i in range(5)]
    for p in made:
        p.write_text("x")
    for n, tail in [(1, "exists"), (3, "exist"), (5, "and 2 more already exist")]:
        out = Outputs()
        for p in made[:n]:
            out.claim(p)
        with pytest.raises(WorkbenchError) as e:
            out.check()
        names = ", ".join(str(p) for p in made[:min(n, 3)])
        more = " and 2 more already exist" if n == 5 else f" already {tail}"
        assert str(e.value) == f"{names}{more}; pass --overwrite to replace {'it' if n == 1 else 'them'}, or choose another output."
    out = Outputs(overwrite=True)
    out.claim(made[0])
    out.check()
    assert out.replace is True and Outputs().replace is False


def test_two_sources_for_one_output_are_named(tmp_path):
    out = Outputs()
    out.claim(tmp_path / "a.png", "x.jpg")
    with pytest.raises(WorkbenchError) as e:
        out.claim(tmp_path / "sub" / ".." / "a.png", "x.png")
    assert str(e.value) == (f"x.jpg and x.png would both be written as {tmp_path / 'sub' / '..' / 'a.png'}; rename one, "
                            "or write them into separate folders.")


def test_a_folder_where_an_output_goes_is_refused(tmp_path):
    (tmp_path / "a.png").mkdir()
    for source, named in [("x.jpg", "x.jpg"), (None, "an output")]:
        with pytest.raises(WorkbenchError) as e:
            Outputs().claim(tmp_path / "a.png", source)
        assert str(e.value) == f"{tmp_path / 'a.png'} is a folder, where {named} would be written; choose another output."


def test_an_input_is_never_an_output_by_path_or_by_link(tmp_path):
    src = tmp_path / "in.png"
    src.write_text("x")
    os.link(src, tmp_path / "hard.png")
    os.symlink(src, tmp_path / "soft.png")
    for target in ("in.png", "hard.png", "soft.png"):
        with pytest.raises(WorkbenchError) as e:
            Outputs([src]).claim(tmp_path / target)
        assert str(e.value) == (f"{tmp_path / target} would overwrite its input (the same file, or a link to it); "
                                "choose another output folder.")
    with pytest.raises(WorkbenchError, match="would overwrite its input"):
        check_file(src, inputs=[src], overwrite=True)


def test_missing_inputs_and_dangling_outputs_are_handled(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.png")
    out = Outputs([tmp_path / "missing.png"])
    out.claim(tmp_path / "dangling.png")
    with pytest.raises(WorkbenchError, match=r"dangling\.png already exists;"):
        out.check()


def test_check_file_refuses_an_existing_file_a_bad_suffix_and_an_input(tmp_path):
    (tmp_path / "a.png").write_text("x")
    with pytest.raises(WorkbenchError, match="already exists"):
        check_file(tmp_path / "a.png")
    assert check_file(tmp_path / "a.png", overwrite=True) == tmp_path / "a.png"
    with pytest.raises(WorkbenchError) as e:
        check_file(tmp_path / "b.txt", suffixes=(".png", ".jpg"))
    assert str(e.value) == f"{tmp_path / 'b.txt'}: cannot tell the image format from the name; end it in one of .png, .jpg."
    assert check_suffix(tmp_path / "B.PNG", (".png",)) == tmp_path / "B.PNG"


def test_unwritable_output_folders_are_refused_in_one_line(tmp_path, monkeypatch):
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    with pytest.raises(WorkbenchError) as e:
        check_folder(tmp_path / "link" / "out")
    assert str(e.value) == f"{tmp_path / 'link'} is a broken link; the output folder {tmp_path / 'link' / 'out'} cannot be made."
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkbenchError) as e:
        check_folder(tmp_path / "file" / "out")
    assert str(e.value) == f"{tmp_path / 'file'} is a file, so the output folder {tmp_path / 'file' / 'out'} cannot be made (Not a directory)."

    asked = []

    def no_write(path, mode):   # what a read-only folder answers an ordinary user
        asked.append(mode)
        return not mode & os.W_OK

    monkeypatch.setattr(outputs.os, "access", no_write)
    with pytest.raises(WorkbenchError) as e:
        check_folder(tmp_path / "new")
    assert str(e.value) == f"{tmp_path} is not writable (Permission denied or a read-only disk); choose another output."
    assert asked == [os.W_OK | os.X_OK]


def test_a_folder_the_permission_bits_allow_but_the_disk_refuses(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    with pytest.raises(WorkbenchError) as e:
        check_folder(tmp_path)
    assert str(e.value) == f"cannot write in {tmp_path} (Read-only file system); choose another output."
    monkeypatch.undo()
    check_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []   # the probe is removed
