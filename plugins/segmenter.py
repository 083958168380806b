"""`segmenter`: the res-block U-Net with an N-class head, for segmentation (the lesson's "create a
U-Net for segmentation"); the losses `pixel_cross_entropy` and `dice` train it.

It is the `unet`'s encoder and decoder (additive skips, optional cross connections, a classifier
run as encoder) ending in res blocks and a 1x1 convolution to one logit per class and pixel, in
place of the restorer's 3-channel output and the input added back: a class map is not a
correction to the photo. Ronneberger et al. 2015 built the U-Net for exactly this.
"""
import torch
import torch.nn.functional as F
from torch import nn

from workbench import hookimpl
from workbench.api.layers import ResBlock
from workbench.images.classmaps import IGNORE
from workbench_plugins.unet import UNet


class Segmenter(UNet):
    """U-Net -> B x classes x H x W logits (Ronneberger et al. 2015, with the lesson's res blocks).

    classes: the number of classes, background included; 0 takes it from the data (the masks'
      largest index + 1, or 2 for masks a degradation reports).
    widths, blocks, cross_connections, preact, norm, act, encoder: as the unet's.
    head_blocks: res blocks at widths[0] channels at full resolution before the 1x1 class convolution.
    names: the classes' names, background first, for tables and legends; [] takes them from the data
      (classes.txt beside images/ and masks/, else "background", "class 1", ...).
    """

    task = "segment"

    def __init__(self, *, classes=0, widths=[32, 64, 128, 256], blocks=1, cross_connections=False, preact=False,
                 norm="batch", act="relu", encoder="", head_blocks=1, names=[]):
        if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= IGNORE:
            raise ValueError(f"classes = {classes!r} must be a whole number from 2 (background and one class) to {IGNORE}")
        if isinstance(head_blocks, bool) or not isinstance(head_blocks, int) or head_blocks < 0:
            raise ValueError(f"head_blocks = {head_blocks!r} must be a whole number >= 0")
        super().__init__(widths=widths, blocks=blocks, cross_connections=cross_connections, preact=preact, norm=norm,
                         act=act, encoder=encoder)
        if not all(isinstance(n, str) for n in names) or len(names) > classes:
            raise ValueError(f"names = {names!r} must be at most {classes} strings, one per class")
        self.classes, self.names = classes, list(names)
        kw = dict(act=act, norm=norm, preact=preact)
        self.up[-1] = nn.Sequential(*(ResBlock(widths[0], widths[0], **kw) for _ in range(head_blocks)),
                                    nn.Conv2d(widths[0], classes, 1))
        self.end = None   # no image is added back: unused parameters would also trouble DDP

    @property
    def label(self):
        return f"U-Net segmenter ({self.classes} classes)"

    def forward(self, img, mask=None):
        """B x 3 x H x W -> B x classes x H x W logits, any H and W."""
        h, w = img.shape[-2:]
        inp, top, left = self._pad(img)
        logits = self.up[-1](self._features(inp))
        return logits[..., top:top + h, left:left + w]


def _check_target(name, output, target):
    if output.dim() != 4 or target.shape != (output.shape[0], *output.shape[2:]):
        raise ValueError(f"{name}: expected logits B x C x H x W and a class map B x H x W, got "
                         f"{tuple(output.shape)} and {tuple(target.shape)}")


class PixelCrossEntropy(nn.Module):
    """Cross-entropy of every pixel's class logits against the class map; 255 pixels are ignored.

    class_weights: one weight per class ([] = all 1); a rare class (a watermark on 3 % of the pixels)
      can weigh more, though `dice` balances classes without a number to tune.
    """

    task = "segment"

    def __init__(self, *, class_weights=[]):
        super().__init__()
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in class_weights):
            raise ValueError(f"class_weights = {class_weights!r} must be numbers >= 0, one per class")
        self.register_buffer("weights", torch.tensor([float(v) for v in class_weights]) if class_weights else None,
                             persistent=False)

    def forward(self, output, target):
        _check_target("pixel_cross_entropy", output, target)
        weight = self.weights
        if weight is not None and len(weight) != output.shape[1]:
            raise ValueError(f"pixel_cross_entropy: {len(weight)} class_weights for {output.shape[1]} classes")
        return F.cross_entropy(output.float(), target, weight=weight, ignore_index=IGNORE)


class Dice(nn.Module):
    """Soft Dice loss (Milletari et al. 2016), 1 - mean over classes of 2|P∩T| / (|P| + |T|), with P the
    softmax probabilities: each class counts alike however few its pixels, so a rare class is not
    drowned by the background as it is in the pixel average of cross-entropy.

    smooth: added to both sides of each class's ratio, so a class absent from the batch and not
      predicted scores 1, not 0 / 0.
    background: whether class 0 takes part in the mean.
    """

    task = "segment"

    def __init__(self, *, smooth=1.0, background=True):
        super().__init__()
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or smooth <= 0:
            raise ValueError(f"smooth = {smooth!r} must be a number above 0")
        self.smooth, self.background = float(smooth), bool(background)

    def forward(self, output, target):
        _check_target("dice", output, target)
        keep = (target != IGNORE).unsqueeze(1)
        prob = output.float().softmax(1) * keep
        truth = F.one_hot(target.masked_fill(target == IGNORE, 0), output.shape[1]).permute(0, 3, 1, 2) * keep
        hit, size = (prob * truth).sum((0, 2, 3)), prob.sum((0, 2, 3)) + truth.sum((0, 2, 3))
        dice = (2 * hit + self.smooth) / (size + self.smooth)
        return 1 - (dice if self.background else dice[1:]).mean()


@hookimpl
def register_models(register):
    register("segmenter", Segmenter)


@hookimpl
def register_losses(register):
    register("pixel_cross_entropy", PixelCrossEntropy)
    register("dice", Dice)
