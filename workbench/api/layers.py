"""Building blocks shared by the U-Net and the classifier: conv layers, res blocks, stages.

Follows fast.ai course22p2 (notebooks 24-25): `conv` is Conv2d [+ norm] [+ act]; a `ResBlock`
is two convs plus an identity path (avg-pooled and 1x1-projected when the shape changes), as in
He et al. 2016, "Deep Residual Learning for Image Recognition". `preact=True` gives the
pre-activation blocks of He et al. 2016, "Identity Mappings in Deep Residual Networks"
(norm -> act -> conv, twice; identity path untouched; nothing after the sum).
"""
from torch import nn

# Every activation maps 0 to 0, so a block whose residual branch is zeroed outputs exactly 0.
ACTS = {
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "gelu": lambda inplace: nn.GELU(),  # has no in-place form
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "leaky": lambda inplace: nn.LeakyReLU(0.1, inplace=inplace),
}
NORMS = ("batch", "instance", "group", "none")


def check_choice(option, value, allowed):
    if value not in allowed:
        raise ValueError(f"{option} = {value!r} is not allowed: choose one of {', '.join(map(repr, allowed))}")


def check_config(*, widths, blocks, norm, act):
    """Validate the options both models share, with messages naming the values."""
    if not isinstance(widths, (list, tuple)) or not widths:
        raise ValueError(f"widths = {widths!r} must be a non-empty list of positive integers, e.g. [32, 64, 128]")
    bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, int) or w < 1]
    if bad:
        raise ValueError(f"widths = {list(widths)!r} must hold positive integers only; {bad[0]!r} is not one")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks = {blocks!r} must be an integer >= 1 (res blocks per stage)")
    check_choice("norm", norm, NORMS)
    check_choice("act", act, list(ACTS))


def act_layer(act, *, inplace=False):
    """The activation named `act`, or None for no activation."""
    if act is None:
        return None
    check_choice("act", act, list(ACTS))
    return ACTS[act](inplace)


def groups_for(channels, most=32):
    """The largest group count <= `most` that divides `channels` (32 as in Wu & He 2018)."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


def norm_layer(norm, nf):
    """The normalisation named `norm` over `nf` channels, or None. Always affine, so it can be zeroed."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(nf)
    if norm == "instance":
        return nn.InstanceNorm2d(nf, affine=True)
    if norm == "group":
        return nn.GroupNorm(groups_for(nf), nf)
    return None


def conv(ni, nf, ks=3, stride=1, *, act="relu", norm="batch", bias=None):
    """Conv2d (same padding) [+ norm] [+ act]. Bias only when no norm follows (the norm removes it)."""
    if ks < 1 or ks % 2 == 0:
        raise ValueError(f"ks = {ks!r} must be a positive odd integer, so padding ks // 2 keeps the size")
    bias = norm == "none" if bias is None else bias
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=bias), norm_layer(norm, nf),
              act_layer(act, inplace=True)]  # in place is safe: neither conv nor norm keeps its output for backward
    return nn.Sequential(*[l for l in layers if l is not None])


def preconv(ni, nf, ks=3, stride=1, *, act="relu", norm="batch"):
    """[norm] [+ act] + Conv2d: the pre-activation order of He et al. 2016 (Identity Mappings)."""
    # Without a norm the act would overwrite the block's input, which the identity path still needs.
    layers = [norm_layer(norm, ni), act_layer(act, inplace=norm != "none"),
              nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=norm == "none")]
    return nn.Sequential(*[l for l in layers if l is not None])


def add_(a, b):
    """a + b, in place into `a` when that keeps the dtype (under autocast `b` may be float32 and `a`
    bfloat16: the sum must then be float32). Only for an `a` autograd does not need afterwards."""
    return a.add_(b) if a.dtype == b.dtype else a + b


class ResBlock(nn.Module):
    """Two convs plus an identity path: act(convs(x) + idconv(pool(x))).

    ni, nf: input and output channels; stride: 1, or 2 to halve the size (second conv and avg pool);
    ks: kernel size; act: "relu", "gelu", "silu", "leaky" or None; norm: "batch", "instance",
    "group" or "none"; preact: pre-activation block (no activation after the sum); final_act: False
    drops the activation after the sum; project: a 1x1 conv on the identity path even when ni == nf.
    """

    def __init__(self, ni, nf, *, stride=1, ks=3, act="relu", norm="batch", preact=False, final_act=True, project=False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride = {stride!r} must be 1 or 2")
        make = preconv if preact else conv
        # The first conv keeps the size and the second strides, as in the lesson.
        self.convs = nn.Sequential(make(ni, nf, ks, act=act, norm=norm),
                                   make(nf, nf, ks, stride, act=None if not preact else act, norm=norm))
        self.idconv = conv(ni, nf, 1, act=None, norm="none") if ni != nf or project else nn.Identity()
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.act = act_layer(act, inplace=True) if final_act and not preact else None

    def zero_(self, identity=False):
        """Zero the last layer of the residual branch (its norm's scale and shift, or the conv), and with
        `identity` the 1x1 projection too, so the block outputs exactly 0 (if it has no final act)."""
        parts = [self.convs[-1][-1]]
        if identity:
            if isinstance(self.idconv, nn.Identity):
                raise ValueError("cannot zero an identity path without a projection: build the block with project=True")
            parts.append(self.idconv[0])
        for m in parts:
            nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        return self

    def forward(self, x):
        out = add_(self.convs(x), self.idconv(self.pool(x)))  # the last conv/norm output is not kept by autograd
        return self.act(out) if self.act is not None else out


def make_stage(ni, nf, *, blocks, stride, **block_kw):
    """`blocks` res blocks: the first changes channels and strides, the rest keep both."""
    return nn.Sequential(ResBlock(ni, nf, stride=stride, **block_kw),
                         *[ResBlock(nf, nf, **block_kw) for _ in range(blocks - 1)])
