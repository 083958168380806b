"""Contract checks for degradations, importable by any plugin's own test suite.

Each check raises ContractViolation naming the property it tests; `check_degradation` runs them
all and returns one (property, passed, reason) row each.
"""
import numpy as np
import torch

from workbench.degradation import apply_chain

SIZES = ((8, 8), (7, 13), (33, 20), (64, 48))   # tiny, odd, non-square both ways, ordinary
SEEDS = (0, 1, 2, 3, 4)


class ContractViolation(AssertionError):
    def __init__(self, prop, reason):
        super().__init__(f"{prop}: {reason}")
        self.prop, self.reason = prop, reason


def make_image(h, w, seed=0):
    """A smooth photo-like image plus texture, so every degradation has something to damage."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2])
    return (0.7 * base + 0.3 * torch.rand(3, h, w, generator=g)).clamp(0, 1)


def _run(deg, img, seed, name="degradation"):
    out = deg(img, np.random.default_rng(seed))
    mask = None
    if getattr(deg, "reports_mask", False):
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ContractViolation("mask", f"{name} sets reports_mask but returned {type(out).__name__}, not (img, mask)")
        out, mask = out
    return out, mask


def check_output(deg, img, seed=0, name="degradation"):
    """Shape, dtype and [0, 1] range kept; a claimed mask is a bool 1 x H x W tensor."""
    out, mask = _run(deg, img, seed, name)
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


def check_deterministic(deg, img, seed=0, name="degradation"):
    """The same generator state gives the same output."""
    a, _ = _run(deg, img, seed, name)
    b, _ = _run(deg, img, seed, name)
    if not torch.equal(a, b):
        raise ContractViolation("determinism", f"two calls with seed {seed} differ by up to {(a - b).abs().max().item():.3g}")


def check_varies(deg, img, seeds=SEEDS, name="degradation"):
    """Different seeds give different outputs where the degradation says it is random."""
    if getattr(deg, "is_random", None) is not True:
        return
    outs = [_run(deg, img, s, name)[0] for s in seeds]
    if all(torch.equal(outs[0], o) for o in outs[1:]):
        raise ContractViolation("variety", f"is_random is True but seeds {list(seeds)} all gave the same output")


def check_no_mutation(deg, img, seed=0, name="degradation"):
    """The input tensor is never modified."""
    before = img.clone()
    _run(deg, img, seed, name)
    if not torch.equal(before, img):
        raise ContractViolation("no mutation", "the input image was modified in place")


def check_degradation(deg, name="degradation", sizes=SIZES):
    """Run every check on every size; returns [(property, passed, reason)]."""
    rows = []
    for prop, fn in (("shape, dtype, range", check_output), ("determinism", check_deterministic),
                     ("variety", check_varies), ("no mutation", check_no_mutation)):
        try:
            for h, w in sizes:
                fn(deg, make_image(h, w), name=name)
            rows.append((prop, True, ""))
        except ContractViolation as e:
            rows.append((prop, False, f"{e.reason} (at {h}x{w})"))
    try:
        apply_chain([(name, deg)], make_image(*sizes[-1]), np.random.default_rng(0))
        rows.append(("chains", True, ""))
    except (TypeError, ValueError) as e:
        rows.append(("chains", False, str(e)))
    return rows
