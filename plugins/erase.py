"""`erase`: wipes out regions of the photo, for inpainting and outpainting.

Rectangles follow Random Erasing (Zhong et al., AAAI 2020): a random area fraction and aspect
ratio per rectangle. Strokes follow the free-form masks of DeepFill v2 (Yu et al., "Free-Form Image
Inpainting with Gated Convolution", ICCV 2019): random-walk polylines of random brush width. A
centre box and a side strip are the classic inpainting and outpainting set-ups of fast.ai's 2022
super-resolution lesson exercises. The erased pixels are reported as the mask.
"""
import functools
import math

import cv2
import numpy as np
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation, Outpaint
from workbench.api.params import Param

SHAPES = ("rectangles", "strokes", "box", "strip")
SIDES = ("left", "right", "top", "bottom", "random")
FILLS = ("noise", "constant", "mean")
ASPECT = 3.0   # aspect ratios in [1/3, 3], about Random Erasing's [0.3, 1/0.3]; log-uniform: h/w symmetric
VERTICES = (4, 12)  # DeepFill v2's free-form masks: 4 to 12 vertices per stroke
MEAN_ANGLE, ANGLE_RANGE = 2 * math.pi / 5, 2 * math.pi / 15  # DeepFill v2's turn angles


class Erase(Degradation):
    """Erase regions and fill them with noise, a constant or the image mean; the mask marks them.

    shape: "rectangles" (random rectangles), "strokes" (free-form brush strokes), "box" (one box in
        the centre) or "strip" (a band along one side, for outpainting); a list picks one per image.
    count: number of rectangles or strokes.
    area: fraction of the image's area that each rectangle, or the centre box, covers; above 0 and
        below 1. The box has the image's aspect ratio: each side is sqrt(area) of the image's.
    width: brush width of strokes as a fraction of the image's shorter side.
    side: where the strip is: "left", "right", "top", "bottom" or "random".
    strip: fraction of the width (left/right) or height (top/bottom) the strip erases; above 0 and
        below 1.
    fill: "noise" (uniform random values), "constant" (`value`) or "mean" (per-channel image mean).
    value: the grey level in [0, 1] for fill = "constant".
    At least one pixel is always erased, never the whole image (unless it has only one pixel).
    """

    reports_mask = True

    def __init__(self, *, shape="rectangles", count=(1, 4), area=(0.05, 0.2), width=(0.05, 0.15),
                 side="random", strip=0.25, fill="noise", value=0.5):
        self.shape = Param(shape, name="shape", kind=str, choices=SHAPES)
        self.count = Param(count, name="count", kind=int, lo=1, hi=100)
        self.area = Param(area, name="area", kind=float, lo=0.0, hi=1.0)
        self.width = Param(width, name="width", kind=float, lo=0.0, hi=1.0)
        self.side = Param(side, name="side", kind=str, choices=SIDES)
        self.strip = Param(strip, name="strip", kind=float, lo=0.0, hi=1.0)
        self.fill = Param(fill, name="fill", kind=str, choices=FILLS)
        self.value = Param(value, name="value", kind=float, lo=0.0, hi=1.0)
        # Param bounds are inclusive; these fractions must be strictly inside (0, 1).
        for p, spec in ((self.area, area), (self.strip, strip)):
            if any(v <= 0 or v >= 1 for v in _values(p)):
                raise ValueError(f"{p.name} = {spec!r} is out of range: allowed above 0 and below 1")
        if any(v <= 0 for v in _values(self.width)):
            raise ValueError(f"width = {width!r} is out of range: allowed above 0, at most 1")

    @property
    def is_random(self):
        # Only the parameters the sampled shape and fill use count: box and strip are deterministic.
        if self.shape.is_random or self.fill.is_random:
            return True
        shape, fill = _values(self.shape)[0], _values(self.fill)[0]
        if fill == "noise" or shape in ("rectangles", "strokes"):
            return True
        if shape == "strip" and "random" in _values(self.side):
            return True
        used = [self.area] if shape == "box" else [self.side, self.strip]
        used += [self.value] if fill == "constant" else []
        return any(p.is_random for p in used)

    def outpaint(self):
        """`workbench extend` fills each new strip as training filled this erase's holes: a list or
        range gives its first entry, one the model saw. Sides are those a "strip" was erased on."""
        sides = set()
        if "strip" in _values(self.shape):
            chosen = _values(self.side)
            sides = set(SIDES[:4]) if "random" in chosen else set(chosen)
        strip = None if self.strip.is_random else self.strip.value
        fill, value = _values(self.fill)[0], float(_values(self.value)[0])
        return Outpaint(sides=sides, strip=strip, fill=functools.partial(fill_strip, fill=fill, value=value))

    def __call__(self, img, rng):
        c, h, w = img.shape
        # 1. where: a bool H x W mask
        shape = self.shape.sample(rng)
        if shape == "rectangles":
            mask = self._rectangles(h, w, rng)
        elif shape == "strokes":
            mask = self._strokes(h, w, rng)
        elif shape == "box":
            mask = _box(h, w, self.area.sample(rng))
        else:
            side = self.side.sample(rng)
            side = SIDES[int(rng.integers(4))] if side == "random" else side
            mask = _strip(h, w, side, self.strip.sample(rng))
        if mask.all() and mask.size > 1:  # nothing left to restore from: keep the centre pixel
            mask[h // 2, w // 2] = False
        # 2. what: the fill
        fill = self.fill.sample(rng)
        m = torch.from_numpy(mask).to(img.device)
        if fill == "noise":
            # index_copy_ at the flat positions: twice as fast as boolean-mask assignment, same order
            out = img.clone(memory_format=torch.contiguous_format)
            idx = torch.from_numpy(np.flatnonzero(mask)).to(img.device)
            out.view(c, -1).index_copy_(1, idx, torch.from_numpy(rng.random((c, len(idx)), dtype=np.float32)).to(img))
        else:
            val = img.mean(dim=(1, 2)) if fill == "mean" else torch.full((c,), self.value.sample(rng))
            out = torch.where(m, val.to(img)[:, None, None], img)
        return out, m[None]

    def _rectangles(self, h, w, rng):
        mask = np.zeros((h, w), bool)
        for _ in range(self.count.sample(rng)):
            a, r = self.area.sample(rng) * h * w, math.exp(rng.uniform(-math.log(ASPECT), math.log(ASPECT)))
            rh = min(h, max(1, round(math.sqrt(a * r))))
            rw = min(w, max(1, round(math.sqrt(a / r))))
            y, x = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
            mask[y:y + rh, x:x + rw] = True
        return mask

    def _strokes(self, h, w, rng):
        """DeepFill v2's free-form mask: zig-zag polylines with round joints."""
        mask = np.zeros((h, w), np.uint8)
        radius = math.hypot(h, w) / 8  # mean segment length, as in DeepFill v2
        for _ in range(self.count.sample(rng)):
            n = int(rng.integers(VERTICES[0], VERTICES[1] + 1))
            lo = MEAN_ANGLE - rng.uniform(0, ANGLE_RANGE)
            hi = MEAN_ANGLE + rng.uniform(0, ANGLE_RANGE)
            bw = max(1, round(self.width.sample(rng) * min(h, w)))
            pt = (int(rng.integers(w)), int(rng.integers(h)))
            cv2.circle(mask, pt, bw // 2, 1, -1)
            for i in range(n):
                angle = rng.uniform(lo, hi)
                angle = 2 * math.pi - angle if i % 2 == 0 else angle  # alternate turns: a zig-zag
                r = _clip(float(rng.normal(radius, radius / 2)), 0, 2 * radius)  # np.clip costs 4 us per number
                nxt = (int(_clip(pt[0] + r * math.cos(angle), 0, w - 1)), int(_clip(pt[1] + r * math.sin(angle), 0, h - 1)))
                cv2.line(mask, pt, nxt, 1, bw)
                cv2.circle(mask, nxt, bw // 2, 1, -1)  # round joints, no notches at the corners
                pt = nxt
        return mask.astype(bool)


# -- helpers ----------------------------------------------------------------------------------------
def fill_strip(known, shape, rng, *, fill, value):
    """A new strip of `shape` beside the `known` pixels, filled as `fill` fills erased pixels."""
    if fill == "noise":  # uniform in [0, 1), as erase draws it
        return torch.from_numpy(rng.random(shape, dtype=np.float32))
    if fill == "mean":  # erase uses the clean image's mean; the known part is our best estimate of it
        return known.mean(dim=(1, 2), keepdim=True).expand(shape).clone()
    return torch.full(shape, value)


def _values(p):
    """Every value a Param can take (a numeric range gives its two ends)."""
    if p.range is not None:
        return list(p.range)
    return list(p.choices) if p.choices is not None else [p.value]


def _clip(x, lo, hi):
    return min(max(x, lo), hi)


def _span(n, frac):
    """Pixels of a side of n pixels that a fraction covers: at least 1, fewer than n where possible."""
    return min(max(1, round(n * frac)), max(1, n - 1))


def _box(h, w, area):
    mask = np.zeros((h, w), bool)
    bh, bw = _span(h, math.sqrt(area)), _span(w, math.sqrt(area))
    y, x = (h - bh) // 2, (w - bw) // 2
    mask[y:y + bh, x:x + bw] = True
    return mask


def _strip(h, w, side, frac):
    mask = np.zeros((h, w), bool)
    if side in ("left", "right"):
        n = _span(w, frac)
        mask[:, slice(0, n) if side == "left" else slice(w - n, w)] = True
    else:
        n = _span(h, frac)
        mask[slice(0, n) if side == "top" else slice(h - n, h)] = True
    return mask


@hookimpl
def register_degradations(register):
    register("erase", Erase)
