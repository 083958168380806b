"""`edges`: what each drawing is, against OpenCV computed here, and how its parameters move it."""
import cv2
import numpy as np
import pytest
import torch

from workbench.author import assert_degradation_contract
from workbench_plugins.edges import Edges


def square(h=48, w=64):
    """A bright square on a dark ground, lightly shaded: one clear outline."""
    img = torch.full((3, h, w), 0.2)
    img[:, 12:36, 16:48] = 0.8
    img += torch.linspace(0, 0.05, w)
    return img


def test_canny_is_opencv_canny_on_the_blurred_luma_as_dark_lines_on_white():
    img = square()
    out = Edges(method="canny", sigma=1.0, low=30, high=90)(img, np.random.default_rng(0))
    gray = np.tensordot(np.array([0.299, 0.587, 0.114], dtype=np.float32), img.numpy(), axes=1)
    blurred = cv2.GaussianBlur(gray, (0, 0), 1.0, borderType=cv2.BORDER_REPLICATE)
    lines = cv2.Canny(np.clip(blurred * 255 + 0.5, 0, 255).astype(np.uint8), 30, 90, L2gradient=True)
    assert torch.equal(out[0], torch.from_numpy(1 - lines.astype(np.float32) / 255))
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])   # the same drawing in every channel
    dark = out[0] < 0.5
    assert set(out.unique().tolist()) == {0.0, 1.0} and 0.02 < dark.float().mean() < 0.2
    assert dark[12, 16:48].any() and not dark[24, 24:40].any()   # lines on the outline, none inside


def test_thresholds_and_blur_keep_fewer_lines():
    from workbench.data.sources import SampleSource

    photo = SampleSource().load(0)[:, :256, :256]   # the astronaut: outlines at every scale
    dark = lambda **kw: float((Edges(**kw)(photo, np.random.default_rng(0)) < 0.5).float().mean())  # noqa: E731
    assert dark(method="canny", low=20, high=60) > dark(method="canny", low=80, high=200) > 0
    assert dark(method="canny", sigma=0.5) > dark(method="canny", sigma=2.0) > 0
    assert dark(method="xdog", phi=50) != dark(method="xdog", phi=500)
    assert dark(method="sobel", gain=8) > dark(method="sobel", gain=1)


def test_xdog_and_sobel_are_soft_and_flat_regions_stay_white():
    flat = torch.full((3, 20, 20), 0.6)
    for method in ("xdog", "sobel"):
        assert torch.allclose(Edges(method=method)(flat, np.random.default_rng(0)), torch.ones(3, 20, 20))
    soft = Edges(method="xdog")(square(), np.random.default_rng(0))
    assert len(soft.unique()) > 10 and soft.min() < 0.2   # shades between black and white


def test_ranges_are_drawn_per_image_and_follow_the_seed():
    deg = Edges(method=["canny", "xdog", "sobel"], sigma=[0.5, 2.5], low=[20, 60], high=[100, 200])
    img = square()
    outs = [deg(img, np.random.default_rng(s)) for s in range(6)]
    assert torch.equal(deg(img, np.random.default_rng(3)), outs[3])
    assert len({o.numpy().tobytes() for o in outs}) > 1


def test_workbench_check_passes_and_every_method_keeps_the_contract(run_cli):
    result = run_cli("check", "edges")
    assert result.exit_code == 0 and "degradation 'edges': all 10 checks passed" in result.output, result.output
    for method in ("canny", "xdog", "sobel"):
        assert_degradation_contract(Edges(method=method, sigma=[0.5, 2.0], low=[10, 60], high=[70, 150], phi=[50, 500], gain=[1, 8]))
    with pytest.raises(ValueError, match="method"):
        Edges(method="laplace")
    with pytest.raises(ValueError, match="tau"):
        Edges(tau=1.5)
