"""restore and eval under torchrun: each photo goes to one rank, the result is one process's, errors stop every rank."""
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.devices.spread import Spread, in_order
from workbench.errors import WorkbenchError
from workbench.train.loop import train

RECIPE = """
[recipe]
name = "tiny-superres"
seed = 1
[data]
train = "{train}"
size = 24
valid_size = 32
repeat = 1
batch_size = 4
workers = 0
[[degradations]]
type = "downsample"
scale = 2
[[degradations]]
type = "jpeg"
quality = [20, 60]   # drawn per image: eval must seed it by the image's place in the whole list
[model]
type = "unet"
widths = [8, 16]
[[losses]]
type = "l1"
[train]
epochs = 1
lr = 3e-3
cpu_bf16 = false
"""

# Runs the CLI as `python -m workbench` would, logging each file this rank's restore writes and
# the exit status it leaves with: what each rank did, seen from inside it rather than guessed from
# the files. PROBE_CRASH="RANK:NAME" makes that rank crash (not a user error) instead of writing NAME;
# PROBE_TAKE="RANK:NAME" puts a folder in NAME's way just before that rank writes it (after the checks).
PROBE = '''
import os, sys
from pathlib import Path
import workbench.infer.savers as savers
log, rank, real = os.environ["PROBE_LOG"], os.environ.get("RANK", "0"), savers.write_image

def logged(img, path, **kw):
    if os.environ.get("PROBE_CRASH") == f"{rank}:{Path(path).name}":
        raise RuntimeError("probe: a crash")
    if os.environ.get("PROBE_TAKE") == f"{rank}:{Path(path).name}":
        Path(path).mkdir(parents=True)
    with open(f"{log}.{rank}", "a") as f:
        f.write(f"{path}\\n")
    real(img, path, **kw)

savers.write_image = logged
from workbench.cli import main
sys.argv[0] = "workbench"
try:
    main()
except BaseException as e:
    Path(f"{log}.exit{rank}").write_text(str(e.code if isinstance(e, SystemExit) else 1))
    raise
'''

# Sorted input order; split items[rank::2]: rank 0 gets a, c, e-broken, sub/g and rank 1 b-broken, d, f,
# so both ranks restore photos and both skip one.
PHOTOS = {"a.png": (40, 56), "c.png": (33, 47), "d.png": (48, 48), "f.png": (30, 62), "sub/g.jpg": (36, 44)}
BROKEN = ("b-broken.png", "e-broken.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny super-resolution run, trained here in seconds (close to, but not, the identity)."""
    root = tmp_path_factory.mktemp("spread")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    for k in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "train" / f"t{k}.png")
    (root / "tiny.toml").write_text(RECIPE.format(train=(root / "train").as_posix()))
    plugins = plugin_manager.load()
    return train(recipes.load(str(root / "tiny.toml"), plugins), plugins, out=root / "run", device="cpu", progress=False)


