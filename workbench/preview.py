"""`workbench batch`: show the (damaged, clean) training pairs a recipe makes, before training on them."""
from workbench.data import EpochSampler, PairDataset, open_splits
from workbench.grid import draw_grid
from workbench.metrics import psnr


def training_pairs(recipe, plugins, *, split="train"):
    """The recipe's PairDataset for `split` (train: augmented crops; valid: centre crops)."""
    data, seed = recipe["data"], recipe["recipe"]["seed"]
    (train_src, train_idx), (valid_src, valid_idx) = open_splits(
        data["train"], data["valid"], valid_fraction=data["valid_fraction"], limit=data["limit"], seed=seed)
    src, idx = (train_src, train_idx) if split == "train" else (valid_src, valid_idx)
    is_train = split == "train"
    return PairDataset(src, idx, recipe.degradation_chain(plugins), size=data["size"], pad=data["pad"],
                       flip=data["flip"], trivial_augment=data["trivial_augment"], seed=seed,
                       repeat=data["repeat"] if is_train else 1, train=is_train)


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
