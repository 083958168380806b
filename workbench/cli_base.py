"""What every command module shares: the one-line user error and the loaded plugins."""
import click


class UserError(click.ClickException):
    """A user mistake: printed as one line, exit status 2 (like click's usage errors)."""

    exit_code = 2


def get_plugins(ctx=None):
    """The plugins the `workbench` group loaded for this invocation."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().obj
