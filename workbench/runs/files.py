"""The one atomic writer: everything the workbench writes (checkpoints, images, JSON, recipe.toml,
metrics, reports, plots) goes through `atomic_write`: a temporary file in the same folder, fsync,
rename. A kill at any moment leaves either the old file or the new one, never half of either.
Unless told `replace=True` (a file this command made, or --overwrite), the rename refuses to
replace what is there: a file that appeared since the command checked its outputs is kept."""
import errno
import os
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

TEMP_SUFFIX = ".tmp"   # of the half-written `.NAME.PID.*.tmp` file that is renamed into place
_UMASK = os.umask(0)   # read once (setting it is the only way to read it), then put back
os.umask(_UMASK)


class WriteError(WorkbenchError):
    """A file could not be written (`path`, and the system's `reason`); the previous file is intact.
    `exists`: the name was taken and replacing it was not allowed."""

    def __init__(self, message, path, reason, exists=False):
        super().__init__(message)
        self.path, self.reason, self.exists = path, reason, exists


def atomic_write(path, write, *, replace=False, what="file", hint="Check that the folder is writable and has free space."):
    """Call `write(f)` with a binary file object, then move the result to `path` atomically.

    replace: whether an existing `path` may be replaced (else `WriteError`, and it is kept).
    An OSError (a full disk, a read-only or missing folder) is a `WriteError` naming `what` and
    `path`; the previous file, if any, is kept. Any other error removes the temporary file and
    propagates.
    """
    path, tmp = Path(path), None
    try:
        _make_folder(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
        # mkstemp makes the file 0600; a photo or report should get the permissions any new file gets
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _move(tmp, path, replace)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # torch.save and Pillow may report a failed write as another error raised while handling the OSError
        err = e if isinstance(e, OSError) else e.__context__ if isinstance(e.__context__, OSError) else None
        if err is None or isinstance(e, KeyboardInterrupt):
            raise
        reason = err.strerror or str(err)
        if isinstance(err, FileExistsError):
            raise WriteError(f"{path} exists and was not made by this command; it is kept. Pass --overwrite to "
                             "replace it, or choose another output.", path, reason, exists=True) from e
        raise WriteError(f"cannot write {what} {path}: {reason}; the previous {path.name} (if any) is kept. {hint}",
                         path, reason) from e
    fsync_dir(path.parent)
    return path


def _move(tmp, path, replace):
    if replace:
        os.replace(tmp, path)   # atomic on POSIX and Windows
        return
    try:   # a hard link is the atomic "rename unless the name is taken" that POSIX offers
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:   # no hard links here (FAT, some network shares): check, then rename
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _make_folder(folder):
    """mkdir -p, where a file in the way is "Not a directory" (mkdir says "File exists")."""
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{os.strerror(errno.ENOTDIR)}: {above}")
            break
    folder.mkdir(parents=True, exist_ok=True)


def write_text(path, text, **kw):
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), **kw)


def remove_temporary(folder, pattern="*"):
    """Delete half-written `.PATTERN.*.tmp` files that a killed writer left; returns how many.

    A file whose writer (the PID in its name) still runs on this machine is another command's write
    in progress, and is kept.
    """
    stale = [p for p in Path(folder).glob(f".{pattern}.*{TEMP_SUFFIX}") if p.is_file() and not _writing(p)]
    removed = 0
    for p in stale:
        try:   # best effort: a folder we cannot delete in fails the write that follows, with its own message
            p.unlink(missing_ok=True)
            removed += 1
        except OSError:
            pass
    return removed


def _writing(tmp):
    """Whether the process named in `.NAME.PID.RANDOM.tmp` is alive (False for names without one)."""
    pid = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 2)[-2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except PermissionError:   # alive, under another user
        return True
    except (ProcessLookupError, OverflowError):   # gone; or a number no process can have
        return False
    return True


def fsync_dir(folder):
    """Make a rename itself durable (POSIX); not possible, and not needed, on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
