"""`workbench export`: a trained model as a .safetensors, TorchScript or ONNX file."""
import click

from workbench.cli.base import OVERWRITE, get_plugins


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True))
@click.option("-o", "--out", "out", required=True, type=click.Path(),
              help="File to write; its suffix picks the format: .safetensors, .torchscript or .onnx.")
@click.option("--which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Which checkpoint of the run (best falls back to last).")
@OVERWRITE
def export(run_dir, out, which, overwrite):
    """Export a trained model: weights and recipe (.safetensors, which restore reads), TorchScript or ONNX.

    RUN is a run directory, a checkpoint file or an exported .safetensors file. TorchScript and ONNX graphs
    are checked against the model at other image sizes before they are written.
    """
    from workbench.infer.export import export_run

    done = export_run(run_dir, out, plugins=get_plugins(), which=which, overwrite=overwrite)
    epoch = f", epoch {done['epoch']}" if done.get("epoch") is not None else ""
    graph = ""
    if "min_side" in done:
        graph = "; input img (batch x 3 x H x W float32)" + (
            " and mask (batch x 1 x H x W bool, True = missing)" if done["inputs"] != "img" else "")
        graph += f", any H and W of at least {done['min_side']}"
    click.echo(f"Exported {done['source']}{epoch} to {done['out']} ({done['format']}{graph})")
