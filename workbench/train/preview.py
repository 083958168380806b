"""`workbench batch`: show the (damaged, clean) training pairs a recipe makes, before training on them."""
import torch

from workbench.data.lanes import LaneSampler
from workbench.images.classmaps import overlay
from workbench.images.grid import draw_grid
from workbench.images.metrics import psnr
from workbench.tasks import make_task


def training_pairs(recipe, plugins, *, split="train"):
    """The recipe's PairDataset for `split` (train: augmented crops; valid: centre crops)."""
    task = make_task(recipe, plugins)
    return task.train if split == "train" else task.valid


def first_items(dataset, n, epoch=0, batch_size=16):
    """The first `n` items of an epoch in the order training (batches of `batch_size`, in lanes)
    or validation would see them."""
    if dataset.train:
        sampler = LaneSampler(dataset, batch_size=batch_size)
        sampler.set_epoch(epoch)
        keys = ((epoch, t, sampler.total, (lane,)) for t in range(sampler.steps) for lane in range(sampler.total))
        items = ({k: v[0] for k, v in dataset[key].items()} for key in keys)
    else:
        items = (dataset[i] for i in range(len(dataset)))
    return [item for _, item in zip(range(n), items)]


def batch_grid(dataset, *, n=8, epoch=0, height=128, batch_size=16):
    """A grid of the first `n` items of an epoch, in the order training would see them."""
    rows = []
    for item in first_items(dataset, n, epoch, batch_size):
        name, damaged, clean = dataset.source.name(item["index"]), item["damaged"], item["clean"]
        if len(clean) == 4:   # a segmentation folder's crop: the photo and its class map as a 4th channel
            photo = clean[:3]
            rows.append([(photo, f"photo: {name}"), (overlay(photo, (clean[3] * 255).round().long()), "true classes")])
            continue
        said = "input: the photo itself" if torch.equal(damaged, clean) else f"damaged {psnr(damaged, clean):.1f} dB"
        row = [(damaged, said), (clean, f"clean: {name}")]
        if item["mask"].any():
            row.append((item["mask"].float().expand(3, -1, -1), "mask"))
        rows.append(row)
    return draw_grid(rows, height=height)
