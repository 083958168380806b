"""The one atomic writer: everything the workbench writes (checkpoints, images, JSON, recipe.toml,
metrics, reports, plots) goes through `atomic_write`: a temporary file in the same folder, fsync,
rename. A kill at any moment leaves either the old file or the new one, never half of either."""
import errno
import os
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

TEMP_SUFFIX = ".tmp"   # of the half-written `.NAME.*.tmp` file that is renamed into place
_UMASK = os.umask(0)   # read once (setting it is the only way to read it), then put back
os.umask(_UMASK)


class WriteError(WorkbenchError):
    """A file could not be written (`path`, and the system's `reason`); the previous file is intact."""

    def __init__(self, message, path, reason):
        super().__init__(message)
        self.path, self.reason = path, reason


def atomic_write(path, write, *, what="file", hint="Check that the folder is writable and has free space."):
    """Call `write(f)` with a binary file object, then move the result to `path` atomically.

    An OSError (a full disk, a read-only or missing folder) is a `WriteError` naming `what` and
    `path`; the previous file, if any, is kept. Any other error removes the temporary file and
    propagates.
    """
    path, tmp = Path(path), None
    try:
        _make_folder(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        # mkstemp makes the file 0600; a photo or report should get the permissions any new file gets
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # torch.save and Pillow may report a failed write as another error raised while handling the OSError
        err = e if isinstance(e, OSError) else e.__context__ if isinstance(e.__context__, OSError) else None
        if err is None or isinstance(e, KeyboardInterrupt):
            raise
        reason = err.strerror or str(err)
        raise WriteError(f"cannot write {what} {path}: {reason}; the previous {path.name} (if any) is kept. {hint}",
                         path, reason) from e
    fsync_dir(path.parent)
    return path


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
    """Delete half-written temporary files matching `.PATTERN.*.tmp` that a kill left; returns how many."""
    stale = [p for p in Path(folder).glob(f".{pattern}.*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


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
