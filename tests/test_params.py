import numpy as np
import pytest

from workbench.api.params import Param


def rng(seed=0):
    return np.random.default_rng(seed)


def test_fixed_value_is_not_random():
    p = Param(30, name="quality", kind=int, lo=1, hi=100)
    assert not p.is_random and p.sample(rng()) == 30


def test_int_range_is_inclusive_and_random():
    p = Param([2, 4], name="scale", kind=int)
    seen = {p.sample(rng(s)) for s in range(50)}
    assert seen == {2, 3, 4} and p.is_random


def test_float_range_samples_inside():
    p = Param([0.5, 2.0], name="sigma")
    vals = [p.sample(rng(s)) for s in range(50)]
    assert all(0.5 <= v <= 2.0 for v in vals) and len(set(vals)) > 40


def test_choices_list_and_explicit_table():
    assert {Param([2, 3, 4], name="s", kind=int).sample(rng(s)) for s in range(40)} == {2, 3, 4}
    assert {Param({"choices": [2, 4]}, name="s", kind=int).sample(rng(s)) for s in range(40)} == {2, 4}
    assert Param(["a", "b"], name="mode", kind=str).choices == ["a", "b"]


def test_int_promoted_to_float():
    assert Param(1, name="sigma").sample(rng()) == 1.0


@pytest.mark.parametrize("spec, kw, words", [
    (0, dict(kind=int, lo=1, hi=100), "quality = 0 is out of range: allowed 1 to 100"),
    (101, dict(kind=int, lo=1, hi=100), "out of range"),
    ([50, 10], dict(kind=int), "lo > hi"),
    (2.5, dict(kind=int), "must be an integer"),
    (True, dict(kind=int), "must be an integer"),
    ("x", dict(kind=float), "must be a number"),
    ("huge", dict(kind=str, choices=["a", "b"]), "choose one of"),
    ([], dict(kind=str), "must not be empty"),
    ({"rnage": [1, 2]}, dict(kind=int), "range = [lo, hi]"),
])
def test_bad_specs_name_the_parameter(spec, kw, words):
    with pytest.raises(ValueError) as e:
        Param(spec, name="quality", **kw)
    assert "quality" in str(e.value) and words in str(e.value)
