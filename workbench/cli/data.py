"""`workbench degrade` and `workbench batch`: damage photos, preview training pairs."""
import math

import click

from workbench.cli.base import OVERWRITE, SEED, get_plugins, recipe_with_data


@click.command()
@click.argument("spec")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Folder for the damaged images and grid.png.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a parameter, e.g. quality=10 or degradations.0.scale=4.")
@click.option("--seed", type=SEED, default=None, help="Seed for random parameters (default: the recipe's seed, else 0).")
@click.option("--masks", is_flag=True, help="Also write the destroyed-pixel masks under OUT/masks/.")
@click.option("--grid/--no-grid", default=True, help="Write OUT/grid.png with clean and damaged side by side.")
@click.option("--same-size", is_flag=True, help="Super-resolution: write the low-res image upsampled back to the "
              "original size, as training sees it (default: the low-res image itself, as a real one is).")
@OVERWRITE
def degrade(spec, inputs, outdir, overrides, seed, masks, grid, same_size, overwrite):
    """Damage photos with SPEC: a degradation name, a recipe name or a recipe file.

    INPUT may be image files, folders (searched recursively) or `sample` for the bundled photos.
    """
    from workbench.infer.degrade import chain_from_spec, degrade_files

    chain, recipe = chain_from_spec(spec, get_plugins(), overrides)
    seed = recipe["recipe"]["seed"] if seed is None else seed
    results = degrade_files(chain, inputs, outdir, seed=seed, masks=masks, grid=grid, overwrite=overwrite,
                            same_size=same_size)
    finite = [s for _, s in results if math.isfinite(s)]
    for name, score in results:   # identical to the clean photo (a gray photo under colorize): not "inf dB"
        click.echo(f"{name}: PSNR {score:.2f} dB" if math.isfinite(score) else f"{name}: undamaged (identical to the clean image)")
    same = len(results) - len(finite)
    if not finite:
        mean = f"all {same} undamaged: this damage leaves them as they are"
    else:
        mean = f"mean PSNR to clean {sum(finite) / len(finite):.2f} dB" + (
            f" over {len(finite)}; {same} undamaged, not in the mean" if same else "")
    skipped = f"; {len(results.skipped)} unreadable skipped" if results.skipped else ""
    click.echo(f"Wrote {len(results)} damaged image(s) to {outdir} ({mean})"
               + (f"; grid: {outdir}/grid.png" if grid else "") + skipped)


@click.command()
@click.argument("spec")
@click.option("-o", "--out", "outfile", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--data", help="Folder of training images (default: the recipe's data.train).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. data.size=128.")
@click.option("-n", "count", type=click.IntRange(1, 64), default=8, show_default=True, help="Pairs to show.")
@click.option("--epoch", type=click.IntRange(0), default=0, show_default=True, help="Which epoch's crops and damage.")
@click.option("--valid", "split", flag_value="valid", default="train", help="Show validation pairs instead.")
@OVERWRITE
def batch(spec, outfile, data, overrides, count, epoch, split, overwrite):
    """Show the (damaged, clean) pairs recipe SPEC trains on, exactly as the data pipeline makes them."""
    from workbench.images.files import IMAGE_SUFFIXES, save_pil
    from workbench.runs.outputs import check_file
    from workbench.train.preview import batch_grid, training_pairs

    check_file(outfile, overwrite=overwrite, suffixes=IMAGE_SUFFIXES)
    r = recipe_with_data(spec, overrides, data)
    dataset = training_pairs(r, get_plugins(), split=split)
    save_pil(batch_grid(dataset, n=count, epoch=epoch, batch_size=r["data"]["batch_size"]), outfile, replace=overwrite)
    click.echo(f"Wrote {min(count, len(dataset))} {split} pairs of {dataset!r} to {outfile}")
