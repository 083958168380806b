"""`workbench degrade`: apply a degradation chain to photos and write them with a comparison grid."""
import glob
import math
import sys
from pathlib import Path

import numpy as np

from workbench import recipe as recipes
from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.data.inputs import collect, load
from workbench.devices import progress
from workbench.errors import WorkbenchError
from workbench.images.files import IMAGE_SUFFIXES, RGB, output_name, read_image_and_look, save_pil, write_image
from workbench.images.grid import draw_grid
from workbench.images.metrics import psnr
from workbench.runs import files
from workbench.runs.outputs import Outputs

GRID_ROWS = 8   # enough to judge the damage at a glance; more makes the PNG unwieldy
ZOOM = 96       # side of the centre crop shown at full resolution (upscaled in the grid)
SHOW_SKIPPED = 5   # unreadable inputs named in the closing warning; the rest are counted


def chain_from_spec(spec, plugins, overrides=()):
    """SPEC is a recipe file, a degradation name, or a recipe name (checked in that order)."""
    if not Path(spec).is_file() and spec in plugins.degradations:
        table = {"type": spec}
        # `--set quality=10` is short for `--set degradations.0.quality=10` here.
        overrides = [o if o.startswith("degradations.") else f"degradations.0.{o}" for o in overrides]
        recipe = recipes.from_dict({"degradations": [table]}, spec, plugins, overrides, from_file=False)
    else:
        recipe = recipes.load(spec, plugins, overrides)
    if not recipe["degradations"]:
        raise WorkbenchError(f"{recipe.source}: the recipe has no [[degradations]] to apply.")
    return recipe.degradation_chain(plugins), recipe


def _zoom(img, side=ZOOM):
    """The centre crop at full resolution: a downscaled grid tile hides the fine damage."""
    _, h, w = img.shape
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[:, top:top + side, left:left + side]


class Degraded(list):
    """[(name, psnr to clean)], plus `skipped`: [(name, reason)] of the inputs that could not be read."""

    def __init__(self):
        super().__init__()
        self.skipped = []


def damage(chain, clean, rng, *, same_size=False):
    """The chain's damage as a file should hold it -> (damaged, mask, view): for super-resolution
    (a step with `shrink`) the low-res image a user really has, the steps after it applied at that
    size, unless `same_size`; `view` is what `restore` would feed the model (the low-res image
    prepared back to size), for the PSNR and the grid."""
    shrinks = not same_size and any(capability(d, "scale_factor") > 1 for _, d in chain)
    if not shrinks or any(capability(d, "reports_mask") for _, d in chain):   # a mask keeps the photo's size
        damaged, mask = apply_chain(chain, clean, rng)
        return damaged, mask, damaged
    img = clean
    for step in chain:
        small = capability(step[1], "shrink")(img, rng)
        img = small if small is not None else apply_chain([step], img, rng)[0]
    from workbench.infer.restore import prepare_input

    return img, None, prepare_input(img, chain)[0]


def degrade_files(chain, inputs, outdir, *, seed=0, masks=False, grid=True, overwrite=False, same_size=False):
    """Damage each input with its own seed (seed, index); returns a `Degraded` list of (name, psnr to
    clean). An unreadable input is skipped with a warning (as eval and restore do); none readable
    is an error. Every output is checked before the first is written (workbench.runs.outputs):
    none is an input, none is named twice, none exists unless `overwrite`."""
    outdir = Path(outdir)
    found = collect(inputs, verb="degrade", sample=True, exclude=outdir)
    outputs = Outputs([where for _, where in found if isinstance(where, Path)], overwrite=overwrite)
    found = [(str(output_name(name)), where) for name, where in found]   # anim.gif -> anim.png
    for name, where in found:
        source = where if isinstance(where, Path) else name
        outputs.claim(outdir / name, source, suffixes=IMAGE_SUFFIXES)
        if masks:   # claimed whether or not the chain reports one: a clash is found before any work
            outputs.claim(mask_name(outdir, name), f"the mask of {source}")
    if grid:
        outputs.claim(outdir / "grid.png", "the comparison grid (or pass --no-grid)")
    outputs.check()
    results, rows = Degraded(), []
    for i, (name, where) in enumerate(progress.bar(found, desc="degrade", unit="photo")):
        try:
            # a file's own kind (gray, 16-bit, palette, transparency) is kept in its damaged copy
            clean, look = read_image_and_look(where) if isinstance(where, Path) else (load(where), RGB)
        except WorkbenchError as e:
            if len(found) == 1:
                raise   # the only input: its own error says it all
            progress.say(f"warning: skipped {e}")
            results.skipped.append((name, str(e)))
            continue
        damaged, mask, view = damage(chain, clean, np.random.default_rng([seed, i]), same_size=same_size)
        files.remove_temporary((outdir / name).parent, glob.escape(Path(name).name))   # left by a killed write
        write_image(damaged, outdir / name, replace=outputs.replace, look=look)
        if masks and mask is not None:
            write_image(mask.float().expand(3, -1, -1), mask_name(outdir, name), replace=outputs.replace)
        clean = clean[:, :view.shape[1], :view.shape[2]]   # a size not a multiple of the scale comes back cropped
        score = psnr(view, clean)
        results.append((name, score))
        if grid and len(rows) < GRID_ROWS:
            said = f"damaged, {score:.2f} dB" if math.isfinite(score) else "undamaged (identical)"
            rows.append([(clean, f"{name}: clean"), (view, said),
                         (_zoom(clean), "clean, centre zoom"), (_zoom(view), "damaged, centre zoom")])
    if not results:
        raise WorkbenchError(f"None of the {len(found)} inputs could be read (first: {results.skipped[0][1]}); see the warnings above.")
    if results.skipped:
        names = [n for n, _ in results.skipped]
        more = ", ..." if len(names) > SHOW_SKIPPED else ""
        print(f"warning: {len(names)} unreadable input(s) skipped: {', '.join(names[:SHOW_SKIPPED])}{more}", file=sys.stderr)
    if grid:
        save_pil(draw_grid(rows), outdir / "grid.png", replace=outputs.replace)
    return results


def mask_name(outdir, name):
    """OUT/masks/NAME.png: the layout `restore --mask OUT/masks` reads back."""
    return (outdir / "masks" / name).with_suffix(".png")
