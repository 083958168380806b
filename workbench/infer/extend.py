"""`workbench extend`: grow a panorama by outpainting one strip at a time (fast.ai lesson 25 exercise).

Each step takes the image-sized window at the growing side, pushes it outwards so that a strip at
the outer edge is unknown, fills that strip as the trained degradation did (its `outpaint` capability),
and keeps only the model's strip. The window stays the original image's size because the model
restores best at the size and aspect it trained on; known pixels are never touched.
"""
import numbers
import sys

import numpy as np
import torch

from workbench.api.contracts import capability
from workbench.devices import progress
from workbench.errors import WorkbenchError

SIDES = ("left", "right", "top", "bottom")
STRIP = 0.25  # the erase degradation's default strip, which the outpaint recipe trains with


def check_args(side, times, strip):
    """WorkbenchError naming the argument for a side, count or strip fraction that cannot work."""
    if side not in SIDES:
        raise WorkbenchError(f"side = {side!r} is not allowed: choose one of {', '.join(SIDES)}")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise WorkbenchError(f"times = {times!r} must be an integer >= 1 (strips to add)")
    if strip is not None and (isinstance(strip, bool) or not isinstance(strip, numbers.Real) or not 0 < strip < 1):
        raise WorkbenchError(f"strip = {strip!r} must be a fraction above 0 and below 1 of the image's width (height)")


def outpaint_of(chain):
    """The first step of a degradation chain that erased strips (its `Outpaint`), else the first that
    erases at all, else None: how the new strips are filled and how wide they are."""
    found = [o for _, deg in chain if (o := capability(deg, "outpaint")()) is not None]
    return ([o for o in found if o.sides] or found or [None])[0]


def _noise(known, shape, rng):
    return torch.from_numpy(rng.random(shape, dtype=np.float32))


def extend_image(model, img, *, side="right", times=1, strip=None, outpaint=None, device="cpu", tile=0, seed=0):
    """Extend a 3 x H x W image in [0, 1] by `times` model-made strips at `side` -> the larger image.

    strip: fraction of the window that each step invents (None: the trained strip, or 0.25);
    outpaint: the trained degradation's `Outpaint` (`outpaint_of`): how to fill the unknown strip
    (None: uniform noise);
    tile: passed to `restore_tensor` (0: the whole window in one pass); seed: for the noise fill.
    """
    from workbench.infer.restore import restore_tensor

    check_args(side, times, strip)
    if img.ndim != 3 or img.shape[0] != 3:
        raise WorkbenchError(f"img must be 3 x H x W, got shape {tuple(img.shape)}")
    if strip is None:   # the trained strip when it was one number (erase checks it is inside (0, 1))
        strip = outpaint.strip if outpaint is not None and outpaint.strip is not None else STRIP
    fill = outpaint.fill if outpaint is not None else _noise
    dim = 2 if side in ("left", "right") else 1
    size = img.shape[dim]
    if size < 2:
        raise WorkbenchError(f"the image is {size} pixel(s) along the side to extend; it needs at least 2 to keep any")
    # As erase's strip: at least one new pixel and at least one known one.
    n = min(max(1, round(size * strip)), size - 1)
    total = size + times * n
    outward = side in ("right", "bottom")  # the canvas grows towards higher indices
    shape = list(img.shape)
    shape[dim] = total
    canvas = torch.empty(shape)  # allocated once: no copy of the growing canvas per step
    canvas.narrow(dim, 0 if outward else total - size, size).copy_(img)
    rng = np.random.default_rng(seed)
    strip_shape = list(img.shape)
    strip_shape[dim] = n
    for step in progress.bar(range(times), desc="extend", unit="strip"):
        # 1. the window: the last size - n known pixels along `dim`, plus the unknown strip outside them
        edge = size + step * n if outward else total - size - step * n  # first unknown (outward) / first known index
        known = canvas.narrow(dim, edge - (size - n), size - n) if outward else canvas.narrow(dim, edge, size - n)
        blank = fill(known, strip_shape, rng)
        x = torch.cat([known, blank] if outward else [blank, known], dim=dim)
        hole = torch.zeros(1, *x.shape[1:], dtype=torch.bool)   # for a model told where the holes are
        hole.narrow(dim, size - n if outward else 0, n).fill_(True)
        # 2. the model invents the strip; only that strip goes onto the canvas
        out = restore_tensor(model, x, mask=hole, tile=tile, device=device)
        new = out.narrow(dim, size - n if outward else 0, n)
        canvas.narrow(dim, edge if outward else edge - n, n).copy_(new)
    return canvas


def _warn(msg):
    print(f"Warning: {msg}", file=sys.stderr)


def extend_file(run_dir, image_path, out_path, *, side="right", times=1, strip=None, device="auto", seed=0, plugins=None,
                overwrite=False):
    """Extend an image file with a run's best checkpoint and write it to `out_path` -> (w, h) written;
    an existing `out_path` is replaced only with `overwrite`."""
    from workbench import recipe as recipes
    from workbench.api import registry as plugin_manager
    from workbench.devices.device import pick_device
    from workbench.images.files import IMAGE_SUFFIXES, read_image, write_image
    from workbench.runs.checkpoint import load_model, task_of
    from workbench.runs.outputs import check_file

    check_args(side, times, strip)  # before the slow model load
    check_file(out_path, overwrite=overwrite, suffixes=IMAGE_SUFFIXES, inputs=[image_path])
    plugins = plugins if plugins is not None else plugin_manager.load()
    model, state = load_model(run_dir, plugins)
    if task_of(state, plugins) == "classify":
        raise WorkbenchError(f"{run_dir}: is a classifier run; it labels images and cannot extend them. "
                             "Use the run directory of an outpainting recipe (outpaint).")
    recipe = recipes.from_dict(state["recipe"], f"{run_dir}/recipe.toml", plugins)
    outpaint = outpaint_of(recipe.degradation_chain(plugins))
    # Any inpainting model can try, so warn rather than refuse.
    if outpaint is None or not outpaint.sides:
        _warn(f"recipe '{recipe.name}' ({run_dir}) has no degradation that erased strips: it was not trained to "
              "outpaint, so the new strips may be poor.")
    elif side not in outpaint.sides:
        _warn(f"recipe '{recipe.name}' ({run_dir}) trained strips on side(s) {', '.join(sorted(outpaint.sides))}, "
              f"not {side!r}: the new strips may be poor.")
    img = read_image(image_path)
    dev = pick_device(device) if not isinstance(device, torch.device) else device
    out = extend_image(model, img, side=side, times=times, strip=strip, outpaint=outpaint, device=dev, seed=seed)
    write_image(out, out_path, replace=overwrite)
    return out.shape[2], out.shape[1]
