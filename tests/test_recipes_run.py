"""Every built-in recipe trains to completion on the sample photos in CI-sized settings."""
import pytest

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.runs import checkpoint
from workbench.train.loop import train

PLUGINS = plugin_manager.load()
TINY = ["train.epochs=1", "train.steps_per_epoch=2", "data.size=32", "data.valid_size=32", "data.batch_size=4",
        "data.workers=0", "model.widths=[8, 16]"]


# stylize needs a style image and torchvision weights, which tests/test_stylize.py writes before it runs it
@pytest.mark.parametrize("name", [n for n in PLUGINS.recipes.names() if n != "stylize"])
def test_recipe_runs_and_writes_checkpoint_and_report(name, tmp_path):
    r = recipes.load(name, PLUGINS, TINY)
    run = train(r, PLUGINS, out=tmp_path / name, device="cpu", progress=False)
    state = checkpoint.load(run)
    assert state["epoch"] == 1 and state["recipe"]["recipe"]["name"] == name
    assert (run / "report.html").stat().st_size > 1000 and (run / "metrics.jsonl").exists()
