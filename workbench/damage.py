"""`workbench degrade`: apply a degradation chain to photos and write them with a comparison grid."""
from pathlib import Path

import numpy as np

from workbench import recipe as recipes
from workbench.degradation import apply_chain
from workbench.errors import WorkbenchError
from workbench.grid import draw_grid
from workbench.imageio import write_image
from workbench.inputs import collect, load
from workbench.metrics import psnr

GRID_ROWS = 8   # enough to judge the damage at a glance; more makes the PNG unwieldy
ZOOM = 96       # side of the centre crop shown at full resolution (upscaled in the grid)


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


def degrade_files(chain, inputs, outdir, *, seed=0, masks=False, grid=True):
    """Damage each input with its own seed (seed, index); returns [(name, psnr to clean)]."""
    outdir = Path(outdir)
    found = collect(inputs, verb="degrade", sample=True)
    if grid and any(name == "grid.png" for name, _ in found):
        raise WorkbenchError("An input is named grid.png, which would be overwritten by the grid; rename it or pass --no-grid.")
    results, rows = [], []
    for i, (name, where) in enumerate(found):
        clean = load(where)
        damaged, mask = apply_chain(chain, clean, np.random.default_rng([seed, i]))
        write_image(damaged, outdir / name)
        if masks and mask is not None:
            write_image(mask.float().expand(3, -1, -1), (outdir / "masks" / name).with_suffix(".png"))
        score = psnr(damaged, clean)
        results.append((name, score))
        if grid and len(rows) < GRID_ROWS:
            rows.append([(clean, f"{name}: clean"), (damaged, f"damaged, {score:.2f} dB"),
                         (_zoom(clean), "clean, centre zoom"), (_zoom(damaged), "damaged, centre zoom")])
    if grid:
        draw_grid(rows).save(outdir / "grid.png")
    return results
