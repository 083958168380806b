"""`workbench prepare`: cut photos into overlapping sub-images and write them as WebDataset shards.

The cut follows BasicSR's scripts/data_preparation/extract_subimages.py for DIV2K (crop 480, step
240, the last crop of each row and column snapped to the border), so a 2K photo becomes about 40
sub-images that a training lane reads front to back, instead of a 6 MB photo decoded per 96 px crop.
The layout written is the one data/shards.py documents and reads.
"""
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
from contextlib import closing
from pathlib import Path

import numpy as np
import torch

from workbench.api.pixels import to_uint8
from workbench.data.lanes import cores
from workbench.data.shards import COLUMNS, FORMAT, INDEX, MANIFEST, PHOTOS, VERSION
from workbench.data.sources import open_source
from workbench.devices import progress as bars
from workbench.errors import WorkbenchError
from workbench.runs import files

# BasicSR's DIV2K settings: 480 px crops every 240 px, PNG compression 3. Measured on the 40 crops
# of a 2040 x 1356 photo: level 3 takes half the time of level 6 for files 0.7% larger; OpenCV and
# Pillow (compress_level=3) took the same time within noise (930-980 ms); OpenCV, as in BasicSR.
SIZE, STEP, THRESH, SHARD_SIZE = 480, 240, 0, 1000
PNG_LEVEL = 3


def prepare(spec, out, *, size=SIZE, step=STEP, thresh=THRESH, shard_size=SHARD_SIZE, workers=-1, progress=True):
    """Cut the photos of `spec` (a folder, a .zip of one, a Tiny ImageNet root or "sample") into
    `size` px sub-images every `step` px and write them as shards in the new folder `out`.
    `workers`: processes cutting and encoding (-1: one per core; 0: this one); the output is the same.
    Returns {"out", "count", "photos", "shards", "bytes", "skipped": [(name, reason)]}."""
    # 1. check everything that can be checked before a byte is written
    _check_options(size, step, thresh, shard_size, workers)
    out = Path(out)
    _check_out(out)
    if str(spec) != "sample":
        _check_input(Path(spec))
        _check_not_inside(out, Path(spec))
    src = open_source(spec, split="train")
    if workers < 0:   # PNG encoding is 90 % of the work and parallel: 2 processes on 2 cores took 0.57x the time
        workers = cores() if len(src) > 1 and cores() > 1 else 0
    if getattr(src, "root", None) is not None and Path(spec).suffix.lower() == ".zip":
        _check_not_inside(out, src.root)   # the .zip's extracted folder is the input read again next time
    # 2. write into a hidden sibling, renamed into place once complete: a kill never leaves a DIR that looks done
    tmp = _temporary_beside(out)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        summary = _write(src, tmp, size=size, step=step, thresh=thresh, shard_size=shard_size,
                         workers=workers, progress=progress, source="sample" if str(spec) == "sample" else str(Path(spec).resolve()))
        os.rename(tmp, out)   # onto an absent or empty folder only: a folder filled meanwhile makes this fail
        files.fsync_dir(out.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WorkbenchError(f"cannot write {out} ({e.strerror or e}); check free space and permissions, or choose another -o folder.") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return {"out": str(out), **summary}


def _interrupt(signum, frame):
    """SIGTERM (a scheduler, `kill`) stops prepare as Ctrl-C does: workers ended, the partial folder removed."""
    raise KeyboardInterrupt


def starts(length, size, step, thresh=THRESH):
    """Where crops start along a side of `length` px: every `step` px, plus one ending at the border
    when more than `thresh` px would be left over (BasicSR's rule); [0] when the side is shorter."""
    if length < size:
        return [0]
    found = list(range(0, length - size + 1, step))
    if length - (found[-1] + size) > thresh:
        found.append(length - size)
    return found


def cut(img, size, step, thresh=THRESH):
    """[(top, left, H x W x 3 uint8 array)] of a 3 x H x W photo; a photo smaller than `size` in
    either side is kept whole (Tiny ImageNet's 64 px photos), never padded or dropped."""
    if img.dtype != torch.uint8:   # 16-bit and float photos: round to 8 bits for the PNG
        img = to_uint8(img)
    arr = img.permute(1, 2, 0).numpy()   # back to the H x W x 3 layout it was decoded in, no copy
    h, w = arr.shape[:2]
    if h < size or w < size:
        return [(0, 0, arr)]
    return [(t, l, arr[t:t + size, l:l + size]) for t in starts(h, size, step, thresh) for l in starts(w, size, step, thresh)]


def encode_png(arr):
    """PNG bytes of an H x W x 3 RGB uint8 array (OpenCV wants BGR)."""
    import cv2  # imported here, as is webdataset: every other command would pay 90 ms to load them

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise WorkbenchError(f"OpenCV could not encode a {arr.shape[1]} x {arr.shape[0]} sub-image as PNG; report this as a bug.")
    return buf.tobytes()


def _cut_photo(src, i, size, step, thresh):
    """([(top, left, png bytes)], None), or (None, reason) for a photo that cannot be read."""
    try:
        img = src.pixels(i)   # uint8 for 8-bit photos: cut before any float conversion
    except WorkbenchError as e:
        return None, str(e)
    return [(t, l, encode_png(a)) for t, l, a in cut(img, size, step, thresh)], None


_job = None   # (src, size, step, thresh) in a pool worker, sent once rather than with every photo


def _init_worker(*job):
    global _job
    _job = job
    # Ctrl-C reaches the whole process group: a worker interrupted mid-send left the pool's result
    # thread reading half a message, and the parent hung in terminate(). The parent stops them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cut_in_worker(i):
    src, *args = _job
    return _cut_photo(src, i, *args)


def _cuts(src, size, step, thresh, workers):
    """Each photo's cut, in photo order whatever `workers` is, so the output never depends on it."""
    if workers == 0:
        yield from (_cut_photo(src, i, size, step, thresh) for i in range(len(src)))
        return
    # Spawned, not forked: a fork of a process with running threads (torch's, a progress bar's,
    # a loader's) can copy a held lock and hang the child for ever (seen in the test process).
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (src, size, step, thresh)) as pool:   # exit terminates workers
        yield from pool.imap(_cut_in_worker, range(len(src)))


