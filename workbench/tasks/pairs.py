"""The training and validation PairDatasets of a recipe's [data], shared by the tasks that learn from photos."""
from workbench.data import PairDataset


def pair_datasets(recipe, splits, chain, min_valid):
    """(train, valid) from `splits` ((source, indices) twice, as `recipe_splits` gives them). Validation
    crops are `data.valid_size`, but at least `min_valid` wide: what the task's metric or network needs."""
    data, seed = recipe["data"], recipe["recipe"]["seed"]
    (train_src, train_idx), (valid_src, valid_idx) = splits
    train = PairDataset(train_src, train_idx, chain, size=data["size"], pad=data["pad"], flip=data["flip"],
                        trivial_augment=data["trivial_augment"], seed=seed, repeat=data["repeat"],
                        damage_first=data["damage_first"], crops_per_image=data["crops_per_image"])
    valid_size = data["valid_size"]
    if hasattr(valid_src, "min_side"):   # region hold-outs are thin strips: the largest square that fits in all
        valid_size = min(valid_size, valid_src.min_side())
    valid = PairDataset(valid_src, valid_idx, chain, size=max(valid_size, min_valid), seed=seed, train=False,
                        damage_first=data["damage_first"])
    return train, valid
