"""The images a command is pointed at: files, folders searched recursively, or `sample`."""
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.images.files import list_images, read_image


def collect(inputs, *, verb, sample=False, exclude=None):
    """[(output name, where)]: a file keeps its name, a folder's images keep their sub-folders, and
    `sample` (when allowed) names the bundled photos; two inputs with one output name are an error.
    `where` is a Path, or (source, index) for a sample photo; `load(where)` reads it.
    exclude: the output folder, skipped where it lies inside an input folder (`-o photos/restored`
    run twice must not restore its own outputs)."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = _outside(list_images(path), path, exclude)
            if not files:
                raise WorkbenchError(f"No images (png, jpg, jpeg, bmp, tif, tiff, webp) found under {path}.")
            found += [(f.relative_to(path).as_posix(), f) for f in files]
        elif path.exists():
            found.append((path.name, path))
        elif sample and item == "sample":
            from workbench.data import (
                open_source,  # lazy: importing scikit-image is slow
            )

            src = open_source("sample")
            found += [(f"{src.name(i)}.png", (src, i)) for i in range(len(src))]
        else:
            raise WorkbenchError(f"{path}: no such file or folder.")
    if not found:
        raise WorkbenchError(f"Nothing to {verb}: name image files or folders.")
    seen = {}
    for name, where in found:
        if name in seen:
            raise WorkbenchError(f"Two inputs would both be written as '{name}' ({seen[name]} and {where}); {verb} them into separate folders.")
        seen[name] = where
    return found


def _outside(files, folder, exclude):
    if exclude is None:
        return files
    out, folder_at = Path(exclude).resolve(), folder.resolve()
    if out == folder_at or not out.is_relative_to(folder_at):   # the same folder: every output is an input, refused later
        return files
    kept = [f for f in files if not f.resolve().is_relative_to(out)]
    if len(kept) < len(files):
        print(f"note: skipped the {len(files) - len(kept)} image(s) under {exclude}, the output folder, inside {folder}",
              file=sys.stderr)
    return kept


def load(where):
    """Read what `collect` found as a 3 x H x W float tensor (WorkbenchError if unreadable)."""
    if isinstance(where, tuple):
        src, i = where
        return src.load(i)
    return read_image(where)
