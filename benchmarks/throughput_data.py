"""Data-pipeline throughput and scale (issue 8, parts 3 and 5).

`loader_rates` times how many (input, target) pairs per second each recipe's
training DataLoader yields, built exactly as `workbench run` builds it (`make_task`, `EpochSampler`,
`make_loader` with drop_last), at several crop sizes and worker counts. `folder_scale` generates
folders of N tiny images and, in a fresh process per folder so peak RSS is that run's alone,
iterates the same pipeline over them: peak memory must not grow with N.

A library of `benchmarks/throughput.py` (sections 3 and 5: `python benchmarks/throughput.py
--only 3,5`), which sets them beside the model's consumption rate.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from workbench import recipe as wb_recipe
from workbench.api import registry as wb_plugins
from workbench.data import EpochSampler, make_loader
from workbench.tasks import make_task

SCALE_RECIPE = "colorize"   # the cheapest chain: the scale run measures reading files, not damage
SCALE_BATCHES = 200


def chain_text(recipe):
    """The [[degradations]] tables as one line: downsample(scale=2) > jpeg(quality=[10, 70])."""
    steps = []
    for spec in recipe["degradations"]:
        args = ", ".join(f"{k}={wb_recipe.toml_value(v)}" for k, v in spec.items() if k != "type")
        steps.append(f"{spec['type']}({args})")
    return " > ".join(steps) or "none"


def training_loader(recipe, plugins):
    """The training loader as `workbench run` builds it (train.py, _Trainer.__init__) -> (loader, sampler)."""
    data = recipe["data"]
    task = make_task(recipe, plugins)
    try:
        from workbench.data import train_loader
    except ImportError:   # the code before lanes, measured as the "before" of throughput_photos.py
        sampler = EpochSampler(len(task.train), shuffle=True, seed=recipe["recipe"]["seed"])
        loader = make_loader(task.train, sampler, batch_size=data["batch_size"], workers=data["workers"], drop_last=True)
        return loader, sampler
    return train_loader(task.train, batch_size=data["batch_size"], workers=data["workers"])


def batches(loader, sampler):
    """Endless batches, epoch after epoch, as training draws them."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def time_loader(loader, sampler, seconds):
    """(pairs/s after warm-up, seconds to the first batch). The warm-up also drains the batches
    workers prefetched while starting (prefetch_factor 2 per worker), which would inflate the rate."""
    start = time.perf_counter()
    it = batches(loader, sampler)
    next(it)
    first = time.perf_counter() - start
    for _ in range(2 * loader.num_workers):
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(next(it)["damaged"])   # the model's input, in restoration and classification alike
    return n / (time.perf_counter() - t0), first


def loader_rates(recipes=None, sizes=(64, 256), workers=(0, 1, 2), seconds=3.0):
    """One row per (recipe, size, workers): {recipe, chain, size, workers, batch_size, pairs_per_s, first_batch_s};
    every registered recipe unless `recipes` names some (classify's "pairs" are (crop, label))."""
    plugins = wb_plugins.load()
    rows = []
    for name in recipes or plugins.recipes.names():
        for size in sizes:
            for w in workers:
                recipe = wb_recipe.load(name, plugins, [f"data.size={size}", f"data.workers={w}", "data.train=sample"])
                loader, sampler = training_loader(recipe, plugins)
                rate, first = time_loader(loader, sampler, seconds)
                del loader   # persistent workers exit here, not while the next row is timed
                rows.append({"recipe": name, "chain": chain_text(recipe), "size": size, "workers": w,
                             "batch_size": recipe["data"]["batch_size"], "pairs_per_s": rate, "first_batch_s": first})
    return rows


# -- scale ------------------------------------------------------------------------------------------
def make_folder(root, n, size=32):
    """n copies of one small JPEG (a few hundred bytes), hard-linked where the file system allows."""
    blocks = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    first = root / "img000000.jpg"
    Image.fromarray(blocks).resize((size, size), Image.Resampling.BILINEAR).save(first, quality=75)
    for i in range(1, n):
        dst = root / f"img{i:06d}.jpg"
        try:
            os.link(first, dst)
        except OSError:   # no hard links here (or too many): copy
            shutil.copyfile(first, dst)
    return first.stat().st_size


def _vm_hwm_mb():
    """This process's peak RSS. Not ru_maxrss: exec keeps the spawning process's peak in it, so
    a child started by a 4 GB benchmark would report 4 GB; VmHWM belongs to the new image alone."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _scale_child(folder, size, batches_wanted, spawned_at):
    """Runs in the fresh process: the training pipeline (the recipe's 2 workers) over `folder`;
    prints one JSON line."""
    t_import = time.time() - spawned_at
    plugins = wb_plugins.load()
    t0 = time.perf_counter()
    recipe = wb_recipe.load(SCALE_RECIPE, plugins, [f"data.train={folder}", f"data.size={size}"])
    loader, sampler = training_loader(recipe, plugins)
    t_loader = time.perf_counter()
    it = batches(loader, sampler)
    next(it)
    first, first_wall = time.perf_counter(), time.time()
    for _ in range(batches_wanted - 1):
        next(it)
    done = time.perf_counter()
    self_peak = _vm_hwm_mb()
    del it, loader   # workers exit and are reaped: RUSAGE_CHILDREN then covers them
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # KiB on Linux
    print(json.dumps({"peak_rss_mb": self_peak, "worker_peak_rss_mb": child_peak, "import_s": t_import,
                      "setup_s": t_loader - t0, "first_batch_s": first - t0, "from_spawn_s": first_wall - spawned_at,
                      "batches_per_s": (batches_wanted - 1) / max(done - first, 1e-9)}))


def folder_scale(counts=(10_000, 50_000), size=32, n_batches=SCALE_BATCHES):
    """One row per folder size: {images, file_bytes, peak_rss_mb (main process), worker_peak_rss_mb
    (the largest worker's, pages shared with the main process included),
    setup_s (open folder, split, datasets, loader), first_batch_s (setup + first batch),
    from_spawn_s (process start to first batch, imports included), batches_per_s}."""
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="wb-scale-") as tmp:
            nbytes = make_folder(Path(tmp), n, size)
            cmd = [sys.executable, __file__, "--scale-child", tmp, str(size), str(n_batches), repr(time.time())]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"scale run over {n} images failed:\n{proc.stderr}")
            rows.append({"images": n, "file_bytes": nbytes, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return rows


def prepared_scale(counts=(10_000, 100_000), size=32, n_batches=SCALE_BATCHES):
    """folder_scale's rows for prepared sets: N small photos through `workbench prepare`, then the
    training pipeline over the shards in a fresh process; also the preparation's seconds."""
    from workbench.data.prepare import prepare

    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="wb-pscale-") as tmp:
            (Path(tmp) / "photos").mkdir()
            make_folder(Path(tmp) / "photos", n, size)
            t0 = time.perf_counter()
            prepare(str(Path(tmp) / "photos"), Path(tmp) / "shards", progress=False)
            prepare_s = time.perf_counter() - t0
            cmd = [sys.executable, __file__, "--scale-child", str(Path(tmp) / "shards"), str(size), str(n_batches), repr(time.time())]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"scale run over {n} prepared images failed:\n{proc.stderr}")
            rows.append({"images": n, "prepare_s": round(prepare_s, 1), **json.loads(proc.stdout.strip().splitlines()[-1])})
    return rows


# -- report -----------------------------------------------------------------------------------------
if __name__ == "__main__":   # the fresh process of one folder_scale row
    if sys.argv[1:2] == ["--scale-child"]:
        _scale_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
