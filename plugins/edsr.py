"""`edsr`: a full-resolution residual network for super-resolution and denoising.

EDSR (Lim et al. 2017, "Enhanced Deep Residual Networks for Single Image Super-Resolution"), the
baseline without upsampling layers: as in VDSR (Kim et al. 2016, "Accurate Image Super-Resolution
Using Very Deep Convolutional Networks") the model sees the bicubic-upsampled image and learns
only the residual, through a global skip that adds the input back. Every layer works at full
resolution and sees every pixel, whereas the U-Net's strided path throws away exactly the high
frequencies that super-resolution and denoising must recreate. The last conv starts at zero, so
the untrained net returns its input exactly, like the U-Net.
"""
import numbers

from torch import nn

from workbench import hookimpl
from workbench.api.layers import ACTS, act_layer, add_, check_choice


def conv3(ni, nf):
    return nn.Conv2d(ni, nf, 3, padding=1)


class Block(nn.Module):
    """EDSR's res block: conv-act-conv, no batch norm, the branch scaled by `res_scale` before the sum."""

    def __init__(self, nf, *, res_scale, act):
        super().__init__()
        # In-place act: a conv does not keep its output for backward.
        self.convs = nn.Sequential(conv3(nf, nf), act_layer(act, inplace=True), conv3(nf, nf))
        self.res_scale = res_scale

    def forward(self, x):
        out = self.convs(x)  # a fresh tensor autograd does not keep: scale and add in place
        if self.res_scale != 1:
            out = out.mul_(self.res_scale)
        return add_(out, x)  # never into x: the first conv keeps it for backward


class EDSR(nn.Module):
    """Full-resolution residual net without batch norm (EDSR baseline) that starts as the identity.

    channels: feature channels of every layer (EDSR baseline: 64).
    blocks: residual blocks in the body (EDSR baseline: 16).
    res_scale: factor on each residual branch before it is added; 0.1 keeps deep nets stable
      (Szegedy et al. 2017, as in EDSR); 1 turns the scaling off.
    act: activation inside each block: "relu", "gelu", "silu" or "leaky" (LeakyReLU 0.1).
    """

    def __init__(self, *, channels=48, blocks=8, res_scale=0.1, act="relu"):
        super().__init__()
        for name, v in (("channels", channels), ("blocks", blocks)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} = {v!r} must be an integer >= 1")
        if isinstance(res_scale, bool) or not isinstance(res_scale, numbers.Real) or not res_scale > 0:
            raise ValueError(f"res_scale = {res_scale!r} must be a number above 0 (0.1 in EDSR; 1 for no scaling)")
        check_choice("act", act, list(ACTS))
        self.head = conv3(3, channels)
        self.body = nn.Sequential(*[Block(channels, res_scale=float(res_scale), act=act) for _ in range(blocks)],
                                  conv3(channels, channels))
        self.tail = conv3(channels, 3)
        # Zero tail: the net outputs 0 + img, so training learns only the correction (fast.ai lesson 25).
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, img):
        """B x 3 x H x W -> B x 3 x H x W, any H and W (stride 1, same padding throughout)."""
        # 1. head: shallow features
        feat = self.head(img)
        # 2. body: res blocks and a conv, plus the body skip (Lim et al. 2017, fig. 3)
        x = add_(self.body(feat), feat)  # the body's last conv output is not kept by autograd
        # 3. tail: back to RGB plus the image itself (global residual, Kim et al. 2016); under
        # autocast add_ returns a float32 sum, so the identity is exact and not rounded to bf16
        return add_(self.tail(x), img)


@hookimpl
def register_models(register):
    register("edsr", EDSR)
