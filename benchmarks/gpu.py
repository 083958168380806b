"""Training speed on a CUDA GPU: images/s and peak GPU memory of the default recipes' training step
at 64 and 256 px, fp32 against AMP, channels_last and torch.compile.

The step mirrors the trainer's (workbench/train/setup.py `Learner.step`): the recipe's model and objective,
AdamW with the one-cycle schedule, autocast (bf16 where the card supports it, else fp16 with a
GradScaler), gradient clipping, and the finite-loss check every step (a host sync, as in training).
The data are random (damaged, clean) pairs already on the GPU, so the numbers measure the model
step, not the loader. Recipes with the same model, losses, batch and size train identically here
and share one row. A second table (gpu_loader.py) then sets the training loader's crops/s, from a
folder of 12 MP JPEGs and from the same photos prepared as shards, beside superres's consumption
rate, with the cost of decoding one 12 MP JPEG on the CPU and on the GPU (nvJPEG).

    python benchmarks/gpu.py                               # a CUDA machine; ends within --budget-s
    python benchmarks/gpu.py --device cpu --quick          # smoke-tests the script; no numbers to keep
"""
import argparse
import datetime
import gc
import json
import math
import time
from pathlib import Path

import torch

START = time.perf_counter()
RESULTS = Path(__file__).resolve().parent / "results" / "gpu.json"
RECIPES = ["colorize", "superres", "superres-x4", "dejpeg", "dewatermark", "inpaint", "outpaint", "decrappify", "classify"]
# name: (amp, channels_last, compile), in run order: what to learn first when the budget runs out.
CONFIGS = {
    "fp32": (False, False, False),           # the baseline of every ratio
    "amp+cl": (True, True, False),           # what the trainer does on CUDA by default
    "amp+cl+compile": (True, True, True),    # what a `train.compile` option would add
    "amp": (True, False, False),             # which of the two helps, and by how much
    "channels_last": (False, True, False),
}
TABLE_ORDER = ["fp32", "amp", "channels_last", "amp+cl", "amp+cl+compile"]
COMPILE_GUESS_S = 120   # budget held back for the first torch.compile, before one has been timed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=RECIPES)
    ap.add_argument("--sizes", nargs="+", type=int, help="crop sides in px (default 64 256; --quick: 16 32)")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to smoke-test the script")
    ap.add_argument("--quick", action="store_true", help="tiny settings: batch 2, 1 warm-up + 2 timed steps, no compile")
    ap.add_argument("--compile", action="store_true", help="with --quick: try torch.compile as well")
    ap.add_argument("--budget-s", type=float, default=420, help="skip configurations that would end after this")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per configuration (at most --seconds)")
    ap.add_argument("--seconds", type=float, default=5.0, help="cap on the timed part of one configuration")
    ap.add_argument("--warmup", type=int, default=10, help="steps before timing (cuDNN choices, allocator, compile)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every recipe")
    ap.add_argument("--no-loader", dest="loader", action="store_false", help="leave out the loader-vs-model table")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: no CUDA device on this machine (torch {torch.__version__}); nothing measured. "
              "`--device cpu --quick` smoke-tests the script.")
        return
    if args.quick:
        args.sizes, args.warmup, args.steps = args.sizes or [16, 32], 1, 2
        if device.type == "cpu":
            torch.set_num_threads(1)   # on a busy CPU, OpenMP threads spin-wait on each other: 50x slower
    args.sizes = args.sizes or [64, 256]

    from workbench.api import registry as plugin_manager
    plugins = plugin_manager.load([])
    rows = make_rows(args.recipes, args.sizes, plugins, args.overrides, quick=args.quick)
    results = run(rows, device, plugins, args)
    info = {"device": device.type, "card": card_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "amp_dtype": str(amp_dtype(device)).removeprefix("torch."), "date": datetime.date.today().isoformat(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "quick": args.quick, "budget_s": args.budget_s,
            "elapsed_s": round(time.perf_counter() - START, 1)}
    print(markdown(info, rows, results))
    loader = feed(device, results, args) if args.loader else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "rows": results, "loader": loader}, indent=1) + "\n")
    print(f"\nwrote {out}")


