"""`workbench eval` and `workbench grid` of a segmentation run: whole photos (tiled as `restore` tiles
them), scored over all their pixels by mIoU, Dice and pixel accuracy beside the run's two baselines.

The photos and their true class maps come from `--data` (an images/ + masks/ folder, or photos the
run's own degradation damages and marks, as find-watermark's watermark does), else from the run's
validation images, whole rather than as the centre crops validation scored.
"""
import datetime

import numpy as np
import torch

from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.data.inputs import collect, load
from workbench.data.splits import recipe_splits
from workbench.devices import progress
from workbench.devices.device import pick_device
from workbench.errors import WorkbenchError
from workbench.images import classmaps
from workbench.infer.restore import restore_tensor
from workbench.infer.segment import Probabilities
from workbench.judge.pictures import prepare
from workbench.tasks.segment import LEVELS, TITLES, by_threshold, threshold_name
from workbench.tasks.segment_data import is_pair_folder, open_segmentation

KEYS = ("miou", "dice", "pixel_accuracy")


def evaluate(run_dir, plugins, *, data=(), seed=0, device="auto", tile=512, keep=0, limit=0, which="best",
             self_ensemble=False, report=True, spread=None):
    """(result as written to eval.json, [report samples of the first `keep` images]).

    spread: a `workbench.devices.spread.Spread` under torchrun (pass its `device`): each rank judges its
    share, and the confusion matrices (integer counts) are summed, so the scores are one process's."""
    from workbench import recipe as recipes
    from workbench.devices.spread import Spread, in_order
    from workbench.runs import checkpoint

    sp = spread or Spread()
    model, state = checkpoint.load_model(run_dir, plugins, which=which)
    recipe = recipes.from_dict(state["recipe"], f"{run_dir}/recipe.toml", plugins)
    names = list(state["recipe"]["model"].get("names") or [])
    n = int(state["recipe"]["model"]["classes"])
    names += [f"class {k}" for k in range(len(names), n)]
    chain = recipe.degradation_chain(plugins)
    fitted = (state.get("metrics") or {}).get("thresholds") or {}
    rules = {f: (round(r["level"] * (LEVELS - 1)), bool(r["brighter"])) for f, r in fitted.items()}
    rules = {threshold_name(f, *r): (f, *r) for f, r in rules.items()}
    methods = ["model", "all background", *rules]
    device = pick_device(device)
    net = Probabilities(model).to(device).eval()
    items = _items(data, recipe, chain, seed)
    items = items[:limit] if limit else items
    kept = {}   # index -> report sample: the images stay on their rank until rank 0 asks for them

    def judge(i, name, read):
        """(row, {method: confusion counts}, unknown pixels, None), or (None, None, 0, skip) for an unreadable pair."""
        try:
            photo, truth = read()
        except WorkbenchError as e:
            if sp.world == 1:
                progress.say(f"warning: skipped {e}")
            return None, None, 0, {"name": name, "reason": str(e)}
        probs = restore_tensor(net, photo, tile=tile, device=device, self_ensemble=self_ensemble)
        guesses = {"model": probs.argmax(0), "all background": torch.zeros_like(truth)}
        guesses.update({m: by_threshold(photo[None], *rule)[0] for m, rule in rules.items()})
        row = {"name": name, "size": [photo.shape[-1], photo.shape[-2]], "metrics": {}}
        counts = {}
        for m, guess in guesses.items():
            one = classmaps.Confusion(n).add(guess, truth)
            counts[m] = one.matrix
            row["metrics"][m] = {k: v for k, v in one.scores().items() if k != "iou"}
        if len(kept) < keep:
            sample = {"name": name, "damaged": photo, "restored": classmaps.overlay(photo, guesses["model"]),
                      "clean": classmaps.overlay(photo, truth), "metrics": row["metrics"], "titles": TITLES}
            kept[i] = prepare(sample) if report else sample
        return row, counts, int(((truth >= n) & (truth != classmaps.IGNORE)).sum()), None

    bar = dict(desc="eval", unit="image", leader=sp.leader)
    parts = sp.settle(lambda: [(i, judge(i, *item)) for i, item in progress.bar(sp.mine(items), **bar)])
    totals = {m: classmaps.Confusion(n) for m in methods}
    rows, skipped, taken, unknown = [], [], [], 0
    for i, (row, counts, outside, skip) in in_order(parts):
        if skip:
            skipped.append(skip)
            if sp.world > 1 and sp.leader:
                progress.say(f"warning: skipped {skip['reason']}")
            continue
        for m in methods:
            totals[m].matrix += counts[m]
        rows.append(row)
        taken.append(i)
        unknown += outside
    wanted = set(taken[:keep])
    gathered = sp.to_leader([(i, s) for i, s in kept.items() if i in wanted])
    samples = [s for _, s in in_order(gathered)] if gathered is not None else []
    if not rows:
        raise WorkbenchError(f"no readable images to evaluate ({len(skipped)} skipped); check --data.")
    if unknown and sp.leader:   # a mask from another label set: said, not silently dropped
        progress.say(f"warning: {unknown} pixels carry class indices of {n} or more, which this {n}-class model "
                     f"cannot predict; they are left out of the scores like {classmaps.IGNORE} (void) pixels.")
    scores = {m: c.scores(names) for m, c in totals.items()}
    result = {"run": str(run_dir), "recipe": recipe.name, "task": "segment", "checkpoint": which,
              "epoch": state.get("epoch"), "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "protocol": {"scores": "mIoU and Dice over all pixels of all images (a summed confusion matrix), "
                                     f"{classmaps.IGNORE} = ignored", "classes": ", ".join(names),
                           "data": [str(d) for d in data] or ["the run's validation images"], "seed": seed,
                           "self_ensemble": bool(self_ensemble)},
              "methods": methods, "mean": {m: {k: s[k] for k in KEYS} for m, s in scores.items()},
              "iou": {m: s["iou"] for m, s in scores.items()}, "images": rows, "skipped": skipped,
              "unknown_pixels": unknown}
    return result, samples


