"""One PSNR, one SSIM, one quantiser: checked against scikit-image and against the saved file."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from workbench.api.pixels import quantize, to_uint8, to_uint8_hwc
from workbench.images.files import read_image, write_image
from workbench.images.metrics import batch_psnr, batch_ssim, psnr, psnr_of, ssim, ssim_of


def pair(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, h, w, generator=g)
    return a, (a + 0.1 * torch.randn(3, h, w, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("h, w", [(11, 11), (17, 40), (64, 48)])
def test_ssim_and_psnr_equal_scikit_images(h, w):
    a, b = pair(h, w, h * w)
    ua, ub = to_uint8_hwc(a), to_uint8_hwc(b)
    ref = structural_similarity(ua, ub, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(ua, ub, data_range=255), abs=1e-9)
    # on levels with a 255 peak, as the protocol measures Y, the same numbers
    la, lb = (to_uint8(t).double()[None] for t in (a, b))
    assert ssim_of(la, lb, 255)[0] == pytest.approx(ref, abs=1e-9)


def test_batches_score_each_image_alone():
    (a1, b1), (a2, b2) = pair(20, 24, 1), pair(20, 24, 2)
    both_a, both_b = torch.stack([a1, a2]), torch.stack([b1, b2])
    assert batch_ssim(both_a, both_b) == pytest.approx([ssim(a1, b1), ssim(a2, b2)], abs=1e-12)
    assert batch_psnr(both_a, both_b) == pytest.approx([psnr(a1, b1), psnr(a2, b2)], abs=1e-12)


def test_identical_is_infinite_and_too_small_for_the_window_is_nan():
    a, _ = pair(12, 12, 0)
    assert psnr(a, a.clone()) == math.inf and ssim(a, a) == pytest.approx(1.0)
    assert math.isnan(ssim(a[:, :10], a[:, :10]))
    assert psnr_of(torch.zeros(1, 4), torch.full((1, 4), 255.0), 255) == [0.0]


def test_a_score_in_memory_is_the_score_of_the_saved_file(tmp_path):
    # values on the rounding boundary k + 0.5 are where two rounding rules would disagree
    img = torch.tensor([k + 0.5 for k in range(48)], dtype=torch.float32).div(255).repeat(3, 12, 1)
    write_image(img, tmp_path / "x.png")
    assert torch.equal(read_image(tmp_path / "x.png"), quantize(img))
    assert torch.equal(to_uint8(img)[0, 0, :3], torch.tensor([1, 2, 3], dtype=torch.uint8))   # half up


def test_the_peak_is_the_range_of_the_values():
    # a validation PSNR with the wrong peak is tens of dB off: [0, 1] images have a peak of 1
    a = torch.zeros(1, 3, 16, 16)
    b = torch.full((1, 3, 16, 16), 0.1)
    assert batch_psnr(a, b)[0] == pytest.approx(10 * math.log10(1 / (round(0.1 * 255) / 255) ** 2), abs=1e-9)
    assert np.isclose(psnr_of(a * 255, b * 255, 255)[0], psnr_of(a, b, 1.0)[0])
