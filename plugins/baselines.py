"""Honest classical baselines: what a restorer must beat to be worth anything.

Registered through `register_baselines` like any plugin's: each name maps to a factory
`factory(deg, chain) -> fn(clean, damaged, mask) -> image`, or None where it cannot judge that
chain honestly. A degradation names the baselines that fit its damage (its `baselines`
capability); `eval`, `grid` and the report judge them beside the model.

Each sees only what a restorer sees (the damaged image, and the mask of destroyed pixels that
masked degradations report), except the upsamplers, which enlarge the low-res image itself, as the
published bicubic rows do.
"""
import cv2
import numpy as np
from PIL import Image

from workbench import hookimpl
from workbench.api.contracts import capability
from workbench.api.pixels import from_uint8_hwc, to_uint8_hwc
from workbench.images.masks import push_pull

INPAINT_RADIUS = 5   # pixels around the hole OpenCV looks at; 3-5 is its documented sweet spot


def upsampler(resample, doc):
    """Bicubic or Lanczos enlargement of the degradation's own low-res image (its `shrink`)."""
    def factory(deg, chain):
        # Honest only when that damage is all there is and fixed: then shrink() gives the very
        # low-res image the model was shown, whatever generator it is handed.
        if len(chain) != 1 or capability(deg, "is_random") is not False:
            return None

        def fn(clean, damaged, mask):
            small = capability(deg, "shrink")(clean, np.random.default_rng(0))
            if small is None:
                raise ValueError(f"{deg!r} names an upsampling baseline but its shrink() returns no low-res image")
            h, w = clean.shape[-2:]
            return from_uint8_hwc(Image.fromarray(to_uint8_hwc(small)).resize((w, h), resample))
        return fn
    factory.__doc__ = doc
    return factory


def inpainter(method, doc):
    """OpenCV inpainting of the destroyed pixels (Telea 2004; Bertalmio et al. 2001)."""
    def fn(clean, damaged, mask):
        if mask is None or not mask.any():
            return damaged
        m = mask[0].cpu().numpy().astype(np.uint8) * 255
        return from_uint8_hwc(cv2.inpaint(to_uint8_hwc(damaged), m, INPAINT_RADIUS, method))

    def factory(deg, chain):
        return fn
    factory.__doc__ = doc
    return factory


def always(fn):
    """The factory of a baseline that judges any chain that names it; documented by `fn`."""
    def factory(deg, chain):
        return fn
    factory.__doc__ = fn.__doc__
    return factory


def _push_pull(clean, damaged, mask):
    """The smooth pyramid fill a masked U-Net starts from: what its training adds is the gap to this."""
    if mask is None or not mask.any():
        return damaged
    return push_pull(damaged[None], mask[None])[0]


def _bilateral(clean, damaged, mask):
    """Edge-preserving smoothing: a cheap deblocker that flattens block edges but keeps real ones."""
    return from_uint8_hwc(cv2.bilateralFilter(to_uint8_hwc(damaged), d=5, sigmaColor=20, sigmaSpace=3))


@hookimpl
def register_baselines(register):
    register("bicubic", upsampler(Image.BICUBIC, "Bicubic enlargement of the low-res image (the published SR baseline)."))
    register("lanczos", upsampler(Image.LANCZOS, "Lanczos enlargement of the low-res image."))
    register("telea", inpainter(cv2.INPAINT_TELEA, "OpenCV's fast-marching inpainting of the masked pixels (Telea 2004)."))
    register("navier-stokes", inpainter(cv2.INPAINT_NS, "OpenCV's fluid-dynamics inpainting (Bertalmio et al. 2001)."))
    register("push-pull", always(_push_pull))
    register("bilateral", always(_bilateral))
