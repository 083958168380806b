"""What each simple built-in degradation does, beyond the shared contract."""
import io

import numpy as np
import torch
from PIL import Image

from workbench.api.degradation import apply_chain
from workbench.api.pixels import from_uint8_hwc, to_uint8_hwc
from workbench.author.probes import make_image
from workbench.images.files import read_image
from workbench.images.metrics import psnr
from workbench_plugins.downsample import Downsample
from workbench_plugins.filters import Blur, Noise
from workbench_plugins.grayscale import Grayscale
from workbench_plugins.jpeg import Jpeg

rng = np.random.default_rng


def test_grayscale_is_bt601_luma_in_three_channels():
    img = make_image(16, 24)
    out = Grayscale()(img, rng(0))
    y = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    assert torch.allclose(out[0], y, atol=1e-6) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_grayscale_amount_blends():
    img = make_image(16, 24)
    half = Grayscale(amount=0.5)(img, rng(0))
    full = Grayscale()(img, rng(0))
    assert torch.allclose(half, (img + full) / 2, atol=1e-6)


def test_downsample_matches_pillow_bicubic_protocol():
    img = make_image(48, 64)
    out = Downsample(scale=4)(img, rng(0))
    pil = Image.fromarray(to_uint8_hwc(img))
    expect = pil.resize((16, 12), Image.BICUBIC).resize((64, 48), Image.BICUBIC)
    assert torch.equal(out, from_uint8_hwc(np.asarray(expect)))


def test_bigger_scale_destroys_more(photo):
    img = read_image(photo)
    scores = [psnr(Downsample(scale=s)(img, rng(0)), img) for s in (2, 3, 4)]
    assert scores[0] > scores[1] > scores[2]


def test_jpeg_is_exactly_a_jpeg_file(photo):
    img = read_image(photo)
    out = Jpeg(quality=10)(img, rng(0))
    buf = io.BytesIO()
    Image.fromarray(to_uint8_hwc(img)).save(buf, "JPEG", quality=10)
    assert torch.equal(out, from_uint8_hwc(np.asarray(Image.open(buf).convert("RGB"))))


def test_jpeg_quality_orders_damage(photo):
    img = read_image(photo)
    q10, q50, q90 = (psnr(Jpeg(quality=q)(img, rng(0)), img) for q in (10, 50, 90))
    assert q10 < q50 < q90


def test_jpeg_444_keeps_more_colour_than_420(photo):
    img = read_image(photo)
    assert psnr(Jpeg(quality=30, subsampling="4:4:4")(img, rng(0)), img) > psnr(Jpeg(quality=30)(img, rng(0)), img)


def test_noise_has_requested_sigma():
    img = torch.full((3, 128, 128), 0.5)
    out = Noise(sigma=10)(img, rng(0))
    assert abs((out - img).std().item() * 255 - 10) < 0.3
    gray = Noise(sigma=10, gray=True)(img, rng(0))
    assert torch.equal(gray[0], gray[1])


def test_blur_smooths_and_keeps_flat_images():
    flat = torch.full((3, 20, 30), 0.25)
    assert torch.allclose(Blur(sigma=2)(flat, rng(0)), flat, atol=1e-6)
    img = make_image(40, 40)
    assert (Blur(sigma=2)(img, rng(0)) - img).abs().mean() > 0.01
    assert torch.equal(Blur(sigma=0.0)(img, rng(0)), img)


def test_chain_runs_in_order_and_unites_masks():
    from workbench_plugins.erase import Erase
    img = make_image(32, 32)
    chain = [("grayscale", Grayscale()), ("erase", Erase(shape="box", fill="constant")), ("jpeg", Jpeg(quality=90))]
    out, mask = apply_chain(chain, img, rng(0))
    assert mask is not None and mask.any() and out.shape == img.shape
    assert (out[0] - out[1]).abs().max() < 0.05   # still gray after the JPEG round trip
