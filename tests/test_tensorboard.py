"""The built-in TensorBoard event plugin writes event files that TensorBoard's reader reads back."""
import pytest
from conftest import HERE

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.runs import rundir
from workbench.train.loop import train

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install -e '.[tensorboard]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def test_tensorboard_logs_read_back(tmp_path):
    plugins = plugin_manager.load([HERE / "plugin_files" / "tiny_model.py"])
    assert "workbench_plugins.tensorboard" in {p["name"] for p in plugins.describe()}
    r = recipes.from_dict({"data": {"size": 24, "valid_size": 24, "batch_size": 4, "workers": 0},
                           "degradations": [{"type": "blur"}], "model": {"type": "tiny"},
                           "train": {"epochs": 2, "steps_per_epoch": 2}}, "tb", plugins)
    run = train(r, plugins, out=tmp_path / "run", device="cpu", progress=False)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train_loss", "valid/psnr", "valid/input_psnr", "lr", "loss/l1"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("valid/psnr")] == [1, 2]
    # each step on one global axis, with the values metrics.jsonl holds
    logged = [r["step_loss"] for r in rundir.read_metrics(run)]
    assert [e.step for e in events.Scalars("step/loss")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("step/loss")] == pytest.approx([v for r in logged for v in r], rel=1e-6)
    assert len(events.Scalars("step/lr")) == 4
    assert tags["images"] and events.Images(tags["images"][0])[0].width == 3 * 24
