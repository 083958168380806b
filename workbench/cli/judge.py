"""`workbench eval`, `grid`, `restore` and `extend`: judging and using trained restorers."""
import contextlib
from pathlib import Path

import click

from workbench.cli.base import OVERWRITE, SEED, get_plugins
from workbench.errors import WorkbenchError

# eval and restore both offer it: the same flag, the same words
SELF_ENSEMBLE = click.option("--self-ensemble", is_flag=True, help="Average the model over 8 flips and quarter turns of "
                             "each tile (EDSR+): 8x the time, often +0.1 dB.")



def _perceptual(ctx, param, value):
    from workbench.judge.perceptual import parse

    try:
        return parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


PERCEPTUAL = click.option("--perceptual", default="lpips", show_default=True, callback=_perceptual,
                          help="Perceptual metrics, lower is better: lpips, dists, lpips,dists or none (weights: docs/commands.md).")

# A published model's weights file (docs/models.md#published-restorers-spandrel) where a run would go, or beside it
WEIGHTS = click.option("--weights", type=click.Path(exists=True, dir_okay=False),
                       help="A published model's .pth or .safetensors file (Real-ESRGAN, SwinIR, ...) instead of RUN_DIR.")
RECIPE = click.option("--recipe", "recipe_spec", metavar="RECIPE",
                      help="With --weights: the recipe (name or .toml file) whose damage to judge it on, e.g. superres.")
BASELINE = click.option("--baseline", "baseline_weights", multiple=True, type=click.Path(exists=True, dir_okay=False),
                        help="A published model's weights file judged beside the model as a baseline row (repeatable).")


def _run_or_weights(run_dir, weights):
    if run_dir is None and weights is None:
        raise click.UsageError("give a RUN_DIR, or a published model's file with --weights FILE (and --recipe NAME).")


@click.command("eval")
@click.argument("run_dir", required=False, type=click.Path(exists=True))
@click.option("--data", multiple=True, help="Folder(s) or files of full-size clean images (default: the run's validation images).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the results to this JSON file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Judge at other damage, e.g. degradations.0.quality=10.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the per-image damage.")
@click.option("--crop", type=click.IntRange(0), default=None, help="Border pixels ignored (default: the downsample scale, else 0).")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True, help="Restore in tiles of this size (0 = whole images).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--name", "section", help="Name of this evaluation: RUN/eval-NAME.json and its report section (default: "
              "from --data and --set; without --data the run's validation, eval.json).")
@SELF_ENSEMBLE
@PERCEPTUAL
@WEIGHTS
@RECIPE
@BASELINE
@OVERWRITE
def eval_cmd(run_dir, data, json_out, overrides, seed, crop, tile, device, self_ensemble, perceptual, section, weights,
             recipe_spec, baseline_weights, overwrite):
    """Measure a trained restorer against the damaged input and classical baselines (PSNR, SSIM, LPIPS)."""
    from workbench.judge.evaluate import evaluate, safe_name, section_name, table, write_json
    from workbench.runs.outputs import check_file
    from workbench.tasks import kind_of_run, segment_eval, stylize

    if section is not None:
        section = safe_name(section.strip())
        if not section:
            raise WorkbenchError("--name is empty; give a name such as Set14, or leave it out.")
    else:
        section = section_name(data, overrides, self_ensemble)
    _run_or_weights(run_dir, weights)
    kind = None if weights is not None else kind_of_run(run_dir, get_plugins())
    if kind == "stylize":
        stylize.refuse_eval(run_dir)   # no damage to measure against: it says what to use instead
    if json_out:   # before the work, not after it: an evaluation is never lost to a bad --json
        check_file(json_out, overwrite=overwrite)
    if kind == "segment":
        if overrides or crop is not None or baseline_weights:
            raise WorkbenchError(f"{run_dir} is a segmentation run: --set, --crop and --baseline judge restorers; "
                                 "leave them out.")
        with _ranks(device) as sp:
            result, samples = segment_eval.evaluate(run_dir, get_plugins(), data=data, seed=seed, device=sp.device,
                                                    tile=tile, keep=REPORT_SAMPLES, self_ensemble=self_ensemble, spread=sp)
            if not sp.leader:
                return   # under torchrun rank 0 alone prints and writes
            click.echo(segment_eval.table(result))
            if json_out:
                write_json(result, json_out, replace=overwrite)
            if Path(run_dir).is_dir():   # a checkpoint file has no run directory to write into
                _write_run_files(run_dir, result, samples, section)
        return
    with _ranks(device) as sp:
        result, samples = evaluate(run_dir, get_plugins(), data=data, overrides=overrides, seed=seed, crop=crop,
                                   device=sp.device, tile=tile, keep=REPORT_SAMPLES, self_ensemble=self_ensemble, spread=sp,
                                   metrics=perceptual, weights=weights, recipe_spec=recipe_spec,
                                   baseline_weights=baseline_weights)
        if not sp.leader:
            return   # under torchrun rank 0 alone prints and writes
        click.echo(table(result))   # first: whatever happens to the files, the numbers are on the screen
        if json_out:
            write_json(result, json_out, replace=overwrite)
        if run_dir and Path(run_dir).is_dir():   # a checkpoint or weights file has no run directory to write into
            _write_run_files(run_dir, result, samples, section)


