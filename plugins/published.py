"""`published`: the restorers people publish (Real-ESRGAN, SwinIR, HAT, DAT, SCUNet, LaMa, ...), loaded
from the bare .pth or .safetensors file their project released, through spandrel (the loader of chaiNNer and
ComfyUI), which finds the architecture and its settings (scale, widths, depths) from the weights alone.

Named for what the user holds: weights a project published, not trained here (`pretrained` is already the
torchvision backbones of workbench/api/pretrained.py, and `spandrel` would name the loader, not the model).

The file is read here, never by spandrel: its loader passes its own pickle module to `torch.load`, which on
torch 2.6 and later turns `weights_only` off; here every .pth goes through torch's weights-only unpickler and a
.safetensors file through safetensors, and spandrel only sees the state dict (`load_from_state_dict`).

What the architecture needs is declared, not guessed by the engine: `upscale` (a super-resolution net enlarges
its input itself), `takes_mask` (an inpainter such as LaMa), `tiles` (spandrel discourages tiling a few), and
the net's own channels (a grayscale net sees luma) and size requirements (padded here and cropped back).
"""
import contextlib
import copy
import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from workbench import hookimpl
from workbench.errors import WorkbenchError

SUPPORTED = "https://github.com/chaiNNer-org/spandrel#model-architecture-support"
INSTALL = "pip install -e '.[published]' (or pip install spandrel)"
REGISTRY = None   # the spandrel ArchRegistry that detects architectures; None: spandrel's own (tests add tiny ones)
PREFIX = "net."   # where the spandrel net sits in this module's state dict (and so in a run's checkpoints)
LUMA = (0.299, 0.587, 0.114)   # ITU-R BT.601, as the grayscale degradation


def _spandrel():
    try:
        import spandrel
    except ImportError as e:
        raise ValueError(f"published models are loaded by the spandrel package, which is not installed: {INSTALL}") from e
    return spandrel


def _first(e):
    """The first line of an error (and the line it introduces, as torch's 'Error(s) in loading ...:')."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def read_weights(path):
    """The tensors a weights file holds, read without running any code a tampered file might carry."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give the .pth or .safetensors file a project published")
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                if any(k.startswith("workbench.") for k in f.metadata() or {}):   # what `workbench export` writes
                    raise ValueError(f"{path}: is a workbench export, not a published model: give it as RUN_DIR")
                return {k: f.get_tensor(k) for k in f.keys()}
        except ValueError:
            raise
        except Exception as e:
            raise ValueError(f"{path}: cannot read it as safetensors ({_first(e)}); the file is truncated or not a model") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))   # what the weights-only unpickler refused to import
        if not found:   # random bytes, a text file: no pickle at all
            raise ValueError(f"{path}: not a PyTorch weights file (no pickled state dict in it)") from e
        raise ValueError(f"{path}: refused to load: it references {found.group(1)}, a Python object that could run code; "
                         "a published model's weights are tensors only (where you trust the file, re-save its state dict, or use the "
                         "project's .safetensors release)") from e
    except Exception as e:   # a truncated zip, an empty file: torch raises almost anything
        raise ValueError(f"{path}: cannot read it as PyTorch weights ({_first(e)}); the file is truncated or not a model") from e
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict of weights")
    if "recipe" in state and "model" in state:
        raise ValueError(f"{path}: is a workbench checkpoint, not a published model: give its run directory as RUN_DIR "
                         "(runs side by side: `workbench compare`)")
    return state


def detect(state, source):
    """spandrel's ModelDescriptor for a state dict; one line naming `source` where it finds no architecture."""
    spandrel = _spandrel()
    sd = spandrel.canonicalize_state_dict(state)   # BasicSR's {"params_ema": ...}, "module." prefixes, ...
    registry = REGISTRY or spandrel.MAIN_REGISTRY
    try:
        return spandrel.ModelLoader(registry=registry).load_from_state_dict(sd)
    except spandrel.UnsupportedModelError:
        keys = [k for k, v in sd.items() if isinstance(v, torch.Tensor)]
        seen = f"{len(keys)} tensors, e.g. {', '.join(keys[:2])}" if keys else "no tensors"
        raise ValueError(f"{source}: spandrel does not recognise this architecture ({seen}); see the list of supported "
                         f"ones at {SUPPORTED}") from None
    except Exception as e:   # detected, but the weights do not build it (an edited or truncated state dict)
        arch = next((a.architecture.id for a in registry.architectures("detection") if _detects(a, sd)), "an architecture")
        raise ValueError(f"{source}: spandrel took it for {arch} but cannot build it from these weights ({_first(e)})") from e


