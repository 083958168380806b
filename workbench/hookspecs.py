"""The hooks a plugin may implement. Each receives a `register` callable (or the CLI group)."""
import pluggy

hookspec = pluggy.HookspecMarker("workbench")


@hookspec
def register_degradations(register):
    """Call register(name, factory) for each degradation; factory(**params) -> deg(img, rng)."""


@hookspec
def register_models(register):
    """Call register(name, factory) for each model; factory(**params) -> nn.Module."""


@hookspec
def register_losses(register):
    """Call register(name, factory) for each loss; factory(**params) -> loss(output, target)."""


@hookspec
def register_recipes(register):
    """Call register(name, path) for each recipe TOML file the plugin ships."""


@hookspec
def register_commands(cli):
    """Add click commands to the `workbench` CLI group."""
