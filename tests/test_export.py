"""`workbench export`: each format reproduces the model at odd sizes, restore reads the .safetensors file, and
every mistake is one line."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.api import registry
from workbench.api.contracts import call_model
from workbench.cli import cli
from workbench.errors import WorkbenchError
from workbench.infer import export as engine
from workbench.runs import checkpoint

PLUGINS = registry.load()
TINY = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=3", "--set", "train.lr=0.01", "--set", "data.size=32",
        "--set", "data.batch_size=2", "--set", "data.valid_size=32", "--set", "model.widths=[8, 16, 32]", "-q"]
H, W = 37, 23   # odd on both sides, neither a multiple of the U-Net's stride (4)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *words):
    """Exit status 2 and one line naming `words`, no traceback."""
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: superres (plain U-Net) and inpaint (a masked U-Net, called with a mask)."""
    root = tmp_path_factory.mktemp("export-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(registry.ENV_VAR, raising=False)
        for name in ("superres", "inpaint"):
            res = invoke("run", name, "--out", root / name, "--device", "cpu", *TINY)
            assert res.exit_code == 0, res.output
    return root


def inputs(takes_mask, h=H, w=W):
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., 5:20, 4:15] = True
    return (img, mask) if takes_mask else (img,)


def model_of(where):
    model, state = checkpoint.load_model(where, PLUGINS)
    return model.eval(), state


def test_safetensors_holds_the_weights_and_the_recipe(runs, tmp_path):
    out = tmp_path / "sr.safetensors"
    res = invoke("export", runs / "superres", "-o", out)
    assert res.exit_code == 0 and "safetensors" in res.output and out.is_file(), res.output
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    ours, state = model_of(runs / "superres")
    assert meta["workbench.format"] == "1" and meta["workbench.task"] == "restore" and meta["workbench.version"]
    assert json.loads(meta["workbench.recipe"]) == json.loads(json.dumps(state["recipe"]))
    theirs, _ = model_of(out)
    x = inputs(False)
    with torch.no_grad():
        want = ours(*x)
        assert (want - x[0]).abs().max() > 1e-3   # trained away from the identity: the comparison means something
        assert (theirs(*x) - want).abs().max() <= 1e-4


def test_restore_from_the_exported_file_writes_the_same_photo(runs, tmp_path):
    out = tmp_path / "sr.safetensors"
    assert invoke("export", runs / "superres", "-o", out).exit_code == 0
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    for where, folder in ((runs / "superres", "from-run"), (out, "from-export")):
        res = invoke("restore", where, tmp_path / "odd.png", "-o", tmp_path / folder, "--device", "cpu")
        assert res.exit_code == 0, res.output
    a, b = (tmp_path / "from-run" / "odd.png").read_bytes(), (tmp_path / "from-export" / "odd.png").read_bytes()
    assert Image.open(tmp_path / "from-run" / "odd.png").size == (2 * W, 2 * H) and a == b


@pytest.mark.parametrize("name", ["superres", "inpaint"])
def test_torchscript_reproduces_the_model_at_odd_sizes(runs, tmp_path, name):
    out = tmp_path / "model.torchscript"
    res = invoke("export", runs / name, "-o", out)
    assert res.exit_code == 0 and "TorchScript" in res.output, res.output
    model, _ = model_of(runs / name)
    takes_mask = name == "inpaint"
    assert ("and mask (batch x 1 x H x W bool" in res.output) == takes_mask
    with pytest.warns(FutureWarning):   # torch.jit is deprecated upstream (torch.export); it still runs
        graph = torch.jit.load(str(out), _extra_files=(extra := {"workbench.json": ""}))
    assert json.loads(extra["workbench.json"])["workbench.min_side"].isdigit()
    for h, w in ((H, W), (W, H), (64, 48)):
        x = inputs(takes_mask, h, w)
        with torch.no_grad():
            assert (graph(*x) - call_model(model, *x)).abs().max() <= 1e-4


