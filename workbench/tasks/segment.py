"""Segmentation: photo -> class map, judged by mIoU, Dice and pixel accuracy against two baselines that
need no training: every pixel background, and thresholds of the gray level and of the local contrast
fitted on the training crops.

The class maps come from an images/ + masks/ folder (tasks/segment_data.py), or from a degradation
that reports where it damaged the photo: find-watermark learns where a watermark is from the
watermark degradation's own mask (class 1), as a radiology tool finds burned-in patient names.
"""
import math
import sys

import torch
import torch.nn.functional as F
from tqdm import tqdm

from workbench.api.contracts import capability
from workbench.data.sources import _local
from workbench.data.splits import recipe_splits
from workbench.devices.device import autocast
from workbench.errors import WorkbenchError
from workbench.images import classmaps
from workbench.judge.pictures import prepare
from workbench.tasks.pairs import pair_datasets
from workbench.tasks.restore import SSIM_WINDOW
from workbench.tasks.segment_data import LAYOUT, is_pair_folder, open_segmentation

LEVELS = 64          # levels a threshold baseline tries
FIT_CROPS = 32       # training crops the thresholds are fitted on
# What the threshold baselines threshold: the gray level (bright text), and its distance from the mean
# of its 15 x 15 neighbourhood, x 4 (a stamp's strokes stand out from what is around them).
FEATURES, CONTRAST_SIDE, CONTRAST_GAIN = ("gray", "contrast"), 15, 4
TITLES = {"damaged": "photo", "restored": "predicted", "clean": "true classes"}


class SegmentTask:
    """Photo -> class map; validation scores the model and the baselines over all validation pixels."""

    kind, best_key, default_loss = "segment", "miou", "pixel_cross_entropy"
    titles = TITLES

    @staticmethod
    def summary(record):
        valid = record.get("valid", record)
        base = " ".join(f"{name} {v.get('miou', math.nan):.3f}," for name, v in (valid.get("baselines") or {}).items())
        return (f"train loss {record.get('train_loss', math.nan):.4f}, valid mIoU {valid.get('miou', math.nan):.3f} "
                f"({base.rstrip(',') or 'no baseline'}), Dice {valid.get('dice', math.nan):.3f}")

    @staticmethod
    def grid_captions(name, photo, predicted, truth):
        return f"{name}: photo", "predicted classes", "true classes"

    def __init__(self, recipe, plugins):
        data = recipe["data"]
        self.chain = chain = recipe.degradation_chain(plugins)
        train = str(data["train"])
        self.from_masks = train != "sample" and bool(train.strip()) and is_pair_folder(_local(train, "data.train"))
        if self.from_masks:
            if chain:   # a degradation would see the class map as a 4th colour channel
                raise WorkbenchError(f"{recipe.source}: a segment recipe on an images/ + masks/ folder takes no "
                                     "[[degradations]] (the masks are the targets); remove them.")
            if data["trivial_augment"]:
                raise WorkbenchError(f"{recipe.source}: data.trivial_augment changes colours channel by channel, and the "
                                     "class map rides along as a 4th channel: set data.trivial_augment = false.")
            splits = recipe_splits(recipe, opener=open_segmentation)
            self.names = max((source.classes for source, _ in splits), key=len)
        else:
            found = [name for name, deg in chain if capability(deg, "reports_mask")]
            if not found:
                raise WorkbenchError(f"{recipe.source}: a segment recipe needs class maps to learn from: {LAYOUT}. "
                                     f"data.train = {train!r} is neither.")
            splits = recipe_splits(recipe)
            self.names = ["background", " + ".join(found)]
        self.train, self.valid = pair_datasets(recipe, splits, chain, min_valid=SSIM_WINDOW)
        self.warned = False      # the note that validation lacks a class, printed once
        self.thresholds = None   # {feature: (level, brighter)} of the threshold baselines, fitted at the first validation

    def configure_model(self, spec):
        """The number of classes comes from the data unless the recipe fixes it (to at least as many)."""
        classes = spec.get("classes") or len(self.names)
        if classes < len(self.names):
            raise WorkbenchError(f"model.classes = {classes}, but the masks hold {len(self.names)} classes "
                                 f"({', '.join(self.names)}); set model.classes = 0 to take it from the data.")
        given = list(spec.get("names") or [])
        self.names = given + (self.names + [f"class {k}" for k in range(len(self.names), classes)])[len(given):]
        return {**spec, "classes": classes, "names": self.names}

    def inputs(self, batch, device):
        """(photo B x 3 x H x W, class map B x H x W int64)."""
        if self.from_masks:
            clean = batch["clean"]
            x, y = clean[:, :3], (clean[:, 3] * 255).round().to(torch.int64)
        else:
            x, y = batch["damaged"], batch["mask"][:, 0].to(torch.int64)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    @torch.no_grad()
    def validate(self, model, loader, device, amp_dtype, keep=4):
        """mIoU, Dice and pixel accuracy over all validation pixels, for the model and the baselines;
        also the first `keep` (name, photo, predicted overlay, true overlay) and report samples."""
        n = len(self.names)
        if n == 2 and self.thresholds is None:
            self.thresholds = self._fit_thresholds()
        rules = {threshold_name(f, *rule): (f, *rule) for f, rule in (self.thresholds or {}).items()}
        scores = {m: classmaps.Confusion(n) for m in ["model", "all background", *rules]}
        images, samples, count = [], [], 0
        for batch in loader:
            x, y = self.inputs(batch, device)
            with autocast(device, amp_dtype):
                predicted = model(x).float().argmax(1)
            guesses = {"model": predicted, "all background": torch.zeros_like(y)}
            guesses.update({m: by_threshold(x, *rule) for m, rule in rules.items()})
            for method, guess in guesses.items():
                scores[method].add(guess, y)
            count += len(y)
            for j in range(len(y)):
                if len(images) < keep:
                    name = self.valid.source.name(int(batch["index"][j]))
                    photo, guess, truth = x[j].float().cpu(), predicted[j].cpu(), y[j].cpu()
                    images.append((name, photo, classmaps.overlay(photo, guess), classmaps.overlay(photo, truth)))
                    samples.append(self._sample(name, photo, {m: g[j].cpu() for m, g in guesses.items()}, truth))
        absent = [name for name, count in zip(self.names, scores["model"].matrix.sum(1).tolist()) if count == 0]
        if absent and not self.warned:   # a validation with no pixel of a class cannot judge it: say so once
            self.warned = True
            tqdm.write(f"warning: the validation crops hold no pixel of {', '.join(absent)}; mIoU leaves "
                       f"{'it' if len(absent) == 1 else 'them'} out: raise data.valid_size or give data.valid.", file=sys.stderr)
        model_scores = scores.pop("model").scores(self.names)
        metrics = {**model_scores, "images": count,
                   "baselines": {m: {k: v for k, v in c.scores(self.names).items() if k != "iou"} for m, c in scores.items()}}
        if self.thresholds:   # eval judges the same baselines on other photos
            metrics["thresholds"] = {f: {"level": t / (LEVELS - 1), "brighter": b} for f, (t, b) in self.thresholds.items()}
        return metrics, images, samples

    def _sample(self, name, photo, guesses, truth):
        """A report sample: photo | predicted | true classes, with each method's scores on this image."""
        metrics = {m: {k: v for k, v in classmaps.Confusion(len(self.names)).add(g, truth).scores().items() if k != "iou"}
                   for m, g in guesses.items()}
        return prepare({"name": name, "damaged": photo, "restored": classmaps.overlay(photo, guesses["model"]),
                        "clean": classmaps.overlay(photo, truth), "metrics": metrics, "titles": TITLES})

    # -- the threshold baselines: class 1 where a feature is above (or below) one level ------------------
    def _fit_thresholds(self):
        """{feature: (level, brighter)} with the best mIoU on up to FIT_CROPS training crops: fitted on
        training data only, so the baselines are as honest as the model."""
        fg = {f: torch.zeros(LEVELS, dtype=torch.float64) for f in FEATURES}
        bg = {f: torch.zeros(LEVELS, dtype=torch.float64) for f in FEATURES}
        for i in range(min(FIT_CROPS, len(self.train))):
            item = self.train[(0, i)]
            x, y = self.inputs({k: v[None] if isinstance(v, torch.Tensor) else v for k, v in item.items()}, "cpu")
            keep = y != classmaps.IGNORE
            for f in FEATURES:
                level, truth = levels(x, f)[keep], y[keep]
                fg[f] += torch.bincount(level[truth == 1], minlength=LEVELS).double()
                bg[f] += torch.bincount(level[truth == 0], minlength=LEVELS).double()
        return {f: _best_rule(fg[f], bg[f]) for f in FEATURES}


