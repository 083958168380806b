"""The plugin contracts as code: what a degradation, a model and a loss must do, and every optional
capability each may declare, with the default the engine assumes when it does not.

A plugin need not subclass these classes: the engine reads every capability through `capability`,
which falls back on the default written here. Subclassing them only saves writing the defaults.
docs/plugins.md lists each capability; tests/test_contracts.py keeps the two in step.
"""
import functools
import inspect

import torch

from workbench.api.params import Param
from workbench.errors import WorkbenchError


class Degradation:
    """Damages a clean image: `deg(img, rng)`, built from keyword parameters.

    `img` is a float tensor C x H x W in [0, 1] (RGB), `rng` a `numpy.random.Generator`. It returns
    the damaged image of the same shape and dtype, never modifies `img`, and the same generator
    state gives the same output. `workbench check NAME` tests all of this.
    """

    def __call__(self, img, rng):
        """The damaged image (or `(img, mask)` when `reports_mask`)."""
        raise NotImplementedError

    @property
    def reports_mask(self):
        """True: the call returns `(img, mask)`, mask a bool 1 x H x W tensor, True where pixels were
        destroyed (erase, watermark); it feeds masked metrics, inpainting baselines and masked models."""
        return False

    @property
    def keeps_luma(self):
        """True: the damage leaves luma intact (colour removal), so judging leads with RGB PSNR, not Y."""
        return False

    @property
    def is_random(self):
        """Whether the output depends on the generator (None: unknown). The base class answers from
        its `Param` attributes; `workbench check` then tests that seeds vary the output."""
        params = [p for p in vars(self).values() if isinstance(p, Param)]
        return any(p.is_random for p in params) if params else None

    @property
    def scale_factor(self):
        """The integer factor a super-resolution degradation shrinks by (the largest, for a range):
        `eval` crops ground truth to a multiple of it and ignores that many border pixels; 1 otherwise."""
        return 1

    def prepare(self, photo):
        """A real photo as the model expects it, for `restore`: a super-resolution degradation
        upsamples a low-res photo by its scale as it upsampled in training; others return it as is."""
        return photo

    def shrink(self, img, rng):
        """The low-res image (h // scale_factor x w // scale_factor) a super-resolution degradation
        makes, which the bicubic and Lanczos baselines upsample; None for other damage."""
        return None

    @property
    def baselines(self):
        """Names of the classical baselines that fit this damage (registered through the
        `register_baselines` hook), judged beside the model by `eval`, `grid` and the report."""
        return ("telea", "navier-stokes", "push-pull") if capability(self, "reports_mask") else ()

    def outpaint(self):
        """For `workbench extend`: an `Outpaint` saying which sides it erased strips on, how wide,
        and how it filled them, so each new strip starts as training's did; None if it never erases."""
        return None

    def __repr__(self):
        params = ", ".join(f"{k}={p.spec!r}" for k, p in vars(self).items() if isinstance(p, Param))
        return f"{type(self).__name__}({params})"


class Outpaint:
    """What `Degradation.outpaint` returns: `sides` it erased strips on ("left", ...; empty if it
    never erased a strip), the `strip` fraction (None: not one number) and `fill(known, shape, rng)`,
    which makes the unknown strip of `shape` beside the `known` pixels as training filled holes."""

    def __init__(self, *, sides, strip, fill):
        self.sides, self.strip, self.fill = frozenset(sides), strip, fill


