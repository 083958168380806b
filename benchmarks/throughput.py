"""Throughput: where training and inference time goes on this machine, each figure beside a
baseline measured in the same run. Prints one table per measurement and writes them as JSON.

  1. trainer: the workbench's training loop vs a minimal hand-written PyTorch loop (same U-Net,
     batches, optimiser, data in memory); the ratio must be at least 0.95.
  2. efficiency: images/s and achieved FLOP rate of a U-Net training step per memory format and
     precision (and torch.compile with --compile), as a fraction of a large matmul's rate.
  3. loader: (damaged, clean) pairs/s of every built-in recipe's degradation chain at 64 and 256 px
     with 0, 1 and 2 workers, beside the rate at which that recipe's model consumes images; and
     the trainer fed by its real loader vs by the same batches in memory (does it starve?).
  4. restore: MP/s and peak resident memory of `workbench restore` on a 4000 x 3000 photo at
     several tile sizes vs one untiled pass on a 1000 x 750 photo.
  5. scale: peak memory and time to first batch over folders of 10,000 and 50,000 small images.
  6. photos: real photo sizes (24 PNGs of 2040 x 1356, 24 JPEGs of 4000 x 3000, both also prepared
     as shards): the loader's crops/s per worker and the trainer fed by it, as a fraction of its
     in-memory speed (throughput_photos.py; photos cached in --photos).
  7. prepared scale: peak memory over prepared sets of 10,000 and 100,000 images.

    python benchmarks/throughput.py                 # everything, about 15 minutes on 2 cores
    python benchmarks/throughput.py --only 1,2      # some sections
    python benchmarks/throughput.py --quick         # tiny settings: checks the script, not the machine
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import restore_memory  # noqa: E402
import throughput_data  # noqa: E402
import throughput_photos  # noqa: E402
import throughput_train  # noqa: E402

RESULTS = HERE / "results" / "throughput.json"
MIN_RATIO = 0.95    # the trainer's speed vs the hand loop, at least
RECIPE_BATCH = {64: None, 256: 4}   # batch per crop size for the consumption rate (None: the recipe's)


def table(title, rows, columns):
    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for r in rows:
        print("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")


def _cell(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return "-" if v is None else str(v)


def section_trainer(quick):
    row = throughput_train.trainer_vs_hand_loop(n_batches=2 if quick else 6, rounds=1 if quick else 7,
                                                size=32 if quick else 64)
    table("1. trainer vs hand-written loop (superres U-Net, data in memory)", [row],
          ["recipe", "size", "batch", "amp", "channels_last", "workbench_img_s", "hand_img_s", "ratio"])
    row["ok"] = row["ratio"] >= MIN_RATIO
    print(f"\nworkbench / hand loop = {row['ratio']:.3f} (required >= {MIN_RATIO}): {'ok' if row['ok'] else 'TOO SLOW'}")
    return [row]


def section_efficiency(quick, compile_too):
    rows = []
    for size, batch in ((32, 4),) if quick else ((64, 16), (256, 4)):
        rows += throughput_train.unet_variants(size=size, batch=batch, steps=1 if quick else 4, rounds=1 if quick else 3,
                                               compile_too=compile_too)
    table("2. U-Net training step: memory format, precision, FLOP rate vs matmul peak", rows,
          ["variant", "size", "batch", "img_s", "vs_fp32", "gflop_per_step", "achieved_gflop_s", "matmul_peak_gflop_s",
           "fraction_of_peak"])
    return rows


def builtin_recipes():
    """Every recipe the workbench ships, classification included."""
    from workbench.api import registry as plugin_manager

    plugins = plugin_manager.load([])
    return [n for n in plugins.recipes.names() if plugins.recipes.plugin_of(n) == "workbench_plugins.recipes"]


def consumption(recipe, size, quick):
    """Images/s at which the trainer consumes `recipe`'s images at crop `size` (data in memory)."""
    batch = 2 if quick else RECIPE_BATCH.get(size)
    trainer, _ = throughput_train.in_memory_trainer(recipe, size=size, batch=batch, n_batches=2 if quick else 4)
    return throughput_train.images_per_s(trainer)