def _best_rule(fg, bg):
    """(level, brighter) of the best mIoU, from the feature's histograms over class-1 and class-0 pixels."""
    best = (-1.0, (LEVELS // 2, True))
    for t in range(1, LEVELS):
        for brighter in (True, False):
            hit_fg = fg[t:].sum() if brighter else fg[:t].sum()
            false_fg = bg[t:].sum() if brighter else bg[:t].sum()
            miss, hit_bg = fg.sum() - hit_fg, bg.sum() - false_fg
            miou = 0.5 * (hit_fg / max(hit_fg + false_fg + miss, 1) + hit_bg / max(hit_bg + miss + false_fg, 1))
            best = max(best, (float(miou), (t, brighter)))
    return best[1]


def threshold_name(feature, t, brighter):
    return f"threshold ({feature} {'>=' if brighter else '<'} {t / (LEVELS - 1):.2f})"


def by_threshold(x, feature, t, brighter):
    """Class 1 where the feature is at least (or below) level t of LEVELS: a threshold baseline."""
    level = levels(x, feature)
    return (level >= t if brighter else level < t).to(torch.int64)


def levels(x, feature):
    """B x 3 x H x W in [0, 1] -> B x H x W levels 0 .. LEVELS - 1 of the gray level (BT.601 luma) or of
    its distance from the local mean."""
    gray = 0.299 * x[:, 0].float() + 0.587 * x[:, 1].float() + 0.114 * x[:, 2].float()
    if feature == "contrast":
        local = F.avg_pool2d(gray[:, None], CONTRAST_SIDE, stride=1, padding=CONTRAST_SIDE // 2, count_include_pad=False)
        gray = (gray - local[:, 0]).abs() * CONTRAST_GAIN
    return (gray.clamp(0, 1) * (LEVELS - 1)).round().to(torch.int64).cpu()
