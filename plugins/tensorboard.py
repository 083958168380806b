"""Built-in event plugin: TensorBoard logs in RUN_DIR/tensorboard when `tensorboard` is installed.

Install the extra (`pip install -e ".[tensorboard]"`), train, then `tensorboard --logdir runs`.
Without the package this plugin does nothing: logging must never stop a training run. It is also
the worked example of an event plugin: four hooks, state kept per run directory.
"""
import importlib.util

from workbench import hookimpl
from workbench_plugins.tracking import scalars, steps

IMAGES = 4   # validation images logged per epoch, as damaged | restored | clean strips
_writers = {}


def available():
    return importlib.util.find_spec("tensorboard") is not None


@hookimpl
def on_run_start(run):
    if not available() or run.dir is None:
        return
    from torch.utils.tensorboard import SummaryWriter

    _writers[str(run.dir)] = SummaryWriter(log_dir=str(run.dir / "tensorboard"))


@hookimpl
def on_epoch_end(run, epoch, metrics):
    writer = _writers.get(str(run.dir))
    if writer is None:
        return
    for key, value in scalars(metrics):
        writer.add_scalar(key, value, epoch)
    for step, values in steps(epoch, metrics):   # per step too, on a global step axis
        for key, value in values.items():
            writer.add_scalar(key, value, step)
    writer.flush()


@hookimpl
def on_validation_end(run, epoch, metrics, images):
    writer = _writers.get(str(run.dir))
    if writer is None or not images:
        return
    import torch

    for name, damaged, restored, clean in images[:IMAGES]:
        writer.add_image(f"valid/{name}", torch.cat([damaged, restored, clean], dim=-1).clamp(0, 1), epoch)


@hookimpl
def on_run_end(run, metrics):
    writer = _writers.pop(str(run.dir), None)
    if writer is not None:
        writer.close()
