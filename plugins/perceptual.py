"""`perceptual`: compare output and target as a frozen network sees them (Johnson et al. 2016,
"Perceptual losses for real-time style transfer and super-resolution"), with an ImageNet VGG or
ResNet, or, as the fast.ai lesson (course22p2, notebook 25) did, a classifier trained in this
workbench: pixel losses average plausible answers into blur, feature losses reward texture.
"""
import torch
import torch.nn.functional as F
from torch import nn

from workbench import hookimpl
from workbench.api.pretrained import NAMES, freeze, torchvision_backbone
from workbench.errors import WorkbenchError, suggest

# Johnson et al. used VGG relu2_2; deeper layers add semantics, shallower ones edges. These are
# the ReLU outputs of VGG conv blocks 2, 3 and 4 (relu2_2, relu3_3, relu4_3) and the first three
# ResNet stages; the deepest block of each is skipped as too class-specific and too coarse.
DEFAULT_LAYERS = {
    "vgg16_bn": ["features.12", "features.22", "features.32"],
    "resnet18": ["layer1", "layer2", "layer3"],
    "resnet34": ["layer1", "layer2", "layer3"],
}
DISTANCES = {"l1": F.l1_loss, "mse": F.mse_loss}


class _Stop(Exception):
    """Raised by the hook on the last requested layer: the rest of the network would be wasted work."""


class Perceptual(nn.Module):
    """Distance between output and target features of a frozen network (Johnson et al. 2016).

    net: "vgg16_bn", "resnet18" or "resnet34" (torchvision ImageNet weights, read from torchvision's
         cache, $TORCH_HOME), or the path of a classifier run directory or checkpoint, as the
         fast.ai lesson used its own classifier's intermediate features.
    layers: module names from net.named_modules(); [] picks vgg16_bn features.12/22/32,
            resnet layer1-3, or a classifier's stages.N except the last.
    distance: "l1" or "mse" between feature maps.
    layer_weights: one weight >= 0 per layer for the weighted mean over layers; [] weighs them equally.
    """

    default_weight = 0.1  # activations dwarf [0, 1] pixel errors; 0.1 leaves the pixel loss in charge of colour

    def __init__(self, *, net="vgg16_bn", layers=[], distance="l1", layer_weights=[]):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance = {distance!r} is not allowed: choose one of {', '.join(map(repr, DISTANCES))}")
        if not isinstance(net, str) or not net:
            raise ValueError(f"net = {net!r} is not allowed: give {', '.join(NAMES)} or a classifier run directory")
        self.distance = distance
        self.net, norm, defaults = _network(net)
        # Buffers so `.to(device)` moves them with the network; None: a classifier sees plain [0, 1].
        mean, std = (None, None) if norm is None else (torch.tensor(v).view(1, 3, 1, 1) for v in norm)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.layers = _check_layers(self.net, net, layers, defaults)
        self.layer_weights = _check_weights(layer_weights, self.layers)
        self._terms = {}

    @property
    def terms(self):
        """{"perceptual/<layer>": distance} of the last forward; read lazily, .item() waits for the GPU."""
        return {k: v.item() for k, v in self._terms.items()}

    def train(self, mode=True):
        super().train(mode)
        self.net.eval()  # the trainer's loss.train() must not let BatchNorm/dropout change the features
        return self

    def forward(self, output, target):
        with torch.no_grad():  # the target is fixed: no graph, no activation memory
            want = self._features(target)
        got = self._features(output)
        # float32 distances: under bf16 autocast small feature differences would round to zero.
        dist = [DISTANCES[self.distance](got[k].float(), want[k].float()) for k in self.layers]
        self._terms = {f"perceptual/{k}": d.detach() for k, d in zip(self.layers, dist)}
        total = sum(self.layer_weights)
        return sum(w * d for w, d in zip(self.layer_weights, dist)) / total

    def _features(self, img):
        feats = {}

        def hook(name):
            def capture(module, inputs, out):
                # clone: a later in-place ReLU (VGG, ResNet) would overwrite what was captured; a
                # module run twice in one pass (ResNet block's relu) keeps its first output.
                feats.setdefault(name, out.clone())
                if len(feats) == len(self.layers):
                    raise _Stop
            return capture

        handles = [self.net.get_submodule(k).register_forward_hook(hook(k)) for k in self.layers]
        try:
            self.net(img if self.mean is None else (img - self.mean) / self.std)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [k for k in self.layers if k not in feats]
        if missing:
            raise ValueError(f"layers: {', '.join(missing)} never ran in the network's forward pass; choose layers it uses")
        return feats


def _network(net):
    """-> (frozen module, (mean, std) or None, default layers)."""
    if net in NAMES:
        model, (mean, std) = torchvision_backbone(net)
        return model, (mean, std), DEFAULT_LAYERS[net]
    from pathlib import Path

    from workbench.api import registry as plugin_manager
    from workbench.runs.checkpoint import load_model

    if not Path(net).exists():
        raise WorkbenchError(f"net = {net!r} is neither a torchvision backbone ({', '.join(NAMES)}) nor an existing "
                             f"classifier run directory or checkpoint file.{suggest(net, NAMES)} Check the name or path.")
    model, _ = load_model(net, plugin_manager.load())
    # Classifiers here train on plain [0, 1] images, so no normalisation; stages.N: all but the
    # last, whose features are too class-specific to guide restoration.
    stages = getattr(model, "stages", None)
    defaults = [f"stages.{i}" for i in range(max(len(stages) - 1, 1))] if isinstance(stages, nn.ModuleList) and len(stages) else []
    return freeze(model), None, defaults


def _check_layers(model, net, layers, defaults):
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not all(isinstance(k, str) for k in layers):
        raise ValueError(f"layers = {layers!r} is not allowed: give a list of module names such as {defaults or ['layer2']}")
    names = [n for n, _ in model.named_modules() if n]
    children = [n for n, _ in model.named_children()]
    if not layers:
        if not defaults:
            raise ValueError(f"layers: {net} has no default layers (no `stages`); name some, e.g. {', '.join(names[:8])}")
        return list(defaults)
    for k in layers:
        if k not in names:
            raise ValueError(f"layers: unknown layer {k!r} in {net}.{suggest(k, names)} "
                             f"Top-level modules: {', '.join(children)}; names look like {', '.join(repr(n) for n in names[1:4])}.")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers = {list(layers)!r} names a layer twice")
    return list(layers)


def _check_weights(weights, layers):
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"layer_weights = {weights!r} is not allowed: give a list of numbers, one per layer")
    if not weights:
        return [1.0] * len(layers)
    if len(weights) != len(layers):
        raise ValueError(f"layer_weights has {len(weights)} weights for {len(layers)} layers ({', '.join(layers)}): give one per layer")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"layer_weights = {list(weights)!r} is not allowed: numbers >= 0, not all 0")
    return [float(w) for w in weights]


@hookimpl
def register_losses(register):
    register("perceptual", Perceptual)
