"""Quality benchmark: train recipes on CBSD68 for a fixed time budget, judge them on Set5 and Set14.

For each recipe: a short probe run measures training throughput on this machine, the budget is
turned into a number of steps (so the one-cycle schedule completes inside it), the recipe trains
on `../shared/data/train/CBSD68`, and `workbench eval` measures it on `valid/Set5` and
`valid/Set14` with the published protocol. One table per task: the model, the damaged input and
the classical baselines, and for super-resolution the published rows of BENCHMARKS.md beside ours.

    python benchmarks/quality.py --minutes 15 superres dejpeg inpaint
"""
import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
RESULTS = HERE / "results"
# Damage each task is judged at, where the recipe trains on a range (the published settings).
EVAL_SETS = {"dejpeg": ["degradations.0.quality=10"]}
PROBE_STEPS = 6
EPOCHS = 10      # the budget is split into this many epochs, so validation and checkpoints happen along the way


def workbench(*args, quiet=True):
    cmd = [sys.executable, "-m", "workbench", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=quiet, text=True)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr if quiet else ''}")
    return proc.stdout


def train(recipe, minutes, out, data, valid, extra, fixed_steps=0):
    """Probe the throughput, size the run to `minutes` (or `fixed_steps`), train it; returns (run dir, settings)."""
    common = ["--data", data, "--valid", valid, "--device", "auto", "-q", *extra]
    probe = out.with_name(out.name + "-probe")
    workbench("run", recipe, "--out", probe, *common, "--set", "train.epochs=1", "--set", f"train.steps_per_epoch={PROBE_STEPS}")
    record = json.loads((probe / "metrics.jsonl").read_text().splitlines()[-1])
    batch = int(_recipe_value(probe, "data", "batch_size"))
    steps = fixed_steps or max(EPOCHS, int(minutes * 60 * record["images_per_s"] / batch))
    per_epoch = math.ceil(steps / EPOCHS)
    n_images = len([p for p in Path(data).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".webp")])
    repeat = max(1, math.ceil(per_epoch * batch / max(1, n_images)))
    sets = ["--set", f"train.epochs={EPOCHS}", "--set", f"train.steps_per_epoch={per_epoch}", "--set", f"data.repeat={repeat}"]
    start = time.perf_counter()
    workbench("run", recipe, "--out", out, *common, *sets)
    took = time.perf_counter() - start
    return out, {"probe_images_per_s": round(record["images_per_s"], 1), "steps": per_epoch * EPOCHS,
                 "batch_size": batch, "train_minutes": round(took / 60, 1)}


def _recipe_value(run, section, key):
    import tomllib

    return tomllib.loads((run / "recipe.toml").read_text())[section][key]


def judge(run, sets, overrides, flags=(), suffix=""):
    results = {}
    for folder in sets:
        path = RESULTS / f"{run.name}-{Path(folder).name}{suffix}.json"
        args = ["eval", run, "--data", folder, "--json", path, "--device", "auto", *flags]
        for item in overrides:
            args += ["--set", item]
        workbench(*args)
        results[Path(folder).name] = json.loads(path.read_text())
    return results


def published(scale):
    """Rows of BENCHMARKS.md's published table for x`scale`: {method: {set: (psnr, ssim)}}."""
    text = (DATA / "BENCHMARKS.md").read_text()
    table = re.search(rf"^\| x{scale} \| Set5 \| Set14 \|\n\|[- |]+\|\n((?:\|.*\|\n)+)", text, re.M)
    rows = {}
    for line in (table.group(1).splitlines() if table else []):
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = {s: tuple(float(x) for x in c.split("/")) for s, c in zip(("Set5", "Set14"), cells[1:])}
    return rows


