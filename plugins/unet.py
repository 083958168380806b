"""`unet`: the res-block U-Net of fast.ai course22p2 (notebooks 24-25, super-resolution).

A U-Net (Ronneberger et al. 2015) built from res blocks (He et al. 2016), with the lesson's
changes: skips are *added*, not concatenated; the input image itself is added back before the
last block; the last layers start at zero, so the untrained net returns its input exactly and
training learns only the correction; optional "cross connections" pass each skip through a res
block and a conv; the encoder (`start` + `down`) can be a trained `classifier`'s stem and stages.

Why the lesson's U-Net lags at super-resolution: at full resolution it has only `start` and a
last up block that goes from widths[0] channels straight to 3, so the fine detail SR must
recreate passes through 3-channel convolutions, while the strided path discards exactly those
high frequencies. `full_res_blocks` adds res blocks at widths[0] channels at full resolution.

A `masked` U-Net inpaints: it is told where the holes are, starts from a push-pull fill of them
(so its reach is not limited to its receptive field on large holes) and returns the known pixels
untouched, so its training concentrates on the holes.

A `detect` U-Net removes damage it must find itself (a watermark on a photo nobody marked): a
1-channel head on the last full-resolution features predicts where the damage is, trained against
the mask the degradation reports (binary cross-entropy, `mask_loss`), and the correction is applied
only there: out = img + p * (restored - img), p the predicted probability. A residual network
that must leave 97 % of a photo alone otherwise adds small colour shifts and noise everywhere,
which cost more PSNR than removing the stamps gains (benchmarks/RESULTS.md). Two-stage removers
detect, then restore, likewise (e.g. Cun & Pun 2021, "Split then Refine"). The gate alone is not
enough: where p is near 0 in training the correction gets no gradient and may be anything, so each
false alarm on a new photo pasted it in (validation fell 3 dB below the input while the detection
loss kept falling). `mask_loss` therefore also asks the ungated correction to return the input
wherever the true mask says nothing is damaged (mean squared), so a false alarm changes little.
"""
import inspect

import torch
from torch import nn
from torch.nn import functional as F

from workbench import hookimpl
from workbench.api.layers import ResBlock, add_, check_config, conv, make_stage
from workbench.images.masks import push_pull
from workbench.runs import checkpoint
from workbench_plugins.classifier import Classifier

DETECT_PRIOR_LOGIT = -4.0   # sigmoid(-4) = 0.018: about the share of a photo a watermark covers


