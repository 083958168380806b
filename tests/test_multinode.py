"""Training from prepared shards on more than one machine, simulated by two torchrun "nodes" on
this one (gloo, a localhost rendezvous), and resuming from shards after an interruption."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.data.prepare import prepare
from workbench.runs import checkpoint
from workbench.train.loop import train

HERE = Path(__file__).parent
TINY = HERE / "plugin_files" / "tiny_model.py"
READS = HERE / "plugin_files" / "count_reads.py"
RECIPE = """
[recipe]
seed = 1
[data]
size = 16
valid_size = 16
batch_size = {batch}
workers = {workers}
crops_per_image = 2
repeat = 1
valid_fraction = 0.25
[[degradations]]
{degradation}
[model]
type = "tiny"
[[losses]]
type = "l1"
[train]
epochs = 2
mixed_precision = false
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 photos of 48 x 48 cut into 4 sub-images of 32 px each, 5 per shard: 32 sub-images, 7 shards."""
    root = tmp_path_factory.mktemp("multinode")
    for i in range(8):
        arr = np.random.default_rng(i).integers(0, 256, (48, 48, 3), dtype=np.uint8)
        (root / "photos").mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / "photos" / f"photo{i}.png")
    prepare(str(root / "photos"), root / "shards", size=32, step=16, shard_size=5, progress=False)
    return root / "shards"


def write_recipe(folder, *, batch, workers=1, degradation='type = "blur"\nsigma = 1.0'):
    path = folder / f"recipe-b{batch}.toml"
    path.write_text(RECIPE.format(batch=batch, workers=workers, degradation=degradation))
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra):
    out = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    out.pop(plugin_manager.ENV_VAR, None)
    return out


def weights(run):
    return checkpoint.load(run, "last")["model"]


def reads(log):
    """{sub-image: times read} from the count_reads plugin's log (every process appends to it)."""
    counts = {}
    for line in log.read_text().split():
        counts[int(line)] = counts.get(int(line), 0) + 1
    return counts


