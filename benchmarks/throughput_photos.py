"""Real photo sizes (section 6 of throughput.py): does the loader keep the trainer fed when the
training photos are DIV2K-sized PNGs or a phone's 12 MP JPEGs, raw or prepared as shards?

The benchmark makes its own photos from CBSD68 (shared/data, else scikit-image's sample photos),
resized: 24 PNGs of 2040 x 1356 and 24 JPEGs of 4000 x 3000 (quality 90), and prepares both with
`workbench prepare` (480 px sub-images, step 240). For each recipe at 64 px and each source it
measures, one after the other on a quiet machine:
- loader_crops_s: crops/s of the trainer's own training loader with data.workers = 0, i.e. what
  one loader process makes (over one whole epoch or 20 s, from a cold start);
- the trainer's images/s fed by its real loader (default workers) over a whole epoch (at most 64
  steps) after a warm-up epoch, as a fraction of the same trainer on batches already in memory.

It runs on whichever workbench is importable, so the code before a change is measured by pointing
PYTHONPATH at a checkout of it (`git worktree add /tmp/before HEAD~N`): sources it cannot read
(shards, before `prepare` existed) are left out of its rows.
"""
import json
import os
import sys
import time
from pathlib import Path

import throughput_data
import throughput_train
from PIL import Image

HERE = Path(__file__).resolve().parent
CBSD68 = HERE.parent.parent / "shared" / "data" / "train" / "CBSD68"
SIZES = {"png2040": ((2040, 1356), ".png"), "jpeg4000": ((4000, 3000), ".jpg")}
COUNT = 24
LOADER_SECONDS = 20.0


def make_photos(root, count=COUNT):
    """{name: folder} of the benchmark photos under `root`, made once and reused."""
    root = Path(root)
    sources = sorted(CBSD68.glob("*.png")) if CBSD68.is_dir() else []
    out = {"sample": "sample"}
    for name, ((w, h), suffix) in SIZES.items():
        folder = root / name
        done = folder / ".complete"
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                im = _photo(sources, i).resize((w, h), Image.Resampling.BICUBIC)
                path = folder / f"{name}-{i:02d}{suffix}"
                im.save(path, quality=90) if suffix == ".jpg" else im.save(path)
            done.touch()
        out[name] = str(folder)
    return out


def _photo(sources, i):
    if sources:
        return Image.open(sources[i % len(sources)]).convert("RGB")
    import skimage.data

    names = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"]
    return Image.fromarray(getattr(skimage.data, names[i % len(names)])()[:, :, :3])


def prepare_shards(photos, root):
    """{name}-shards for each photo folder, when this workbench has `prepare` (else {})."""
    try:
        from workbench.data.prepare import prepare
    except ImportError:
        return {}
    out = {}
    for name in SIZES:
        dest = Path(root) / f"{name}-shards"
        if not (dest / "manifest.json").exists():
            t0 = time.perf_counter()
            prepare(photos[name], dest, progress=False)
            print(f"prepared {name} in {time.perf_counter() - t0:.0f} s", flush=True)
        out[f"{name}-shards"] = str(dest)
    return out


def loader_rate(recipe_name, data, size):
    """Crops/s of the training loader with 0 workers over one epoch or LOADER_SECONDS, cold start."""
    plugins = throughput_data.wb_plugins.load()
    recipe = throughput_data.wb_recipe.load(recipe_name, plugins, [f"data.size={size}", "data.workers=0"])
    recipe["data"]["train"] = data
    loader, sampler = throughput_data.training_loader(recipe, plugins)
    sampler.set_epoch(0)
    n, t0 = 0, time.perf_counter()
    for batch in loader:
        n += len(batch["damaged"])
        if time.perf_counter() - t0 > LOADER_SECONDS:
            break
    return n / (time.perf_counter() - t0)


def trainer_rate(recipe_name, data, size, real, workers=None):
    """Images/s of the real trainer over a whole epoch after a warm-up epoch; `real` = fed by its
    own loader with the recipe's default workers (or `workers`), else by the same batches in memory."""
    steps = epoch_steps(recipe_name, data, size) if real else 12
    overrides = [f"data.train={data}"] if data != "sample" else []
    overrides += [] if workers is None else [f"data.workers={workers}"]
    trainer, _ = throughput_train.in_memory_trainer(recipe_name, size=size, n_batches=steps, overrides=overrides, real_loader=real)
    rate = throughput_train.images_per_s(trainer, passes=1)
    workers = getattr(trainer.loader, "num_workers", 0)
    del trainer
    return rate, workers


def epoch_steps(recipe_name, data, size, cap=64):
    """Steps of a whole epoch, at most `cap` (a prepared set's epoch is thousands of steps; its
    lanes have no per-epoch start-up cost to hide, unlike a raw folder's first decodes)."""
    plugins = throughput_data.wb_plugins.load()
    recipe = throughput_data.wb_recipe.load(recipe_name, plugins, [f"data.size={size}", "data.workers=0"])
    recipe["data"]["train"] = data
    loader, _ = throughput_data.training_loader(recipe, plugins)
    return min(len(loader), cap)


def photo_rows(root, recipes=("superres", "colorize"), size=64, label="after"):
    photos = make_photos(root)
    sources = {**photos, **prepare_shards(photos, root)}
    rows = []
    for name in recipes:
        memory, _ = trainer_rate(name, "sample", size, real=False)
        for source, data in sources.items():
            crops = loader_rate(name, data, size)
            fed, workers = trainer_rate(name, data, size, real=True)
            row = {"code": label, "recipe": name, "source": source, "loader_crops_s_per_worker": round(crops, 1),
                   "workers": workers, "in_memory_img_s": round(memory, 1), "real_loader_img_s": round(fed, 1),
                   "fraction": round(fed / memory, 3), "crops_vs_model": round(crops / memory, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def worker_rows(root, sources=("sample", "jpeg4000", "jpeg4000-shards"), workers=(0, 1, 2), recipe="superres", size=64):
    """The trainer fed by its loader with each worker count, as a fraction of its in-memory speed:
    the measurement behind data.workers = -1."""
    memory, _ = trainer_rate(recipe, "sample", size, real=False)
    rows = []
    for source in sources:
        data = "sample" if source == "sample" else str(Path(root) / source)
        for w in workers:
            fed, _ = trainer_rate(recipe, data, size, real=True, workers=w)
            row = {"recipe": recipe, "source": source, "workers": w, "in_memory_img_s": round(memory, 1),
                   "real_loader_img_s": round(fed, 1), "fraction": round(fed / memory, 3)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":   # python benchmarks/throughput_photos.py ROOT LABEL OUT.json (LABEL "workers": the sweep)
    sys.path.insert(0, str(HERE))
    root, label, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(root, exist_ok=True)
    rows = worker_rows(root) if label == "workers" else photo_rows(root, label=label)
    Path(out).write_text(json.dumps(rows, indent=2) + "\n")
