"""The `workbench` command line. Domain errors become one line and exit status 2 only here."""
import inspect
import json
import math
import os
import sys
from pathlib import Path

import click

from workbench import __version__
from workbench import plugins as plugin_manager
from workbench.errors import WorkbenchError
from workbench.recipe import toml_value


class UserError(click.ClickException):
    """A user mistake: printed as one line, exit status 2 (like click's usage errors)."""

    exit_code = 2


class WorkbenchGroup(click.Group):
    """Loads plugins once the global options are parsed, so plugin commands and --plugin work."""

    def _plugins(self, ctx):
        root = ctx.find_root()
        if not isinstance(root.obj, plugin_manager.Plugins):
            root.obj = plugin_manager.load(root.params.get("plugin_paths") or ())
            for impl in root.obj.pm.hook.register_commands.get_hookimpls():
                impl.function(**{arg: self for arg in impl.argnames})
        return root.obj

    def get_command(self, ctx, name):
        try:
            self._plugins(ctx)
        except WorkbenchError as e:
            raise UserError(str(e)) from None
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WorkbenchError as e:
            raise UserError(str(e)) from None


def get_plugins(ctx=None):
    ctx = ctx or click.get_current_context()
    return ctx.find_root().obj


@click.group(cls=WorkbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugin", "plugin_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Load a plugin module from a .py file (repeatable; also $WORKBENCH_PLUGINS).")
@click.version_option(__version__, prog_name="workbench")
def cli(plugin_paths):
    """Train and judge image restorers: degrade photos, restore them, measure the gain."""


@cli.command()
def plugins():
    """Print each plugin, where it comes from and the names it registers, as JSON."""
    click.echo(json.dumps(get_plugins().describe(), indent=2))


@cli.command("list")
@click.argument("kind", required=False, type=click.Choice(plugin_manager.KINDS))
@click.option("-v", "--verbose", is_flag=True, help="Also print each component's full documentation.")
def list_(kind, verbose):
    """List degradations, models, losses and recipes with their parameters and plugin."""
    found = get_plugins()
    for k in [kind] if kind else plugin_manager.KINDS:
        reg = found.registry(k)
        if not kind:
            click.echo(f"{k}:")
        for name in reg.names():
            click.echo(("  " if not kind else "") + _describe(reg, name))
            doc = inspect.getdoc(reg.get(name)) if verbose and k != "recipes" else None
            if doc:
                click.echo("\n".join("      " + line for line in doc.splitlines()[1:] if line.strip()) + "\n")


def _describe(reg, name):
    obj, plugin = reg.get(name), reg.plugin_of(name)
    if reg.kind == "recipes":
        return f"{name}  [{plugin}]"
    params, _ = plugin_manager.parameters(obj)
    shown = ", ".join(k if d is inspect.Parameter.empty else f"{k}={toml_value(d)}" for k, d in params.items())
    doc = (inspect.getdoc(obj) or "").split("\n")[0]
    return f"{name}({shown})  [{plugin}]" + (f"  {doc}" if doc else "")


@cli.command()
def recipes():
    """List recipes by name with their description and the plugin that ships them."""
    from workbench import recipe as recipe_loader

    found = get_plugins()
    for name in found.recipes.names():
        r = recipe_loader.load(name, found)
        chain = " -> ".join(d["type"] for d in r["degradations"]) or "no degradations"
        model = r["model"].get("type", "no model")
        desc = r["recipe"]["description"]
        click.echo(f"{name:<14} {desc or chain}  ({chain}; model {model})  [{found.recipes.plugin_of(name)}]")


@cli.command()
@click.argument("spec")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Folder for the damaged images and grid.png.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a parameter, e.g. quality=10 or degradations.0.scale=4.")
@click.option("--seed", type=int, default=None, help="Seed for random parameters (default: the recipe's seed, else 0).")
@click.option("--masks", is_flag=True, help="Also write the destroyed-pixel masks under OUT/masks/.")
@click.option("--grid/--no-grid", default=True, help="Write OUT/grid.png with clean and damaged side by side.")
def degrade(spec, inputs, outdir, overrides, seed, masks, grid):
    """Damage photos with SPEC: a degradation name, a recipe name or a recipe file.

    INPUT may be image files, folders (searched recursively) or `sample` for the bundled photos.
    """
    from workbench.damage import chain_from_spec, degrade_files

    chain, recipe = chain_from_spec(spec, get_plugins(), overrides)
    seed = recipe["recipe"]["seed"] if seed is None else seed
    results = degrade_files(chain, inputs, outdir, seed=seed, masks=masks, grid=grid)
    finite = [s for _, s in results if math.isfinite(s)]
    mean = f"{sum(finite) / len(finite):.2f} dB" if finite else "inf dB"
    for name, score in results:
        click.echo(f"{name}: PSNR {score:.2f} dB")
    skipped = f"; {len(results.skipped)} unreadable skipped" if results.skipped else ""
    click.echo(f"Wrote {len(results)} damaged image(s) to {outdir} (mean PSNR to clean {mean})"
               + (f"; grid: {outdir}/grid.png" if grid else "") + skipped)


@cli.command()
@click.argument("spec")
@click.option("-o", "--out", "outfile", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--data", help="Folder of training images (default: the recipe's data.train).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. data.size=128.")
@click.option("-n", "count", type=click.IntRange(1, 64), default=8, show_default=True, help="Pairs to show.")
@click.option("--epoch", type=click.IntRange(0), default=0, show_default=True, help="Which epoch's crops and damage.")
@click.option("--valid", "split", flag_value="valid", default="train", help="Show validation pairs instead.")
def batch(spec, outfile, data, overrides, count, epoch, split):
    """Show the (damaged, clean) pairs recipe SPEC trains on, exactly as the data pipeline makes them."""
    from workbench import recipe as recipe_loader
    from workbench.preview import batch_grid, training_pairs

    r = recipe_loader.load(spec, get_plugins(), overrides)
    if data:
        r["data"]["train"] = data
    dataset = training_pairs(r, get_plugins(), split=split)
    batch_grid(dataset, n=count, epoch=epoch).save(outfile)
    click.echo(f"Wrote {min(count, len(dataset))} {split} pairs of {dataset!r} to {outfile}")


def _recipe_with_data(spec, overrides, data=None, valid=None):
    from workbench import recipe as recipe_loader

    r = recipe_loader.load(spec, get_plugins(), overrides)
    if data:
        r["data"]["train"] = data
    if valid:
        r["data"]["valid"] = valid
    return r


@cli.command()
@click.argument("spec", required=False)
@click.option("--data", help="Training images: a folder, a labelled folder or Tiny ImageNet (default: the recipe's data.train).")
@click.option("--valid", help="Validation images (default: hold out data.valid_fraction of the training images).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/NAME-DATE-TIME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. train.epochs=2.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True), help="Continue the run in this directory from its last checkpoint.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def run(spec, data, valid, out, overrides, device, resume, quiet):
    """Train recipe SPEC (a name or a .toml file) and write a run directory.

    With --resume RUN_DIR the recipe, data and settings come from that run.
    """
    from workbench import recipe as recipe_loader
    from workbench.train import train

    if resume:
        if spec or data or valid or out or overrides:
            raise UserError("--resume continues a run exactly as it was: give only --resume RUN_DIR (and --device).")
        r = recipe_loader.load(str(Path(resume) / "recipe.toml"), get_plugins())
    elif not spec:
        raise UserError("Name a recipe to run, e.g. `workbench run colorize` (see `workbench recipes`), or --resume RUN_DIR.")
    else:
        r = _recipe_with_data(spec, overrides, data, valid)
    run_dir = train(r, get_plugins(), out=out, device=device, resume=resume, progress=not quiet)
    if quiet and os.environ.get("RANK", "0") == "0":   # under torchrun only rank 0 speaks
        click.echo(str(run_dir))


@cli.command("lr-find")
@click.argument("spec")
@click.option("-o", "--out", "outfile", default="lr_find.png", show_default=True, type=click.Path(dir_okay=False), help="PNG plot to write.")
@click.option("--data", help="Training images (default: the recipe's data.train).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--start", type=float, default=1e-6, show_default=True, help="First learning rate.")
@click.option("--end", type=float, default=1.0, show_default=True, help="Last learning rate.")
@click.option("--steps", type=click.IntRange(3), default=100, show_default=True, help="Training steps in the sweep.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def lr_find_cmd(spec, outfile, data, overrides, start, end, steps, device):
    """Sweep the learning rate up exponentially and plot the loss; suggests train.lr for SPEC."""
    from workbench.lr_find import lr_find, plot

    if not 0 < start < end:
        raise UserError(f"--start {start} and --end {end}: need 0 < start < end.")
    r = _recipe_with_data(spec, overrides, data)
    lrs, losses, suggestion = lr_find(r, get_plugins(), start=start, end=end, steps=steps, device=device)
    plot(lrs, losses, suggestion, outfile)
    click.echo(f"Suggested learning rate: {suggestion:.2e} (steepest descent over {len(lrs)} steps); plot: {outfile}")
    click.echo(f"Use it with: workbench run {spec} --set train.lr={suggestion:.1e}")


@cli.command("eval")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--data", multiple=True, help="Folder(s) or files of full-size clean images (default: the run's validation images).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the results to this JSON file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Judge at other damage, e.g. degradations.0.quality=10.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-image damage.")
@click.option("--crop", type=click.IntRange(0), default=None, help="Border pixels ignored (default: the downsample scale, else 0).")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True, help="Restore in tiles of this size (0 = whole images).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def eval_cmd(run_dir, data, json_out, overrides, seed, crop, tile, device):
    """Measure a trained restorer against the damaged input and classical baselines (PSNR/SSIM)."""
    from workbench.evaluate import evaluate, table, write_json

    result, samples = evaluate(run_dir, get_plugins(), data=data, overrides=overrides, seed=seed, crop=crop, device=device,
                               tile=tile, keep=REPORT_SAMPLES)
    if json_out:
        write_json(result, json_out)
    click.echo(table(result))
    if Path(run_dir).is_dir():   # a bare checkpoint file has no run directory to write into
        write_json(result, Path(run_dir) / "eval.json")
        _write_report(run_dir, samples)


REPORT_SAMPLES = 24   # images with sliders in report.html: enough to judge, small enough to open fast


def _write_report(run_dir, samples):
    try:
        from workbench.report import write_report
    except ImportError:
        return
    path = write_report(run_dir, samples)
    click.echo(f"Report: {path}")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Folder for the restored photos (same names).")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True, help="Tile side in pixels; 0 = whole image at once.")
@click.option("--overlap", type=click.IntRange(0), default=32, show_default=True, help="Pixels blended between neighbouring tiles.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def restore(run_dir, inputs, outdir, tile, overlap, device):
    """Restore real photos of any size with a trained run (its best checkpoint).

    Super-resolution runs take real low-res photos: they are upsampled by the recipe's scale first,
    so the output is that many times larger.
    """
    from workbench.restore import restore_files

    done = restore_files(run_dir, inputs, outdir, tile=tile, overlap=overlap, device=device, plugins=get_plugins())
    for src, dst, size_in, size_out in done:
        click.echo(f"{src} ({size_in[0]}x{size_in[1]}) -> {dst} ({size_out[0]}x{size_out[1]})")
    skipped = f"; {len(done.skipped)} unreadable skipped" if done.skipped else ""
    click.echo(f"Restored {len(done)} photo(s) into {outdir}{skipped}")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("-o", "--out", "outfile", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--data", multiple=True, help="Folder(s) of clean images (default: the run's validation images).")
@click.option("-n", "count", type=click.IntRange(1, 64), default=6, show_default=True, help="Images (rows).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-image damage.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def grid(run_dir, outfile, data, count, seed, device):
    """Rows of damaged | baselines | restored | clean, labelled with each image's PSNR (Y)."""
    from workbench.evaluate import evaluate
    from workbench.grid import draw_grid

    _, samples = evaluate(run_dir, get_plugins(), data=data, seed=seed, device=device, keep=count, limit=count)
    rows = []
    for s in samples:
        score = lambda m: s["metrics"][m]["psnr_y"]  # noqa: E731
        row = [(s["damaged"], f"{s['name']}: damaged {score('input'):.2f} dB")]
        row += [(img, f"{m} {score(m):.2f} dB") for m, img in s["baselines"].items()]
        row += [(s["restored"], f"restored {score('model'):.2f} dB"), (s["clean"], "clean")]
        rows.append(row)
    draw_grid(rows, height=256).save(outfile)
    click.echo(f"Wrote {len(rows)} rows to {outfile} (PSNR on Y, BT.601)")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Image file to write (PNG stays lossless).")
@click.option("--side", type=click.Choice(["left", "right", "top", "bottom"]), default="right", show_default=True, help="Edge to grow.")
@click.option("--times", type=click.IntRange(1), default=1, show_default=True, help="Strips to add, one model pass each.")
@click.option("--strip", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Fraction of the image's width (height) each step adds; default: the recipe's erase strip, else 0.25.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise fill.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def extend(run_dir, image, out_path, side, times, strip, seed, device):
    """Grow a panorama by outpainting: add TIMES strips at SIDE with an outpainting run (e.g. `outpaint`)."""
    from workbench.extend import extend_file

    w, h = extend_file(run_dir, image, out_path, side=side, times=times, strip=strip, device=device, seed=seed, plugins=get_plugins())
    click.echo(f"{image} -> {out_path} ({w}x{h})")


@cli.command("new")
@click.argument("kind", type=click.Choice(["degradation", "model", "loss"]))
@click.argument("name")
@click.option("-o", "--out", "outdir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder in which to create the package folder NAME.")
def new(kind, name, outdir):
    """Write a ready-to-install plugin package for a new degradation, model or loss in OUT/NAME."""
    from workbench.scaffold import check_name, new_plugin, registered_warning

    warning = registered_warning(get_plugins(), kind, check_name(name))
    root = new_plugin(kind, name, outdir)
    if warning:
        click.echo(warning, err=True)
    path = str(root) if root.is_absolute() or str(root).startswith(".") else f"./{root}"  # pip reads a bare word as a name
    click.echo(f"Wrote {path}: `pip install -e {path}`, then `workbench check {name}`; see {path}/README.md.")


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of text.")
def check(names, as_json):
    """Check that the degradations, models or losses NAME keep the workbench contract.

    Each is built with its default parameters; the exit status is 1 when any check fails.
    """
    from workbench.checks import check_component, find_kinds, format_rows, to_json

    found = get_plugins()
    for name in names:
        find_kinds(found, name)  # a typo fails at once, not after minutes of checks
    results = []
    for name in names:
        for kind, rows in check_component(found, name):
            results.append(to_json(name, kind, rows))
            if not as_json:
                click.echo(format_rows(name, kind, rows))
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if not all(r["passed"] for r in results):
        click.get_current_context().exit(1)


def main():
    cli(prog_name="workbench")


if __name__ == "__main__":
    sys.exit(main())