@pytest.fixture
def photos(tmp_path):
    """7 inputs, 5 of them photos (one in a sub-folder) and 2 unreadable, smooth enough to judge."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k, (name, (h, w)) in enumerate(PHOTOS.items()):
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x + k) * np.cos(7 * y)], -1)
        img += np.random.default_rng(k).normal(0, 0.05, img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / name)
    (folder / BROKEN[0]).write_bytes((folder / "a.png").read_bytes()[:200])
    (folder / BROKEN[1]).write_text("not an image")
    return folder


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (plugin_manager.ENV_VAR, "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PROBE_LOG": str(tmp_path / "wrote")}


def one_process(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=120)


def torchrun(tmp_path, *args, probe=False, extra_env=None):
    """`torchrun --nnodes 1 --nproc-per-node 2 -m workbench ARGS` (or the probe script), on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = ["-m", "workbench"]
    if probe:
        (tmp_path / "probe.py").write_text(PROBE)
        target = [str(tmp_path / "probe.py")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-port", str(port), *target, *map(str, args)]
    # The timeout is the "no rank waits forever" check: a healthy run takes seconds.
    return subprocess.run(cmd, capture_output=True, text=True, env={**_env(tmp_path), **(extra_env or {})}, timeout=120)


def _lines(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_mine_gives_every_item_to_exactly_one_rank():
    items = list("abcdefg")
    for world in (1, 2, 3, 4, 8):
        shares = [Spread(rank, world).mine(items) for rank in range(world)]
        assert [x for _, x in in_order(shares)] == items
        assert [len(s) for s in shares] == [len(items[r::world]) for r in range(world)]


def test_one_rank_settle_returns_or_reraises():
    def fails():
        raise WorkbenchError("bad photo")

    assert Spread().settle(lambda: 5) == [5]
    with pytest.raises(WorkbenchError, match="bad photo"):
        Spread().settle(fails)


def test_two_process_restore_matches_one_process(run, photos, tmp_path):
    single = one_process(tmp_path, "restore", run, photos, "-o", tmp_path / "out1", "--device", "cpu")
    assert single.returncode == 0, single.stderr
    double = torchrun(tmp_path, "restore", run, photos, "-o", tmp_path / "out2", "--device", "cpu", probe=True)
    assert double.returncode == 0, double.stderr[-3000:]

    # the same files, byte for byte (the model changed them: it is not the identity)
    files = sorted(p.relative_to(tmp_path / "out1").as_posix() for p in (tmp_path / "out1").rglob("*") if p.is_file())
    assert files == sorted(PHOTOS)
    assert sorted(p.relative_to(tmp_path / "out2").as_posix() for p in (tmp_path / "out2").rglob("*") if p.is_file()) == files
    for name in files:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), name
    # each photo written once, by the rank the fixed split gives it, and both ranks worked
    inputs = sorted([*PHOTOS, *BROKEN])
    for rank in (0, 1):
        wrote = (tmp_path / f"wrote.{rank}").read_text().splitlines()
        assert wrote == [str(tmp_path / "out2" / n) for n in inputs[rank::2] if n in PHOTOS]
        assert (tmp_path / f"wrote.exit{rank}").read_text() == "0"
    # rank 0 alone speaks: the one-process summary and skip warnings, in input order
    assert double.stdout == single.stdout.replace(str(tmp_path / "out1"), str(tmp_path / "out2"))
    assert _lines(double.stdout, "Restored") == [f"Restored 5 photo(s) into {tmp_path / 'out2'}; 2 unreadable skipped"]
    assert _lines(double.stderr, "Warning") == _lines(single.stderr, "Warning") and len(_lines(single.stderr, "Warning")) == 2


def test_two_process_eval_matches_one_process(run, photos, tmp_path):
    def images_in(html):
        return re.findall(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", html)

    single = one_process(tmp_path, "eval", run, "--data", photos, "--json", tmp_path / "one.json", "--device", "cpu")
    assert single.returncode == 0, single.stderr
    one_report = images_in((run / "report.html").read_text())
    double = torchrun(tmp_path, "eval", run, "--data", photos, "--json", tmp_path / "two.json", "--device", "cpu")
    assert double.returncode == 0, double.stderr[-3000:]

    assert double.stdout == single.stdout and double.stdout.count("model - input") == 1   # the same table, once
    assert _lines(double.stderr, "warning") == _lines(single.stderr, "warning")           # skips, in input order
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert json.loads((run / f"eval-{photos.name}.json").read_text()) == two
    one.pop("date"), two.pop("date")
    assert two == one                                   # every number, every row, in the same order
    assert [r["name"] for r in two["images"]] == sorted(PHOTOS) and [s["name"] for s in two["skipped"]] == list(BROKEN)
    assert len(one_report) >= 3 * len(PHOTOS) and images_in((run / "report.html").read_text()) == one_report


def test_user_error_on_one_rank_stops_both_with_one_line(run, photos, tmp_path):
    out = tmp_path / "out"
    double = torchrun(tmp_path, "restore", run, photos, "-o", out, "--device", "cpu", probe=True,
                      extra_env={"PROBE_TAKE": "1:d.png"})   # only rank 1 writes d.png: a folder appears in its way
    assert double.returncode != 0
    errors = _lines(double.stderr, "Error:")
    assert errors == [f"Error: {out / 'd.png'} exists and was not made by this command; it is kept. "
                      "Pass --overwrite to replace it, or choose another output."]
    assert not re.search(r'File ".*workbench/\w+\.py"', double.stderr)   # no traceback from either rank
    assert [(tmp_path / f"wrote.exit{r}").read_text() for r in (0, 1)] == ["2", "2"]
    assert double.stdout == "" and (out / "d.png").is_dir()               # no summary; the folder is kept


def test_output_in_the_way_is_refused_by_both_ranks_before_any_work(run, photos, tmp_path):
    (tmp_path / "out" / "d.png").mkdir(parents=True)
    double = torchrun(tmp_path, "restore", run, photos, "-o", tmp_path / "out", "--device", "cpu", probe=True)
    assert _lines(double.stderr, "Error:") == [f"Error: {tmp_path / 'out' / 'd.png'} is a folder, where "
                                               f"{photos / 'd.png'} would be written; choose another output."]
    assert [(tmp_path / f"wrote.exit{r}").read_text() for r in (0, 1)] == ["2", "2"]
    assert not (tmp_path / "wrote.0").exists() and not (tmp_path / "wrote.1").exists()   # nothing written


def test_crash_on_one_rank_stops_the_other(run, photos, tmp_path):
    double = torchrun(tmp_path, "restore", run, photos, "-o", tmp_path / "out", "--device", "cpu", probe=True,
                      extra_env={"PROBE_CRASH": "1:d.png"})
    assert double.returncode != 0
    assert "RuntimeError: probe: a crash" in double.stderr               # the crashed rank's own traceback
    assert _lines(double.stderr, "Error:") == ["Error: rank 1 stopped with RuntimeError: probe: a crash (see its traceback)."]
    assert [(tmp_path / f"wrote.exit{r}").read_text() for r in (0, 1)] == ["2", "1"]