def _write(src, tmp, *, size, step, thresh, shard_size, workers, progress, source):
    photos, skipped, cut = [], [], 0
    # closing(): an error here stops the pool's workers now, not when the traceback is freed
    with closing(_cuts(src, size, step, thresh, workers)) as cuts, _Shards(tmp, shard_size) as shards, \
            bars.bar(cuts, total=len(src), unit="photo", desc="prepare", enabled=progress) as bar:
        for i, (crops, reason) in enumerate(bar):
            if crops is None:
                bars.say(f"warning: skipped {reason}")
                skipped.append((src.name(i), reason))
                continue
            name, label = src.name(i), src.label(i)
            for top, left, png in crops:
                meta = {"photo": name, "top": top, "left": left, "label": label}
                shards.add(png, meta, len(photos), -1 if label is None else label)
            photos.append(name)
            cut += len(crops)
            bar.set_postfix_str(f"{cut} sub-images", refresh=False)
    if not photos:
        raise WorkbenchError(f"none of the {len(src)} photos of {source} could be read (first: {skipped[0][1]}); see the warnings above.")
    # 3. the index and photo names, then the manifest last: a folder without it was interrupted
    index = io.BytesIO()
    np.save(index, np.asarray(shards.rows, dtype=np.int64).reshape(-1, len(COLUMNS)), allow_pickle=False)
    _synced(tmp / INDEX, index.getvalue())
    _synced(tmp / PHOTOS, "".join(json.dumps(p) + "\n" for p in photos).encode("utf-8"))
    manifest = {"format": FORMAT, "version": VERSION, "count": len(shards.rows), "photos": len(photos),
                "size": size, "step": step, "thresh": thresh, "shards": shards.shards,
                "classes": list(src.classes), "source": source}
    _synced(tmp / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    total = sum(p.stat().st_size for p in tmp.iterdir())
    return {"count": len(shards.rows), "photos": len(photos), "shards": len(shards.shards), "bytes": total, "skipped": skipped}


class _Shards:
    """Sub-images into shard-NNNNNN.tar files of `per_shard` each, written by WebDataset's TarWriter
    (mtime 0, so the same input gives the same bytes). A finished shard is indexed from its own tar
    headers, so each offset is where tarfile itself finds the data, not a computed guess."""

    def __init__(self, folder, per_shard):
        self.folder, self.per_shard = Path(folder), per_shard
        self.rows, self.shards = [], []   # index rows; manifest entries {"file", "count"}
        self._file = self._tar = None
        self._open_rows = []   # (key, photo, label) of the shard being written

    def add(self, png, meta, photo, label):
        if self._tar is None:
            from webdataset import TarWriter

            name = f"shard-{len(self.shards):06d}.tar"
            self._file = open(self.folder / name, "wb")
            self._tar = TarWriter(self._file, encoder=False, mtime=0)
            self.shards.append({"file": name, "count": 0})
        key = f"{len(self.rows) + len(self._open_rows):09d}"
        self._tar.write({"__key__": key, "png": png, "json": json.dumps(meta).encode()})
        self._open_rows.append((key, photo, label))
        if len(self._open_rows) == self.per_shard:
            self._finish()

    def _close(self):
        tar, self._tar = self._tar, None
        try:
            tar.close()
            self._file.flush()
            os.fsync(self._file.fileno())   # the manifest, written last, must never outlive its shards
        finally:
            self._file.close()

    def _finish(self):
        self._close()
        entry = self.shards[-1]
        with tarfile.open(self.folder / entry["file"]) as tar:
            where = {m.name: (m.offset_data, m.size) for m in tar}
        for key, photo, label in self._open_rows:
            self.rows.append((len(self.shards) - 1, *where[f"{key}.png"], photo, label))
        entry["count"] = len(self._open_rows)
        self._open_rows = []

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if self._tar is not None:
            self._finish() if kind is None else self._close()   # interrupted: the folder is about to go


def _check_options(size, step, thresh, shard_size, workers):
    if size < 1:
        raise WorkbenchError(f"--size must be at least 1 px, got {size}; BasicSR uses 480 for DIV2K.")
    if not 1 <= step <= size:
        raise WorkbenchError(f"--step must be 1 to {size} px (the --size), got {step}: sub-images further apart than their size would leave pixels out.")
    if thresh < 0:
        raise WorkbenchError(f"--thresh must be 0 or more, got {thresh}.")
    if shard_size < 1:
        raise WorkbenchError(f"--shard-size must be at least 1 sub-image, got {shard_size}.")
    if workers < -1:
        raise WorkbenchError(f"--workers must be -1 (one per core), 0 (this process) or more, got {workers}.")


def _check_out(out):
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"{out} is a file, not a folder; choose a new folder for -o.")
    if out.is_dir() and any(out.iterdir()):
        raise WorkbenchError(f"{out} is not empty; choose a new folder or empty it.")


def _check_input(path):
    if not path.exists():
        raise WorkbenchError(f"{path} does not exist; pass a folder of photos, a .zip of one, a Tiny ImageNet root or `sample`.")


def _check_not_inside(out, folder):
    if folder.is_dir() and out.resolve().is_relative_to(folder.resolve()):
        raise WorkbenchError(f"{out} is inside the input folder {folder}; the next prepare or run would read it as photos, "
                             f"so choose a folder outside it.")


def _temporary_beside(out):
    """A new hidden folder beside `out` to write into. Leftovers of killed runs are named, not
    deleted: another prepare may be writing one."""
    partial = f".{out.name}.partial-"
    siblings = out.parent.iterdir() if out.parent.is_dir() else ()
    for stale in sorted(p for p in siblings if p.name.startswith(partial)):
        print(f"warning: {stale} is left from an interrupted preparation; delete it to free its space.", file=sys.stderr)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=partial))
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's 0700 would make the finished folder private
    except OSError as e:
        raise WorkbenchError(f"cannot write beside {out} ({e.strerror or e}); choose another -o folder.") from e
    return tmp


def _synced(path, data):
    """Write `data` to `path` and flush it to the disk (the folder is renamed into place only after)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
