"""Published restorers through spandrel (model type `published`): small random-weight nets of the published
architectures, saved as their projects save them, restore photos, are judged as baselines beside a run,
fine-tune where they can, and every file that is not one gives one line naming it (exit status 2)."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio
from torch import nn

spandrel = pytest.importorskip("spandrel")   # the `published` extra, also in the `test` extra

from safetensors.torch import save_file  # noqa: E402  (spandrel brings safetensors)
from spandrel.architectures.Compact import Compact  # noqa: E402
from test_evaluate import make_run  # noqa: E402  (an untrained U-Net run: the identity)

from workbench.api import registry as plugin_manager  # noqa: E402
from workbench.api.contracts import capability  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.infer.restore import restore_tensor  # noqa: E402
from workbench.runs import checkpoint  # noqa: E402
from workbench_plugins import published  # noqa: E402
from workbench_plugins.published import Published  # noqa: E402

PLUGINS = plugin_manager.load()


# -- Real-ESRGAN's RRDBNet as BasicSR defines it (basicsr/archs/rrdbnet_arch.py), tiny ----------------------
class RDB(nn.Module):
    def __init__(self, nf, gc=32):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(nf, gc, 3, 1, 1), nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3, self.conv4 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1), nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5, self.lrelu = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1), nn.LeakyReLU(0.2, True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = RDB(nf), RDB(nf), RDB(nf)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """x2 sees the pixel-unshuffled image (RealESRGAN_x2plus), x4 the image itself (RealESRGAN_x4plus)."""

    def __init__(self, scale, nf=8, nb=1):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 if scale == 2 else 1), nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf) for _ in range(nb)])
        self.conv_body, self.conv_up1, self.conv_up2 = (nn.Conv2d(nf, nf, 3, 1, 1) for _ in range(3))
        self.conv_hr, self.conv_last, self.lrelu = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, 3, 3, 1, 1), nn.LeakyReLU(0.2, True)

    def forward(self, x):
        feat = self.conv_first(F.pixel_unshuffle(x, 2) if self.scale == 2 else x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Weights files as their projects publish them: BasicSR's {"params_ema": ...} (Real-ESRGAN), its
    safetensors conversion, Real-ESRGAN compact's {"params": ...}, and a bare state dict."""
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    nets = {"x2": RRDBNet(2), "x4": RRDBNet(4), "compact1": Compact(num_feat=8, num_conv=2, upscale=1),
            "compact2": Compact(num_feat=8, num_conv=2, upscale=2),
            "gray2": Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2)}
    torch.save({"params_ema": nets["x2"].state_dict(), "params": RRDBNet(2).state_dict()}, d / "RealESRGAN_x2plus.pth")
    save_file(nets["x2"].state_dict(), d / "RealESRGAN_x2plus.safetensors")
    torch.save({"params_ema": nets["x4"].state_dict()}, d / "RealESRGAN_x4plus.pth")
    torch.save({"params": nets["compact1"].state_dict()}, d / "compact-x1.pth")
    torch.save(nets["compact2"].state_dict(), d / "compact-x2.pth")
    torch.save(nets["gray2"].state_dict(), d / "gray-x2.pth")
    return d, {k: v.eval() for k, v in nets.items()}


def photo(path, h, w, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x + seed) * np.cos(7 * y)], -1) + rng.normal(0, 0.05, (h, w, 3))
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).convert(mode).save(path)
    return path


def one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- loading -------------------------------------------------------------------------------------------------
def test_a_basicsr_rrdbnet_saved_as_real_esrgan_saves_it_computes_as_the_original(files):
    d, nets = files
    model = Published(weights=d / "RealESRGAN_x2plus.pth").eval()   # BasicSR's params_ema, not params
    assert (capability(model, "label"), capability(model, "upscale"), capability(model, "takes_mask")) == ("ESRGAN x2", 2, False)
    x = torch.rand(1, 3, 16, 20)   # a multiple of 4: pixel-unshuffle needs no padding, so outputs match exactly
    with torch.no_grad():
        want = nets["x2"](x)
        assert torch.allclose(model(x), want, atol=1e-6)
        assert torch.allclose(Published(weights=d / "RealESRGAN_x2plus.safetensors")(x), want, atol=1e-6)
        assert Published(weights=d / "RealESRGAN_x2plus.pth")(torch.rand(2, 3, 7, 5)).shape == (2, 3, 14, 10)   # padded, cropped
        x4 = Published(weights=d / "RealESRGAN_x4plus.pth")
        assert capability(x4, "upscale") == 4 and x4(torch.rand(1, 3, 1, 1)).shape == (1, 3, 4, 4)