@contextlib.contextmanager
def _ranks(device):
    """`workbench.devices.spread.join` for eval and restore under torchrun (one rank of one without it). The
    ranks stop together on an error; rank 0 alone prints it, so the user reads one line, not N."""
    from workbench.devices import spread

    try:
        with spread.join(device) as sp:
            yield sp
    except WorkbenchError:
        if spread.env_rank() == 0:
            raise
        raise click.exceptions.Exit(2) from None


REPORT_SAMPLES = 24   # images with sliders in report.html: enough to judge, small enough to open fast


def _write_run_files(run_dir, result, samples, section):
    """eval.json (the run's validation images) or eval-SECTION.json, and report.html, in the run
    directory, unless another command (a run still training) holds it: then the results stay on the
    screen and in --json, and the run is left alone."""
    from workbench.judge.evaluate import write_json
    from workbench.judge.report import write_report
    from workbench.runs.lock import RunBusy, holding

    name = f"eval-{section}.json" if section else "eval.json"
    try:
        with holding(run_dir):
            write_json(result, Path(run_dir) / name, replace=True)
            path = write_report(run_dir, samples, section=section)
    except RunBusy as e:
        click.echo(f"warning: {e} {name} and report.html were not written.", err=True)
        return
    click.echo(f"Results: {Path(run_dir) / name}; report: {path}")


@click.command()
@click.argument("run_dir", required=False, type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Folder for the restored photos (same names).")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True, help="Tile side in pixels; 0 = whole image at once.")
@click.option("--overlap", type=click.IntRange(0), default=32, show_default=True, help="Pixels blended between neighbouring tiles.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--mask", type=click.Path(), default=None,
              help="For inpainting runs: a mask image (white = missing pixels), or a folder of masks named as the photos.")
@SELF_ENSEMBLE
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="Restore with a published model's .pth or .safetensors file instead of a run: every argument is an INPUT.")
@OVERWRITE
def restore(run_dir, inputs, outdir, tile, overlap, device, mask, self_ensemble, weights, overwrite):
    """Restore real photos of any size with a trained run (its best checkpoint), or with --weights FILE.

    Super-resolution runs take real low-res photos: they are upsampled by the recipe's scale first,
    so the output is that many times larger; a published super-resolution net enlarges them itself.
    """
    from workbench.infer.restore import restore_files

    if weights:   # no run: the first argument is a photo too
        run_dir, inputs = None, tuple(x for x in (run_dir, *inputs) if x is not None)
    if not inputs:
        raise click.UsageError("give RUN_DIR and at least one INPUT (or --weights FILE and the inputs).")
    if run_dir is not None and not Path(run_dir).exists():
        raise click.BadParameter(f"Path '{run_dir}' does not exist.", param_hint="'RUN_DIR'")

    with _ranks(device) as sp:
        done = restore_files(run_dir, inputs, outdir, mask=mask, tile=tile, overlap=overlap, device=sp.device,
                             plugins=get_plugins(), self_ensemble=self_ensemble, spread=sp, overwrite=overwrite, weights=weights)
        if not sp.leader:
            return   # under torchrun rank 0 alone prints the merged list
        for src, dst, size_in, size_out in done:
            click.echo(f"{src} ({size_in[0]}x{size_in[1]}) -> {dst} ({size_out[0]}x{size_out[1]})")
        skipped = f"; {len(done.skipped)} unreadable skipped" if done.skipped else ""
        click.echo(f"Restored {len(done)} {done.what} into {outdir}{skipped}")