def _items(data, recipe, chain, seed):
    """[(name, read)] with read() -> (photo 3 x H x W, class map H x W): from images/ + masks/ folders,
    from photos the chain marks, or from the run's own validation images."""
    marks = any(capability(deg, "reports_mask") for _, deg in chain)
    items = []
    for where in data:
        if is_pair_folder(where):
            src = open_segmentation(where, split="valid", key=f"--data {where}")
            items += _pairs(src, range(len(src)))
        elif not marks:
            raise WorkbenchError(f"--data {where}: this run learnt from masks, so it is judged on an images/ + masks/ "
                                 "folder; give one (see docs/data.md).")
        else:
            found = collect([where], verb="evaluate")
            items += [(name, _marked(path, chain, seed, len(items) + i)) for i, (name, path) in enumerate(found)]
    if data:
        return items
    if marks:
        _, (src, idx) = recipe_splits(recipe)
        return [(src.name(i), _marked(i, chain, seed, k, src)) for k, i in enumerate(idx)]
    _, (src, idx) = recipe_splits(recipe, opener=open_segmentation)
    return _pairs(src, idx)


def _pairs(src, indices):
    def read(i):
        both = src.load(i)
        return both[:3], (both[3] * 255).round().to(torch.int64)
    return [(src.name(i), lambda i=i: read(i)) for i in indices]


def _marked(where, chain, seed, k, src=None):
    """A photo damaged by the chain (seeded by its place in the list), with the damage's mask as class 1."""
    def read():
        clean = src.load(where) if src is not None else load(where)
        damaged, mask = apply_chain(chain, clean, np.random.default_rng([seed, k]))
        truth = torch.zeros(clean.shape[-2:], dtype=torch.int64) if mask is None else mask[0].to(torch.int64)
        return damaged, truth
    return read


def table(result):
    """The terminal summary: each method's mIoU, Dice and pixel accuracy, then each class's IoU."""
    w = max(16, *(len(m) + 2 for m in result["methods"]))
    head = f"{'method':<{w}}" + "".join(f"{k:>16}" for k in KEYS)
    lines = [head, "-" * len(head)]
    for m in result["methods"]:
        lines.append(f"{m:<{w}}" + "".join(f"{result['mean'][m][k]:>16.4f}" for k in KEYS))
    per_class = ", ".join(f"{c} {v:.4f}" for c, v in result["iou"]["model"].items())
    lines.append(f"model IoU per class: {per_class}; {len(result['images'])} images, {len(result['skipped'])} skipped")
    return "\n".join(lines)