def test_onnx_reproduces_the_model_at_odd_sizes_and_says_its_smallest_side(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    import onnxruntime as ort

    out = tmp_path / "sr.onnx"
    res = invoke("export", runs / "superres", "-o", out)
    assert res.exit_code == 0 and "ONNX" in res.output, res.output
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["workbench.task"] == "restore" and f"at least {props['workbench.min_side']}" in res.output
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    session = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["img"] and session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    model, _ = model_of(runs / "superres")
    for batch, h, w in ((1, H, W), (3, W, H), (1, 64, 48), (1, 5, 200)):
        x = torch.rand(batch, 3, h, w)
        with torch.no_grad():
            want = model(x)
        got = torch.from_numpy(session.run(None, {"img": x.numpy()})[0])
        assert got.shape == want.shape and (got - want).abs().max() <= 1e-4
    # below the smallest side the runtime refuses (reflect padding), as the metadata and the docs say
    with pytest.raises(Exception, match="(?i)pad"):
        session.run(None, {"img": np.zeros((1, 3, 1, 1), np.float32)})


def test_onnx_refuses_a_model_that_takes_a_mask_in_one_line(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    one_line_error(invoke("export", runs / "inpaint", "-o", tmp_path / "x.onnx"), "mask", ".torchscript")
    assert not (tmp_path / "x.onnx").exists()


def test_without_the_onnx_extra_export_says_how_to_install_it(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # `import onnxruntime` now raises ImportError
    line = one_line_error(invoke("export", runs / "superres", "-o", tmp_path / "x.onnx"))
    assert line == "Error: " + engine.ONNX_EXTRA
    assert engine.ONNX_EXTRA == "ONNX export needs the onnx extra: pip install -e '.[onnx]'"


def test_an_existing_file_is_kept_unless_overwrite(runs, tmp_path):
    out = tmp_path / "sr.safetensors"
    out.write_bytes(b"mine")
    one_line_error(invoke("export", runs / "superres", "-o", out), "already exists", "--overwrite")
    assert out.read_bytes() == b"mine"
    assert invoke("export", runs / "superres", "-o", out, "--overwrite").exit_code == 0
    assert out.read_bytes() != b"mine" and not list(tmp_path.glob(".*.tmp"))
    # nor the file it reads, even with --overwrite
    one_line_error(invoke("export", out, "-o", out, "--overwrite"), "input")


def test_mistakes_are_one_line(runs, tmp_path):
    run = runs / "superres"
    one_line_error(invoke("export", run, "-o", tmp_path / "model.h5"), ".safetensors, .torchscript, .onnx")
    one_line_error(invoke("export", run, "-o", tmp_path / "model.pt"), ".torchscript")
    one_line_error(invoke("export", run, "-o", tmp_path), "is a folder")
    (tmp_path / "folder.onnx").mkdir()
    one_line_error(invoke("export", run, "-o", tmp_path / "folder.onnx"), "is a folder")
    (tmp_path / "not-a-run").mkdir()
    one_line_error(invoke("export", tmp_path / "not-a-run", "-o", tmp_path / "m.safetensors"), "no checkpoints")
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(invoke("export", tmp_path / "notes.txt", "-o", tmp_path / "m.safetensors"), "cannot read checkpoint")
    (tmp_path / "file").write_text("")
    one_line_error(invoke("export", run, "-o", tmp_path / "file" / "m.safetensors"), "file")
    assert invoke("export", run, "-o", tmp_path / "m.safetensors", "--which", "worst").exit_code == 2   # click's usage error
    assert not list(tmp_path.glob("m.*"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(runs, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        one_line_error(invoke("export", runs / "superres", "-o", tmp_path / "ro" / "m.safetensors"), "not writable")
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_foreign_or_damaged_safetensors_file_is_one_line(runs, tmp_path):
    from safetensors.torch import save_file

    Image.new("RGB", (9, 7)).save(tmp_path / "a.png")
    restore = lambda f: invoke("restore", f, tmp_path / "a.png", "-o", tmp_path / "out", "--device", "cpu")
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "foreign.safetensors")
    one_line_error(restore(tmp_path / "foreign.safetensors"), "without workbench metadata")
    good = tmp_path / "sr.safetensors"
    assert invoke("export", runs / "superres", "-o", good).exit_code == 0
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    one_line_error(restore(tmp_path / "cut.safetensors"), "damaged")
    (tmp_path / "noise.safetensors").write_bytes(b"\x00" * 64)
    one_line_error(restore(tmp_path / "noise.safetensors"), "cannot read")
    # metadata edited: a recipe that is not JSON, and one whose model the weights do not fit
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta, weights = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(weights, tmp_path / "bad-json.safetensors", metadata={**meta, "workbench.recipe": "{not json"})
    one_line_error(restore(tmp_path / "bad-json.safetensors"), "metadata is damaged")
    recipe = json.loads(meta["workbench.recipe"])
    recipe["model"]["widths"] = [8, 16]
    save_file(weights, tmp_path / "other.safetensors", metadata={**meta, "workbench.recipe": json.dumps(recipe)})
    one_line_error(restore(tmp_path / "other.safetensors"), "do not fit")
    save_file(weights, tmp_path / "newer.safetensors", metadata={**meta, "workbench.format": "9"})
    one_line_error(restore(tmp_path / "newer.safetensors"), "upgrade")
    # an exported graph holds no recipe: restore says what it is instead of trying to unpickle it
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    one_line_error(restore(tmp_path / "m.onnx"), "ONNX graph", ".safetensors")
    assert not (tmp_path / "out").exists()


def test_a_graph_that_disagrees_with_the_model_is_not_written(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "TOLERANCE", -1.0)   # nothing can agree closely enough
    with pytest.raises(WorkbenchError, match="does not reproduce the model"):
        engine.export_run(runs / "superres", tmp_path / "m.torchscript", plugins=PLUGINS)
    assert not (tmp_path / "m.torchscript").exists()
