"""Data: image sources (sample photos, folders, Tiny ImageNet) and aligned (damaged, clean) pairs."""
from workbench.data.pairs import EpochSampler, PairDataset, centre_crop, make_loader
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
    "centre_crop",
    "is_tiny_imagenet",
    "make_loader",
    "open_source",
    "open_splits",
    "split_train_valid",
]
