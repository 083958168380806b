"""`workbench eval`: damage full-size photos with a run's chain, restore them, and measure the
model against the damaged input and classical baselines with the published protocol."""
import datetime
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.data.inputs import collect, load
from workbench.data.splits import recipe_splits
from workbench.devices import progress
from workbench.devices.device import pick_device
from workbench.errors import WorkbenchError
from workbench.judge import external, perceptual, protocol
from workbench.judge.baselines import for_chain
from workbench.judge.pictures import prepare
from workbench.judge.summary import best_baselines
from workbench.runs import files

METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "psnr_mask", *perceptual.METRICS)


def evaluate(run_dir, plugins, *, data=(), overrides=(), seed=0, crop=None, device="auto", tile=512, keep=0, limit=0,
             which="best", self_ensemble=False, spread=None, metrics=perceptual.DEFAULT, report=True, desc="eval",
             weights=None, recipe_spec=None, baseline_weights=()):
    """Returns (result dict as written to eval.json, [sample dicts of the first `keep` images]).
    weights: a published model's file to judge instead of `run_dir`, on the damage of recipe `recipe_spec`;
    baseline_weights: published models' files judged beside the model as baselines (workbench.judge.external).
    self_ensemble: judge the mean of the model over 8 flips and quarter turns (workbench.infer.restore).
    spread: a `workbench.devices.spread.Spread` under torchrun (pass its `device` too): this rank judges its
    share of the images; every rank returns the merged result, rank 0 alone the samples.
    metrics: the perceptual metrics to add (workbench.judge.perceptual); one that cannot run here is
    skipped with a warning and listed in the result's "skipped_metrics".
    report: keep the samples as the report shows them (workbench.judge.pictures.prepare: small);
    False keeps the full-size tensors (the grid draws them). desc: the progress bar's label."""
    from workbench.devices.spread import Spread, in_order
    from workbench.infer.restore import restore_tensor

    model, state, recipe, who = external.open_restorer(run_dir, plugins, weights=weights, recipe_spec=recipe_spec,
                                                       overrides=overrides, which=which)
    chain = recipe.degradation_chain(plugins)
    scale = _scale(chain)
    crop = (scale if scale > 1 else 0) if crop is None else crop
    device = pick_device(device)
    model.to(device).eval()
    baselines = for_chain(chain, plugins)
    images, skipped = _images(data, recipe)
    sp = spread or Spread()
    feed = external.feeder(model, chain, who)   # a net that enlarges the photo itself is fed the low-res image
    if sp.leader:
        external.tiling_note(model, tile, who)
    baselines.update(external.baselines(baseline_weights, chain, plugins, device=device, tile=tile, warn=sp.leader,
                                        taken={"model", "input", *baselines}))
    scorers = perceptual.Scorers(metrics, device)
    if sp.leader:
        for name, why in scorers.skipped.items():
            print(f"warning: {why} {name.upper()} was skipped; the other scores stand.", file=sys.stderr)

    def judge(i, name, read):
        """One image -> (row, value-range notes, sample, None), or (None, None, None, why) for an
        image that cannot be judged (skipped); any other error stops the command."""
        try:
            clean = protocol.modcrop(read(), scale)
            if min(clean.shape[-2:]) <= 2 * crop:
                raise WorkbenchError(f"{name}: too small to judge ({clean.shape[-1]}x{clean.shape[-2]} after cropping to a "
                                     f"multiple of {scale} and {crop} border pixels).")
        except WorkbenchError as e:
            return None, None, None, str(e)
        # Seeded by the image's place in the whole list, not in this rank's share: any split judges alike.
        damaged, mask = apply_chain(chain, clean, np.random.default_rng([seed, i]))
        # A model that takes the mask is told where the damage is, as Telea is (workbench.images.masks).
        raw = restore_tensor(model, feed(clean, damaged), mask=mask, tile=tile, device=device, clamp=False,
                             self_ensemble=self_ensemble)
        notes = [n for n in protocol.range_warnings({"input": damaged, "output": raw, "target": clean})
                 if not n.startswith("output spans [")]   # an output outside [0, 1]: told once, from output_range
        outputs = {"model": raw.clamp(0, 1), "input": damaged}
        outputs.update({m: fn(clean, damaged, mask) for m, fn in baselines.items()})
        row = {"name": name, "size": [clean.shape[-1], clean.shape[-2]],
               "metrics": {m: {**protocol.measure(out, clean, crop=crop, mask=mask), **scorers(out, clean, crop)}
                           for m, out in outputs.items()},
               # before the clamp that scoring (and restore) applies: [min, max, fraction of values outside
               # [0, 1], mean minus the clean image's mean]
               "output_range": [float(raw.min()), float(raw.max()), float(((raw < -RANGE_SLACK) | (raw > 1 + RANGE_SLACK)).float().mean()),
                                float(raw.mean() - clean.mean())]}
        sample = {"name": name, "damaged": damaged, "restored": outputs["model"], "clean": clean, "mask": mask,
                  "baselines": {m: outputs[m] for m in baselines}, "metrics": row["metrics"]}
        return row, notes, sample, None

    kept = {}   # index -> sample: the report's images stay on their rank until rank 0 asks for them
    bar = dict(desc=desc, unit="image", leader=sp.leader)
    parts = sp.settle(lambda: _judge_share(sp.mine(images), judge, limit=limit, keep=keep, kept=kept, warn=sp.world == 1,
                                           report=report, bar=bar))
    # 1. merge in input order, stopping where one process would have stopped (`limit` rows)
    rows, range_notes, taken = [], set(), []
    for i, (row, notes, skip) in in_order(parts):
        if limit and len(rows) >= limit:
            break
        if skip:
            skipped.append(skip)
            if sp.world > 1 and sp.leader:
                print(f"warning: skipped {skip['name']}: {skip['reason']}", file=sys.stderr)
            continue
        rows.append(row)
        range_notes.update(notes)
        taken.append(i)
    # 2. the first `keep` judged images, gathered on rank 0 only (full-size images are not small)
    wanted = set(taken[:keep])
    gathered = sp.to_leader([(i, s) for i, s in kept.items() if i in wanted])
    samples = [s for _, s in in_order(gathered)] if gathered is not None else []
    if not rows:
        raise WorkbenchError(f"no readable images to evaluate ({len(skipped)} skipped); check --data.")
    if sp.leader:
        clamped = clamp_note(rows)
        if clamped:
            print(f"warning: {clamped}", file=sys.stderr)
        for note in sorted(range_notes):
            print(f"warning: value ranges differ: {note}; the scores would be meaningless (check the model's "
                  "output range).", file=sys.stderr)
    methods = list(rows[0]["metrics"])
    # An image the damage left as it was (a gray photo to colorize) scores an infinite input PSNR: every
    # method's means leave it out, as validation does, so that each row is a mean over the same images.
    undamaged = [r["name"] for r in rows if r["metrics"]["input"].get("psnr_rgb") == math.inf]
    judged = [r for r in rows if r["metrics"]["input"].get("psnr_rgb") != math.inf]
    mean = {m: {k: _mean([r["metrics"][m].get(k) for r in judged]) for k in METRICS if k in rows[0]["metrics"][m]}
            for m in methods}
    # The headline: Y, as published SR/JPEG results are; RGB where the damage keeps luma (Y would
    # rate the grayscale input as nearly perfect).
    primary = "psnr_rgb" if any(capability(d, "keeps_luma") for _, d in chain) else "psnr_y"
    result = {
        "run": str(run_dir if weights is None else weights), "recipe": recipe.name, "task": "restore",
        "checkpoint": which if weights is None else None,
        "epoch": state.get("epoch"), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "protocol": {**protocol.DESCRIPTION, "crop": crop, "seed": seed, "self_ensemble": bool(self_ensemble),
                     "degradations": " -> ".join(repr(d) for _, d in chain), "modcrop": scale,
                     "data": [str(d) for d in data] or ["the run's validation images"], "images": len(rows),
                     "range_warnings": sorted(range_notes) + ([clamp_note(rows)] if clamp_note(rows) else [])},
        "methods": methods, "mean": mean, "primary": primary,
        "gain": {k: mean["model"][k] - mean["input"][k] for k in mean["model"]},
        "images": rows, "skipped": skipped, "skipped_metrics": scorers.skipped, "undamaged": undamaged,
    }
    return result, samples


