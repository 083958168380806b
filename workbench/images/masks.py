"""Models that are told where the holes are: calling them, reading users' masks, a classical fill.

A restorer normally sees only the damaged image. An inpainting model can instead be given the mask
of missing pixels, as every practical inpainting tool is (DeepFill, LaMa) and as OpenCV's Telea
baseline is: such a model sets `takes_mask = True` and is called `model(img, mask)`, mask a bool
B x 1 x H x W tensor, True where pixels are missing. `forward` below is the one place that decides.

A blind model (one that must find the damage itself) can still learn *where* the damage is from
the mask a degradation reports: it sets `learns_mask = True` and defines `mask_loss(mask)`, which
the training objective (workbench.train.objective, for `run` and `lr-find`) calls after each forward
pass with the batch's true mask and adds to the loss (logged as `loss/mask`).
At inference it is called `model(img)` like any blind model.
"""
import torch
from torch.nn import functional as F

from workbench.errors import WorkbenchError
from workbench.images.files import read_image

MASK_HELP = "a mask image of the photo's size, white (or any value >= 0.5) where pixels are missing"


def takes_mask(model):
    """Whether `model` (or the module inside a DistributedDataParallel wrapper) wants the mask."""
    return bool(getattr(getattr(model, "module", model), "takes_mask", False))


def forward(model, img, mask):
    """model(img, mask) for a model that takes the mask, model(img) otherwise."""
    if not takes_mask(model):
        return model(img)
    if mask is None:
        raise WorkbenchError(f"this model fills the holes it is shown: it needs {MASK_HELP} (restore --mask).")
    return model(img, mask.to(img.device, torch.bool))


def learns_mask(model):
    """Whether `model` (or the module inside a DistributedDataParallel wrapper) learns where the damage is."""
    return bool(getattr(getattr(model, "module", model), "learns_mask", False))


def mask_loss(model, mask):
    """The model's auxiliary loss for the true `mask` of the batch it last saw, or None if it has none."""
    return getattr(model, "module", model).mask_loss(mask) if learns_mask(model) else None


def check_mask_source(model, chain):
    """A model that learns where the damage is needs a degradation that says where it put it."""
    if not learns_mask(model):
        return
    if not any(getattr(deg, "reports_mask", False) for _, deg in chain):
        names = ", ".join(name for name, _ in chain) or "none"
        raise WorkbenchError(f"the model learns where the damage is from the mask a degradation reports, but none of "
                             f"the recipe's degradations ({names}) reports one: use one that does (watermark, "
                             f"erase) or turn the model's detection off (model.detect = false for the unet).")


def read_mask(path, size):
    """A user's mask file -> bool 1 x H x W, True where pixels are missing; `size` is the photo's (w, h)."""
    img = read_image(path)
    if (img.shape[2], img.shape[1]) != tuple(size):
        raise WorkbenchError(f"{path}: the mask is {img.shape[2]}x{img.shape[1]} but the photo is {size[0]}x{size[1]}; "
                             f"the mask must be {MASK_HELP}.")
    return img.mean(dim=0, keepdim=True) >= 0.5


@torch.no_grad()
def push_pull(img, hole):
    """Fill the holes of a B x C x H x W image smoothly from the known pixels around them.

    Push-pull (Gortler et al., "The Lumigraph", SIGGRAPH 1996): average the known pixels down a
    pyramid, each level's weight the known fraction capped at 1, then fill each level's gaps from
    the level above on the way back up. Linear in the pixel count and blind to hole size, so it
    gives a masked network a starting fill at any resolution (a convolution's reach is fixed).
    Runs without gradients: it is a fixed pre-fill, not a layer to train through.
    """
    x, hole = img.float(), hole.to(torch.bool)
    w = (~hole).float().expand_as(x[:, :1])
    levels = []
    while True:
        levels.append((x, w))
        h, wd = x.shape[-2:]
        if h == 1 and wd == 1:
            break
        pad = (0, wd % 2, 0, h % 2)  # odd sides: a zero-weight row or column
        s = F.avg_pool2d(F.pad(w, pad), 2) * 4
        x = F.avg_pool2d(F.pad(x * w, pad), 2) * 4 / s.clamp_min(1e-8)
        w = s.clamp_max(1.0)
    x, w = levels.pop()
    x = x * w + 0.5 * (1 - w)  # no known pixel at all: mid-grey
    while levels:
        finer, fw = levels.pop()
        up = F.interpolate(x, size=finer.shape[-2:], mode="bilinear", align_corners=False)
        x = finer * fw + up * (1 - fw)
    return torch.where(hole, x, img.float()).to(img.dtype)