def test_a_grayscale_net_sees_luma_and_gives_back_rgb(files):
    d, nets = files
    model = Published(weights=d / "gray-x2.pth").eval()
    x = torch.rand(1, 3, 6, 9)
    with torch.no_grad():
        out = model(x)
        luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        assert out.shape == (1, 3, 12, 18) and torch.allclose(out[:, 0], out[:, 2])
        assert torch.allclose(out[:, :1], nets["gray2"](luma), atol=1e-6)


def test_restore_with_weights_writes_each_photo_scale_times_larger_in_its_own_mode(run_cli, files, tmp_path):
    d, _ = files
    ins = [photo(tmp_path / "odd.png", 23, 37), photo(tmp_path / "gray.png", 23, 37, "L"),
           photo(tmp_path / "rgba.png", 23, 37, "RGBA"), photo(tmp_path / "dot.png", 1, 1)]
    result = run_cli("restore", "--weights", d / "RealESRGAN_x2plus.pth", *ins, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    sizes = {p.name: (Image.open(tmp_path / "out" / p.name).size, Image.open(tmp_path / "out" / p.name).mode) for p in ins}
    assert sizes == {"odd.png": ((74, 46), "RGB"), "gray.png": ((74, 46), "L"), "rgba.png": ((74, 46), "RGBA"),
                     "dot.png": ((2, 2), "RGB")}


class NearestX2(nn.Module):
    """Each output pixel depends on one input pixel: tiled and whole restorations must agree exactly."""

    upscale = 2

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest")


def test_tiles_of_a_net_that_enlarges_are_blended_at_the_output_resolution():
    img = torch.rand(3, 50, 37)
    whole = restore_tensor(NearestX2(), img, tile=0)
    tiled = restore_tensor(NearestX2(), img, tile=24, overlap=4)
    assert whole.shape == tiled.shape == (3, 100, 74) and torch.allclose(whole, tiled, atol=1e-6)


# -- eval: a published model as a baseline row, or as the model --------------------------------------------
def independent_psnr_y(net, folder, scale):
    """Shrink each clean photo with Pillow's bicubic (the published protocol), run the net, PSNR-Y with
    scikit-image on the 8-bit images with `scale` border pixels ignored: nothing of the workbench used."""
    scores = []
    for p in sorted(folder.iterdir()):
        clean = np.asarray(Image.open(p).convert("RGB"))
        h, w = clean.shape[0] // scale * scale, clean.shape[1] // scale * scale
        clean = clean[:h, :w]
        low = np.asarray(Image.fromarray(clean).resize((w // scale, h // scale), Image.BICUBIC))
        with torch.no_grad():
            out = net(torch.from_numpy(low).permute(2, 0, 1)[None].float() / 255)[0].clamp(0, 1)
        out = np.floor(out.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        y = lambda a: rgb2ycbcr(a)[scale:-scale, scale:-scale, 0]
        scores.append(peak_signal_noise_ratio(y(clean), y(out), data_range=255))
    return float(np.mean(scores))


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for k, (h, w) in enumerate([(48, 64), (51, 37)]):
        photo(d / f"p{k}.png", h, w, seed=k)
    return d


def test_eval_lists_a_published_baseline_beside_the_model_judged_as_an_independent_computation(run_cli, files, folder, tmp_path):
    d, nets = files
    run = make_run(tmp_path, [{"type": "downsample", "scale": 2}])
    result = run_cli("eval", run, "--data", folder, "--baseline", d / "compact-x2.pth", "--perceptual", "none",
                     "--device", "cpu", "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["methods"] == ["model", "input", "bicubic", "lanczos", "Compact x2 compact-x2.pth"]
    row = data["mean"]["Compact x2 compact-x2.pth"]
    assert row["psnr_y"] == pytest.approx(independent_psnr_y(nets["compact2"], folder, 2), abs=1e-6)
    assert "Compact x2 compact-x2.pth" in result.output and "model - best" in result.output
    assert "Compact x2 compact-x2.pth" in (run / "report.html").read_text()   # the report's tables list it too


def test_eval_and_grid_judge_a_weights_file_on_a_recipe_s_damage(run_cli, files, folder, tmp_path):
    d, _ = files
    w = d / "compact-x2.pth"
    result = run_cli("eval", "--weights", w, "--recipe", "superres", "--baseline", w, "--data", folder, "--perceptual", "none",
                     "--device", "cpu", "--json", tmp_path / "w.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "w.json").read_text())
    assert data["run"] == str(w) and data["recipe"] == "superres" and data["checkpoint"] is None
    assert data["mean"]["model"] == data["mean"]["Compact x2 compact-x2.pth"]   # the same net, fed the same low-res image
    result = run_cli("grid", "--weights", w, "--recipe", "superres", "--data", folder, "-n", 1, "-o", tmp_path / "g.png",
                     "--perceptual", "none", "--device", "cpu")
    assert result.exit_code == 0, result.output
    one_line_error(run_cli("eval", "--weights", w, "--data", folder), "--recipe", "compact-x2.pth", "superres")


def test_a_baseline_of_another_scale_or_damage_is_one_line(run_cli, files, folder, tmp_path):
    d, _ = files
    run = make_run(tmp_path, [{"type": "downsample", "scale": 2}])
    one_line_error(run_cli("eval", run, "--data", folder, "--baseline", d / "RealESRGAN_x4plus.pth"),
                   "RealESRGAN_x4plus.pth", "enlarges 4x", "shrinks 2x")
    jpeg = make_run(tmp_path, [{"type": "jpeg", "quality": 20}], name="jpeg")
    one_line_error(run_cli("eval", jpeg, "--data", folder, "--baseline", d / "compact-x2.pth"), "compact-x2.pth", "does not shrink")
    chain = make_run(tmp_path, [{"type": "downsample", "scale": 2}, {"type": "jpeg", "quality": 20}], name="chain")
    one_line_error(run_cli("eval", chain, "--data", folder, "--baseline", d / "compact-x2.pth"), "one fixed downsample")
    # a 1x restorer judges any damage, fed the damaged image as the model is
    result = run_cli("eval", jpeg, "--data", folder, "--baseline", d / "compact-x1.pth", "--perceptual", "none", "--device", "cpu")
    assert result.exit_code == 0 and "Compact x1 compact-x1.pth" in result.output


# -- files that are not published models ----------------------------------------------------------------------
class Payload:
    """A pickle that runs code when loaded: os.mkdir(marker)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_file_that_is_not_a_published_model_is_one_line_naming_it(run_cli, files, tmp_path):
    d, _ = files
    img = photo(tmp_path / "a.png", 8, 8)
    marker = tmp_path / "code-ran"
    bad = {"random.pth": os.urandom(4096), "empty.pth": b""}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"encoder.stem.weight": torch.zeros(4, 3, 3, 3), "head.fc.bias": torch.zeros(10)}, tmp_path / "unknown.pth")
    torch.save({"params": Payload(marker)}, tmp_path / "evil.pth")
    whole = (d / "RealESRGAN_x2plus.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(whole[:len(whole) // 2])
    whole = (d / "RealESRGAN_x2plus.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(whole[:len(whole) // 2])
    make_run(tmp_path, [{"type": "jpeg", "quality": 20}], name="wb")
    save_file({"start.weight": torch.zeros(1)}, tmp_path / "export.safetensors", metadata={"workbench.format": "1"})
    expect = {"random.pth": "PyTorch weights", "empty.pth": "cannot read", "unknown.pth": "spandrel does not recognise",
              "evil.pth": "refused to load", "truncated.pth": "cannot read", "truncated.safetensors": "cannot read",
              "wb/checkpoints/best.pt": "workbench checkpoint", "export.safetensors": "workbench export"}
    for name, words in expect.items():
        line = one_line_error(run_cli("restore", "--weights", tmp_path / name, img, "-o", tmp_path / "out"), name, words)
        if name == "unknown.pth":
            assert "encoder.stem.weight" in line and published.SUPPORTED in line
        if name == "evil.pth":
            assert "posix.mkdir" in line or "os.mkdir" in line
    assert not marker.exists()   # weights_only: the pickle's code never ran


def test_without_spandrel_the_line_names_the_extra(run_cli, files, tmp_path, monkeypatch):
    d, _ = files
    monkeypatch.setitem(__import__("sys").modules, "spandrel", None)   # import spandrel now fails
    line = one_line_error(run_cli("restore", "--weights", d / "compact-x1.pth", photo(tmp_path / "a.png", 8, 8), "-o", tmp_path / "o"))
    assert "spandrel" in line and ".[published]" in line


# -- fine-tuning ------------------------------------------------------------------------------------------------
def test_a_1x_published_model_fine_tunes_and_its_run_loads_without_the_file(run_cli, files, tmp_path):
    d, _ = files
    weights = tmp_path / "compact-x1.pth"
    weights.write_bytes((d / "compact-x1.pth").read_bytes())
    recipe = tmp_path / "ft.toml"
    recipe.write_text(f'[recipe]\nname = "ft"\n[data]\nsize = 24\nvalid_size = 32\nbatch_size = 2\nworkers = 0\n[[degradations]]\ntype = "jpeg"\n'
                      f'quality = 20\n[model]\ntype = "published"\nweights = "{weights}"\n[train]\nepochs = 1\nsteps_per_epoch = 2\n')
    result = run_cli("run", recipe, "--out", tmp_path / "ft", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    before = Published(weights=weights).state_dict()
    weights.unlink()   # the run directory moved to a machine without the original file
    model, state = checkpoint.load_model(tmp_path / "ft", PLUGINS)
    assert isinstance(model, Published) and capability(model, "label") == "Compact x1"
    after = model.state_dict()
    assert set(after) == set(before) and any(not torch.equal(after[k], before[k]) for k in after)   # it trained
    assert torch.equal(after["net.body.0.weight"], checkpoint.weights(state)["net.body.0.weight"])
    result = run_cli("restore", tmp_path / "ft", photo(tmp_path / "a.png", 9, 13), "-o", tmp_path / "o", "--device", "cpu")
    assert result.exit_code == 0 and Image.open(tmp_path / "o" / "a.png").size == (13, 9)


def test_fine_tuning_a_net_that_enlarges_itself_is_refused_in_one_line(files):
    d, _ = files
    with pytest.raises(WorkbenchError, match="enlarges the low-res image itself.*not supported"):
        Published(weights=d / "compact-x2.pth").train()
    Published(weights=d / "compact-x2.pth").eval()   # restoring needs no training mode


# -- what a test registry's tiny architectures show: a mask, size requirements, precision, a failing step --------
class TinyNet(nn.Module):
    def __init__(self, *, batch_one=False, seen=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.batch_one, self.seen = batch_one, seen if seen is not None else []

    def forward(self, x, mask=None):
        self.seen.append((tuple(x.shape), x.dtype, None if mask is None else tuple(mask.shape)))
        if self.batch_one:
            x = torch.cat([x, torch.zeros(1, 1, *x.shape[-2:])], 1)[:, :3]   # as spandrel's DRUNet noise map: batch 1 only
        out = x + 0.1 * self.conv(x)
        return out if mask is None else torch.where(mask > 0.5, out, x)


class Tiny(spandrel.Architecture):
    def __init__(self, name, *, masked=False, req=None, bf16=True, batch_one=False, seen=None, tiling=None):
        super().__init__(id=name, detect=lambda sd: f"{name}.conv.weight" in sd)
        self.masked, self.req, self.bf16, self.batch_one, self.seen = masked, req, bf16, batch_one, seen
        self.tiling = tiling or spandrel.ModelTiling.SUPPORTED

    def load(self, sd):
        net = TinyNet(batch_one=self.batch_one, seen=self.seen)
        sd = {k.split(".", 1)[1]: v for k, v in sd.items()}
        kw = dict(architecture=self, tags=[], supports_half=False, supports_bfloat16=self.bf16, input_channels=3,
                  output_channels=3, size_requirements=self.req, tiling=self.tiling)
        if self.masked:
            return spandrel.MaskedImageModelDescriptor(net, sd, purpose="Inpainting", **kw)
        return spandrel.ImageModelDescriptor(net, sd, purpose="Restoration", scale=1, **kw)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """tiny(name, **options) -> a weights file of a tiny architecture added to the registry `published` detects with."""
    registry = spandrel.MAIN_REGISTRY.copy()
    monkeypatch.setattr(published, "REGISTRY", registry)

    def make(name, **options):
        registry.add(spandrel.ArchSupport.from_architecture(Tiny(name, **options)))
        path = tmp_path / f"{name}.pth"
        torch.save({f"{name}.{k}": v for k, v in TinyNet().state_dict().items()}, path)
        return path
    return make


def test_size_requirements_are_met_by_padding_and_cropped_back(tiny):
    seen = []
    model = Published(weights=tiny("Sized", req=spandrel.SizeRequirements(minimum=16, multiple_of=8, square=True), seen=seen))
    assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 5, 7) and seen[-1][0] == (1, 3, 16, 16)
    assert model(torch.rand(1, 3, 17, 40)).shape == (1, 3, 17, 40) and seen[-1][0] == (1, 3, 40, 40)


def test_a_net_without_bfloat16_runs_in_float32_under_autocast(tiny):
    seen = []
    model = Published(weights=tiny("NoBf16", bf16=False, seen=seen))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.rand(1, 3, 8, 8))
    assert seen[-1][1] == torch.float32


def test_an_architecture_whose_training_step_fails_is_refused_in_one_line(tiny):
    model = Published(weights=tiny("BatchOne", batch_one=True))
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)   # it restores
    with pytest.raises(WorkbenchError, match="cannot be fine-tuned here .*a training step fails"):
        model.train()
    Published(weights=tiny("Fine")).train()   # a net that trains passes the probe


def test_an_inpainter_takes_the_mask_where_the_damage_reports_one(run_cli, tiny, folder, tmp_path):
    path = tiny("Holes", masked=True)
    model = Published(weights=path)
    assert capability(model, "takes_mask") is True
    img = photo(tmp_path / "a.png", 9, 9)
    one_line_error(run_cli("restore", "--weights", path, img, "-o", tmp_path / "o"), "--mask")
    hole = np.zeros((9, 9), np.uint8)
    hole[3:6, 3:6] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    result = run_cli("restore", "--weights", path, img, "--mask", tmp_path / "hole.png", "-o", tmp_path / "o", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out, src = (np.asarray(Image.open(p), np.int16) for p in (tmp_path / "o" / "a.png", img))
    assert (out[hole == 0] == src[hole == 0]).all() and (out[hole > 0] != src[hole > 0]).any()   # only the hole changed
    jpeg = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    one_line_error(run_cli("eval", jpeg, "--data", folder, "--baseline", path), "Holes.pth", "reports no mask")
    erase = make_run(tmp_path, [{"type": "erase", "shape": "box", "area": 0.1, "fill": "constant"}], name="erase")
    result = run_cli("eval", erase, "--data", folder, "--baseline", path, "--perceptual", "none", "--device", "cpu")
    assert result.exit_code == 0 and "Holes x1 Holes.pth" in result.output


def test_a_net_spandrel_discourages_tiling_is_tiled_with_one_warning(run_cli, tiny, tmp_path):
    path = tiny("Global", tiling=spandrel.ModelTiling.DISCOURAGED)
    assert capability(Published(weights=path), "tiles") is False
    ins = [photo(tmp_path / f"{k}.png", 40, 30, seed=k) for k in range(2)]
    result = run_cli("restore", "--weights", path, *ins, "-o", tmp_path / "o", "--tile", 24, "--overlap", 4, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("wants whole images") == 1 and "--tile 0" in result.stderr
    result = run_cli("restore", "--weights", path, ins[0], "-o", tmp_path / "w", "--tile", 0, "--device", "cpu")
    assert result.exit_code == 0 and "wants whole images" not in result.stderr


def test_recipe_goes_with_weights_and_a_run_or_weights_is_needed(run_cli, files, folder, tmp_path):
    d, _ = files
    run = make_run(tmp_path, [{"type": "jpeg", "quality": 20}])
    one_line_error(run_cli("eval", run, "--recipe", "dejpeg", "--data", folder), "--recipe goes with --weights")
    assert run_cli("eval", "--data", folder).exit_code == 2
    assert run_cli("restore", "--weights", d / "compact-x1.pth", "-o", tmp_path / "o").exit_code == 2   # no input