def print_table(recipe, results, settings, ensembled=None):
    sets = list(results)
    first = results[sets[0]]
    # Colorization keeps Y: judge it on RGB (eval's "primary"), everything else on Y as published.
    keys = ["psnr_rgb", "ssim_rgb"] if first.get("primary") == "psnr_rgb" else ["psnr_y", "ssim_y"]
    keys += ["psnr_mask"] if "psnr_mask" in first["mean"]["model"] else []
    lines = [f"### {recipe}", "", f"Protocol: {first['protocol']['degradations']}; crop {first['protocol']['crop']}; "
             f"{'RGB' if keys[0] == 'psnr_rgb' else 'Y = BT.601 limited range'}; SSIM of Wang et al. (scikit-image). "
             f"Training: {settings}.", ""]
    head = "| method | " + " | ".join(f"{s} {k}" for s in sets for k in keys) + " |"
    lines += [head, "|" + " --- |" * (1 + len(sets) * len(keys))]
    for m in first["methods"]:
        cells = [_fmt(results[s]["mean"][m].get(k), k) for s in sets for k in keys]
        lines.append(f"| {m if m != 'model' else '**model**'} | " + " | ".join(cells) + " |")
        if m == "model" and ensembled:   # EDSR's "+" rows: the same weights, 8 flips and turns averaged
            cells = [_fmt(ensembled[s]["mean"]["model"].get(k), k) for s in sets for k in keys]
            lines.append("| **model, self-ensemble x8** | " + " | ".join(cells) + " |")
    lines.append("| model - input | " + " | ".join(_fmt(results[s]["gain"].get(k), k, True) for s in sets for k in keys) + " |")
    # Published rows only where the damage is the published one: a downsample and nothing else.
    chain = first["protocol"]["degradations"]
    scale = re.match(r"downsample\(scale=(\d+)", chain, re.I) if "->" not in chain else None
    if scale:
        for name, row in published(int(scale.group(1))).items():
            cells = [(f"{row[s][0]:.2f}" if k == "psnr_y" else f"{row[s][1]:.4f}") if s in row and k in ("psnr_y", "ssim_y") else ""
                     for s in sets for k in keys]
            lines.append(f"| {name} (published) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v, key, sign=False):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:+.4f}" if sign and key.startswith("ssim") else f"{v:.4f}" if key.startswith("ssim") else f"{v:+.2f}" if sign else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="*", default=["superres", "dejpeg", "inpaint"])
    ap.add_argument("--minutes", type=float, default=15, help="training budget per recipe")
    ap.add_argument("--train", default=str(DATA / "train" / "CBSD68"))
    ap.add_argument("--valid", nargs="+", default=[str(DATA / "valid" / "Set5"), str(DATA / "valid" / "Set14")])
    ap.add_argument("--out", default=str(HERE / "runs"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override for every run")
    ap.add_argument("--tag", default="", help="suffix of the run directory names, to keep experiments apart")
    ap.add_argument("--self-ensemble", action="store_true", help="also judge the model averaged over 8 flips and "
                                                                  "quarter turns (EDSR+), as an extra row")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of sizing them to --minutes "
                                                          "(comparisons on a machine that other work shares)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    print(f"machine: {machine}; budget {args.minutes} min per recipe; train {args.train}; valid {', '.join(args.valid)}")
    extra = [x for item in args.overrides for x in ("--set", item)]
    tables = []
    for recipe in args.recipes:
        out = Path(args.out) / f"{Path(recipe).stem}-{args.minutes:g}min{'-' + args.tag if args.tag else ''}"
        run, settings = train(recipe, args.minutes, out, args.train, args.valid[0], extra, args.steps)
        results = judge(run, args.valid, EVAL_SETS.get(recipe, []))
        ensembled = judge(run, args.valid, EVAL_SETS.get(recipe, []), ["--self-ensemble"], "-se") if args.self_ensemble else None
        tables.append(print_table(recipe, results, settings, ensembled))
        print(tables[-1] + "\n", flush=True)
    summary = {"command": " ".join(sys.argv), "machine": machine, "minutes": args.minutes, "tables": tables}
    # One file per tag and recipe list: runs of other recipes under the same tag do not overwrite it.
    name = "-".join(["quality", *([args.tag] if args.tag else []), *(Path(r).stem for r in args.recipes)])
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
