"""The `workbench` command line. Domain errors become one line and exit status 2 only here."""
import inspect
import json
import sys

import click

from workbench import __version__
from workbench.api import registry as plugin_manager
from workbench.cli import author as cli_author
from workbench.cli import compare as cli_compare
from workbench.cli import data as cli_data
from workbench.cli import export as cli_export
from workbench.cli import judge as cli_judge
from workbench.cli import prepare as cli_prepare
from workbench.cli import train as cli_train
from workbench.cli.base import UserError, get_plugins
from workbench.errors import WorkbenchError
from workbench.recipe import toml_value


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
    if reg.kind in ("recipes", "baselines"):
        doc = (inspect.getdoc(obj) or "").split("\n")[0] if reg.kind == "baselines" else ""
        return f"{name}  [{plugin}]" + (f"  {doc}" if doc else "")
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


# The other commands live in small modules by theme; the group gathers them.
for _command in (cli_data.degrade, cli_data.batch, cli_train.run, cli_train.lr_find_cmd, cli_judge.eval_cmd,
                 cli_compare.compare, cli_judge.grid, cli_judge.restore, cli_judge.extend, cli_author.new, cli_author.check,
                 cli_prepare.prepare, cli_export.export):
    cli.add_command(_command)


def main():
    cli(prog_name="workbench")


if __name__ == "__main__":
    sys.exit(main())
