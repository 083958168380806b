"""Honest classical baselines: what a restorer must beat to be worth anything.

Each baseline sees only what a restorer sees (the damaged image, and the mask of destroyed pixels
that masked degradations report), except the super-resolution ones, which upsample the low-res
image itself, as the published bicubic rows do.
"""
import cv2
import numpy as np
from PIL import Image

from workbench.api.degradation import from_uint8_hwc, to_uint8_hwc
from workbench.images.masks import push_pull

INPAINT_RADIUS = 5   # pixels around the hole OpenCV looks at; 3-5 is its documented sweet spot


def for_chain(chain):
    """{method name: fn(clean, damaged, mask) -> image} for the degradations in `chain`."""
    types = [name for name, _ in chain]
    found = {}
    if types == ["downsample"]:
        found.update(_upsamplers(chain[0][1]))
    if any(getattr(deg, "reports_mask", False) for _, deg in chain):
        found["telea"] = lambda clean, damaged, mask: _inpaint(damaged, mask, cv2.INPAINT_TELEA)
        found["navier-stokes"] = lambda clean, damaged, mask: _inpaint(damaged, mask, cv2.INPAINT_NS)
        found["push-pull"] = lambda clean, damaged, mask: _push_pull(damaged, mask)
    if "jpeg" in types:
        found["bilateral"] = lambda clean, damaged, mask: _bilateral(damaged)
    return found


def _upsamplers(deg):
    """Bicubic and Lanczos upsampling of the low-res image, for a fixed integer scale."""
    scale, down = getattr(deg, "scale", None), getattr(deg, "filter", None)
    if scale is None or scale.is_random or down is None or down.is_random:
        return {}
    s, f = scale.value, down.value
    from workbench_plugins.downsample import FILTERS

    def upsample(resample):
        def fn(clean, damaged, mask):
            h, w = clean.shape[-2:]
            small = Image.fromarray(to_uint8_hwc(clean)).resize((max(1, w // s), max(1, h // s)), FILTERS[f])
            return from_uint8_hwc(small.resize((w, h), resample))
        return fn

    return {"bicubic": upsample(Image.BICUBIC), "lanczos": upsample(Image.LANCZOS)}


def _inpaint(damaged, mask, method):
    """OpenCV inpainting of the destroyed pixels (Telea 2004; Bertalmio et al. 2001)."""
    if mask is None or not mask.any():
        return damaged
    m = mask[0].cpu().numpy().astype(np.uint8) * 255
    return from_uint8_hwc(cv2.inpaint(to_uint8_hwc(damaged), m, INPAINT_RADIUS, method))


def _bilateral(damaged):
    """Edge-preserving smoothing: a cheap deblocker that flattens block edges but keeps real ones."""
    return from_uint8_hwc(cv2.bilateralFilter(to_uint8_hwc(damaged), d=5, sigmaColor=20, sigmaSpace=3))


def _push_pull(damaged, mask):
    """The smooth pyramid fill a masked U-Net starts from: what its training adds is the gap to this."""
    if mask is None or not mask.any():
        return damaged
    return push_pull(damaged[None], mask[None])[0]
