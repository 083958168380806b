"""`classifier`: the res-block image classifier of fast.ai course22p2 (Tiny ImageNet, notebook 24).

A ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition"; pre-activation blocks
from He et al. 2016, "Identity Mappings in Deep Residual Networks" with `preact=true`). Its `stem`
and `stages` have exactly the structure of the U-Net's `start` and `down`, so a trained
classifier is both a pretrained U-Net encoder (`[model] encoder = "runs/classify"`) and the
feature extractor of the perceptual loss (forward hooks on modules such as "stages.1").
"""
from torch import nn

from workbench import hookimpl
from workbench.api.layers import (
    ResBlock,
    act_layer,
    check_config,
    make_stage,
    norm_layer,
)


class Classifier(nn.Module):
    """ResNet classifier: a res-block stem, strided stages, pooled linear head -> class logits.

    classes: number of classes (the trainer sets it from the labelled data).
    widths: channels of the stem and of each stage; every stage after the stem halves the size.
    blocks: res blocks per stage.
    preact: pre-activation res blocks (He et al. 2016, Identity Mappings).
    norm: normalisation: "batch", "instance", "group" or "none".
    act: activation: "relu", "gelu", "silu" or "leaky" (LeakyReLU 0.1).
    dropout: dropout probability before the linear layer.
    """

    task = "classify"   # the trainer feeds it labelled crops and scores accuracy, not PSNR

    def __init__(self, *, classes=0, widths=[32, 64, 128, 256], blocks=1, preact=False, norm="batch", act="relu",
                 dropout=0.1):
        super().__init__()
        check_config(widths=widths, blocks=blocks, norm=norm, act=act)
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classifier needs classes >= 1 (the trainer sets it from the data); got classes = {classes!r}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout = {dropout!r} must be a probability from 0 to below 1")
        kw = dict(act=act, norm=norm, preact=preact)
        self.widths = list(widths)
        self.stem = ResBlock(3, widths[0], **kw)
        self.stages = nn.ModuleList(make_stage(widths[i], widths[i + 1], blocks=blocks, stride=2, **kw)
                                    for i in range(len(widths) - 1))
        # Pre-activation nets end their last block with a bare sum: add the final norm + act of He et al. 2016.
        pre = [l for l in (norm_layer(norm, widths[-1]), act_layer(act)) if l is not None] if preact else []
        self.head = nn.Sequential(*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(widths[-1], classes, bias=False), nn.BatchNorm1d(classes))

    def forward(self, x):
        """B x 3 x H x W images in [0, 1] (no normalisation inside) -> B x classes logits."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


@hookimpl
def register_models(register):
    register("classifier", Classifier)
