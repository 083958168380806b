"""`workbench batch`: show the (damaged, clean) training pairs a recipe makes, before training on them."""
from workbench.data import EpochSampler
from workbench.task import make_task
from workbench.grid import draw_grid
from workbench.metrics import psnr


def training_pairs(recipe, plugins, *, split="train"):
    """The recipe's PairDataset for `split` (train: augmented crops; valid: centre crops)."""
    task = make_task(recipe, plugins)
    return task.train if split == "train" else task.valid


def batch_grid(dataset, *, n=8, epoch=0, height=128):
    """A grid of the first `n` items of an epoch, in the order training would see them."""
    sampler = EpochSampler(len(dataset), shuffle=dataset.train, seed=dataset.seed)
    sampler.set_epoch(epoch)
    rows = []
    for key in list(sampler)[:n]:
        item = dataset[key]
        name = dataset.source.name(item["index"])
        row = [(item["damaged"], f"damaged {psnr(item['damaged'], item['clean']):.1f} dB"),
               (item["clean"], f"clean: {name}")]
        if item["mask"].any():
            row.append((item["mask"].float().expand(3, -1, -1), "mask"))
        rows.append(row)
    return draw_grid(rows, height=height)
