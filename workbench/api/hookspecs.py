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
def register_baselines(register):
    """Call register(name, factory) for each classical baseline; factory(deg, chain) -> fn(clean, damaged, mask) or None."""


@hookspec
def register_recipes(register):
    """Call register(name, path) for each recipe TOML file the plugin ships."""


@hookspec
def register_commands(cli):
    """Add click commands to the `workbench` CLI group."""


# Training events: loggers and callbacks are plugins too. `run` is the live workbench.train.loop.Run.
@hookspec
def on_run_start(run):
    """Training starts or resumes: run.dir, run.recipe, run.model, run.device, run.start_epoch are set."""


@hookspec
def on_epoch_end(run, epoch, metrics):
    """Epoch `epoch` (1-based) ended and its checkpoint is written; metrics as in metrics.jsonl."""


@hookspec
def on_validation_end(run, epoch, metrics, images):
    """Validation ended; images is a list of (name, damaged, restored, clean) 3 x H x W tensors."""


@hookspec
def on_run_end(run, metrics):
    """Training finished (all epochs, or stopped cleanly); metrics of the last epoch."""
