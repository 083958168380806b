"""`workbench compare`: two or more restorers side by side (workbench.judge.compare), as a table, JSON or a page."""
import json

import click
from click.core import ParameterSource

from workbench.cli.base import OVERWRITE, SEED, get_plugins
from workbench.cli.judge import PERCEPTUAL, SELF_ENSEMBLE
from workbench.errors import WorkbenchError

# compare's options that say how to judge: without --data nothing is judged, so they would do nothing
JUDGING = {"overrides": "--set", "seed": "--seed", "tile": "--tile", "device": "--device", "count": "-n",
           "self_ensemble": "--self-ensemble", "perceptual": "--perceptual"}


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--data", multiple=True, help="Judge every run on these clean images with one seed (default: compare "
              "what each run has: eval.json, else its last validation).")
@click.option("-o", "--out", "page_out", type=click.Path(dir_okay=False), help="Also write a self-contained HTML page "
              "(.html): the table and, with --data, samples side by side.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the comparison to this JSON file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="With --data: judge every run at other damage.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="With --data: seed of the per-image damage.")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True, help="With --data: restore in tiles of this size.")
@click.option("--device", default="auto", show_default=True, help="With --data: auto, cpu, cuda, cuda:N or mps.")
@click.option("-n", "count", type=click.IntRange(0, 64), default=4, show_default=True, help="With --data: images on the -o page.")
@SELF_ENSEMBLE
@PERCEPTUAL
@OVERWRITE
@click.pass_context
def compare(ctx, runs, data, page_out, json_out, overrides, seed, tile, device, count, self_ensemble, perceptual, overwrite):
    """Put two or more restorers side by side: a row per run, the best of each metric marked *."""
    from workbench.judge import compare as cmp
    from workbench.judge import compare_page
    from workbench.runs import files
    from workbench.runs.outputs import Outputs

    given = [flag for name, flag in JUDGING.items() if ctx.get_parameter_source(name) != ParameterSource.DEFAULT]
    if given and not data:
        raise WorkbenchError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --data: without it "
                             "compare judges nothing and reads the results each run already has.")
    # 1. every check before any work: the runs, then the outputs (never one of the files read)
    labels = cmp.check_runs(runs, judged=bool(data))
    entries = None if data else cmp.saved(runs, labels)
    inputs = cmp.judgeable(runs, labels, get_plugins(), data=data, overrides=overrides) if data else [p for e in entries for p in e["inputs"]]
    if page_out and not page_out.lower().endswith((".html", ".htm")):
        raise WorkbenchError(f"{page_out}: the page is HTML; end its name in .html.")
    outs = Outputs([*inputs, *data], overwrite=overwrite)
    for path, what in ((page_out, "the page"), (json_out, "the JSON")):
        if path:
            outs.claim(path, what)
    outs.check()
    # 2. judge (with --data), print, write
    samples, skipped, results = {}, {}, None
    if data:
        entries, samples, skipped, results = cmp.judge(
            runs, labels, get_plugins(), data=data, metrics=perceptual, keep=count if page_out else 0,
            keeper=compare_page.keep, overrides=overrides, seed=seed, tile=tile, device=device, self_ensemble=self_ensemble)
    comp = cmp.comparison(entries, data=data, skipped_metrics=skipped, results=results)
    click.echo(cmp.table(comp))
    if comp["warning"]:
        click.echo(f"warning: {comp['warning']}", err=True)
    if json_out:
        files.write_text(json_out, json.dumps(comp, indent=2, allow_nan=True), replace=overwrite, what="the comparison")
        click.echo(f"Comparison: {json_out}")
    if page_out:
        files.write_text(page_out, compare_page.page(comp, samples), replace=overwrite, what="the comparison page")
        click.echo(f"Page: {page_out}")
