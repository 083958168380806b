"""Pixel losses (`mse`, `l1`, `charbonnier`) and the classifier's `cross_entropy`.

Each maps (output, target) to a scalar tensor averaged over every element, so its size does not
depend on the batch or image size and recipe weights mean the same at any crop size.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench import hookimpl


def _same_shape(output, target):
    # Broadcasting B x 3 x H x W against a mis-sized target would silently compare wrong pixels.
    if output.shape != target.shape:
        raise ValueError(f"loss: output shape {tuple(output.shape)} differs from target shape {tuple(target.shape)}")


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} = {value!r} is not allowed: give a finite number")
    return float(value)


class MSE(nn.Module):
    """Mean squared error: the loss PSNR measures; penalises large errors most, so it blurs.

    No parameters.
    """

    def forward(self, output, target):
        _same_shape(output, target)
        return F.mse_loss(output, target)


class L1(nn.Module):
    """Mean absolute error: sharper restorations than MSE (Zhao et al. 2017, "Loss functions for image restoration").

    No parameters.
    """

    def forward(self, output, target):
        _same_shape(output, target)
        return F.l1_loss(output, target)


class Charbonnier(nn.Module):
    """Charbonnier: sqrt((x - y)^2 + eps^2) - eps, a differentiable L1 (Lai et al. 2017, LapSRN).

    eps: smoothing in pixel units (images in [0, 1]), > 0; below it the loss is quadratic, above it
         like L1. eps is subtracted so a perfect restoration scores 0; gradients are the paper's.
    """

    def __init__(self, *, eps=1e-3):
        super().__init__()
        self.eps = _number(eps, "eps")
        if self.eps <= 0:
            raise ValueError(f"eps = {eps!r} is out of range: allowed > 0")

    def forward(self, output, target):
        _same_shape(output, target)
        return (torch.sqrt((output - target) ** 2 + self.eps**2) - self.eps).mean()


class CrossEntropy(nn.Module):
    """Cross-entropy on logits, for training the classifier whose features feed the perceptual loss.

    label_smoothing: share of the target probability spread over all classes, 0 to < 1; 0.1 as the
                     fast.ai lesson's classifier training used (Szegedy et al. 2016).
    output: logits B x C; target: class indices B (int64).
    """

    def __init__(self, *, label_smoothing=0.1):
        super().__init__()
        self.label_smoothing = _number(label_smoothing, "label_smoothing")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing = {label_smoothing!r} is out of range: allowed 0 to < 1")

    def forward(self, output, target):
        if output.ndim != 2 or target.shape != output.shape[:1]:
            raise ValueError(f"cross_entropy: expected logits B x C and class indices B, got {tuple(output.shape)} and {tuple(target.shape)}")
        return F.cross_entropy(output, target, label_smoothing=self.label_smoothing)


@hookimpl
def register_losses(register):
    register("mse", MSE)
    register("l1", L1)
    register("charbonnier", Charbonnier)
    register("cross_entropy", CrossEntropy)