def _judge_share(share, judge, *, limit, keep, kept, warn, report, bar):
    """This rank's [(index, (name, loader))] -> [(index, (row, range notes, None) or (None, None, skip))].
    It stops after `limit` rows and keeps the first `keep` samples in `kept`: one process's first
    `limit` (`keep`) rows are each rank's first ones, so the merge finds all it needs.
    bar: the options of its progress bar (workbench.devices.progress)."""
    records, n_rows = [], 0
    with progress.bar(total=min(limit, len(share)) if limit else len(share), **bar) as shown:
        for i, (name, read) in share:
            if limit and n_rows >= limit:
                break
            row, notes, sample, reason = judge(i, name, read)
            if reason is not None and limit:   # a skip is not one of the `limit` rows: one more image to judge
                shown.total = min(shown.total + 1, len(share))
            shown.update()
            if reason is not None:
                if warn:
                    progress.say(f"warning: skipped {name}: {reason}")
                records.append((i, (None, None, {"name": name, "reason": reason})))
                continue
            records.append((i, (row, sorted(notes), None)))
            n_rows += 1
            if len(kept) < keep:   # only what the report shows: two dozen full-size 12 MP samples would not fit in memory
                kept[i] = prepare(sample) if report else sample
    return records


def _scale(chain):
    """The super-resolution factor: ground truth is cropped to a multiple of it, and so is the border."""
    return math.prod(int(capability(deg, "scale_factor")) for _, deg in chain)


def _images(data, recipe):
    """[(name, loader)] for full-size images: the --data folders, else the run's validation split."""
    skipped = []
    if data:
        return [(name, lambda w=where: load(w)) for name, where in collect(data, verb="evaluate")], skipped
    _, (src, idx) = recipe_splits(recipe)   # the very images the run validated on
    return [(src.name(i), lambda i=i: src.load(i)) for i in idx], skipped


