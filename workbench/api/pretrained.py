"""torchvision ImageNet backbones, loaded from torchvision's own cache file so that an offline
machine works once the file is there, and a missing file is one clear sentence, not a traceback.

The network is only touched when the file is missing; everything read goes through
`weights_only=True`, so a tampered file cannot run code.
"""
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch

from workbench.errors import WorkbenchError, first_line, suggest

NAMES = ("vgg16_bn", "resnet18", "resnet34")   # the perceptual loss's choices
METRIC_NETS = ("alexnet", "vgg16")             # LPIPS's and DISTS's backbones (workbench.judge.perceptual)


def _weights(name):
    if name not in NAMES + METRIC_NETS:
        raise ValueError(f"net = {name!r} is not a known torchvision backbone.{suggest(name, NAMES)} Allowed: {', '.join(NAMES)}.")
    import torchvision  # here, not at the top: it costs every process ~165 MB that loads the plugins

    # IMAGENET1K_V1 is DEFAULT for all three; naming it keeps the file fixed if torchvision adds a V2.
    return torchvision.models.get_model_weights(name).IMAGENET1K_V1


def weights_url(name):
    """Where torchvision downloads `name`'s ImageNet weights from."""
    return _weights(name).url


def weights_path(name):
    """The file torchvision caches those weights in; follows $TORCH_HOME (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights_url(name)).path).name


def normalization(name):
    """The (mean, std) per RGB channel the backbone was trained with, for [0, 1] images."""
    tfm = _weights(name).transforms()
    return tuple(tfm.mean), tuple(tfm.std)


def torchvision_backbone(name):
    """A frozen ImageNet `name` in eval mode -> (module, (mean, std)).

    Reads torchvision's cached file; only when it is missing tries to download it (hash checked).
    Raises WorkbenchError saying which file to fetch and where to put it when that fails.
    """
    url, path = weights_url(name), weights_path(name)
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    state = _read(path) if path.is_file() else _download(name, url, path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise WorkbenchError(f"{path} does not hold {name} weights ({first_line(e)}); delete it so the right file can be fetched from {url}.") from e
    return freeze(model), normalization(name)


def freeze(model):
    """Eval mode and no gradients: a fixed feature extractor whose BatchNorm keeps ImageNet statistics."""
    model.eval()
    model.requires_grad_(False)
    return model


def _read(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WorkbenchError(f"{path} holds Python objects other than weights (it may run code), so it was refused; delete it and fetch the file again.") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WorkbenchError(f"{path} is corrupt or not a weights file ({first_line(e)}); delete it and fetch the file again.") from e


def ensure_cached(name, use):
    """Make sure torchvision's cache holds `name`'s weights (downloading them once where there is a
    network), for a library that loads them itself; `use` names what needs them in the error."""
    url, path = weights_url(name), weights_path(name)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), hash_prefix=_hash_prefix(path), progress=False)
        except Exception as e:  # as in _download: whatever failed, the remedy is to fetch the file by hand
            raise WorkbenchError(f"{use} needs torchvision's {name} ImageNet weights, not available offline: download {url} "
                                 f"and save it as {path} (or set TORCH_HOME).") from e
    return path


def _hash_prefix(path):
    """torchvision names its files NAME-HASHPREFIX.pth: the prefix of the file's SHA-256."""
    return path.stem.rsplit("-", 1)[-1]


def _download(name, url, path):
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, progress=False, weights_only=True)
    except Exception as e:  # no network, proxy, DNS, HTTP error or a bad hash: the remedy is the same
        raise WorkbenchError(f"{name} ImageNet weights are not available offline: download {url} and save it as {path} "
                             f"(or set TORCH_HOME), or use a classifier run directory as the perceptual network.") from e


