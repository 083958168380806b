"""A .zip of images (such as tiny-imagenet-200.zip) extracted once, safely, beside itself.

An archive is untrusted input. Every member is checked before a byte is written: no absolute
path, no `..`, nothing resolving outside the target, no symbolic link, no zip bomb. Members are
written here, chunk by chunk (never `extractall`, never a shell), into a temporary sibling folder
that is renamed into place only after a marker, written last, records which archive it came from.
So an interrupted extraction is never mistaken for a finished one, and the next run redoes it.
"""
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path, PureWindowsPath

from workbench.errors import WorkbenchError

# Tiny ImageNet unpacks to about 250 MB; 20 GB leaves room for far bigger image sets while a
# crafted archive cannot fill a disk. The free space beside the archive caps it further.
MAX_TOTAL_BYTES = 20 * 1024**3
# Photos are already compressed (near 1:1) and deflate cannot pass about 1032:1, so a big member
# beyond 1000:1 is a bomb (bzip2 or lzma of zeros), not an image set. Small members may be text.
MAX_RATIO = 1000
RATIO_MIN_BYTES = 4 * 1024**2
EXTRACTED = ".workbench-extracted"   # beside the archive: one folder per archive, named by its stem
MARKER = ".workbench-complete"       # written last; holds the archive's size and mtime
_CHUNK = 1 << 20
_BY_HAND = "unzip it yourself and pass the folder"
# What zipfile and its decompressors raise on damaged data (bz2 raises OSError: caught as such).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def extracted(archive):
    """The folder to read for `archive`, extracting it first unless a complete extraction of this
    very file exists. An archive holding one top folder (as tiny-imagenet-200.zip does) gives that
    folder, so a Tiny ImageNet root or a labelled folder is found as if unzipped by hand."""
    archive = Path(archive)
    if not archive.is_file():
        raise WorkbenchError(f"archive {archive} does not exist; check the path, or pass the folder it was unzipped to.")
    dest = archive.parent / EXTRACTED / archive.stem
    st = archive.stat()
    stamp = f"{st.st_size} {st.st_mtime_ns}\n"   # a re-downloaded archive is extracted afresh
    if _stamp(dest) != stamp:
        _extract(archive, dest, stamp)
    entries = [p for p in dest.iterdir() if p.name != MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _stamp(dest):
    try:
        return (dest / MARKER).read_text()
    except OSError:
        return None


def _extract(archive, dest, stamp):
    member = None
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise WorkbenchError(f"{archive} is not a readable zip archive ({e}); download it again, or {_BY_HAND}.") from None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as e:
        zf.close()
        _drop_if_empty(dest.parent)
        raise WorkbenchError(f"cannot extract {archive}: {dest.parent} is not writable ({e.strerror or e}); "
                             f"{_BY_HAND}.") from None
    try:
        with zf:
            # 1. check every member before writing any
            plan = _checked(archive, zf, tmp)
            print(f"Extracting {archive} to {dest} (once: later runs reuse it)", file=sys.stderr)
            # 2. write them, then the marker, then move the whole folder into place
            for info, out in plan:
                member = info.filename
                _write(archive, zf, info, out)
        (tmp / MARKER).write_text(stamp)
        _move_into_place(tmp, dest, stamp)
    except _DAMAGED as e:
        where = f" at member '{member}'" if member else ""
        raise WorkbenchError(f"{archive} is damaged{where} ({e}); download it again, or {_BY_HAND}.") from None
    except OSError as e:
        raise WorkbenchError(f"cannot extract {archive} into {dest.parent} ({e.strerror or e}); "
                             f"free some space or make the folder writable, or {_BY_HAND}.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)   # gone already after a successful rename
        _drop_if_empty(dest.parent)


def _drop_if_empty(folder):
    """A refused archive leaves nothing behind, not even the empty folder made for it."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _refuse(archive, member, why):
    return WorkbenchError(f"refusing to extract {archive}: member '{member}' {why}; nothing was extracted. "
                          f"Get the archive again from a source you trust.")


def _checked(archive, zf, root):
    """[(info, output path)] for every member, or a WorkbenchError naming the first bad one."""
    base, plan, total = root.resolve(), [], 0
    for info in zf.infolist():
        name = info.filename
        if name.startswith("__MACOSX/"):
            continue   # macOS resource forks: `._NAME.jpg` files that look like images but are not
        parts = re.split(r"[\\/]", name)   # zips made on Windows may use backslashes
        if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
            raise _refuse(archive, name, "has an absolute path")
        if ".." in parts:
            raise _refuse(archive, name, "climbs out of the target folder with '..'")
        out = root / name
        if not out.resolve().is_relative_to(base):
            raise _refuse(archive, name, "resolves outside the target folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(archive, name, "is a symbolic link")
        if info.flag_bits & 0x1:
            raise _refuse(archive, name, "is encrypted")
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise _refuse(archive, name, f"expands {ratio}:1 (more than {MAX_RATIO}:1 is a zip bomb)")
        total += info.file_size
        plan.append((info, out))
    free = shutil.disk_usage(root).free
    if total > min(MAX_TOTAL_BYTES, free):
        limit = (f"the {_gb(free)} free there" if free < MAX_TOTAL_BYTES
                 else f"workbench's {_gb(MAX_TOTAL_BYTES)} limit (archive.MAX_TOTAL_BYTES)")
        raise WorkbenchError(f"refusing to extract {archive}: it declares {_gb(total)} of files, more than {limit}; "
                             "nothing was extracted (unzip it yourself where there is room, and pass that folder).")
    return plan


def _write(archive, zf, info, out):
    """One member as a plain file (the zip's mode bits are ignored: no setuid, no links, no devices)."""
    if info.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(out, "wb") as dst:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:   # declared sizes are the attacker's word: count real bytes
                raise _refuse(archive, info.filename, f"holds more than the {info.file_size} bytes it declares")
            dst.write(chunk)


def _move_into_place(tmp, dest, stamp):
    if _stamp(dest) == stamp:
        return   # another process (another torchrun rank, say) finished first: use its copy
    if dest.exists():   # a half-finished or outdated extraction of ours: replace it
        old = tmp.with_name(tmp.name + "-old")
        os.rename(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, dest)   # atomic: readers see all of the folder or none of it
    except OSError:
        if _stamp(dest) != stamp:
            raise


def _gb(n):
    return f"{n / 1024**3:.1f} GB"