def _mean(values):
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def write_json(result, path, *, replace=False):
    files.write_text(path, json.dumps(result, indent=2, allow_nan=True), replace=replace, what="the results")


# A value-range bug (the lesson's [-0.5, 0.5]) puts much of the output outside [0, 1] and shifts its
# mean; a restorer's overshoot (sharp edges, saturated colours) does neither.
BUG_FRACTION, BUG_SHIFT = 0.05, 0.1
RANGE_SLACK = 1e-4   # float rounding of an honest [0, 1] computation is not "outside"


def clamp_note(rows):
    """What clamping the model's output to [0, 1] did, and whether the scores stand; None if nothing."""
    ranges = [r["output_range"] for r in rows if r.get("output_range")]
    hit = [x for x in ranges if x[2] > 0]   # values beyond RANGE_SLACK
    if not hit:
        return None
    lo, hi, worst = min(x[0] for x in hit), max(x[1] for x in hit), max(x[2] for x in hit)
    shifted = any(x[2] > BUG_FRACTION and abs(x[3]) > BUG_SHIFT for x in hit)
    where = f"on {len(hit)} of {len(ranges)} images (spanning [{lo:.3g}, {hi:.3g}], at most {worst:.2%} of an image's values)"
    if shifted:
        return (f"the model's output went outside [0, 1] {where}, and its mean moved: a value-range bug? The "
                "scores, of the output clamped to [0, 1], would be meaningless.")
    return (f"the model's output went outside [0, 1] {where}; it was clamped to [0, 1] before scoring, as restore "
            "writes it, so the scores stand.")


def section_name(data, overrides=(), self_ensemble=False):
    """The NAME of eval-NAME.json for `eval --data`: the data's folder names, then what changes the
    damage or the model (--set, --self-ensemble); None for the run's own validation images (eval.json)."""
    if not data:
        return None
    parts = ["+".join(Path(str(d).rstrip("/\\")).stem or "data" for d in data), *overrides]
    if self_ensemble:
        parts.append("x8")
    return safe_name(",".join(parts)) or "data"


def safe_name(text):
    """`text` in characters any file system keeps (and an HTML id can hold): others become '_'."""
    return re.sub(r"[^A-Za-z0-9._+=,-]+", "_", text).strip("._")[:120]


def table(result):
    """The terminal summary: mean per method, then the model's gain over the input."""
    cols = [k for k in METRICS if k in result["mean"]["model"]]
    w = max(16, *(len(m) + 2 for m in result["methods"]))   # a published baseline's row names its file
    head = f"{'method':<{w}}" + "".join(f"{c:>11}" for c in cols)
    lines = [head, "-" * len(head)]
    for m in result["methods"]:
        lines.append(f"{m:<{w}}" + "".join(f"{_fmt(result['mean'][m].get(c), c):>11}" for c in cols))
    lines.append(f"{'model - input':<{w}}" + "".join(f"{_fmt(result['gain'].get(c), c, sign=True):>11}" for c in cols))
    best = best_baselines(result["mean"], cols)
    if best:   # each metric against its own best baseline: the question a user asks of a restorer
        model = result["mean"]["model"]
        lines.append(f"{'model - best':<{w}}" + "".join(
            f"{_fmt(model.get(c) - best[c][1], c, sign=True) if c in best else '-':>11}" for c in cols))
        named = dict.fromkeys(best[c][0] for c in cols if c in best)
        lines.append("best baseline per column: " + (next(iter(named)) if len(named) == 1 else
                     ", ".join(f"{c} {best[c][0]}" for c in cols if c in best)))
    p = result["protocol"]
    if any(c in perceptual.LOWER_IS_BETTER for c in cols):
        lines.append(", ".join(perceptual.METRICS[c][1] for c in cols if c in perceptual.METRICS)
                     + ": lower is better (a distance; PSNR and SSIM: higher is better)")
    if result.get("primary") == "psnr_rgb":
        lines.append("judge by psnr_rgb: this damage leaves luma (Y) intact, so the Y columns cannot see it")
    lines.append(f"{p['images']} images; PSNR/SSIM on 8-bit RGB and BT.601 Y (16-235), border crop {p['crop']}; "
                 f"SSIM of Wang et al. (scikit-image, Gaussian 11x11, sigma 1.5); seed {p['seed']}"
                 + ("; model self-ensembled over 8 flips and turns" if p.get("self_ensemble") else "")
                 + (f"; {len(result['skipped'])} skipped" if result["skipped"] else "")
                 + (f"; {len(result['undamaged'])} undamaged (the input is the clean image: {', '.join(result['undamaged'][:3])}"
                    f"{', ...' if len(result['undamaged']) > 3 else ''}), not in the means" if result.get("undamaged") else "")
                 + "".join(f"; {m.upper()} skipped (weights missing)" for m in result.get("skipped_metrics", {})))
    return "\n".join(lines)


def _fmt(v, key, sign=False):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf"
    places = 4 if key.startswith("ssim") or key in perceptual.METRICS else 2   # dB to 0.01, unitless scores to 1e-4
    return f"{v:+.{places}f}" if sign else f"{v:.{places}f}"
