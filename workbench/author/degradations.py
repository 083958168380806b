"""Contract checks for degradations, importable by any plugin's own test suite.

Each check raises ContractViolation naming the property it tests; `check_degradation` runs them all
and returns one (property, passed, reason) row each, a failing row's reason naming the property;
`assert_degradation_contract` raises AssertionError listing every failure, for a plugin's pytest suite.
"""
import math
import time

import numpy as np
import torch

from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.author.probes import (
    ContractViolation,
    _assert,
    _at,
    make_image,
    run_check,
)

SIZES = ((48, 64), (64, 48))                  # the core properties, at ordinary non-square sizes
ODD_SIZES = ((1, 1), (2, 9), (9, 2), (8, 8), (7, 13), (33, 20))   # tiny, odd, non-square both ways
SEEDS = (0, 1, 2, 3, 4)
SPEED_LIMIT = 2000       # ms per megapixel; generous (the slowest built-in, blur, takes ~300): flags only pathologies


# -- degradations ---------------------------------------------------------------------------------
def _run(deg, img, seed):
    out = deg(img, np.random.default_rng(seed))
    mask = None
    if capability(deg, "reports_mask"):
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ContractViolation("mask", f"reports_mask is set but it returned {type(out).__name__}, not (img, mask)")
        out, mask = out
    return out, mask


def check_output(deg, img, seed=0):
    """Shape, dtype and [0, 1] range kept; a claimed mask is a bool 1 x H x W tensor."""
    out, mask = _run(deg, img, seed)
    if isinstance(out, tuple):
        raise ContractViolation("shape", "returned a tuple, not a tensor: set reports_mask = True if it returns (img, mask)")
    if not isinstance(out, torch.Tensor):
        raise ContractViolation("shape", f"returned {type(out).__name__}, not a tensor")
    if out.shape != img.shape:
        raise ContractViolation("shape", f"input {tuple(img.shape)} came back as {tuple(out.shape)}")
    if out.dtype != img.dtype:
        raise ContractViolation("dtype", f"input {img.dtype} came back as {out.dtype}")
    if not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        raise ContractViolation("range", f"values span [{out.min().item():.3g}, {out.max().item():.3g}], not [0, 1]")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (1, *img.shape[1:]):
            raise ContractViolation("mask", f"mask must be a bool tensor of shape (1, {img.shape[1]}, {img.shape[2]})")
    return out, mask


def check_deterministic(deg, img, seed=0):
    """The same generator state gives the same output."""
    a, _ = _run(deg, img, seed)
    b, _ = _run(deg, img, seed)
    if not torch.equal(a, b):
        raise ContractViolation("determinism", f"two calls with seed {seed} differ by up to {(a - b).abs().max().item():.3g}")


def check_varies(deg, img, seeds=SEEDS):
    """Different seeds give different outputs where the degradation says it is random."""
    if capability(deg, "is_random") is not True:
        return
    outs = [_run(deg, img, s)[0] for s in seeds]
    if all(torch.equal(outs[0], o) for o in outs[1:]):
        raise ContractViolation("variety", f"is_random is True but seeds {list(seeds)} all gave the same output")


def check_no_mutation(deg, img, seed=0):
    """The input tensor is never modified."""
    before = img.clone()
    _run(deg, img, seed)
    if not torch.equal(before, img):
        raise ContractViolation("no mutation", "the input image was modified in place")


def check_mask(deg, img, seeds=SEEDS):
    """A degradation claiming a mask returns a bool 1 x H x W one, non-empty for at least one seed."""
    if not capability(deg, "reports_mask"):
        return "no mask claimed"
    masks = [check_output(deg, img, seed)[1] for seed in seeds]
    if not any(m.any() for m in masks):
        raise ContractViolation("mask", f"reports_mask is True but the mask is empty for seeds {list(seeds)}")


def check_speed(deg, *, side=512, limit=SPEED_LIMIT, repeats=3):
    """Milliseconds per megapixel on a side x side image, best of `repeats` (first calls warm caches)."""
    img, best = make_image(side, side), math.inf
    for seed in range(repeats):
        start = time.perf_counter()
        _run(deg, img, seed)
        best = min(best, time.perf_counter() - start)
        if best > 1:   # already far too slow: more calls would only waste the user's time
            break
    ms = best * 1000 / (side * side / 1e6)
    if ms > limit:
        raise ContractViolation("speed", f"{ms:.0f} ms per megapixel on a {side}x{side} image, above the {limit} ms/MP limit")
    return ms


def check_degradation(deg, name="degradation", sizes=SIZES, *, odd_sizes=ODD_SIZES, speed=True):
    """Run every check; returns [(property, passed, reason)]."""
    def each(fn, prop):
        def run():
            for h, w in sizes:
                _at(h, w, fn, deg, make_image(h, w), prop=prop)
        return run

    def odd():
        for h, w in odd_sizes:
            try:
                _at(h, w, check_output, deg, make_image(h, w), prop="shape")
                _at(h, w, check_no_mutation, deg, make_image(h, w), prop="no mutation")
            except ContractViolation as e:   # one property, so a failure here is told apart from the core rows
                raise ContractViolation("odd/tiny/non-square sizes", str(e)) from e
        return ", ".join(f"{h}x{w}" for h, w in odd_sizes)

    def chains():   # the engine's own output checks, as training runs them
        apply_chain([(name, deg)], make_image(*sizes[-1]), np.random.default_rng(0))

    random = capability(deg, "is_random") is True
    rows = [run_check("shape, dtype, range", each(check_output, "shape")),
            run_check("determinism", each(check_deterministic, "determinism")),
            run_check("variety", each(check_varies, "variety")) if random else
            ("variety", True, "not random (is_random is not True): nothing to compare"),
            run_check("no mutation", each(check_no_mutation, "no mutation")),
            run_check("odd/tiny/non-square sizes", odd),
            run_check("mask", lambda: check_mask(deg, make_image(*sizes[-1]))),
            run_check("chains", chains)]
    if speed:
        rows.append(run_check("speed", lambda: f"{check_speed(deg):.0f} ms/MP on 512x512"))
    return rows


def assert_degradation_contract(deg, name="degradation", **kw):
    """AssertionError listing every broken property; for a plugin's own tests."""
    _assert(check_degradation(deg, name, **kw), "degradation", name)
