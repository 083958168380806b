"""`style`: the output in one style image's style with the target's content (Gatys et al. 2016, as a
feed-forward net learns it in Johnson et al. 2016): Gram matrices of a frozen network's features
against the style image's, plus a feature distance to the target for content. The network is chosen
as the perceptual loss's is (torchvision ImageNet weights from the cache, or a classifier run).
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from workbench import hookimpl
from workbench.errors import WorkbenchError
from workbench_plugins.perceptual import Perceptual, _check_layers

# The ReLU outputs Johnson et al. use: style from relu1_2, relu2_2, relu3_3 and relu4_3, content from
# relu3_3 (VGG16-BN's features.5, .12, .22, .32); for ResNets the stem's ReLU and the first three stages.
STYLE_LAYERS = {"vgg16_bn": ["features.5", "features.12", "features.22", "features.32"],
                "resnet18": ["relu", "layer1", "layer2", "layer3"], "resnet34": ["relu", "layer1", "layer2", "layer3"]}
CONTENT_LAYERS = {"vgg16_bn": ["features.22"], "resnet18": ["layer2"], "resnet34": ["layer2"]}


def gram(features):
    """B x C x H x W -> B x C x C, divided by C x H x W so that images of any size compare."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    return f @ f.transpose(1, 2) / (c * h * w)


class Style(nn.Module):
    """Style of one image, content of the target (Gatys et al. 2016; Johnson et al. 2016).

    style: path of the style image (a painting); required.
    net: as the perceptual loss's: "vgg16_bn", "resnet18", "resnet34" or a classifier run directory.
    style_layers, content_layers: module names; [] picks Johnson et al.'s ReLU outputs (vgg16_bn
      features.5/12/22/32 for style, .22 for content; resnets relu, layer1-3 and layer2; a classifier's
      stages but the last, and its last of those).
    style_weight, content_weight: the two terms' weights (Gram entries are small: the style term wants
      a large weight).
    style_size: the style image's longer side in pixels before its features are taken.
    """

    default_weight = 1.0   # the two terms carry their own weights
    task = "stylize"       # the engine trains a stylizer: no damage, the photo is the input and the content target

    def __init__(self, *, style="", net="vgg16_bn", style_layers=[], content_layers=[], style_weight=1e4,
                 content_weight=1.0, style_size=256):
        super().__init__()
        for name, value in (("style_weight", style_weight), ("content_weight", content_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} = {value!r} must be a number >= 0")
        if isinstance(style_size, bool) or not isinstance(style_size, int) or not 16 <= style_size <= 4096:
            raise ValueError(f"style_size = {style_size!r} must be a whole number of pixels from 16 to 4096")
        image = _style_image(style, style_size)   # before the network: a wrong path is the cheaper mistake
        wanted = list(dict.fromkeys(list(style_layers or STYLE_LAYERS.get(net, [])) + list(content_layers or CONTENT_LAYERS.get(net, []))))
        self.features = Perceptual(net=net, layers=wanted)
        found = self.features.layers   # a classifier run's default stages when nothing was named
        self.style_layers = _check_layers(self.features.net, net, list(style_layers) or STYLE_LAYERS.get(net) or found, found)
        self.content_layers = _check_layers(self.features.net, net, list(content_layers) or CONTENT_LAYERS.get(net) or found[-1:], found)
        self.features.layers = list(dict.fromkeys(self.style_layers + self.content_layers))
        self.style_weight, self.content_weight = float(style_weight), float(content_weight)
        self.style_image = image   # shown beside the stylized photos in grids and reports
        with torch.no_grad():
            feats = self.features._features(image[None])
        for i, k in enumerate(self.style_layers):   # buffers: they follow .to(device), and no checkpoint holds them
            self.register_buffer(f"_gram{i}", gram(feats[k]), persistent=False)
        self._terms = {}

    @property
    def terms(self):
        """{"style/<layer>": ..., "content/<layer>": ...} of the last forward, unweighted."""
        return {k: v.item() for k, v in self._terms.items()}

    def forward(self, output, target):
        with torch.no_grad():
            want = self.features._features(target) if self.content_weight else {}
        got = self.features._features(output)
        style = [F.mse_loss(gram(got[k]), getattr(self, f"_gram{i}").expand(len(output), -1, -1))
                 for i, k in enumerate(self.style_layers)]
        content = [F.mse_loss(got[k].float(), want[k].float()) for k in self.content_layers] if self.content_weight else []
        self._terms = {**{f"style/{k}": d.detach() for k, d in zip(self.style_layers, style)},
                       **{f"content/{k}": d.detach() for k, d in zip(self.content_layers, content)}}
        return self.style_weight * sum(style) + self.content_weight * sum(content, torch.zeros((), device=output.device))


def _style_image(path, side):
    """The style image as 3 x H x W in [0, 1], its longer side `side` pixels."""
    from workbench.images.files import read_image

    if not isinstance(path, str) or not path:
        raise ValueError('style = "" names no image: give the path of the style image (a painting), e.g. '
                         "--set losses.style.style=starry-night.jpg")
    if not Path(path).is_file():
        raise WorkbenchError(f"style = {path!r}: no such image file; give the path of the style image.")
    img = read_image(Path(path))
    h, w = img.shape[-2:]
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


@hookimpl
def register_losses(register):
    register("style", Style)
