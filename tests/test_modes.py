"""restore and degrade keep the photo's kind (issue 18): gray stays gray (8 or 16 bits), a palette a
palette, transparency is restored from the input (resized with super-resolution); colorization
alone turns gray into colour."""
import numpy as np
import pytest
from PIL import Image

from workbench.runs import checkpoint


def identity_run(tmp_path, degradations, name="run"):
    from workbench_plugins.unet import UNet

    run = tmp_path / name
    checkpoint.save({"format": 1, "model": UNet(widths=[8, 16]).state_dict(), "task": "restore", "epoch": 0,
                     "recipe": {"recipe": {"name": name, "seed": 0}, "data": {"train": "sample"},
                                "model": {"type": "unet", "widths": [8, 16]}, "degradations": degradations}},
                    run / "checkpoints" / "best.pt")
    return run


def smooth(h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (h + w)], -1) * 200 + 20
    return (base + rng.integers(0, 20, (h, w, 3))).astype(np.uint8)


def photos(folder):
    """One photo of each kind, and what each should come back as."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = smooth()
    alpha = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    made = {
        "gray.png": Image.fromarray(rgb[..., 0], "L"),
        "gray_alpha.png": Image.merge("LA", (Image.fromarray(rgb[..., 1], "L"), Image.fromarray(alpha, "L"))),
        "rgba.png": Image.merge("RGBA", (*Image.fromarray(rgb).split(), Image.fromarray(alpha, "L"))),
        "palette.png": Image.fromarray(rgb).quantize(16, dither=Image.Dither.NONE),
        "deep.png": Image.fromarray((rgb[..., 2].astype(np.uint16) * 257 + 3)),   # I;16, not a multiple of 257
        "rgb.png": Image.fromarray(rgb),
    }
    for name, im in made.items():
        im.save(folder / name)
    return made


@pytest.fixture
def inputs(tmp_path):
    return tmp_path / "in", photos(tmp_path / "in")


def test_restore_keeps_every_kind(run_cli, tmp_path, inputs):
    folder, made = inputs
    run = identity_run(tmp_path, [{"type": "jpeg", "quality": 50}])
    result = run_cli("restore", run, folder, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    got = {name: Image.open(tmp_path / "out" / name) for name in made}
    assert {n: im.mode for n, im in got.items()} == {
        "gray.png": "L", "gray_alpha.png": "LA", "rgba.png": "RGBA", "palette.png": "P", "deep.png": "I;16",
        "rgb.png": "RGB"}
    # the untrained U-Net is the identity: every kind comes back exactly (the palette: its 16 colours)
    for name in ("gray.png", "gray_alpha.png", "rgba.png", "deep.png", "rgb.png"):
        assert np.array_equal(np.asarray(got[name]), np.asarray(made[name])), name
    back = np.asarray(got["palette.png"].convert("RGB"), np.int16)
    assert np.abs(back - np.asarray(made["palette.png"].convert("RGB"), np.int16)).max() <= 2


def test_super_resolution_resizes_the_alpha_and_round_trips_the_size(run_cli, tmp_path, inputs):
    folder, made = inputs
    run = identity_run(tmp_path, [{"type": "downsample", "scale": 2}])
    assert run_cli("restore", run, folder / "rgba.png", "-o", tmp_path / "out", "--device", "cpu").exit_code == 0
    out = Image.open(tmp_path / "out" / "rgba.png")
    assert out.mode == "RGBA" and out.size == (64, 48)
    alpha = np.asarray(out.getchannel("A"), np.int16)
    want = np.asarray(made["rgba.png"].getchannel("A").resize((64, 48), Image.BICUBIC), np.int16)
    assert np.array_equal(alpha, want)


def test_colorize_turns_gray_into_colour_and_keeps_transparency(run_cli, tmp_path, inputs):
    folder, _ = inputs
    run = identity_run(tmp_path, [{"type": "grayscale"}])
    assert run_cli("restore", run, folder / "gray.png", folder / "gray_alpha.png", "-o", tmp_path / "out",
                   "--device", "cpu").exit_code == 0
    assert Image.open(tmp_path / "out" / "gray.png").mode == "RGB"
    assert Image.open(tmp_path / "out" / "gray_alpha.png").mode == "RGBA"


def test_degrade_keeps_every_kind(run_cli, tmp_path, inputs):
    folder, made = inputs
    result = run_cli("degrade", "jpeg", folder, "-o", tmp_path / "out", "--no-grid")
    assert result.exit_code == 0, result.output
    modes = {name: Image.open(tmp_path / "out" / name).mode for name in made}
    assert modes == {"gray.png": "L", "gray_alpha.png": "LA", "rgba.png": "RGBA", "palette.png": "P",
                     "deep.png": "I;16", "rgb.png": "RGB"}
    a = np.asarray(Image.open(tmp_path / "out" / "rgba.png").getchannel("A"))
    assert np.array_equal(a, np.asarray(made["rgba.png"].getchannel("A")))   # the damage is to the colours only


def test_degrade_of_super_resolution_writes_the_low_res_photo_and_restore_brings_back_the_size(run_cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth(48, 64)).save(folder / "a.png")
    Image.fromarray(smooth(48, 64, seed=1)).convert("L").save(folder / "g.png")
    run = identity_run(tmp_path, [{"type": "downsample", "scale": 2}])
    recipe = tmp_path / "sr.toml"
    recipe.write_text('[[degradations]]\ntype = "downsample"\nscale = 2\n')
    result = run_cli("degrade", recipe, folder, "-o", tmp_path / "low")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "low" / "a.png").size == (32, 24) and Image.open(tmp_path / "low" / "g.png").mode == "L"
    psnr_line = [line for line in result.output.splitlines() if line.startswith("a.png: PSNR ")]
    assert psnr_line and float(psnr_line[0].split()[2]) > 20   # of its bicubic upsampling, as restore would see it
    assert run_cli("restore", run, tmp_path / "low", "-o", tmp_path / "back", "--device", "cpu").exit_code == 0
    assert Image.open(tmp_path / "back" / "a.png").size == (64, 48) and Image.open(tmp_path / "back" / "g.png").size == (64, 48)
    same = run_cli("degrade", recipe, folder, "-o", tmp_path / "same", "--same-size", "--no-grid")
    assert same.exit_code == 0 and Image.open(tmp_path / "same" / "a.png").size == (64, 48)
    jpeg_after = tmp_path / "srj.toml"   # damage after the shrink is applied to the low-res photo
    jpeg_after.write_text('[[degradations]]\ntype = "downsample"\nscale = 4\n[[degradations]]\ntype = "jpeg"\nquality = 40\n')
    assert run_cli("degrade", jpeg_after, folder / "a.png", "-o", tmp_path / "lj", "--no-grid").exit_code == 0
    assert Image.open(tmp_path / "lj" / "a.png").size == (16, 12)