def feed(device, results, args):
    """The loader-vs-model table: superres's amp+cl rate at 64 px (when measured) beside the loader."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu_loader

    want = 16 if args.quick else 64
    model = next((r["images_per_s"] for r in results if "superres" in r["recipes"] and r["size"] == want
                  and r["config"] == "amp+cl" and r.get("images_per_s")), None)
    try:
        rows, decode = gpu_loader.loader_rows(device, model and round(model, 1), quick=args.quick)
    except Exception as e:   # the training table above stands on its own
        print(f"\nloader table skipped: {one_line(e)}")
        return {"error": one_line(e)}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(gpu_loader.markdown(rows, decode, cores))
    return {"rows": rows, "decode": decode, "cores": cores}


def make_rows(names, sizes, plugins, overrides, *, quick):
    """One row per distinct (task, model, losses, step settings, batch, size): recipes that train
    the same network the same way share it."""
    from workbench import recipe as recipes
    from workbench.tasks import make_task

    rows = {}
    for name in names:
        r = recipes.load(name, plugins, overrides)
        task = make_task(r, plugins)
        model = task.configure_model(dict(r["model"] or {"type": "unet"}))   # as the trainer resolves it
        for sz in sizes:
            batch = min(batch_at(r["data"]["batch_size"], r["data"]["size"], sz), 2 if quick else math.inf)
            step = {k: r["train"][k] for k in ("lr", "weight_decay", "grad_clip")}   # what shapes one step; epochs do not
            key = json.dumps([task.kind, model, r["losses"], step, batch, sz], sort_keys=True)
            new = {"recipes": [], "recipe": r, "task": task, "model": model, "size": sz, "batch": batch}
            rows.setdefault(key, new)["recipes"].append(name)
    return list(rows.values())


def batch_at(batch, recipe_size, sz):
    """The recipe's batch at its own crop size; fewer images at larger crops, so 256 px fits (16 -> 4)."""
    return batch if sz <= recipe_size else max(1, batch * recipe_size // sz)


def run(rows, device, plugins, args):
    """Every configuration of every row, configuration-major, skipping what would overrun the budget."""
    results = {(i, c): {} for i in range(len(rows)) for c in CONFIGS}
    spent = {}   # configuration -> seconds it last took: the estimate for the next row
    for config, (_, _, compiled) in CONFIGS.items():
        for i, row in enumerate(rows):
            res = results[(i, config)]
            if compiled and args.quick and not args.compile:
                res["note"] = "skipped: --quick (add --compile)"
                continue
            guess = spent.get(config, COMPILE_GUESS_S if compiled else max(spent.values(), default=0))
            used = time.perf_counter() - START
            if used + guess > args.budget_s:
                res["note"] = f"skipped: --budget-s {args.budget_s:.0f} ({used:.0f} s used, ~{guess:.0f} s needed)"
                continue
            t0 = time.perf_counter()
            try:
                res.update(measure(row, config, device, plugins, args))
            except torch.OutOfMemoryError:
                res["note"] = "out of memory"
            except Exception as e:
                if not compiled:
                    raise
                res["note"] = f"compile failed: {one_line(e)}"
            spent[config] = time.perf_counter() - t0
            print(f"[{time.perf_counter() - START:5.0f} s] {row['recipes'][0]} {row['size']} px {config}: "
                  f"{res.get('images_per_s', res.get('note'))}", flush=True)
    out = []
    for i, row in enumerate(rows):
        base = results[(i, "fp32")].get("images_per_s")
        for config in TABLE_ORDER:
            res = results[(i, config)]
            ips = res.get("images_per_s")
            out.append({"recipes": row["recipes"], "model": row["model"], "size": row["size"], "batch": row["batch"],
                        "config": config, "images_per_s": ips, "vs_fp32": ips / base if ips and base else None,
                        "peak_mb": res.get("peak_mb"), "compile_s": res.get("compile_s"), "note": res.get("note", "")})
    return out


def measure(row, config, device, plugins, args):
    """images/s and peak memory of the trainer's step on one random batch held on the device."""
    from workbench.api.contracts import capability
    from workbench.api.registry import build
    from workbench.devices.device import autocast
    from workbench.train.objective import build_objective

    use_amp, channels_last, compiled = CONFIGS[config]
    r, task, tcfg = row["recipe"], row["task"], row["recipe"]["train"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(r["recipe"]["seed"])
    _, model = build(plugins.models, row["model"], where=f"{r.source}: [model]")
    model.to(device, memory_format=fmt).train()
    objective = build_objective(r, plugins, default=task.default_loss).to(device)
    dtype = amp_dtype(device) if use_amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tcfg["lr"], total_steps=args.warmup + args.steps + 2)
    x = torch.rand(row["batch"], 3, row["size"], row["size"], device=device)   # every model takes 3 channels (gray too)
    y = (torch.randint(row["model"]["classes"], (row["batch"],), device=device) if task.kind == "classify"
         else torch.rand_like(x))
    # A masked inpainting U-Net also takes the holes: a quarter of each image, as erase might make.
    hole = torch.rand(row["batch"], 1, row["size"], row["size"], device=device) < 0.25 if capability(model, "takes_mask") else None
    if compiled:
        torch._dynamo.reset()   # a fresh model per row: start from empty caches, not the last row's graphs
    net = torch.compile(model) if compiled else model

    def step():   # Learner.step, without the loader and the logging
        inp = x.contiguous(memory_format=fmt)
        with autocast(device, dtype):
            out = net(inp) if hole is None else net(inp, hole)
            loss, _ = objective(out.float(), y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss in {config}: the numbers would mean nothing")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tcfg["grad_clip"] > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
        scaler.step(opt)
        scaler.update()
        sched.step()

    res, t0 = {}, time.perf_counter()
    if compiled:
        step()   # compiles forward and backward
        sync(device)
        res["compile_s"] = round(time.perf_counter() - t0, 1)
    for _ in range(args.warmup):
        step()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < args.steps and (n == 0 or time.perf_counter() - t0 < args.seconds):
        step()
        n += 1
    sync(device)
    res["images_per_s"] = n * row["batch"] / (time.perf_counter() - t0)
    if device.type == "cuda":
        res["peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return res


def amp_dtype(device):
    """The trainer's choice on CUDA; bf16 on CPU only so that --quick runs the autocast path too
    (the trainer itself keeps CPU training in float32)."""
    from workbench.devices.device import autocast_dtype

    return autocast_dtype(device, True) or torch.bfloat16


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def card_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, torch threads: {torch.get_num_threads()}"


def one_line(e):
    lines = [s for s in str(e).splitlines() if s.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]


def markdown(info, rows, results):
    head = ["## Training speed (`benchmarks/gpu.py`)", "",
            f"Card: {info['card']}; torch {info['torch']} (CUDA {info['cuda']}); AMP dtype {info['amp_dtype']}; "
            f"date {info['date']}; {info['elapsed_s']} s in all.",
            "The trainer's step (AdamW, one-cycle, grad clip, finite-loss check) on random batches already on the "
            "device. `amp+cl` is what `workbench run` does on CUDA by default; `fp32` convolutions use TF32 where "
            f"the card has it (cudnn.allow_tf32 = {info['cudnn_tf32']}). Batch: the recipe's at its own crop size, "
            "divided by the size ratio at larger crops so it fits (16 -> 4 at 256 px). Peak GPU MB: "
            "max_memory_allocated (weights, AdamW state, batch, activations)."]
    if info["device"] == "cpu" or info["quick"]:
        head.append("**Smoke run (`--device cpu` or `--quick`): these numbers test the script; they are not results.**")
    head.append("")
    groups = {tuple(row["recipes"]): row["model"] for row in rows if len(row["recipes"]) > 1}
    for names, model in groups.items():
        head.append(f"- `{names[0]} +{len(names) - 1}` stands for {', '.join(names)}: "
                    f"the same model {json.dumps(model)}, losses and step settings.")
    table = ["", "| recipes | size | batch | config | images/s | vs fp32 | peak GPU MB | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        note = res["note"] or (f"compiled in {res['compile_s']} s" if res["compile_s"] else "")
        names = res["recipes"][0] + (f" +{len(res['recipes']) - 1}" if len(res["recipes"]) > 1 else "")
        table.append(f"| {names} | {res['size']} | {res['batch']} | {res['config']} | {fmt_num(res['images_per_s'], 1)} "
                     f"| {fmt_num(res['vs_fp32'], 2)} | {fmt_num(res['peak_mb'], 0)} | {note} |")
    return "\n".join(head + table)


def fmt_num(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    main()
