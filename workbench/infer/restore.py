"""`workbench restore`: run a trained restorer on your own photos, tile by tile so memory stays bounded.

Large photos are cut into overlapping tiles, each restored on its own and blended back with a
raised-cosine window, so a 12 MP photo needs one tile's activations rather than the whole image's,
and the tile borders (where the U-Net lacks context) leave no seams.

With `self_ensemble` each tile is restored in its 8 flips and quarter turns, each output turned back
and the 8 averaged: the "geometric self-ensemble" of EDSR (Lim et al. 2017), published as "EDSR+",
which trades 8x the time for about +0.1 dB with no retraining.
"""
import glob
import math
import sys
from pathlib import Path

import torch

from workbench import recipe as recipes
from workbench.api.contracts import MASK_HELP, call_model, capability
from workbench.data.inputs import collect
from workbench.devices import progress
from workbench.devices.device import pick_device
from workbench.errors import WorkbenchError
from workbench.images import masks
from workbench.images.files import IMAGE_SUFFIXES, output_name, read_image_and_look
from workbench.infer import savers, segment
from workbench.runs import files
from workbench.runs.checkpoint import load_model, task_of
from workbench.runs.files import WriteError
from workbench.runs.outputs import Outputs
from workbench.runs.weightfile import describe, load_weights, tiling_note

MIN_CORE = 16  # a tile keeps at least this many unblended pixels between its two ramps
# The dihedral group of the square: (quarter turns, mirrored first). The first view is the image as is.
VIEWS = tuple((turns, mirror) for mirror in (False, True) for turns in range(4))


def check_tiling(tile, overlap):
    """WorkbenchError (a ValueError, shown as one line by the CLI) for values that cannot tile an image."""
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
        raise WorkbenchError(f"overlap = {overlap!r} must be an integer >= 0")
    if not isinstance(tile, int) or isinstance(tile, bool) or (tile != 0 and tile < 2 * overlap + MIN_CORE):
        raise WorkbenchError(f"tile = {tile!r} with overlap = {overlap} is too small: tile must be 0 (no tiling) "
                         f"or at least 2 * overlap + {MIN_CORE} = {2 * overlap + MIN_CORE}")