def section_loader(quick):
    sizes, workers = ((32,), (0,)) if quick else ((64, 256), (0, 1, 2))
    recipes = ["superres"] if quick else builtin_recipes()
    rows = throughput_data.loader_rates(recipes=recipes, sizes=sizes, workers=workers, seconds=0.3 if quick else 3.0)
    need = {}
    for r in rows:
        key = (r["recipe"], r["size"])
        if key not in need:
            need[key] = consumption(r["recipe"], r["size"], quick)
        r["model_img_s"] = round(need[key], 1)
    best = {}
    for r in rows:
        key = (r["recipe"], r["size"])
        best[key] = max(best.get(key, 0), r["pairs_per_s"])
    for r in rows:
        r["keeps_up"] = r["pairs_per_s"] >= r["model_img_s"]
    table("3a. data loader: pairs/s per degradation chain vs the model's consumption", rows,
          ["recipe", "chain", "size", "workers", "pairs_per_s", "first_batch_s", "model_img_s", "keeps_up"])
    summary = [{"recipe": k[0], "size": k[1], "best_pairs_per_s": round(v, 1), "model_img_s": round(need[k], 1),
                "keeps_up": v >= need[k]} for k, v in best.items()]
    table("3b. best worker count per recipe: does the loader keep up?", summary,
          ["recipe", "size", "best_pairs_per_s", "model_img_s", "keeps_up"])
    fed = end_to_end(quick)
    return {"rates": rows, "summary": summary, "end_to_end": fed}


def end_to_end(quick):
    """The trainer fed by its real loader (the recipe's default workers) vs by batches in memory."""
    rows = []
    for name in ["superres"] if quick else builtin_recipes():
        size, steps = (32, 2) if quick else (64, 12)
        rates = {}
        for label, real in (("in_memory", False), ("real_loader", True)):
            trainer, _ = throughput_train.in_memory_trainer(name, size=size, n_batches=steps, real_loader=real)
            rates[label] = throughput_train.images_per_s(trainer, passes=1 if quick else 2)
        rows.append({"recipe": name, "size": size, "workers": trainer.recipe["data"]["workers"],
                     "in_memory_img_s": round(rates["in_memory"], 1), "real_loader_img_s": round(rates["real_loader"], 1),
                     "ratio": round(rates["real_loader"] / rates["in_memory"], 3)})
    table("3c. trainer fed by its real loader vs the same trainer on batches in memory", rows,
          ["recipe", "size", "workers", "in_memory_img_s", "real_loader_img_s", "ratio"])
    return rows


def section_restore(quick):
    runs = [("small", (200, 150), 0), ("small", (200, 150), 96)] if quick else restore_memory.RUNS
    rows = restore_memory.restore_rows(runs)
    table("4. workbench restore: MP/s and peak RSS (fresh process each)", rows,
          ["image", "tile", "seconds", "startup_s", "mp_per_s", "mp_per_s_after_startup", "peak_rss_mb", "speed_vs_untiled"])
    big = [r for r in rows if r["image"] == "4000x3000" and r["tile"]]
    if big:
        print(f"\n4000x3000 tiled: peak RSS {max(r['peak_rss_mb'] for r in big)} MB at most "
              f"(budget {restore_memory.LIMIT_MB} MB)")
    return rows


def section_scale(quick):
    rows = throughput_data.folder_scale(counts=(200, 1000) if quick else (10_000, 50_000))
    table("5. scale: iterating over a folder of N small images (fresh process each)", rows, list(rows[0]))
    if len(rows) == 2:
        growth = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
        print(f"\npeak memory at {rows[1]['images']} images vs {rows[0]['images']}: {growth:+.1%} (limit +10%)")
    return rows


def section_photos(quick, photos="/tmp/wb-photos"):
    if quick:
        print("\n(section 6 has no quick form: it needs the real photo sizes; skipped)")
        return []
    rows = throughput_photos.photo_rows(photos)
    table("6. real photo sizes: loader crops/s per worker and the trainer fed by it vs in memory", rows,
          ["recipe", "source", "loader_crops_s_per_worker", "workers", "in_memory_img_s", "real_loader_img_s", "fraction",
           "crops_vs_model"])
    return rows


def section_prepared_scale(quick):
    rows = throughput_data.prepared_scale(counts=(200, 1000) if quick else (10_000, 100_000))
    table("7. scale: iterating a prepared set of N small images (fresh process each)", rows, list(rows[0]))
    growth = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
    print(f"\npeak memory at {rows[1]['images']} prepared images vs {rows[0]['images']}: {growth:+.1%} (limit +10%)")
    return rows


SECTIONS = {"1": ("trainer", section_trainer), "2": ("efficiency", None), "3": ("loader", section_loader),
            "4": ("restore", section_restore), "5": ("scale", section_scale), "6": ("photos", section_photos),
            "7": ("prepared_scale", section_prepared_scale)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated section numbers")
    ap.add_argument("--quick", action="store_true", help="tiny settings, to check the script itself")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile in section 2 (slow to warm up)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    machine = {"node": platform.node(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "processor": platform.processor() or platform.machine(), "torch": str(torch.__version__),
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(f"machine: {machine}")
    results = {"command": " ".join(sys.argv), "machine": machine, "quick": args.quick}
    for key in args.only.split(","):
        name, fn = SECTIONS[key.strip()]
        t0 = time.perf_counter()
        results[name] = section_efficiency(args.quick, args.compile) if key.strip() == "2" else fn(args.quick)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
