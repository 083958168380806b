"""Property tests run on every registered degradation, built-in or from a plugin."""
import numpy as np
import pytest
import torch
from conftest import VIGNETTE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.api import registry as plugin_manager
from workbench.api.registry import build
from workbench.author.degradations import (
    check_degradation,
    check_deterministic,
    check_no_mutation,
    check_output,
    check_varies,
)
from workbench.author.probes import make_image

ALL = plugin_manager.load([VIGNETTE])
NAMES = ALL.degradations.names()
sizes = st.tuples(st.integers(8, 48), st.integers(8, 48))
fast = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def deg_of(name):
    return build(ALL.degradations, {"type": name})[1]


def test_every_builtin_is_covered():
    assert {"downsample", "grayscale", "jpeg", "watermark", "erase", "noise", "blur", "vignette"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@fast
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
def test_shape_dtype_range_kept(name, size, seed):
    check_output(deg_of(name), make_image(*size, seed=seed % 1000), seed=seed)


@pytest.mark.parametrize("name", NAMES)
@fast
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_output(name, size, seed):
    check_deterministic(deg_of(name), make_image(*size), seed=seed)


@pytest.mark.parametrize("name", NAMES)
@fast
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
def test_input_never_modified(name, size, seed):
    check_no_mutation(deg_of(name), make_image(*size), seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_differ_where_random(name):
    deg = deg_of(name)
    # Defaults of some degradations are fixed; give every numeric range-able parameter a range.
    check_varies(deg, make_image(40, 56))


@pytest.mark.parametrize("name, params", [("downsample", {"scale": [2, 4]}), ("jpeg", {"quality": [10, 60]}),
                                          ("blur", {"sigma": [0.5, 3.0]}), ("grayscale", {"amount": [0.2, 1.0]})])
def test_random_ranges_make_random_output(name, params):
    deg = build(ALL.degradations, {"type": name, **params})[1]
    assert deg.is_random
    check_varies(deg, make_image(40, 56))


@pytest.mark.parametrize("name", NAMES)
def test_odd_tiny_non_square_sizes(name):
    rows = check_degradation(deg_of(name), name=name, sizes=((8, 8), (1, 1), (2, 9), (9, 2), (31, 17), (17, 64)))
    failed = [r for r in rows if not r[1]]
    assert not failed, failed


def test_fixed_parameters_ignore_the_seed():
    img = make_image(32, 32)
    for name, params in [("downsample", {"scale": 3}), ("jpeg", {"quality": 40}), ("grayscale", {}), ("blur", {"sigma": 1.5})]:
        deg = build(ALL.degradations, {"type": name, **params})[1]
        assert deg.is_random is False
        assert torch.equal(deg(img, np.random.default_rng(1)), deg(img, np.random.default_rng(2)))
