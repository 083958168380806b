"""Peak memory and speed of `workbench restore` on a 12 MP photo, tiled, against an untiled baseline.

Each run is a fresh subprocess, so its peak resident memory (ru_maxrss from wait4, which includes
Python and torch themselves) belongs to that run alone. The untiled pass on a 1000 x 750 photo is
the speed baseline: tiling recomputes the overlaps and runs small convolutions, and the ratio
shows what that costs. The model is the default UNet() with random weights (speed does not depend
on what it learned), in a recipe without `downsample`, so the photo is restored at its own size.

    python benchmarks/restore_memory.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench import checkpoint
from workbench_plugins.unet import UNet

LIMIT_MB = 2048    # the budget for a 4000 x 3000 photo with tile 256
OVERLAP = 32       # restore's default
RUNS = [("small", (1000, 750), 0), ("small", (1000, 750), 256), ("large", (4000, 3000), 256), ("large", (4000, 3000), 512)]
RESULTS = Path(__file__).parent / "results" / "restore_memory.json"

def photo(w, h, seed=0):
    """Photo-like: smooth shading, hard-edged shapes and sensor-like noise, built row band by row
    band in float32 so the benchmark's own memory stays small."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    boxes = [(rng.integers(0, h), rng.integers(0, w), rng.integers(20, h // 4), rng.integers(20, w // 4), rng.random(3))
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


def measure(run, image, out, tile):
    """`workbench restore` in a fresh process -> (wall seconds, peak RSS MB). The wall time includes
    starting Python and importing torch (a few seconds), as a user's command does."""
    cmd = [sys.executable, "-m", "workbench", "restore", str(run), str(image), "-o", str(out),
           "--tile", str(tile), "--overlap", str(OVERLAP), "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)     # this child's own rusage, not the maximum over all children
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"workbench restore failed (tile {tile}, {image.name}): {err.strip()}")
    return wall, usage.ru_maxrss / 1024   # KiB on Linux


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = make_run(tmp / "run")
        images = {}
        for name, (w, h), tile in RUNS:
            if name not in images:
                images[name] = tmp / f"{name}.png"
                photo(w, h).save(images[name], compress_level=1)
            seconds, rss = measure(run, images[name], tmp / f"out-{tile}", tile)
            mp = w * h / 1e6
            rows.append({"image": f"{w}x{h}", "tile": tile, "overlap": OVERLAP if tile else 0, "seconds": round(seconds, 2),
                         "mp_per_s": round(mp / seconds, 4), "peak_rss_mb": round(rss)})
            print(f"  done: {w}x{h} tile {tile}: {seconds:.1f} s, {rss:.0f} MB", file=sys.stderr)
    base = rows[0]["mp_per_s"]
    for r in rows:
        r["speed_vs_untiled"] = round(r["mp_per_s"] / base, 3)
    print(f"workbench restore, cpu, {torch.get_num_threads()} threads, overlap {OVERLAP}; wall seconds include start-up; "
          f"baseline: untiled {rows[0]['image']}")
    print(f"{'image':>10} {'tile':>5} {'seconds':>8} {'MP/s':>7} {'peak RSS MB':>12} {'MP/s vs untiled':>16}")
    for r in rows:
        print(f"{r['image']:>10} {r['tile'] or 'none':>5} {r['seconds']:>8.2f} {r['mp_per_s']:>7.3f} {r['peak_rss_mb']:>12} {r['speed_vs_untiled']:>16.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "limit_mb": LIMIT_MB, "runs": rows}, indent=2) + "\n")
    big = next(r for r in rows if r["image"] == "4000x3000" and r["tile"] == 256)
    if big["peak_rss_mb"] > LIMIT_MB:
        raise SystemExit(f"4000x3000 with tile 256 peaked at {big['peak_rss_mb']} MB, over the {LIMIT_MB} MB budget")


if __name__ == "__main__":
    main()
