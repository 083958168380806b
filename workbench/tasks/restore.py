"""Restoration: damaged -> clean pairs, judged by PSNR and SSIM of the model and of the damaged input."""
import math
import sys

import torch

from workbench.api.contracts import call_model
from workbench.data.splits import recipe_splits
from workbench.devices.device import autocast
from workbench.errors import WorkbenchError
from workbench.images.metrics import batch_psnr, batch_ssim, psnr
from workbench.judge.baselines import for_chain
from workbench.judge.pictures import prepare
from workbench.tasks.pairs import pair_datasets

SSIM_WINDOW = 11   # validation crops are at least this wide: SSIM's 11 x 11 Gaussian window must fit


class RestoreTask:
    """Damaged -> clean pairs; judged by PSNR and SSIM of the model and of the damaged input."""

    kind, best_key, default_loss = "restore", "psnr", "l1"

    @staticmethod
    def summary(record):
        """One epoch's (or the run's) line: train loss, and validation against the damaged input."""
        valid = record.get("valid", record)
        return (f"train loss {record.get('train_loss', math.nan):.4f}, valid PSNR {valid.get('psnr', math.nan):.2f} dB "
                f"(input {valid.get('input_psnr', math.nan):.2f}), SSIM {valid.get('ssim', math.nan):.4f} "
                f"(input {valid.get('input_ssim', math.nan):.4f})")

    def __init__(self, recipe, plugins):
        splits = recipe_splits(recipe)
        self.chain = chain = recipe.degradation_chain(plugins)
        self.plugins, self.baselines = plugins, None   # the baselines are built at the first validation
        if not chain:   # the clean image would be its own input: loss 0, PSNR inf, nothing learnt
            raise WorkbenchError(f"{recipe.source}: the recipe has no [[degradations]], so there is nothing to restore; "
                                 "add one (see `workbench list degradations`).")
        # Tiny photos give validation crops narrower than SSIM's window: those are padded up to it.
        self.train, self.valid = pair_datasets(recipe, splits, chain, min_valid=SSIM_WINDOW)

    def configure_model(self, spec):
        return spec

    @staticmethod
    def inputs(batch, device):
        return batch["damaged"].to(device, non_blocking=True), batch["clean"].to(device, non_blocking=True)

    @torch.no_grad()
    def validate(self, model, loader, device, amp_dtype, keep=4):
        """Mean PSNR/SSIM over the validation set; also the first `keep` (name, damaged, restored, clean),
        and the same images as report samples (with their mask and the classical baselines)."""
        scores = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": [], "undamaged": []}
        images, masks = [], []
        for batch in loader:
            damaged, clean = self.inputs(batch, device)
            with autocast(device, amp_dtype):
                restored = call_model(model, damaged, batch["mask"])
            restored = restored.float().clamp(0, 1)
            # An image the damage left intact (a gray photo to colorize) would score an infinite
            # input PSNR and hide the model's errors elsewhere: judge only damaged images.
            input_psnr = batch_psnr(damaged, clean)
            hurt = [j for j, p in enumerate(input_psnr) if math.isfinite(p)]
            scores["undamaged"] += [len(input_psnr) - len(hurt)]
            if not hurt:
                continue
            pick = lambda values: [values[j] for j in hurt]
            scores["psnr"] += pick(batch_psnr(restored, clean))
            scores["ssim"] += pick(batch_ssim(restored, clean))
            scores["input_psnr"] += pick(input_psnr)
            scores["input_ssim"] += pick(batch_ssim(damaged, clean))
            for j in range(len(damaged)):
                if len(images) < keep:
                    name = self.valid.source.name(int(batch["index"][j]))
                    images.append((name, damaged[j].cpu(), restored[j].cpu(), clean[j].cpu()))
                    masks.append(batch["mask"][j].cpu())
        undamaged = sum(scores.pop("undamaged"))
        metrics = {**{k: _mean(v) for k, v in scores.items()}, "images": len(scores["psnr"]), "undamaged": undamaged}
        return metrics, images, [self._sample(*image, mask) for image, mask in zip(images, masks)]

    def _sample(self, name, damaged, restored, clean, mask):
        """One report sample: the report's slider shows the best classical baseline beside the model."""
        if self.baselines is None:
            self.baselines = self._baselines()
        mask = mask if mask.any() else None
        outputs = {"model": restored, "input": damaged}
        outputs.update({m: fn(clean, damaged, mask) for m, fn in self.baselines.items()})
        return prepare({"name": name, "damaged": damaged, "restored": restored, "clean": clean, "mask": mask,
                        "baselines": {m: outputs[m] for m in self.baselines},
                        "metrics": {m: {"psnr": psnr(out.clamp(0, 1), clean)} for m, out in outputs.items()}})

    def _baselines(self):
        try:
            return for_chain(self.chain, self.plugins)
        except WorkbenchError as e:   # `eval` says the same in one line; training goes on without them
            print(f"warning: the report shows no classical baseline: {e}", file=sys.stderr)
            return {}


def _mean(values):
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.inf
