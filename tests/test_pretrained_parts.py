"""A classifier run serves the lesson's two purposes: perceptual-loss network and U-Net encoder."""
import pytest
import torch

from workbench import hookimpl
from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.runs import checkpoint
from workbench.train.loop import train

SMALL = ["data.size=32", "data.batch_size=8", "data.workers=0", "data.repeat=2", "data.valid_size=32",
         "model.widths=[8, 16, 32]"]


@pytest.fixture(scope="module")
def plugins():
    return plugin_manager.load()


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, plugins):
    r = recipes.load("classify", plugins, [*SMALL, "train.epochs=1", "data.trivial_augment=false"])
    return train(r, plugins, out=tmp_path_factory.mktemp("clf") / "run", device="cpu", progress=False)


def test_classify_recipe_trains_exemplar_classes(classifier_run):
    state = checkpoint.load(classifier_run)
    assert state["task"] == "classify" and state["recipe"]["model"]["classes"] == 6   # one per sample photo
    assert 0 <= state["metrics"]["accuracy"] <= 1


def test_classifier_run_as_perceptual_network(classifier_run, plugins):
    _, loss = plugin_manager.build(plugins.losses, {"type": "perceptual", "net": str(classifier_run)})
    assert loss.layers == ["stages.0"]
    x = torch.rand(2, 3, 32, 32)
    y = torch.rand(2, 3, 32, 32, requires_grad=True)
    assert loss(x, x).item() == 0
    value = loss(y, x)
    value.backward()
    assert value.item() > 0 and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_classifier_run_as_frozen_then_unfrozen_encoder(classifier_run, plugins, tmp_path):
    clf = checkpoint.load(classifier_run)["model"]
    snapshots = {}

    class Snapshot:
        @hookimpl
        def on_run_start(self, run):
            snapshots[0] = {k: v.clone() for k, v in run.model.state_dict().items()}

        @hookimpl
        def on_epoch_end(self, run, epoch):
            snapshots[epoch] = {k: v.clone() for k, v in run.model.state_dict().items()}

    pm = plugin_manager.load()
    pm.pm.register(Snapshot())
    r = recipes.load("superres", pm, [*SMALL[:-1], "model.widths=[8, 16]", f"model.encoder={classifier_run}",
                                      "train.freeze_epochs=1", "train.epochs=2"])
    run = train(r, pm, out=tmp_path / "sr", device="cpu", progress=False)
    pairs = [("start.", "stem."), ("down.0.", "stages.0.")]
    weights = [(u, c) for u, c in ((k, k.replace(a, b, 1)) for k in snapshots[1] for a, b in pairs if k.startswith(a))
               if "running" not in u and "num_batches" not in u]
    assert weights
    for u, c in weights:   # frozen epoch: the encoder is still exactly the classifier
        assert torch.equal(snapshots[1][u], clf[c]), u
    assert any(not torch.equal(snapshots[2][u], clf[c]) for u, c in weights)   # then it learns
    decoder = [k for k in snapshots[0] if k.startswith("up.") and k.endswith("weight")]
    assert any(not torch.equal(snapshots[0][k], snapshots[1][k]) for k in decoder)   # the decoder trains meanwhile
    # the trained restorer reloads without the classifier directory
    model, state = checkpoint.load_model(run, pm)
    assert "encoder" not in checkpoint.model_spec(state["recipe"])
