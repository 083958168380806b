"""`workbench restore` with a segmentation run: the class map of each photo, written as a palette PNG.

Tiles are blended as class probabilities (softmax), not as logits, so the raised-cosine window mixes
two tiles' beliefs where they overlap; the class is the most probable one after blending.
"""
from pathlib import Path

import torch
from torch import nn

from workbench.images import classmaps


class Probabilities(nn.Module):
    """A segmenter whose output is its class probabilities (B x classes x H x W, in [0, 1])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, img):
        return self.model(img).float().softmax(1)


def mask_name(name):
    """photo.jpg -> photo.png: a class map is lossless, whatever the photo's format."""
    return Path(name).with_suffix(".png")


def save_classes(probabilities, dst, *, replace, **_):
    """The most probable class of every pixel as a palette PNG (the index is the class)."""
    classmaps.write(probabilities.argmax(0).to(torch.uint8), dst, replace=replace)
