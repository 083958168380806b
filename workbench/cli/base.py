"""What every command module shares: the one-line user error, the loaded plugins, recipe loading."""
import click

# every command that writes files the user names: the same flag, the same words
OVERWRITE = click.option("--overwrite", is_flag=True, help="Replace output files that already exist (by default they "
                         "are kept and the command refuses before any work).")


# --seed of degrade, eval, grid and extend: what recipe.seed allows (numpy's SeedSequence wants >= 0)
SEED = click.IntRange(0, 2**63 - 1)


class UserError(click.ClickException):
    """A user mistake: printed as one line, exit status 2 (like click's usage errors)."""

    exit_code = 2


def recipe_with_data(spec, overrides, data=None, valid=None):
    """Load recipe SPEC with --set overrides; --data and --valid replace data.train and data.valid
    as given (not parsed as TOML, so any path works)."""
    from workbench import recipe as recipe_loader

    r = recipe_loader.load(spec, get_plugins(), overrides)
    if data:
        r["data"]["train"] = data
    if valid:
        r["data"]["valid"] = valid
    return r


def get_plugins(ctx=None):
    """The plugins the `workbench` group loaded for this invocation."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().obj