class Model:
    """Restores a batch: `model(img)` maps B x 3 x H x W to B x 3 x H x W for any H and W (pad to a
    multiple and crop back inside). A `torch.nn.Module` built from keyword parameters; an untrained
    restorer should start near the identity."""

    @property
    def task(self):
        """"restore" (image -> image), "classify" (image -> B x classes logits) or "segment" (image -> B x
        classes x H x W logits, a class per pixel); for the last two the trainer passes `classes` from the
        data. Read on the class, before the model is built."""
        return "restore"

    @property
    def takes_mask(self):
        """True: the model is told where the holes are and is called `model(img, mask)`, mask a bool
        B x 1 x H x W tensor (True = missing), as inpainting tools and OpenCV's Telea are."""
        return False

    @property
    def learns_mask(self):
        """True: a blind model that learns where the damage is from the mask a degradation reports;
        the objective adds its `mask_loss` after each forward pass. Needs a degradation with `reports_mask`."""
        return False

    def mask_loss(self, mask):
        """With `learns_mask`: the auxiliary loss for the true `mask` of the batch it last saw."""
        return None

    def encoder_parameters(self):
        """The parameters of a pretrained encoder, frozen for `train.freeze_epochs` epochs (lesson 25)."""
        return ()

    @property
    def upscale(self):
        """The factor a model enlarges its input by: 1 for restorers that see the bicubic-upsampled image
        (lesson 25); s for a published super-resolution net, which `eval` feeds the low-res image itself."""
        return 1

    @property
    def tiles(self):
        """False: the model wants whole images (its context spans the image), so `restore` and `eval` say
        so when they cut a photo larger than --tile into tiles."""
        return True

    @property
    def label(self):
        """A short name for the tables that list it, e.g. a published model's 'ESRGAN x2'."""
        return type(self).__name__

    @staticmethod
    def from_state_dict(params, state_dict):
        """Read on the class: the model rebuilt from a checkpoint's weights and its [model] `params`, for an
        architecture its weights describe; None: the engine builds it from `params` alone."""
        return None


class Loss:
    """Scores a restoration: `loss(output, target)` -> a 0-dim tensor, zero for identical inputs,
    non-negative, differentiable. A `torch.nn.Module` built from keyword parameters."""

    @property
    def task(self):
        """"restore" (images), "classify" (logits B x C against class indices B), "segment" (logits B x C x
        H x W against class maps B x H x W, 255 = ignore) or "stylize" (a restorer trained with it is a
        stylizer: no damage, the photo is its input and its target). Read on the class."""
        return "restore"

    @property
    def default_weight(self):
        """The weight in the objective when the recipe gives none (read on the class)."""
        return 1.0

    @property
    def terms(self):
        """Sub-terms of the last call, {name: value}, logged as `loss/NAME` (composite losses)."""
        return {}

    @property
    def style_image(self):
        """The image whose style a stylize loss matches (3 x H x W in [0, 1]), shown beside the stylized
        photos in grids and reports; None for other losses."""
        return None


CONTRACTS = {"degradation": Degradation, "model": Model, "loss": Loss}


def capabilities(kind):
    """{name: first line of its docstring} of every optional capability of `kind` ('degradation', 'model', 'loss')."""
    cls = CONTRACTS[kind]
    # ASCII names only: a tool that rewrites classes (mutmut adds `xǁClassǁname…` members) adds none of ours
    return {name: inspect.getdoc(member).split("\n")[0] for name, member in vars(cls).items()
            if not name.startswith("_") and name.isascii() and isinstance(member, (property, staticmethod, type(capabilities)))}


_OWNERS = {name: cls for kind, cls in CONTRACTS.items() for name in capabilities(kind)}   # `task`: same default on both


def unwrap(obj):
    """The plugin's own object inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            obj = obj.module
        elif type(obj).__name__ == "OptimizedModule" and hasattr(obj, "_orig_mod"):
            obj = obj._orig_mod
        else:
            return obj


def capability(obj, name):
    """The value (or bound method) `obj` declares for capability `name`, else the contract's default.

    `obj` may be a built component, its class or factory (for `task` and `default_weight`), or a
    wrapped model. A misspelt `name` is a bug in the engine, so it raises at once.
    """
    if name not in _OWNERS:
        raise WorkbenchError(f"unknown capability '{name}'; known: {', '.join(sorted(_OWNERS))}")
    obj = unwrap(obj)
    try:
        value = getattr(obj, name)
    except AttributeError:
        member = vars(_OWNERS[name])[name]
        if isinstance(member, staticmethod):   # from_state_dict: asked of a factory, before there is a model
            return member.__func__
        return member.fget(obj) if isinstance(member, property) else functools.partial(member, obj)
    return value.fget(obj) if isinstance(value, property) else value   # a property read on a class


MASK_HELP = "a mask image of the photo's size, white (or any value >= 0.5) where pixels are missing"


def call_model(model, img, mask=None):
    """model(img, mask) for a model that `takes_mask`, model(img) otherwise: the one place that decides."""
    if not capability(model, "takes_mask"):
        return model(img)
    if mask is None:
        raise WorkbenchError(f"this model fills the holes it is shown: it needs {MASK_HELP} (restore --mask).")
    return model(img, mask.to(img.device, torch.bool))