def _detects(support, sd):
    try:
        return bool(support.detect(sd))
    except Exception:
        return False


class Published(nn.Module):
    """A published restorer, its architecture and settings found by spandrel from the weights file alone.

    weights: path of the .pth, .pt, .ckpt or .safetensors file a project published (Real-ESRGAN, SwinIR, ...).
    """

    def __init__(self, *, weights):
        super().__init__()
        if not isinstance(weights, (str, os.PathLike)) or not str(weights):
            raise ValueError(f"weights = {weights!r} must be the path of a published model's .pth or .safetensors file")
        self.weights = str(weights)
        self._adopt(detect(read_weights(weights), self.weights))

    @classmethod
    def from_state_dict(cls, params, state_dict):
        """A run's checkpoint describes the architecture itself: rebuilt from it, the original file may be gone."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.weights = str(params.get("weights", ""))
        own = {k[len(PREFIX):]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
        model._adopt(detect(own, f"{model.weights or 'the checkpoint'} (its weights in the checkpoint)"))
        return model

    def _adopt(self, desc):
        spandrel = _spandrel()
        self.net = desc.model
        self.arch, self.scale, self.purpose = str(desc.architecture.id), int(desc.scale), str(desc.purpose)
        self.in_ch, self.out_ch = int(desc.input_channels), int(desc.output_channels)
        for what, n in (("takes", self.in_ch), ("returns", self.out_ch)):
            if n not in (1, 3, 4):
                raise ValueError(f"{self.weights}: {self.arch} {what} {n} channels; the workbench restores RGB photos "
                                 "(gray, RGB and RGBA nets work)")
        req = desc.size_requirements
        self.minimum, self.multiple, self.square = int(req.minimum), int(req.multiple_of), bool(req.square)
        self.masked = isinstance(desc, spandrel.MaskedImageModelDescriptor)
        self.tiling = desc.tiling.name   # SUPPORTED, DISCOURAGED or INTERNAL
        self.half_ok, self.bf16_ok = bool(desc.supports_half), bool(desc.supports_bfloat16)
        # spandrel's own way to call some nets (DnCNN adds a noise map, FBCNN returns a tuple); None: net(x)
        self._call = getattr(desc, "_call_fn", None)
        self._trainable = getattr(desc, "supports_training", None)   # spandrel 0.4 does not say: probed (train)

    # -- capabilities (workbench.api.contracts) ---------------------------------------------------------------
    @property
    def takes_mask(self):
        """An inpainter (spandrel's MaskedImageModelDescriptor, e.g. LaMa) is told where the holes are."""
        return self.masked

    @property
    def upscale(self):
        """A super-resolution net enlarges the low-res image itself (spandrel's `scale`)."""
        return self.scale

    @property
    def tiles(self):
        """False where spandrel discourages tiling (SwinIR, SCUNet: context across the image) or tiles internally."""
        return self.tiling == "SUPPORTED"

    @property
    def label(self):
        """Architecture and scale, as tables name it: 'ESRGAN x2'."""
        return f"{self.arch} x{self.scale}"

    def extra_repr(self):
        return f"{self.label}, weights={self.weights!r}"

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, img, mask=None):
        """B x 3 x H x W -> B x 3 x (H * upscale) x (W * upscale); an inpainter also takes the B x 1 x H x W mask."""
        return self._run(self.net, img, mask)

    def _run(self, net, img, mask=None):
        if self.masked and mask is None:
            raise ValueError(f"{self.label} fills holes it is told about: call model(img, mask)")
        # 1. the net's own channels: luma for a grayscale net, an opaque alpha for an RGBA one
        x = self._to_net(img)
        # 2. pad to spandrel's size requirements (a multiple, a minimum, square), reflecting then replicating
        h, w = x.shape[-2:]
        pw, ph = self._padding(w, h)
        x = _pad(x, pw, ph)
        # 3. the net, in float32 where it does not support the autocast dtype
        with self._precision(x) as cast:
            x = cast(x)
            if self.masked:
                m = _pad(mask.to(x.dtype), pw, ph)
                out = self._call(net, x, m) if self._call else net(x, m)
            else:
                out = self._call(net, x) if self._call else net(x)
        # 4. crop the padding back off and return RGB
        return self._from_net(out[..., :h * self.scale, :w * self.scale])

    def _padding(self, w, h):
        ceil = lambda n: -(-max(n, self.minimum) // self.multiple) * self.multiple
        pw, ph = ceil(w), ceil(h)
        if self.square:
            pw = ph = max(pw, ph)
        return pw - w, ph - h

    def _to_net(self, img):
        if self.in_ch == 1:
            return LUMA[0] * img[:, :1] + LUMA[1] * img[:, 1:2] + LUMA[2] * img[:, 2:3]
        if self.in_ch == 4:
            return torch.cat([img, torch.ones_like(img[:, :1])], dim=1)
        return img

    def _from_net(self, out):
        return out.expand(-1, 3, -1, -1) if self.out_ch == 1 else out[:, :3]

    def _precision(self, x):
        dev = x.device.type
        if torch.is_autocast_enabled(dev):
            dtype = torch.get_autocast_dtype(dev)
            if (dtype == torch.float16 and not self.half_ok) or (dtype == torch.bfloat16 and not self.bf16_ok):
                return _Float32(dev)
        return contextlib.nullcontext(lambda t: t)

    # -- fine-tuning ------------------------------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode; the first time, refuse in one line what cannot be fine-tuned here."""
        if mode and not getattr(self, "_train_checked", False):
            self._check_trainable()
            self._train_checked = True
        return super().train(mode)

    def _check_trainable(self):
        who = f"{self.label} ({self.weights})"
        if self.scale != 1:
            raise WorkbenchError(f"{who} enlarges the low-res image itself, but training shows models the bicubic-"
                                 f"upsampled image, which it would enlarge {self.scale}x again: fine-tuning it is not "
                                 f"supported; judge it with `workbench eval RUN --baseline {self.weights}`.")
        if self._trainable is False:
            raise WorkbenchError(f"{who}: spandrel marks {self.arch} as not trainable; it can restore and be judged.")
        if self._trainable is None:   # spandrel 0.4 does not say (its PR #292 found 14 of 44 nets failing): one step tells
            self._probe(who)

    def _probe(self, who):
        """One forward and backward pass of a copy on a batch of 2 (a net that only takes batches of 1 fails here)."""
        net = copy.deepcopy(self.net).train()
        param = next(net.parameters(), None)
        if param is None:
            raise WorkbenchError(f"{who} has no weights to fine-tune.")
        side = max(self.minimum, 16)
        side = -(-side // self.multiple) * self.multiple
        x = torch.rand(2, 3, side, side, device=param.device)
        mask = torch.rand(2, 1, side, side, device=param.device) > 0.5 if self.masked else None
        try:
            with torch.enable_grad():
                self._run(net, x, mask).float().mean().backward()
        except Exception as e:
            raise WorkbenchError(f"{who}: spandrel's {self.arch} cannot be fine-tuned here (a training step fails: "
                                 f"{_first(e)}); it can restore and be judged.") from e
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        if not grads or not all(torch.isfinite(g).all() for g in grads):
            raise WorkbenchError(f"{who}: spandrel's {self.arch} cannot be fine-tuned here (no finite gradient reaches "
                                 "its weights); it can restore and be judged.")


class _Float32:
    """Autocast off and float32 inputs, for a net that does not support the autocast dtype."""

    def __init__(self, device_type):
        self.off = torch.autocast(device_type, enabled=False)

    def __enter__(self):
        self.off.__enter__()
        return lambda t: t.float()

    def __exit__(self, *exc):
        return self.off.__exit__(*exc)


def _pad(x, pw, ph):
    """Pad right and bottom: reflect as far as the image allows, replicate the rest (a 1 x 1 photo)."""
    if not pw and not ph:
        return x
    h, w = x.shape[-2:]
    rw, rh = min(pw, w - 1), min(ph, h - 1)
    if rw or rh:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if pw - rw or ph - rh:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x


@hookimpl
def register_models(register):
    register("published", Published)
