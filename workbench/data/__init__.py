"""Data: photo sources (sample, folders, zips, Tiny ImageNet, shards), splits, crops, pairs, samplers, lanes."""
from workbench.data.crops import centre_crop
from workbench.data.lanes import auto_workers, train_loader
from workbench.data.pairs import PairDataset
from workbench.data.samplers import EpochSampler, make_loader
from workbench.data.shards import ShardSource
from workbench.data.sources import (
    SAMPLE_NAMES,
    FolderSource,
    SampleSource,
    is_tiny_imagenet,
    open_source,
)
from workbench.data.splits import RegionSource, open_splits, split_train_valid

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
