"""`workbench extend`: grow a panorama by outpainting one strip at a time (fast.ai lesson 25 exercise).

Each step takes the image-sized window at the growing side, pushes it outwards so that a strip at
the outer edge is unknown, fills that strip as the recipe's `erase` degradation did in training,
and keeps only the model's strip. The window stays the original image's size because the model
restores best at the size and aspect it trained on; known pixels are never touched.
"""
import numbers
import sys
from pathlib import Path

import numpy as np
import torch

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


def erase_table(recipe_cfg):
    """The recipe's erase degradation that outpaints (shape "strip"), else its first erase, else None."""
    erases = [t for t in (recipe_cfg or {}).get("degradations") or [] if t.get("type") == "erase"]
    strips = [t for t in erases if "strip" in _choices(t.get("shape", "rectangles"))]
    return (strips or erases or [None])[0]


def _choices(spec):
    return list(spec) if isinstance(spec, (list, tuple)) else [spec]


def _number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def fill_settings(recipe_cfg):
    """(fill, value) as the recipe's erase fills: a list or range gives its first entry, one the model saw."""
    from workbench_plugins.erase import FILLS

    table = erase_table(recipe_cfg) or {}
    fill = _choices(table.get("fill", "noise"))[0]
    value = _choices(table.get("value", 0.5))[0]
    if fill not in FILLS or not _number(value):
        raise WorkbenchError(f"the recipe's erase has fill = {table.get('fill')!r}, value = {table.get('value')!r}: "
                             f"fill must be one of {', '.join(FILLS)} and value a number")
    return fill, float(value)


def trained_strip(recipe_cfg):
    """The strip fraction the recipe erased, if a single number; else the default."""
    s = (erase_table(recipe_cfg) or {}).get("strip")
    return float(s) if _number(s) and 0 < s < 1 else STRIP


def _fill(known, shape, fill, value, rng):
    if fill == "noise":  # uniform in [0, 1), as erase draws it
        return torch.from_numpy(rng.random(shape, dtype=np.float32))
    if fill == "mean":  # erase uses the clean image's mean; the known part is our best estimate of it
        return known.mean(dim=(1, 2), keepdim=True).expand(shape).clone()
    return torch.full(shape, value)


def extend_image(model, img, *, side="right", times=1, strip=None, recipe_cfg=None, device="cpu", tile=0, seed=0):
    """Extend a 3 x H x W image in [0, 1] by `times` model-made strips at `side` -> the larger image.

    strip: fraction of the window that each step invents (None: the recipe's erase strip, or 0.25);
    recipe_cfg: the trained recipe, whose erase degradation says how to fill the unknown strip;
    tile: passed to `restore_tensor` (0: the whole window in one pass); seed: for the noise fill.
    """
    from workbench.infer.restore import restore_tensor

    check_args(side, times, strip)
    if img.ndim != 3 or img.shape[0] != 3:
        raise WorkbenchError(f"img must be 3 x H x W, got shape {tuple(img.shape)}")
    strip = trained_strip(recipe_cfg) if strip is None else strip
    fill, value = fill_settings(recipe_cfg)
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
    for step in range(times):
        # 1. the window: the last size - n known pixels along `dim`, plus the unknown strip outside them
        edge = size + step * n if outward else total - size - step * n  # first unknown (outward) / first known index
        known = canvas.narrow(dim, edge - (size - n), size - n) if outward else canvas.narrow(dim, edge, size - n)
        blank = _fill(known, strip_shape, fill, value, rng)
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


def extend_file(run_dir, image_path, out_path, *, side="right", times=1, strip=None, device="auto", seed=0, plugins=None):
    """Extend an image file with a run's best checkpoint and write it to `out_path` -> (w, h) written."""
    from workbench.api import registry as plugin_manager
    from workbench.runs.checkpoint import load_model, task_of
    from workbench.devices.device import pick_device
    from workbench.images.files import read_image, write_image

    check_args(side, times, strip)  # before the slow model load
    if Path(out_path).resolve() == Path(image_path).resolve():
        raise WorkbenchError(f"{out_path} would overwrite its input; choose another output file.")
    plugins = plugins if plugins is not None else plugin_manager.load()
    model, state = load_model(run_dir, plugins)
    if task_of(state, plugins) == "classify":
        raise WorkbenchError(f"{run_dir}: is a classifier run; it labels images and cannot extend them. "
                             "Use the run directory of an outpainting recipe (outpaint).")
    recipe = state["recipe"]
    name = (recipe.get("recipe") or {}).get("name", "?")
    table = erase_table(recipe)
    # Any inpainting model can try, so warn rather than refuse.
    if table is None or "strip" not in _choices(table.get("shape", "rectangles")):
        _warn(f"recipe '{name}' ({run_dir}) has no erase degradation with shape \"strip\": it was not trained to "
              "outpaint, so the new strips may be poor.")
    elif not {side, "random"} & set(_choices(table.get("side", "random"))):
        _warn(f"recipe '{name}' ({run_dir}) trained strips on side {table.get('side')!r}, not {side!r}: "
              "the new strips may be poor.")
    img = read_image(image_path)
    dev = pick_device(device) if not isinstance(device, torch.device) else device
    out = extend_image(model, img, side=side, times=times, strip=strip, recipe_cfg=recipe, device=dev, seed=seed)
    write_image(out, out_path)
    return out.shape[2], out.shape[1]
