"""Every kind of recipe mistake: `workbench run` prints one line naming the file (or the --set item),
the key and what is allowed, exits with status 2, and writes nothing (the run directory never appears)."""
import copy

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench import recipe as recipes
from workbench.cli import cli

BASE = {
    "data": {"train": "{photos}", "size": 16, "valid_size": 16, "batch_size": 2, "workers": 0},
    "degradations": [{"type": "jpeg", "quality": 30}],
    "model": {"type": "unet", "widths": [8, 16]},
    "train": {"epochs": 1, "steps_per_epoch": 1},
}


def changed(**keys):
    """BASE with dotted keys set (`degradations__0__quality` for degradations.0.quality)."""
    def edit(cfg):
        for dotted, value in keys.items():
            *path, last = dotted.split("__")
            table = cfg
            for part in path:
                table = table[int(part)] if part.isdigit() else table[part]
            table[last] = value
        return cfg
    return edit


# (id, edit of BASE or text appended to it, --set items, words the one line must hold)
CASES = [
    ("syntax", "\n[train\nepochs = 2\n", [], ["invalid TOML", "line {line}"]),
    ("unknown section", "\n[trian]\nepochs = 2\n", [], ["unknown section [trian]", "Did you mean 'train'", "Allowed: recipe, data, train"]),
    ("unknown key", changed(train__epoch=2), [], ["unknown key 'train.epoch'", "Did you mean 'epochs'", "Allowed in [train]: epochs"]),
    ("wrong type", changed(train__epochs="two"), [], ["train.epochs must be an integer", "'two'"]),
    ("negative epochs", changed(train__epochs=-1), [], ["train.epochs = -1 is out of range: allowed 1 or more."]),
    ("zero epochs", changed(train__epochs=0), [], ["train.epochs = 0 is out of range: allowed 1 or more."]),
    ("zero lr", changed(train__lr=0.0), [], ["train.lr = 0.0 is out of range: allowed more than 0."]),
    ("negative lr", changed(train__lr=-1e-3), [], ["train.lr = -0.001 is out of range: allowed more than 0."]),
    ("nan lr", changed(train__lr=float("nan")), [], ["train.lr = nan is out of range: allowed more than 0."]),
    ("zero size", changed(data__size=0), [], ["data.size = 0 is out of range: allowed 1 or more."]),
    ("zero batch", changed(data__batch_size=0), [], ["data.batch_size = 0 is out of range: allowed 1 or more."]),
    ("fraction", changed(data__valid_fraction=1.5), [], ["data.valid_fraction = 1.5 is out of range: allowed 0 or more and less than 1."]),
    ("workers", changed(data__workers=-2), [], ["data.workers = -2 is out of range: allowed -1 or more."]),
    ("grad clip", changed(train__grad_clip=-1.0), [], ["train.grad_clip = -1.0 is out of range: allowed 0 or more."]),
    ("seed", changed(recipe={"seed": -1}), [], ["recipe.seed = -1 is out of range: allowed 0 or more and 9223372036854775807 or less."]),
    ("valid size", changed(data__valid_size=8), [], ["data.valid_size = 8 is out of range: allowed 11 or more."]),
    ("quality 0", changed(degradations__0__quality=0), [], ["[[degradations]] #1", "'jpeg'", "quality = 0 is out of range: allowed 1 to 100"]),
    ("quality 101", changed(degradations__0__quality=101), [], ["[[degradations]] #1", "quality = 101 is out of range: allowed 1 to 100"]),
    ("range lo > hi", changed(degradations__0__quality=[50, 10]), [], ["quality range [50, 10] has lo > hi: write [10, 50]"]),
    ("unknown degradation", changed(degradations__0__type="jpg"), [], ["[[degradations]] #1", "Unknown degradation 'jpg'", "Did you mean 'jpeg'", "Available: blur"]),
    ("missing folder", changed(data__train="/no/such/folder"), [], ["data.train", "/no/such/folder does not exist", "set data.train to a folder"]),
    ("no images", changed(data__train="{empty}"), [], ["data.train", "no images (png, jpg", "add photos"]),
    ("no readable images", changed(data__train="{broken}"), [], ["data.train", "no readable image in", "2 file(s) could not be read", "cannot read image"]),
    # the same mistakes made with --set name the --set item instead of the file
    ("set zero epochs", None, ["train.epochs=0"], ["--set train.epochs=0", "train.epochs = 0 is out of range: allowed 1 or more."]),
    ("set fraction", None, ["data.valid_fraction=1.5"], ["--set data.valid_fraction=1.5", "allowed 0 or more and less than 1."]),
    ("set negative lr", None, ["train.lr=-1"], ["--set train.lr=-1", "train.lr = -1.0 is out of range: allowed more than 0."]),
    ("set unknown key", None, ["train.epoch=2"], ["--set train.epoch=2", "unknown key 'train.epoch'", "Did you mean 'epochs'"]),
    ("set wrong type", None, ["train.lr=fast"], ["--set train.lr=fast", "train.lr must be a number"]),
    ("set unknown degradation", None, ["degradations.0.type=jpg"], ["--set degradations.0.type=jpg", "Unknown degradation 'jpg'"]),
    ("set quality", None, ["degradations.0.quality=101"], ["r.toml: [[degradations]] #1", "quality = 101 is out of range: allowed 1 to 100"]),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for k in range(3):
        (root / "photos").mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / "photos" / f"{k}.png")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    (root / "broken").mkdir()
    (root / "broken" / "a.png").write_text("not an image")
    (root / "broken" / "b.jpg").write_bytes(b"")
    return {name: str(root / name) for name in ("photos", "empty", "broken")}


@pytest.mark.parametrize("edit, sets, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_recipe_is_one_line_naming_file_key_and_allowed(tmp_path, monkeypatch, folders, edit, sets, words):
    monkeypatch.delenv("WORKBENCH_PLUGINS", raising=False)
    cfg = copy.deepcopy(BASE)
    cfg["data"]["train"] = folders["photos"]
    if callable(edit):
        cfg = edit(cfg)
    text = recipes.dumps(cfg)
    for name, path in folders.items():
        text = text.replace("{" + name + "}", path)
    line = text.count("\n") + 2   # where the appended text's error sits
    if isinstance(edit, str):
        text += edit
    path, out = tmp_path / "r.toml", tmp_path / "run"
    path.write_text(text)
    args = ["run", str(path), "--out", str(out), "--device", "cpu", "-q"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert output.startswith("Error:") and "\n" not in output, output
    assert str(path) in output or any(f"--set {item}" in output for item in sets), output
    for w in words:
        assert w.format(line=line) in output, (w, output)
    assert not out.exists(), "a bad recipe must not create the run directory"