def test_two_nodes_from_shards_equal_one_process_with_the_doubled_batch(tmp_path, prepared):
    """Two torchrun nodes of one process each, batch 4, vs one process with batch 8: the same weights,
    and every training sub-image read exactly once per epoch across both nodes and their workers."""
    one, two = tmp_path / "one", tmp_path / "two"
    wb = ["-m", "workbench", "--plugin", str(TINY), "--plugin", str(READS), "run"]
    single = subprocess.run([sys.executable, *wb, str(write_recipe(tmp_path, batch=8)), "--data", str(prepared),
                             "--out", str(one), "--device", "cpu", "-q"],
                            env=env(READ_LOG=str(tmp_path / "one.log")), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port), *wb,
                               str(write_recipe(tmp_path, batch=4)), "--data", str(prepared), "--out", str(two),
                               "--device", "cpu", "-q"],
                              env=env(READ_LOG=str(tmp_path / "two.log")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outs = [n.communicate(timeout=300) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outs
    a, b = weights(one), weights(two)
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    from workbench.data import ShardSource

    train_idx, valid_idx = ShardSource(prepared).split(0.25, 1)
    for log in ("one.log", "two.log"):
        counts = reads(tmp_path / log)
        assert {i: counts.get(i) for i in train_idx.tolist()} == {i: 2 for i in train_idx.tolist()}   # 2 epochs, once each
        assert set(counts) - set(train_idx.tolist()) <= set(valid_idx.tolist())   # the rest: rank 0 validating


def test_resume_after_a_signal_mid_epoch_on_shards_is_exact(tmp_path, monkeypatch, prepared):
    """SIGTERM from a loader worker in the middle of epoch 1, then --resume: the weights equal an
    uninterrupted run's (the lanes restart at the saved step without replaying the epoch)."""
    plugins = plugin_manager.load([TINY])

    def run(name, call):
        monkeypatch.setenv("TINY_SIGNAL_FLAG", str(tmp_path / f"{name}.flag"))
        spec = f'type = "signal_at"\ncall = {call}\nsig = "SIGTERM"\nparent = true'
        (tmp_path / name).mkdir()
        r = recipes.load(str(write_recipe(tmp_path / name, batch=4, degradation=spec)), plugins)
        r["data"]["train"] = str(prepared)
        try:
            train(r, plugins, out=tmp_path / name / "run", device="cpu", progress=False)
        except SystemExit as e:
            return e.code
        return 0

    assert run("straight", call=10**9) == 0
    assert run("stopped", call=7) == 130
    kept = checkpoint.load(tmp_path / "stopped" / "run", "last")
    assert kept["epoch"] == 0 and kept["step"] > 0   # stopped inside the first epoch
    resumed = tmp_path / "stopped" / "run"
    train(recipes.load(str(resumed / "recipe.toml"), plugins), plugins, resume=resumed, device="cpu", progress=False)
    a, b = weights(tmp_path / "straight" / "run"), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loader_workers_read_shards_each_with_its_own_files(prepared):
    """Forked loader workers inherit the parent's open shard files: reads must not share a file
    position (two workers once decoded each other's bytes as damaged PNGs)."""
    from workbench.data import PairDataset, ShardSource, train_loader

    src = ShardSource(prepared)
    src.pixels(0)   # the parent has the first shard open before the workers fork
    ds = PairDataset(src, range(len(src)), [], size=16, crops_per_image=2, repeat=2)

    def batches(workers):
        loader, sampler = train_loader(ds, batch_size=4, workers=workers)
        sampler.set_epoch(1)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) > 4
    assert all(torch.equal(a["clean"], b["clean"]) and a["skipped"] == b["skipped"] for a, b in zip(serial, parallel))
    assert not any(s for b in parallel for s in b["skipped"])


def test_a_forked_process_opens_its_own_shard_files(prepared):
    from workbench.data import ShardSource

    src = ShardSource(prepared)
    expected = [src.pixels(i) for i in range(3)]
    inherited = src._open[0]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: a loader worker as DataLoader forks it
        ok = src._file(0) is not inherited and all(torch.equal(src.pixels(i), expected[i]) for i in range(3))
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert src._file(0) is inherited


def test_resume_after_kill_9_mid_epoch_on_shards_is_exact(tmp_path, prepared):
    """SIGKILL (no chance to save) from a loader worker in the middle of epoch 2: the resume starts
    from epoch 1's checkpoint and ends with the weights of an uninterrupted run."""
    def run(name, call):
        (tmp_path / name).mkdir()
        spec = f'type = "signal_at"\ncall = {call}\nsig = "SIGKILL"\nparent = true'
        recipe = write_recipe(tmp_path / name, batch=4, degradation=spec)
        cmd = [sys.executable, "-m", "workbench", "--plugin", str(TINY), "run", str(recipe), "--data", str(prepared),
               "--out", str(tmp_path / name / "run"), "--device", "cpu", "-q"]
        return subprocess.run(cmd, env=env(TINY_SIGNAL_FLAG=str(tmp_path / f"{name}.flag")), capture_output=True,
                              text=True, timeout=300)

    assert run("straight", call=10**9).returncode == 0
    killed = run("killed", call=70)   # the worker makes 12 steps x 4 crops per epoch: its 70th is in epoch 2
    assert killed.returncode == -9, killed.stderr
    run_dir = tmp_path / "killed" / "run"
    assert checkpoint.load(run_dir, "last")["epoch"] == 1
    resumed = subprocess.run([sys.executable, "-m", "workbench", "--plugin", str(TINY), "run", "--resume", str(run_dir),
                              "--device", "cpu", "-q"], env=env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(tmp_path / "straight" / "run"), weights(run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage, says", [
    ("photos.txt", "has no photos.txt"), ("manifest.json", "has no manifest.json"),
    ("index.npy", "cannot read the prepared set"), ("truncate", None)])
def test_a_damaged_prepared_folder_is_one_line_or_skipped(tmp_path, prepared, damage, says):
    import shutil

    from workbench.data import open_source
    from workbench.errors import WorkbenchError

    folder = tmp_path / "damaged"
    shutil.copytree(prepared, folder)
    if damage == "truncate":   # the first shard cut in half: its later sub-images cannot be read
        shard = folder / "shard-000000.tar"
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "index.npy":
        (folder / damage).write_bytes(b"\x93NUMPY garbage")
    else:
        (folder / damage).unlink()
    if says:
        with pytest.raises(WorkbenchError, match=says):
            open_source(folder)
        return
    src = open_source(folder)
    assert src.typical_pixels() > 0
    with pytest.raises(WorkbenchError, match="cannot be decoded|not a PNG|cut short"):
        [src.pixels(i) for i in range(5)]


def test_a_photo_folder_with_its_own_manifest_stays_a_photo_folder(tmp_path, prepared):
    from workbench.data import open_source
    from workbench.data.shards import ShardSource

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "a.png")
    (folder / "manifest.json").write_text('{"images": ["a.png"]}')
    (folder / "index.npy").write_bytes(b"not ours")
    assert not isinstance(open_source(folder), ShardSource) and len(open_source(folder)) == 1
    assert isinstance(open_source(prepared), ShardSource)
