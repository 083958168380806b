"""Data: image sources (sample photos, folders, Tiny ImageNet, prepared shards), crops, aligned (damaged, clean) pairs, lanes."""
from workbench.data.crops import centre_crop
from workbench.data.lanes import auto_workers, train_loader
from workbench.data.pairs import EpochSampler, PairDataset, make_loader
from workbench.data.shards import ShardSource
from workbench.data.sources import (
    SAMPLE_NAMES,
    FolderSource,
    RegionSource,
    SampleSource,
    is_tiny_imagenet,
    open_source,
    open_splits,
    split_train_valid,
)

__all__ = [
    "SAMPLE_NAMES",
    "EpochSampler",
    "FolderSource",
    "PairDataset",
    "RegionSource",
    "SampleSource",
    "ShardSource",
    "auto_workers",
    "train_loader",
    "centre_crop",
    "is_tiny_imagenet",
    "make_loader",
    "open_source",
    "open_splits",
    "split_train_valid",
]