class UNet(nn.Module):
    """Res-block U-Net with additive skips that starts as the identity (fast.ai lesson 25).

    widths: channels per level, shallow to deep; each level after the first halves the size.
    blocks: res blocks per level, in the down and the up path.
    cross_connections: pass each skip through a res block and a conv before adding it (lesson 25).
    preact: pre-activation res blocks (He et al. 2016, Identity Mappings).
    norm: normalisation: "batch", "instance", "group" or "none".
    act: activation: "relu", "gelu", "silu" or "leaky" (LeakyReLU 0.1).
    encoder: "" or a classifier run directory (or checkpoint file) whose stem and stages become
      the U-Net's start and down path; its widths must begin with these widths.
    full_res_blocks: 0 ends as the lesson does, with one res block from widths[0] straight down to
      3 channels; N > 0 ends with N res blocks at widths[0] channels at full resolution and a
      zeroed 3x3 conv to 3 channels, which super-resolution needs (see the module docstring).
    masked: for inpainting and outpainting: the model is called `model(img, mask)` with the
      damage's mask (True where pixels are missing; `restore --mask` for your photos), fills the
      holes by push-pull (workbench.images.masks), sees the mask as a 4th input channel, learns the
      correction to that fill and keeps the known pixels exactly.
    detect: for damage the model must find itself (dewatermark): learn where the damage is from the
      degradation's mask and correct only there (see the module docstring); `restore` needs no mask.
    detect_weight: weight of the detection loss (binary cross-entropy) added to the recipe's losses.
    keep_weight: (with detect) weight of the squared term that asks the ungated correction to leave
      the undamaged pixels as they are (see the module docstring); 0 turns it off.
    keep_luma: for colorization: the output keeps the input's luma (BT.601 Y, the grayscale
      degradation's) and the net changes only the chroma, as Zhang et al. 2016 (Lab) and DeOldify
      (YUV) predict colour only. Adding one value to R, G and B moves Y by it and leaves Cb and Cr
      alone, so the output's Y is put back exactly by adding Y(input) - Y(output) to every channel.
    drop_skips: for style transfer: leave out the skip connections of the top N levels, and the input added
      back before the last block, so the net cannot copy the photo's fine detail and must draw it (the
      lesson: without them "it just really wants to copy the input"); the untrained net then returns
      black, not its input. 0 keeps them all; at most len(widths) - 1.
    chroma_gain: (with keep_luma) the share of the predicted colour a trained colorizer applies when it
      restores or is judged, not while it trains: below 1 hedges towards gray where a colorizer trained
      on a few photos is over-confident on others (see docs/models.md).
    """

    def __init__(self, *, widths=[32, 64, 128, 256], blocks=1, cross_connections=False, preact=False, norm="batch",
                 act="relu", encoder="", full_res_blocks=0, masked=False, detect=False, detect_weight=1.0,
                 keep_weight=1.0, keep_luma=False, chroma_gain=1.0, drop_skips=0):
        super().__init__()
        check_config(widths=widths, blocks=blocks, norm=norm, act=act)
        if not isinstance(encoder, str):
            raise ValueError(f"encoder = {encoder!r} must be \"\" or the path of a classifier run directory or checkpoint")
        if not isinstance(masked, bool):
            raise ValueError(f"masked = {masked!r} must be true or false")
        if masked and encoder:
            raise ValueError("masked = true takes the mask as a 4th input channel, which a classifier encoder "
                             "(3 channels) cannot: set encoder = \"\" or masked = false")
        if not isinstance(detect, bool):
            raise ValueError(f"detect = {detect!r} must be true or false")
        if detect and masked:
            raise ValueError("detect = true finds the damage itself while masked = true is told where it is: choose one")
        if not isinstance(detect_weight, (int, float)) or isinstance(detect_weight, bool) or detect_weight <= 0:
            raise ValueError(f"detect_weight = {detect_weight!r} must be a number above 0")
        if not isinstance(keep_weight, (int, float)) or isinstance(keep_weight, bool) or keep_weight < 0:
            raise ValueError(f"keep_weight = {keep_weight!r} must be a number of at least 0")
        if not isinstance(keep_luma, bool):
            raise ValueError(f"keep_luma = {keep_luma!r} must be true or false")
        if not isinstance(chroma_gain, (int, float)) or isinstance(chroma_gain, bool) or not 0 <= chroma_gain <= 2:
            raise ValueError(f"chroma_gain = {chroma_gain!r} must be a number from 0 to 2 (1 = the colour as predicted)")
        if chroma_gain != 1 and not keep_luma:
            raise ValueError("chroma_gain scales the colour a keep_luma = true colorizer predicts: set keep_luma = true")
        self.keep_luma, self.chroma_gain = keep_luma, float(chroma_gain)
        if not isinstance(drop_skips, int) or isinstance(drop_skips, bool) or not 0 <= drop_skips < len(widths):
            raise ValueError(f"drop_skips = {drop_skips!r} must be a whole number from 0 to {len(widths) - 1} (one per level "
                             "below the top of widths)")
        if drop_skips and (masked or detect):
            raise ValueError("drop_skips is for style transfer: a masked or detecting U-Net must see the photo it keeps")
        self.drop_skips = drop_skips
        self.widths, self.blocks, self.preact, self.norm, self.act = list(widths), blocks, preact, norm, act
        self.masked, self.detect_weight, self.keep_weight = masked, float(detect_weight), float(keep_weight)
        kw = dict(act=act, norm=norm, preact=preact)
        n = len(widths)
        self.start = ResBlock(4 if masked else 3, widths[0], **kw)
        self.down = nn.ModuleList(make_stage(widths[i], widths[i + 1], blocks=blocks, stride=2, **kw)
                                  for i in range(n - 1))
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"),
                                              *make_stage(widths[i], widths[i - 1], blocks=blocks, stride=1, **kw))
                                for i in range(n - 1, 0, -1))
        if not isinstance(full_res_blocks, int) or isinstance(full_res_blocks, bool) or full_res_blocks < 0:
            raise ValueError(f"full_res_blocks = {full_res_blocks!r} must be a whole number >= 0")
        if full_res_blocks:
            out = nn.Conv2d(widths[0], 3, 3, padding=1)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            self.up.append(nn.Sequential(*(ResBlock(widths[0], widths[0], **kw) for _ in range(full_res_blocks)), out))
        else:
            # No activation after the last sum and a projection to zero: with zero_() it outputs exactly 0.
            self.up.append(ResBlock(widths[0], 3, final_act=False, project=True, **kw).zero_(identity=True))
        if cross_connections:
            # an empty Sequential where a skip is dropped: no parameters left unused (DDP refuses those)
            self.cross = nn.ModuleList(nn.Sequential(ResBlock(w, w, **kw), conv(w, w, act=None, norm="none"))
                                       if j >= drop_skips else nn.Sequential() for j, w in enumerate(widths[:-1]))
        else:
            self.cross = None
        # end(0 + img) == img: its residual branch is zeroed and its identity path is the image itself.
        self.end = ResBlock(3, 3, act=None, norm=norm, preact=preact).zero_()
        # Where the damage is, from the features the last up block restores from (a logit per pixel).
        self.detector = nn.Conv2d(widths[0], 1, 3, padding=1) if detect else None
        if detect:   # start sure that nothing is damaged (p = 0.02), as RetinaNet starts its rare classes:
            nn.init.constant_(self.detector.bias, DETECT_PRIOR_LOGIT)   # the untrained net is ~the identity
        self._logits = self._change = None   # the last forward's detector logits and ungated change, for mask_loss
        if encoder:
            self.load_encoder(encoder)

    @property
    def takes_mask(self):
        """The engine passes the damage's mask to models that say so (workbench.images.masks)."""
        return self.masked

    @property
    def learns_mask(self):
        """A detecting U-Net learns where the damage is: the engine then calls mask_loss (workbench.images.masks)."""
        return self.detector is not None

    def mask_loss(self, mask):
        """Detection loss against the batch's true mask, plus the keep term: the ungated change must
        be zero where nothing is damaged (the engine calls it after a training forward)."""
        if self._logits is None:
            raise RuntimeError("mask_loss needs a forward pass first")
        m = mask.to(torch.float32)
        loss = self.detect_weight * F.binary_cross_entropy_with_logits(self._logits.float(), m)
        if self.keep_weight:
            loss = loss + self.keep_weight * (self._change.float().square() * (1 - m)).mean()
        return loss

    def __getstate__(self):
        # The last forward's tensors belong to that pass's graph, which can be neither copied nor pickled.
        return {**super().__getstate__(), "_logits": None, "_change": None}

    @property
    def stride(self):
        """Total stride: inputs are padded to a multiple of it."""
        return 2 ** (len(self.widths) - 1)

    def encoder_parameters(self):
        """Parameters of the encoder (start + down), which the trainer may freeze for a few epochs."""
        return [*self.start.parameters(), *self.down.parameters()]

    def load_encoder(self, where):
        """Copy a trained classifier's `stem.*` into `start.*` and `stages.{i}.*` into `down.{i}.*`."""
        state = checkpoint.load(where)
        spec = state["recipe"].get("model", {})
        if spec.get("type", "classifier") != "classifier":
            raise ValueError(f"encoder {where}: is a '{spec['type']}' checkpoint; the encoder must be a trained 'classifier'")
        cfg = {k: p.default for k, p in inspect.signature(Classifier).parameters.items()} | spec
        theirs = list(cfg["widths"])
        if theirs[:len(self.widths)] != self.widths:
            raise ValueError(f"encoder {where}: the classifier's widths {theirs} do not start with the U-Net's widths {self.widths}")
        for key in ("blocks", "norm", "act", "preact"):
            if cfg[key] != getattr(self, key):
                raise ValueError(f"encoder {where}: the classifier has {key} = {cfg[key]!r} but the U-Net has {key} = {getattr(self, key)!r}")
        mine = {k: v for k, v in self.state_dict().items() if k.startswith(("start.", "down."))}
        rename = lambda k: "stem." + k[6:] if k.startswith("start.") else "stages." + k[5:]
        weights = checkpoint.weights(state)   # the average of the weights where the classifier kept one
        missing = [rename(k) for k in mine if rename(k) not in weights]
        if missing:
            raise ValueError(f"encoder {where}: the checkpoint lacks {len(missing)} encoder weights, e.g. {missing[0]}")
        for k, v in mine.items():
            src = weights[rename(k)]
            if src.shape != v.shape:
                raise ValueError(f"encoder {where}: {rename(k)} has shape {tuple(src.shape)}, the U-Net's {k} {tuple(v.shape)}")
            v.copy_(src)  # state_dict tensors share storage with the parameters and buffers

    def _pad(self, img):
        """Pad symmetrically to a multiple of the stride, and at least twice the stride, so every
        level has even sizes and the deepest is at least 2 x 2 (norms need more than one value)."""
        h, w = img.shape[-2:]
        s = self.stride
        ph, pw = max(-(-h // s) * s, 2 * s) - h, max(-(-w // s) * s, 2 * s) - w
        if not ph and not pw:
            return img, 0, 0
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        # Reflect needs each pad smaller than the side; tiny images fall back to replicate.
        mode = "reflect" if pad[1] < w and pad[3] < h else "replicate"
        return F.pad(img, pad, mode=mode), ph // 2, pw // 2

    def _features(self, inp):
        """The padded input's features at full resolution (widths[0] channels), before the last up block."""
        # 2. down: keep the input of every down stage as a skip
        x, skips = self.start(inp), []
        for down in self.down:
            skips.append(x)
            x = down(x)
        # 3. up: add the skip of the same size (not concatenate), then upsample and convolve
        for i, up in enumerate(self.up):
            if i:
                j = len(self.up) - 1 - i
                s = skips.pop()
                # A cross connection ends in a plain conv, whose output autograd does not keep: add in place.
                if j >= self.drop_skips:
                    x = add_(self.cross[j](s), x) if self.cross is not None else x + s
            if i == len(self.up) - 1:
                return x
            x = up(x)

    def forward(self, img, mask=None):
        """B x 3 x H x W -> B x 3 x H x W, any H and W; a masked U-Net also takes the B x 1 x H x W mask."""
        # 1. pad (a masked U-Net: the push-pull fill and the mask, as 4 channels)
        h, w = img.shape[-2:]
        if self.masked:
            if mask is None:
                raise ValueError("a masked U-Net needs the mask: call model(img, mask)")
            hole = mask.to(torch.bool)
            inp, top, left = self._pad(torch.cat([push_pull(img, hole), hole.to(img.dtype)], dim=1))
            x0 = inp[:, :3]
        else:
            inp, top, left = self._pad(img)
            x0 = inp
        # 2. down and 3. up to the full-resolution features, then the last up block
        x = self._features(inp)
        if self.detector is not None:
            logits = self.detector(x)
        x = self.up[-1](x)
        x = self.end(add_(x, x0) if not self.drop_skips else x)  # the last up block's output is a bare sum: safe to add into
        # 4. crop (a masked U-Net: and put the known pixels back; a detecting one: correct only where it found damage)
        crop = (lambda t: t[..., top:top + h, left:left + w]) if x.shape[-2:] != (h, w) else (lambda t: t)
        x = crop(x)
        if self.masked:
            return torch.where(hole, x, img.to(x.dtype))
        if self.detector is not None:
            self._logits, img = crop(logits), img.to(x.dtype)
            self._change = x - img
            return torch.addcmul(img, torch.sigmoid(self._logits).to(x.dtype), self._change)
        if self.keep_luma:
            return _with_luma(x, _luma(img.to(x.dtype)), 1.0 if self.training else self.chroma_gain)
        return x


LUMA = (0.299, 0.587, 0.114)   # ITU-R BT.601, the grayscale degradation's weights


def _luma(t):
    """B x 1 x H x W luma of a B x 3 x H x W batch."""
    return LUMA[0] * t[:, :1] + LUMA[1] * t[:, 1:2] + LUMA[2] * t[:, 2:3]


def _with_luma(x, y, gain=1.0):
    """`x`'s colour on luma `y`: y + k * gain * (x - Y(x)), the chroma scaled down (k <= 1, per pixel)
    just enough that no channel leaves [0, 1], so clamping the output later cannot change its luma."""
    chroma = (x - _luma(x)) * gain   # its luma is 0: adding it to y keeps y
    room = torch.where(chroma > 0, (1 - y) / chroma.clamp_min(1e-8), torch.where(chroma < 0, y / (-chroma).clamp_min(1e-8),
                                                                                  torch.ones_like(chroma)))
    k = room.amin(dim=1, keepdim=True).clamp(0, 1)
    return y + k * chroma


@hookimpl
def register_models(register):
    register("unet", UNet)
