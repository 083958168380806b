"""`workbench run` and `workbench lr-find`: training."""
import math
import os
from pathlib import Path

import click

from workbench.cli.base import OVERWRITE, UserError, get_plugins, recipe_with_data


@click.command()
@click.argument("spec", required=False)
@click.option("--data", help="Training images: a folder, a labelled folder or Tiny ImageNet, or a .zip of one (default: the recipe's data.train).")
@click.option("--valid", help="Validation images (default: hold out data.valid_fraction of the training images).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/NAME-DATE-TIME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. train.epochs=2.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True), help="Continue the run in this directory from its "
              "last checkpoint (--set train.epochs=N extends it).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def run(spec, data, valid, out, overrides, device, resume, quiet):
    """Train recipe SPEC (a name or a .toml file) and write a run directory.

    With --resume RUN_DIR the recipe, data and settings come from that run; --set train.epochs=N
    extends it (see docs/training.md for the keys a resume may change).
    """
    from workbench import recipe as recipe_loader
    from workbench.train import resume as resuming
    from workbench.train.loop import train

    if resume:
        if spec or data or valid or out:
            raise UserError("--resume continues a run as it was: give only --resume RUN_DIR (with --device, and --set "
                            "for the keys a resume may change).")
        resuming.check_overrides(overrides, resume)
        r = recipe_loader.load(str(Path(resume) / "recipe.toml"), get_plugins(), overrides)
        resuming.check_unchanged(r, resume, get_plugins())
    elif not spec:
        raise UserError("Name a recipe to run, e.g. `workbench run colorize` (see `workbench recipes`), or --resume RUN_DIR.")
    else:
        r = recipe_with_data(spec, overrides, data, valid)
    run_dir = train(r, get_plugins(), out=out, device=device, resume=resume, progress=not quiet)
    if quiet and os.environ.get("RANK", "0") == "0":   # under torchrun only rank 0 speaks
        click.echo(str(run_dir))


@click.command("lr-find")
@click.argument("spec")
@click.option("-o", "--out", "outfile", default="lr_find.png", show_default=True, type=click.Path(dir_okay=False), help="PNG plot to write.")
@click.option("--data", help="Training images (default: the recipe's data.train).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--start", type=float, default=1e-6, show_default=True, help="First learning rate.")
@click.option("--end", type=float, default=1.0, show_default=True, help="Last learning rate.")
@click.option("--steps", type=click.IntRange(3), default=100, show_default=True, help="Training steps in the sweep.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@OVERWRITE
def lr_find_cmd(spec, outfile, data, overrides, start, end, steps, device, overwrite):
    """Sweep the learning rate up exponentially and plot the loss; suggests train.lr for SPEC."""
    from workbench.runs.outputs import check_file
    from workbench.train.lr_find import lr_find, plot

    if Path(outfile).suffix.lower() != ".png":
        raise UserError(f"-o {outfile}: the plot is a PNG image; give a file name ending in .png.")
    check_file(outfile, overwrite=overwrite)   # before the sweep, not after it
    if not 0 < start < end < math.inf:
        raise UserError(f"--start {start} and --end {end}: need 0 < start < end, both finite.")
    r = recipe_with_data(spec, overrides, data)
    lrs, losses, suggestion = lr_find(r, get_plugins(), start=start, end=end, steps=steps, device=device, progress=True)
    if len(lrs) < 3:   # too few points to read a curve from: the rates tried were already too high
        raise UserError(f"the loss diverged after {len(lrs)} step(s) of the sweep, at learning rate {start:.2e}; "
                        "lower --start (the default is 1e-6).")
    click.echo(f"Suggested learning rate: {suggestion:.2e} (from a sweep of {len(lrs)} steps); plot: {outfile}")
    click.echo(f"Use it with: workbench run {spec} --set train.lr={suggestion:.1e}")
    plot(lrs, losses, suggestion, outfile, replace=overwrite)   # after the suggestion: a failed write loses nothing
