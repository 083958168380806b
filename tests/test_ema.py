"""train.ema: the average of the weights, against a hand-written EMA; what validation, best.pt,
restore and eval use; exact across a resume in the middle of an epoch; refused as a resume edit."""
import json
import signal

import pytest
import torch
from safetensors.torch import load_file
from test_reliability import TINY, make_recipe
from torch import nn

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError
from workbench.infer.export import export_run
from workbench.judge.evaluate import evaluate
from workbench.runs import checkpoint, rundir
from workbench.train.ema import make_ema
from workbench.train.loop import train


def run_recipe(tmp_path, name, *, ema=0.9, epochs=2, degradation='type = "blur"\nsigma = 1.0'):
    """test_reliability's tiny recipe on a small U-Net (BatchNorm: its running statistics are averaged too),
    with train.ema; [train] is its last table, so the keys are appended to it."""
    folder = tmp_path / f"{name}-recipe"
    folder.mkdir()
    path = make_recipe(folder, degradation=degradation, epochs=epochs, steps=4, model='type = "unet"\nwidths = [8, 16]')
    path.write_text(path.read_text() + f"lr = 3e-3\nema = {ema}\n")
    return path


def test_the_average_equals_a_hand_written_ema_with_its_warm_up():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = make_ema(model, 0.95)
    by_hand = {k: v.clone().double() for k, v in model.state_dict().items()}
    for n in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(2, 3, 8, 8))   # moves BatchNorm's running statistics and its counter
        ema.update_parameters(model)
        d = min(0.95, (1 + n) / (10 + n)) if n else 0.0   # the first update copies the weights
        for k, v in model.state_dict().items():
            by_hand[k] = v.double() if not v.is_floating_point() else d * by_hand[k] + (1 - d) * v.double()
    got = ema.module.state_dict()
    for k, v in by_hand.items():
        assert torch.allclose(got[k].double(), v, rtol=1e-6, atol=1e-6), k
    assert int(got["1.num_batches_tracked"]) == 30 and int(ema.n_averaged) == 30
    assert make_ema(model, 0.0) is None


def test_validation_best_and_eval_use_the_average(tmp_path):
    plugins = plugin_manager.load(())
    runs = {}
    for name, ema in (("on", 0.9), ("off", 0.0)):
        r = recipes.load(str(run_recipe(tmp_path, name, ema=ema)), plugins)
        runs[name] = train(r, plugins, out=tmp_path / name, device="cpu", progress=False)
    on, off = checkpoint.load(runs["on"], "last"), checkpoint.load(runs["off"], "last")
    assert on["ema_updates"] == 8 and set(on["ema"]) == set(on["model"]) and "ema" not in off
    # the average never feeds back into training: the trained weights are the same with it or without
    assert all(torch.equal(on["model"][k], off["model"][k]) for k in off["model"])
    assert any(not torch.equal(on["ema"][k], on["model"][k]) for k in on["model"] if on["model"][k].is_floating_point())
    # so a different validation score can only come from judging the average
    logged = {n: [m["valid"]["psnr"] for m in rundir.read_metrics(r)] for n, r in runs.items()}
    assert all(a != b for a, b in zip(logged["on"], logged["off"])), logged
    best = checkpoint.load(runs["on"], "best")
    assert best["metrics"]["psnr"] == max(logged["on"]) and "ema" in best
    model, _ = checkpoint.load_model(runs["on"], plugins)
    assert all(torch.equal(v, best["ema"][k]) for k, v in model.state_dict().items())
    export_run(runs["on"], tmp_path / "model.safetensors", plugins=plugins)   # what ships is the average too
    shipped = load_file(tmp_path / "model.safetensors")
    assert shipped.keys() == best["ema"].keys() and all(torch.equal(shipped[k], best["ema"][k]) for k in shipped)
    judged = evaluate(runs["on"], plugins, device="cpu", metrics=(), report=False)[0]["mean"]["model"]["psnr_rgb"]
    best["ema"] = best["model"]   # the same checkpoint without its average
    checkpoint.save(best, runs["on"] / "checkpoints" / "best.pt")
    assert evaluate(runs["on"], plugins, device="cpu", metrics=(), report=False)[0]["mean"]["model"]["psnr_rgb"] != judged


def test_a_resume_mid_epoch_continues_the_average_exactly(tmp_path, monkeypatch):
    plugins = plugin_manager.load([TINY])

    def run(name, call):
        monkeypatch.setenv("TINY_SIGNAL_FLAG", str(tmp_path / f"{name}.flag"))
        spec = f'type = "signal_at"\ncall = {call}\nsig = "SIGINT"\ntimes = 1\nparent = false'
        r = recipes.load(str(run_recipe(tmp_path, name, epochs=3, degradation=spec)), plugins)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return train(r, plugins, out=tmp_path / name, device="cpu", progress=False)
        except SystemExit as e:
            assert e.code == 130
            return tmp_path / name
        finally:
            signal.signal(signal.SIGINT, previous)

    straight, stopped = run("straight", 10**9), run("stopped", 30)
    kept = checkpoint.load(stopped, "last")
    assert kept["epoch"] == 1 and kept["step"] >= 1 and kept["ema_updates"] == 4 + kept["step"]
    r = recipes.load(str(stopped / "recipe.toml"), plugins)
    train(r, plugins, resume=stopped, device="cpu", progress=False)
    a, b = checkpoint.load(straight, "last"), checkpoint.load(stopped, "last")
    assert a["ema_updates"] == b["ema_updates"] == 12
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert [json.dumps(x["valid"]) for x in rundir.read_metrics(straight)] == [json.dumps(x["valid"]) for x in rundir.read_metrics(stopped)]


def test_turning_the_average_on_at_a_resume_is_refused(tmp_path):
    plugins = plugin_manager.load(())
    r = recipes.load(str(run_recipe(tmp_path, "off", ema=0.0, epochs=1)), plugins)
    run = train(r, plugins, out=tmp_path / "run", device="cpu", progress=False)
    assert "ema" not in checkpoint.load(run, "best")
    text = (run / "recipe.toml").read_text()
    (run / "recipe.toml").write_text(text.replace("ema = 0.0", "ema = 0.999"))
    from workbench.train.resume import check_unchanged

    with pytest.raises(WorkbenchError, match=r"train\.ema: 0\.0 -> 0\.999"):
        check_unchanged(recipes.load(str(run / "recipe.toml"), plugins), run, plugins)