def tile_starts(n, tile, overlap):
    """Start offsets along one side of length n: a step of tile - overlap, the last tile shifted
    back to end at the border so that every tile is full-size."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return starts + [n - tile]


def _windows(starts, size, n, overlap):
    """1-D blending windows, one per tile, and their sum over the side. The ramps rise from near 0 to
    1 over `overlap` pixels on each side facing another tile (not at the image border, where there is
    no other tile to take over); sin^2 + cos^2 = 1 makes two facing ramps sum to 1 exactly."""
    i = torch.arange(overlap, dtype=torch.float32)
    ramp = torch.sin(math.pi / 2 * (i + 0.5) / max(overlap, 1)) ** 2   # > 0: every pixel keeps some weight
    wins, total = [], torch.zeros(n)
    for s in starts:
        w = torch.ones(size)
        if overlap and s > 0:
            w[:overlap] = ramp
        if overlap and s + size < n:
            w[size - overlap:] = ramp.flip(0)
        wins.append(w)
        total[s:s + size] += w
    return wins, total


def _forward(model, x, mask, device, self_ensemble):
    """One 3 x h x w piece (and its 1 x h x w mask, or None) through the model -> float32 on the CPU;
    with `self_ensemble`, the mean over the 8 VIEWS, each turned back before averaging."""
    x = x.unsqueeze(0).to(device, non_blocking=True)
    mask = None if mask is None else mask.unsqueeze(0).to(device, non_blocking=True)
    views = VIEWS if self_ensemble else VIEWS[:1]
    total = None
    for view in views:
        y = call_model(model, _view(x, *view), None if mask is None else _view(mask, *view))
        y = _unview(y.float(), *view)
        total = y if total is None else total.add_(y)
    return (total[0] if len(views) == 1 else total[0].div_(len(views))).cpu()


def _view(t, turns, mirror):
    t = t.flip(-1) if mirror else t
    return torch.rot90(t, turns, (-2, -1)) if turns else t


def _unview(t, turns, mirror):
    t = torch.rot90(t, -turns, (-2, -1)) if turns else t
    return t.flip(-1) if mirror else t


def restore_tensor(model, img, *, mask=None, tile=512, overlap=32, device="cpu", clamp=True,
                   self_ensemble=False):
    """Restore a 3 x H x W float image in [0, 1] -> C x sH x sW float32 on the CPU (C = 3,
    or a segmenter's classes), clamped to [0, 1]
    (clamp=False keeps the raw output, so `eval` can check its value range); s is the model's `upscale`,
    1 but for a published super-resolution net that enlarges the photo itself.

    mask: bool 1 x H x W, True where pixels are missing, for a model that takes it (workbench.images.masks).
    self_ensemble: average each tile's restorations in its 8 flips and quarter turns (8x the time).

    tile: side of the square tiles (0: the whole image in one pass); overlap: pixels blended between
    neighbouring tiles. Only one tile and its activations are on `device` at a time; the image and
    the output accumulator stay on the CPU.
    """
    check_tiling(tile, overlap)
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"img must be 3 x H x W, got shape {tuple(img.shape)}")
    device = torch.device(device)
    model.eval().to(device)
    img = img.float().cpu()
    _, h, w = img.shape
    s = int(capability(model, "upscale"))
    # no_grad, not inference_mode: callers may update the result in place outside inference mode.
    with torch.no_grad():
        if tile == 0 or (h <= tile and w <= tile):
            # Not clamp_: a model that returns its input (an identity plugin) would hand back `img` itself.
            out = _forward(model, img, mask, device, self_ensemble)
            return out.clamp(0, 1) if clamp else out.clone()
        th, tw = min(h, tile), min(w, tile)
        ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
        # blended at the output's resolution: every offset and width s times the input's
        (wys, sum_y), (wxs, sum_x) = (_windows([y * s for y in ys], th * s, h * s, overlap * s),
                                      _windows([x * s for x in xs], tw * s, w * s, overlap * s))
        out = None   # as many channels as the model returns: 3 for a photo, one per class for a segmenter
        # under a command's bar over photos, this one takes the next line and vanishes when done
        with progress.bar(desc="tiles", total=len(ys) * len(xs), unit="tile") as tiles:
            for y, wy in zip(ys, wys):
                for x, wx in zip(xs, wxs):
                    part = None if mask is None else mask[:, y:y + th, x:x + tw]
                    piece = _forward(model, img[:, y:y + th, x:x + tw], part, device, self_ensemble)
                    out = torch.zeros(len(piece), h * s, w * s) if out is None else out
                    out[:, y * s:(y + th) * s, x * s:(x + tw) * s].addcmul_(piece, wy[:, None] * wx[None, :])
                    tiles.update()
        # The tile grid is a product of rows and columns, so sum(w) = sum_y(y) * sum_x(x): two
        # vectors instead of a full-size weight map, divided out in place (no extra image copy).
        out.div_(sum_y[:, None]).div_(sum_x)
        return out.clamp_(0, 1) if clamp else out


def prepare_input(img, chain):
    """What the model expects from a real photo -> (img, scale): each degradation of the trained
    chain, last first, prepares it as its training inputs looked (`prepare`: a super-resolution
    degradation upsamples by its scale, fast.ai lesson 25); scale is how much larger it became."""
    h = img.shape[1]
    for _, deg in reversed(chain):
        img = capability(deg, "prepare")(img)
    return img, img.shape[1] // h


class Restored(list):
    """[(input path, output path, (w, h) in, (w, h) out)], plus `skipped`: [(path, reason)] and `what`
    was written (photos, or a segmenter's class maps)."""

    def __init__(self, what="photo(s)"):
        super().__init__()
        self.skipped, self.what = [], what


def restore_files(run_dir, inputs, outdir, *, mask=None, tile=512, overlap=32, device="auto", plugins=None,
                  self_ensemble=False, spread=None, overwrite=False, weights=None):
    """Restore image files and folders with a run's best checkpoint into `outdir`, under the same
    names (folders keep their sub-folders). An unreadable input is skipped with a warning; returns
    a `Restored` list of (input path, output path, (w, h) in, (w, h) out).

    mask: for a model that takes the mask of missing pixels (a masked inpainting U-Net): a mask
    image for a single input, or a folder with a mask under each input's name (any image suffix).
    self_ensemble: average the 8 flips and quarter turns of each tile (8x the time; see the module docstring).
    spread: a `workbench.devices.spread.Spread` under torchrun (pass its `device` too): this rank restores
    its share, and every rank returns the whole merged list; rank 0 alone prints the skip warnings.
    overwrite: replace output files that exist (else the command refuses before any work).
    weights: a published model's file to restore with instead of `run_dir` (workbench.runs.weightfile); no recipe
    is needed: a super-resolution net enlarges the photo itself (its `upscale`), so no chain prepares it.
    """
    from workbench.api import registry as plugin_manager
    from workbench.devices.spread import Spread, in_order

    check_tiling(tile, overlap)  # before the slow model load
    plugins = plugins if plugins is not None else plugin_manager.load()
    if weights is None:
        model, state = load_model(run_dir, plugins)
    else:   # messages name the file where they would name the run
        model, state, run_dir = load_weights(weights, plugins), None, weights
    task = None if state is None else task_of(state, plugins)
    if task == "classify":
        raise WorkbenchError(f"{run_dir}: is a classifier run; it labels images and cannot restore them. "
                             "Use the run directory of a restoration recipe (superres, dejpeg, colorize, ...).")
    dev = pick_device(device) if not isinstance(device, torch.device) else device
    outdir = Path(outdir)
    if outdir.suffix.lower() in IMAGE_SUFFIXES and not outdir.is_dir():
        raise WorkbenchError(f"-o {outdir} looks like an image file, but restore writes into a folder (the photos keep "
                             "their names); give a folder.")
    found = collect(inputs, verb="restore", exclude=outdir)
    mask_of = _mask_finder(mask, found, capability(model, "takes_mask"), run_dir)
    if task == "segment":   # the class map of each photo, as probabilities blended across tiles
        model, name_of, save = segment.Probabilities(model), segment.mask_name, segment.save_classes
    else:
        name_of, save = output_name, (savers.colour if task == "stylize" else savers.photo)
    jobs = [(path, outdir / name_of(name), mask_of(name)) for name, path in found]
    outputs = Outputs([p for job in jobs for p in (job[0], job[2]) if p is not None], overwrite=overwrite)
    for path, dst, _ in jobs:
        outputs.claim(dst, path, suffixes=IMAGE_SUFFIXES)
    # Every check ran on the whole list on every rank; the last one is a meeting point, so no rank
    # writes before all have looked at the outputs (a rank's first file must not refuse another's).
    sp = spread or Spread()
    sp.settle(outputs.check)
    if sp.leader:
        tiling_note(model, tile, describe(weights, model) if weights else str(run_dir))
    chain = [] if state is None else \
        recipes.from_dict(state["recipe"], f"{run_dir}/recipe.toml", plugins).degradation_chain(plugins)
    opts = dict(model=model, chain=chain, save=save, tile=tile, overlap=overlap, device=dev, replace=overwrite,
                self_ensemble=self_ensemble, warn=sp.world == 1)   # more ranks: rank 0 warns, in input order
    bar = dict(desc="restore", unit="photo", leader=sp.leader)   # made inside `settle`: its failure reaches every rank
    parts = sp.settle(lambda: [(i, _restore_one(*job, **opts)) for i, job in progress.bar(sp.mine(jobs), **bar)])
    results = Restored("class map(s)" if task == "segment" else "photo(s)")
    for i, (reason, size_in, size_out) in in_order(parts):
        path, dst, _ = jobs[i]
        if reason is None:
            results.append((path, dst, size_in, size_out))
            continue
        results.skipped.append((path, reason))
        if sp.world > 1 and sp.leader:
            print(f"Warning: skipped {reason}", file=sys.stderr)
    if not results:
        # "restored", not "read": a mask of the wrong size skips a readable photo too
        raise WorkbenchError(f"None of the {len(jobs)} inputs could be restored (first: {results.skipped[0][1]}); "
                             "see the warnings above.")
    return results


def _restore_one(path, dst, mask_path, *, model, chain, tile, overlap, device, self_ensemble, warn, replace, save):
    """Restore one photo into `dst` -> (None, (w, h) in, (w, h) out), or (why it was skipped, None, None)."""
    try:
        img, look = read_image_and_look(path)
        hole = None if mask_path is None else masks.read_mask(mask_path, (img.shape[2], img.shape[1]))
    except WorkbenchError as e:
        if warn:
            progress.say(f"Warning: skipped {e}")
        return str(e), None, None
    size_in = (img.shape[2], img.shape[1])
    img, scale = prepare_input(img, chain)
    if hole is not None and scale > 1:
        hole = hole.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    out = restore_tensor(model, img, mask=hole, tile=tile, overlap=overlap, device=device, self_ensemble=self_ensemble)
    del img  # free the input before write_image makes its 8-bit copies
    try:
        # By the one writer of this name (under torchrun, of this rank's share): what a killed write left
        files.remove_temporary(dst.parent, glob.escape(dst.name))
        save(out, dst, replace=replace, look=look, chain=chain)
    except WriteError as e:
        # A full disk or a folder in the way stops the command (the next photo would fail too),
        # as one line; under torchrun it may happen on one rank only, and reaches all (spread).
        if e.exists:   # appeared since the outputs were checked: its own message says it all
            raise
        raise WorkbenchError(f"{dst}: cannot write the restored photo ({e.reason}); check the output folder.") from e
    return None, size_in, (out.shape[2], out.shape[1])


def _mask_finder(mask, found, wanted, run_dir):
    """name -> the mask file for that input (or None), after checking that masks and model agree."""
    if mask is None:
        if wanted:
            raise WorkbenchError(f"{run_dir}: this model fills holes it is told about: pass --mask with "
                                 f"{MASK_HELP} (a folder of them for several photos).")
        return lambda name: None
    if not wanted:
        raise WorkbenchError(f"{run_dir}: this model finds the damage by itself and takes no mask; drop --mask.")
    mask = Path(mask)
    if mask.is_file():
        if len(found) != 1:
            raise WorkbenchError(f"--mask {mask} is one file but there are {len(found)} photos: "
                                 "give a folder with a mask under each photo's name.")
        return lambda name: mask
    if not mask.is_dir():
        raise WorkbenchError(f"--mask {mask}: no such file or folder.")

    def lookup(name):
        # The photo's own name first, then the same name with another image suffix (photo.jpg, photo.png).
        exact = mask / name
        if exact.is_file():
            return exact
        others = exact.parent.iterdir() if exact.parent.is_dir() else []
        same = sorted(p for p in others if p.stem == exact.stem and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not same:
            raise WorkbenchError(f"--mask {mask}: no mask for {name} (looked for {exact} and other image suffixes).")
        return same[0]
    return lookup   # called for every photo before any is restored: a missing mask stops nothing half-done
