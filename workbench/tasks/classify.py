"""Classification: image -> class, judged by accuracy (exemplar classes for a folder without labels)."""
import math

import torch

from workbench.data import PairDataset
from workbench.data.splits import recipe_splits
from workbench.devices.device import autocast


class ClassifyTask:
    """Image -> class. A folder without labels (such as `sample`) is exemplar training: each photo
    is its own class and the network learns to tell random crops of them apart (Dosovitskiy et
    al. 2014), which still teaches it useful features for perceptual losses and encoders."""

    kind, best_key, default_loss = "classify", "accuracy", "cross_entropy"

    @staticmethod
    def summary(record):
        valid = record.get("valid", record)
        return f"train loss {record.get('train_loss', math.nan):.4f}, valid accuracy {valid.get('accuracy', math.nan):.3f}"

    def __init__(self, recipe, plugins):
        data, seed = recipe["data"], recipe["recipe"]["seed"]
        (train_src, train_idx), (valid_src, valid_idx) = recipe_splits(recipe)
        self.chain = chain = recipe.degradation_chain(plugins)   # usually none; a degradation makes it robust to that damage
        labelled = train_src.label(0) is not None
        if labelled:
            self.classes = len(train_src.classes)
            label_train = label_valid = "source"
        else:
            # Exemplar classes: the training photos themselves; validate on other crops of them.
            train_idx = sorted(set(train_idx) | set(valid_idx))
            valid_src, valid_idx = train_src, train_idx
            self.classes = len(train_idx)
            label_train = label_valid = {src_i: k for k, src_i in enumerate(train_idx)}
        common = dict(pad=data["pad"], flip=data["flip"], trivial_augment=data["trivial_augment"], seed=seed,
                      damage_first=data["damage_first"])
        self.train = PairDataset(train_src, train_idx, chain, size=data["size"], repeat=data["repeat"],
                                 crops_per_image=data["crops_per_image"], labels=label_train, **common)
        # Exemplar validation uses random crops with another seed: centre crops would be too easy.
        valid_train = not labelled
        self.valid = PairDataset(valid_src, valid_idx, chain, size=data["size"], train=valid_train, labels=label_valid,
                                 **{**common, "seed": seed + 1})

    def configure_model(self, spec):
        """The number of classes comes from the data unless the recipe fixes it."""
        return {**spec, "classes": spec.get("classes") or self.classes}

    @staticmethod
    def inputs(batch, device):
        return batch["damaged"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)

    @torch.no_grad()
    def validate(self, model, loader, device, amp_dtype, keep=0):
        correct, total, losses = 0, 0, []
        for batch in loader:
            x, y = self.inputs(batch, device)
            with autocast(device, amp_dtype):
                logits = model(x).float()
            losses.append(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item())
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
        return {"accuracy": correct / max(total, 1), "loss": sum(losses) / max(total, 1)}, [], []
