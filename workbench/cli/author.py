"""`workbench new` and `workbench check`: tools for plugin authors."""
import json

import click

from workbench.cli.base import get_plugins


@click.command("new")
@click.argument("kind", type=click.Choice(["degradation", "model", "loss"]))
@click.argument("name")
@click.option("-o", "--out", "outdir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder in which to create the package folder NAME.")
def new(kind, name, outdir):
    """Write a ready-to-install plugin package for a new degradation, model or loss in OUT/NAME."""
    from workbench.author.scaffold import check_name, new_plugin, registered_warning

    warning = registered_warning(get_plugins(), kind, check_name(name))
    root = new_plugin(kind, name, outdir)
    if warning:
        click.echo(warning, err=True)
    path = str(root) if root.is_absolute() or str(root).startswith(".") else f"./{root}"  # pip reads a bare word as a name
    click.echo(f"Wrote {path}: `pip install -e {path}`, then `workbench check {name}`; see {path}/README.md.")


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of text.")
def check(names, as_json):
    """Check that the degradations, models or losses NAME keep the workbench contract.

    Each is built with its default parameters; the exit status is 1 when any check fails.
    """
    from workbench.author.components import (
        check_component,
        find_kinds,
        format_rows,
        to_json,
    )

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
