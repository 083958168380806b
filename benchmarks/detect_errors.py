"""Where a detecting model's error comes from: inside the damage, outside it, or its detector.

For each photo of the given folders this damages the photo as `workbench eval` does (same seeds),
runs a model trained with `model.detect = true`, and prints per photo: the share the true mask
covers, the detector's mean probability inside and outside it, the share of undamaged pixels it
marks (p > 0.5), and the RGB PSNR (on 8-bit levels, as `workbench eval`) of the input, the model,
and an "oracle gate" (the model's own correction applied exactly on the true mask: what a perfect
detector would give). Per folder it prints the PSNR of the summed squared error and that error
split inside / outside the mask.

    python benchmarks/detect_errors.py RUN_DIR [--which best|last] [--data FOLDER ...]

RESULTS.md's fifth-session dewatermark figures come from this script.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from workbench import recipe as recipes
from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.api.pixels import quantize
from workbench.api.registry import load as load_plugins
from workbench.data.inputs import collect, load
from workbench.images.metrics import psnr
from workbench.runs import checkpoint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def squared_error(a, b):
    """Per-pixel squared error on 8-bit levels (as `workbench eval` measures), mean over channels."""
    return (quantize(a).double() - quantize(b).double()).square().mean(0)


def judge_folder(model, chain, folder):
    sums = dict(input=0.0, model=0.0, oracle=0.0, inside=0.0, model_inside=0.0, model_outside=0.0, pixels=0)
    for i, (name, where) in enumerate(collect([folder], verb="judge")):
        clean = load(where)
        damaged, mask = apply_chain(chain, clean, np.random.default_rng([0, i]))   # eval's seeds
        if mask is None:
            sys.exit(f"{folder}: the recipe's degradations report no mask; this script needs one.")
        with torch.no_grad():
            out = model(damaged[None])[0].clamp(0, 1)
        p, change, m = torch.sigmoid(model._logits[0, 0]), model._change[0], mask[0]
        oracle = (damaged + m * change).clamp(0, 1)
        err_in, err_out = squared_error(damaged, clean), squared_error(out, clean)
        sums["input"] += err_in.sum().item()
        sums["model"] += err_out.sum().item()
        sums["oracle"] += squared_error(oracle, clean).sum().item()
        sums["inside"] += err_in[m].sum().item()
        sums["model_inside"] += err_out[m].sum().item()
        sums["model_outside"] += err_out[~m].sum().item()
        sums["pixels"] += m.numel()
        p_in = p[m].mean().item() if m.any() else float("nan")
        print(f"  {name:16s} mask {m.float().mean():.3f}  p inside {p_in:.2f} outside {p[~m].mean():.3f}  "
              f"marked {(p[~m] > 0.5).float().mean():.3f}  PSNR input {psnr(damaged, clean):.2f} "
              f"model {psnr(out, clean):.2f} oracle gate {psnr(oracle, clean):.2f}")
    db = lambda sse: 10 * np.log10(sums["pixels"] / sse)
    print(f"{folder.name}: PSNR of the summed error: input {db(sums['input']):.2f}, model {db(sums['model']):.2f}, "
          f"oracle gate {db(sums['oracle']):.2f}; squared error inside the mask: input {sums['inside']:.1f}, "
          f"model {sums['model_inside']:.1f}; outside it: model {sums['model_outside']:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--which", default="best", choices=["best", "last"])
    ap.add_argument("--data", nargs="+", default=[str(DATA / "valid" / "Set5"), str(DATA / "valid" / "Set14")])
    args = ap.parse_args()
    plugins = load_plugins()
    model, state = checkpoint.load_model(args.run, plugins, which=args.which)
    if not capability(model, "learns_mask"):
        sys.exit(f"{args.run}: its model does not detect the damage (model.detect = false).")
    model.eval()
    chain = recipes.from_dict(state["recipe"], f"{args.run}/recipe.toml", plugins).degradation_chain(plugins)
    print(f"{args.run}: {args.which}.pt, epoch {state.get('epoch')}")
    for folder in args.data:
        judge_folder(model, chain, Path(folder))


if __name__ == "__main__":
    main()
