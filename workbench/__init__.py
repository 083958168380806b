"""Image restoration workbench: pluggable degradations, restorers, losses and judges."""
import pluggy

__version__ = "0.1.0"

# Plugins write `from workbench import hookimpl` and decorate their hook functions with it.
hookimpl = pluggy.HookimplMarker("workbench")

__all__ = ["hookimpl", "__version__"]
