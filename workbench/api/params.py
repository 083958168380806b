"""Degradation parameters: a fixed value, a [lo, hi] range sampled per image, or a list of choices.

Recipes write `quality = 30`, `quality = [10, 50]` (range) or `scale = [2, 3, 4]` (choices).
A two-item numeric list is a range; for exactly two choices write `scale = { choices = [2, 4] }`.
"""
import numbers


def _type_name(kind):
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]


class Param:
    """One parameter spec; `sample(rng)` draws a value per image from a numpy Generator."""

    def __init__(self, spec, *, name, kind=float, lo=None, hi=None, choices=None):
        self.name, self.kind, self.bounds, self.allowed = name, kind, (lo, hi), choices
        self.spec = spec
        self.range, self.choices = None, None
        if isinstance(spec, dict):
            if set(spec) == {"range"}:
                self.range = self._check_range(spec["range"])
            elif set(spec) == {"choices"}:
                self.choices = self._check_choices(spec["choices"])
            else:
                raise ValueError(f"{name} = {spec!r}: a table must be {{ range = [lo, hi] }} or {{ choices = [...] }}")
        elif isinstance(spec, (list, tuple)):
            numeric = kind in (int, float)
            if numeric and len(spec) == 2:
                self.range = self._check_range(spec)
            else:
                self.choices = self._check_choices(spec)
        else:
            self.value = self._check_value(spec)

    # -- validation -------------------------------------------------------------------------------
    def _check_value(self, v):
        kind, name = self.kind, self.name
        ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
        if kind is float and isinstance(v, numbers.Real) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok:
            raise ValueError(f"{name} must be {_type_name(kind)}, got {v!r}")
        lo, hi = self.bounds
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{name} = {v!r} is out of range: allowed {_bounds_text(lo, hi)}")
        if self.allowed is not None and v not in self.allowed:
            raise ValueError(f"{name} = {v!r} is not allowed: choose one of {', '.join(map(repr, self.allowed))}")
        return v

    def _check_range(self, pair):
        if len(pair) != 2:
            raise ValueError(f"{self.name} range must be [lo, hi], got {list(pair)!r}")
        lo, hi = (self._check_value(v) for v in pair)
        if lo > hi:
            raise ValueError(f"{self.name} range [{lo}, {hi}] has lo > hi: write [{hi}, {lo}]")
        return lo, hi

    def _check_choices(self, items):
        if len(items) == 0:
            raise ValueError(f"{self.name} choices must not be empty")
        return [self._check_value(v) for v in items]

    # -- use --------------------------------------------------------------------------------------
    @property
    def is_random(self):
        if self.range is not None:
            return self.range[0] != self.range[1]
        return self.choices is not None and len(set(self.choices)) > 1

    def sample(self, rng):
        if self.range is not None:
            lo, hi = self.range
            if self.kind is int:
                return int(rng.integers(lo, hi + 1))
            return float(rng.uniform(lo, hi))
        if self.choices is not None:
            return self.choices[int(rng.integers(len(self.choices)))]
        return self.value

    @property
    def max(self):
        """Largest value this parameter can take (for sizing, e.g. the border crop of a scale)."""
        if self.range is not None:
            return self.range[1]
        return max(self.choices) if self.choices is not None else self.value

    def __repr__(self):
        return f"Param({self.name}={self.spec!r})"


def _bounds_text(lo, hi):
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"
