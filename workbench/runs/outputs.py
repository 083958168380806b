"""The files one command will write, checked before any work so that a mistake costs nothing.

None may be an input (by path or by inode: a hard link to an input is that input), none may be
named twice, none may replace an existing file unless the user passed --overwrite, each must have
a suffix its format allows (an image's: images.files.IMAGE_SUFFIXES), and each folder must be
writable. A file that appears after the check is still kept: the writer itself refuses to replace
it (workbench.runs.files).
"""
import os
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

SHOW = 3   # existing files named in the refusal; the rest are counted


class Outputs:
    """`claim(path, source)` each output, then `check()` once; `replace` is what writers are told."""

    def __init__(self, inputs=(), *, overwrite=False):
        self.replace = overwrite
        self._inputs = {_key(Path(p)) for p in inputs}   # (device, inode), or the resolved path of a missing one
        self._claimed = {}    # resolved output -> (path, what it is made from)
        self._existing = []

    def claim(self, path, source=None, *, suffixes=()):
        """Note that `path` will be written (from `source`, named in a clash); returns it.
        suffixes: those its name may end in (any case), where the suffix names the format."""
        path = Path(path)
        if suffixes:
            check_suffix(path, suffixes)
        resolved = path.resolve()
        if resolved in self._claimed:
            other = self._claimed[resolved][1]
            raise WorkbenchError(f"{other} and {source} would both be written as {path}; rename one, or write them "
                                 "into separate folders.")
        self._claimed[resolved] = (path, source)
        if os.path.lexists(path):
            if path.is_dir():
                raise WorkbenchError(f"{path} is a folder, where {source or 'an output'} would be written; "
                                     "choose another output.")
            if _key(path) in self._inputs or resolved in self._inputs:
                raise WorkbenchError(f"{path} would overwrite its input (the same file, or a link to it); "
                                     "choose another output folder.")
            self._existing.append(path)
        return path

    def check(self):
        """Refuse, in one line, existing outputs (without --overwrite) and unwritable folders."""
        if self._existing and not self.replace:
            names = ", ".join(str(p) for p in self._existing[:SHOW])
            more = f" and {len(self._existing) - SHOW} more" if len(self._existing) > SHOW else ""
            one = len(self._existing) == 1
            raise WorkbenchError(f"{names}{more} already exist{'s' if one else ''}; pass --overwrite to replace "
                                 f"{'it' if one else 'them'}, or choose another output.")
        for folder in sorted({p.parent for p, _ in self._claimed.values()}):
            check_folder(folder)


def _key(path):
    try:
        st = os.stat(path)
    except OSError:
        return Path(path).resolve()
    return (st.st_dev, st.st_ino)


def check_folder(folder):
    """The folder can be made (or is there) and written: checked on its nearest existing ancestor."""
    above = Path(folder)
    while not above.exists():
        if os.path.lexists(above):   # a dangling link
            raise WorkbenchError(f"{above} is a broken link; the output folder {folder} cannot be made.")
        above = above.parent
    if not above.is_dir():
        raise WorkbenchError(f"{above} is a file, so the output folder {folder} cannot be made (Not a directory).")
    if not os.access(above, os.W_OK | os.X_OK):
        raise WorkbenchError(f"{above} is not writable (Permission denied or a read-only disk); choose another output.")
    if above == Path(folder):   # there: try it, as the permission bits do not tell (root, /sys, some shares)
        try:
            fd, probe = tempfile.mkstemp(prefix=".workbench-probe.", dir=above)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise WorkbenchError(f"cannot write in {above} ({e.strerror or e}); choose another output.") from None


def check_suffix(path, suffixes):
    """An output whose format is told by its name (an image: .png, .jpg, ...) needs one of `suffixes`."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise WorkbenchError(f"{path}: cannot tell the image format from the name; end it in one of "
                             f"{', '.join(suffixes)}.")
    return path


def check_file(path, *, overwrite=False, suffixes=(), inputs=()):
    """One output file: `Outputs` of one."""
    out = Outputs(inputs, overwrite=overwrite)
    out.claim(path, suffixes=suffixes)
    out.check()
    return Path(path)
