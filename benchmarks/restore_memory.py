"""Peak memory and speed of `workbench restore` on a 12 MP photo, tiled, against an untiled baseline.

Each run is a fresh subprocess that reports its own peak resident memory (VmHWM, which includes
Python and torch themselves), so the figure belongs to that run alone. The untiled pass on a 1000 x 750 photo is
the speed baseline: tiling recomputes the overlaps and runs small convolutions, and the ratio
shows what that costs. The model is the default UNet() with random weights (speed does not depend
on what it learned), in a recipe without `downsample`, so the photo is restored at its own size.

    python benchmarks/restore_memory.py
"""
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.runs import checkpoint
from workbench_plugins.unet import UNet

LIMIT_MB = 2048    # the budget for a 4000 x 3000 photo with tile 256
OVERLAP = 32       # restore's default
RUNS = [("small", (1000, 750), 0), ("small", (1000, 750), 256), ("large", (4000, 3000), 128), ("large", (4000, 3000), 256),
        ("large", (4000, 3000), 512)]
RESULTS = Path(__file__).parent / "results" / "restore_memory.json"

def photo(w, h, seed=0):
    """Photo-like: smooth shading, hard-edged shapes and sensor-like noise, built row band by row
    band in float32 so the benchmark's own memory stays small."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    boxes = [(rng.integers(0, h), rng.integers(0, w), rng.integers(1, max(2, h // 4)), rng.integers(1, max(2, w // 4)), rng.random(3))
             for _ in range(40)]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    for top in range(0, h, 500):
        y = np.linspace(top / h, min(top + 500, h) / h, min(500, h - top), endpoint=False, dtype=np.float32)[:, None]
        band = np.stack([0.2 + 0.6 * x + 0 * y, 0.3 + 0.5 * y + 0 * x, 0.5 + 0.3 * np.sin(20 * x) * np.cos(15 * y)], -1)
        for by, bx, bh, bw, colour in boxes:
            rows = slice(max(by - top, 0), max(min(by + bh - top, len(y)), 0))
            band[rows, bx:bx + bw] = colour
        band += rng.normal(0, 0.03, band.shape).astype(np.float32)
        out[top:top + len(y)] = (np.clip(band, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(out)


def make_run(folder):
    torch.manual_seed(0)
    model = UNet()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)   # not the identity, whose zeroed layers could be cheaper
    recipe = {"model": {"type": "unet", "widths": model.widths}, "degradations": [{"type": "jpeg", "quality": 30}]}
    checkpoint.save({"format": 1, "model": model.state_dict(), "recipe": recipe, "task": "restore"},
                    folder / "checkpoints" / "best.pt")
    return folder


# Runs the workbench CLI and, at exit, writes the process's own peak RSS (VmHWM) to stderr. Not
# ru_maxrss from wait4: a child inherits its parent's high-water mark, so a child of a big parent
# (this benchmark inside throughput.py, after training) would report the parent's peak.
CHILD = ("import atexit, re, runpy, sys\n"
         "def peak():\n"
         "    kb = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
         "    sys.stderr.write(f'\\nPEAK_RSS_KB={kb}\\n')\n"
         "atexit.register(peak)\n"
         "sys.argv = ['workbench', *sys.argv[1:]]\n"
         "runpy.run_module('workbench', run_name='__main__')\n")


def measure(run, image, out, tile):
    """`workbench restore` in a fresh process -> (wall seconds, peak RSS MB). The wall time includes
    starting Python and importing torch (a few seconds), as a user's command does."""
    cmd = [sys.executable, "-c", CHILD, "restore", str(run), str(image), "-o", str(out),
           "--tile", str(tile), "--overlap", str(OVERLAP), "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    found = re.search(r"PEAK_RSS_KB=(\d+)", proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"workbench restore failed (tile {tile}, {image.name}): {proc.stderr.strip()}")
    return wall, int(found.group(1)) / 1024


def restore_rows(runs=RUNS):
    """One row per (image, tile) of `runs`: wall seconds, MP/s (with and without the start-up that a
    restore of a 16 x 16 image measures), peak RSS, and speed against the first (untiled) row."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = make_run(tmp / "run")
        photo(16, 16).save(tmp / "tiny.png")
        startup, _ = measure(run, tmp / "tiny.png", tmp / "out-tiny", 0)
        images = {}
        for name, (w, h), tile in runs:
            if name not in images:
                images[name] = tmp / f"{name}.png"
                photo(w, h).save(images[name], compress_level=1)
            seconds, rss = measure(run, images[name], tmp / f"out-{tile}", tile)
            mp = w * h / 1e6
            rows.append({"image": f"{w}x{h}", "tile": tile, "overlap": OVERLAP if tile else 0, "seconds": round(seconds, 2),
                         "mp_per_s": round(mp / seconds, 4), "mp_per_s_after_startup": round(mp / max(seconds - startup, 1e-3), 4),
                         "startup_s": round(startup, 2), "peak_rss_mb": round(rss)})
            print(f"  done: {w}x{h} tile {tile}: {seconds:.1f} s, {rss:.0f} MB", file=sys.stderr)
    base = rows[0]["mp_per_s_after_startup"]
    for r in rows:
        r["speed_vs_untiled"] = round(r["mp_per_s_after_startup"] / base, 3)
    return rows


def print_rows(rows):
    print(f"workbench restore, cpu, {torch.get_num_threads()} threads, overlap {OVERLAP}; start-up "
          f"{rows[0]['startup_s']:.1f} s (a 16x16 restore) is counted in `seconds`, not in `MP/s net`; baseline: untiled {rows[0]['image']}")
    print(f"{'image':>10} {'tile':>5} {'seconds':>8} {'MP/s':>7} {'MP/s net':>9} {'peak RSS MB':>12} {'net vs untiled':>15}")
    for r in rows:
        print(f"{r['image']:>10} {r['tile'] or 'none':>5} {r['seconds']:>8.2f} {r['mp_per_s']:>7.3f} {r['mp_per_s_after_startup']:>9.3f} "
              f"{r['peak_rss_mb']:>12} {r['speed_vs_untiled']:>15.2f}")


def check_budget(rows):
    big = [r for r in rows if r["image"] == "4000x3000" and r["tile"]]
    over = [r for r in big if r["peak_rss_mb"] > LIMIT_MB]
    if over:
        raise SystemExit(f"4000x3000 with tile {over[0]['tile']} peaked at {over[0]['peak_rss_mb']} MB, over the {LIMIT_MB} MB budget")


def main():
    rows = restore_rows()
    print_rows(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "limit_mb": LIMIT_MB, "runs": rows}, indent=2) + "\n")
    check_budget(rows)


if __name__ == "__main__":
    main()