@click.command()
@click.argument("run_dir", required=False, type=click.Path(exists=True))
@click.option("-o", "--out", "outfile", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--data", multiple=True, help="Folder(s) of clean images (default: the run's validation images).")
@click.option("-n", "count", type=click.IntRange(1, 64), default=6, show_default=True, help="Images (rows).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the per-image damage.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@PERCEPTUAL
@WEIGHTS
@RECIPE
@BASELINE
@OVERWRITE
def grid(run_dir, outfile, data, count, seed, device, perceptual, weights, recipe_spec, baseline_weights, overwrite):
    """Rows of damaged | baselines | restored | clean, labelled with PSNR (Y; RGB for colorization) and LPIPS."""
    from workbench.images.files import IMAGE_SUFFIXES, save_pil
    from workbench.images.grid import draw_grid
    from workbench.judge.evaluate import evaluate
    from workbench.runs.outputs import check_file
    from workbench.tasks import kind_of_run, segment_eval, stylize

    _run_or_weights(run_dir, weights)
    check_file(outfile, overwrite=overwrite, suffixes=IMAGE_SUFFIXES, inputs=data)
    kind = None if weights is not None else kind_of_run(run_dir, get_plugins())
    if kind == "stylize":
        if baseline_weights:
            raise WorkbenchError(f"{run_dir} is a style-transfer run: --baseline judges restorers; leave it out.")
        rows = stylize.grid_rows(run_dir, get_plugins(), data=data, count=count, device=device)
        save_pil(draw_grid(rows, height=GRID_HEIGHT), outfile, replace=overwrite)
        click.echo(f"Wrote {len(rows)} rows to {outfile} ({' | '.join(c.split(': ')[-1] for _, c in rows[0])})")
        return
    if kind == "segment":
        _, samples = segment_eval.evaluate(run_dir, get_plugins(), data=data, seed=seed, device=device, keep=count,
                                           limit=count, report=False)
        rows = [[(s["damaged"], f"{s['name']}: photo"), (s["restored"], f"predicted: mIoU {s['metrics']['model']['miou']:.3f}"),
                 (s["clean"], "true classes")] for s in samples]
        save_pil(draw_grid(rows, height=GRID_HEIGHT), outfile, replace=overwrite)
        click.echo(f"Wrote {len(rows)} rows to {outfile} (photo | predicted classes | true classes)")
        return
    result, samples = evaluate(run_dir, get_plugins(), data=data, seed=seed, device=device, keep=count, limit=count,
                               metrics=perceptual, report=False, desc="grid", weights=weights, recipe_spec=recipe_spec,
                               baseline_weights=baseline_weights)
    key = result["primary"]
    shown = [m for m in perceptual if m not in result["skipped_metrics"]]
    rows = []
    for s in samples:
        def score(m):
            extra = "".join(f" · {p.upper()} {s['metrics'][m][p]:.3f}" for p in shown)   # lower is better
            return f"{s['metrics'][m][key]:.2f} dB{extra}"
        row = [(s["damaged"], f"{s['name']}: damaged {score('input')}")]
        row += [(img, f"{m} {score(m)}") for m, img in s["baselines"].items()]
        row += [(s["restored"], f"restored {score('model')}"), (s["clean"], "clean")]
        rows.append(row)
        rows += _zoom_row(s)
    save_pil(draw_grid(rows, height=GRID_HEIGHT), outfile, replace=overwrite)
    legend = "".join(f"; {m.upper()}: lower is better" for m in shown)
    click.echo(f"Wrote {len(rows)} rows to {outfile} ({'PSNR on RGB' if key == 'psnr_rgb' else 'PSNR on Y, BT.601'}{legend})")


GRID_HEIGHT = 256   # px of each tile; the zoom row's crops are this size, so they show at 1:1


def _zoom_row(s, side=GRID_HEIGHT):
    """A row of side x side crops, shown 1:1, where the model and the best baseline differ most: whole
    photos scaled to the grid's height hide the differences of a x2 model. No row for small photos."""
    from workbench.judge.pictures import as_rgb, best_baseline, zoom_box

    h, w = s["clean"].shape[-2:]
    if max(h, w) <= side:
        return []
    best = best_baseline(s["metrics"], s["baselines"])
    views = [("damaged", s["damaged"]), *([(best, s["baselines"][best])] if best else []), ("restored", s["restored"]),
             ("clean", s["clean"])]
    views = [(label, as_rgb(img, (h, w))) for label, img in views]
    x, y, cw, ch = zoom_box(views[-2][1], views[1 if best else 0][1], side)
    return [[(img[:, y:y + ch, x:x + cw], f"1:1 at x {x}, y {y}: {label}" if k == 0 else label)
             for k, (label, img) in enumerate(views)]]


@click.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Image file to write (PNG stays lossless).")
@click.option("--side", type=click.Choice(["left", "right", "top", "bottom"]), default="right", show_default=True, help="Edge to grow.")
@click.option("--times", type=click.IntRange(1), default=1, show_default=True, help="Strips to add, one model pass each.")
@click.option("--strip", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Fraction of the image's width (height) each step adds; default: the recipe's erase strip, else 0.25.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the noise fill.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@OVERWRITE
def extend(run_dir, image, out_path, side, times, strip, seed, device, overwrite):
    """Grow a panorama by outpainting: add TIMES strips at SIDE with an outpainting run (e.g. `outpaint`)."""
    from workbench.infer.extend import extend_file

    w, h = extend_file(run_dir, image, out_path, side=side, times=times, strip=strip, device=device, seed=seed, plugins=get_plugins(),
                       overwrite=overwrite)
    click.echo(f"{image} -> {out_path} ({w}x{h})")
