"""Contract checks for models: any size in, same size out (B x classes for classifiers, B x classes x H x W
for segmenters), finite,
input untouched, gradients reach every parameter. `check_model` returns one row per property."""
import copy

import torch
import torch.nn.functional as F

from workbench.api.contracts import call_model, capability
from workbench.author.probes import ContractViolation, _assert, make_batch, run_check

MODEL_SIZES = ((8, 8), (17, 23), (64, 48))   # tiny, odd and non-square, ordinary; batches of 2


def check_model(model, name="model", sizes=MODEL_SIZES):
    """Any size in, same size out (B x classes for classifiers); finite; input untouched; gradients flow.

    Works on a copy: the optimizer step of the gradient check leaves the caller's model as it was.
    """
    model = copy.deepcopy(model).train()
    task = capability(model, "task")   # the engine's own test (workbench.tasks)
    classify, segment = task == "classify", task == "segment"
    outs = []

    def shape():
        for h, w in sizes:
            x = make_batch(h, w)
            with torch.no_grad():
                out = _call(model, x)
            if not isinstance(out, torch.Tensor):
                raise ContractViolation("shape", f"returned {type(out).__name__}, not a tensor")
            if classify and (out.ndim != 2 or len(out) != len(x)):
                raise ContractViolation("shape", f"input {tuple(x.shape)} gave {tuple(out.shape)}, not B x classes logits")
            if segment and (out.ndim != 4 or len(out) != len(x) or out.shape[2:] != x.shape[2:]):
                raise ContractViolation("shape", f"input {tuple(x.shape)} gave {tuple(out.shape)}, not B x classes x H x W logits")
            if task == "restore" and out.shape != x.shape:
                raise ContractViolation("shape", f"input {tuple(x.shape)} came back as {tuple(out.shape)}")
            outs.append(out)
        return ", ".join(f"2x3x{h}x{w}" for h, w in sizes)

    def finite():
        if not outs:
            raise ContractViolation("finite", "no output to judge (the shape check failed)")
        if not all(torch.isfinite(out).all() for out in outs):
            raise ContractViolation("finite", "NaN or Inf in the output")

    def no_mutation():
        x = make_batch(32, 32)
        before = x.clone()
        _call(model, x)
        if not torch.equal(before, x):
            raise ContractViolation("no mutation", "the input batch was modified in place")

    return [run_check("shape", shape), run_check("finite", finite), run_check("no mutation", no_mutation),
            run_check("gradients", lambda: _check_gradients(model, classify or segment))]


def _check_gradients(model, classify):
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ContractViolation("gradients", "the model has no trainable parameters")
    x = make_batch(32, 32)
    opt = torch.optim.Adam(params.values(), lr=1e-3)

    def backward():
        opt.zero_grad(set_to_none=True)
        out = _call(model, x)
        target = torch.arange(x[:, 0].numel()).reshape(x[:, 0].shape) if out.ndim == 4 else torch.arange(len(x))   # a class map, or labels
        loss = F.cross_entropy(out, target % out.shape[1]) if classify else (out - x.flip(-1)).square().mean()
        loss.backward()
        grads = {n: p.grad for n, p in params.items()}
        bad = [n for n, g in grads.items() if g is not None and not torch.isfinite(g).all()]
        if bad:
            raise ContractViolation("gradients", f"NaN or Inf gradients in {_names(bad)}")
        return grads

    if not any(g is not None and g.abs().sum() > 0 for g in backward().values()):
        raise ContractViolation("gradients", "no parameter got a non-zero gradient from a backward pass")
    opt.step()
    # Identity-initialised nets zero their last layer, which blocks gradients to the rest until one step.
    missing = [n for n, g in backward().items() if g is None]
    if missing:
        raise ContractViolation("gradients", f"{len(missing)} of {len(params)} parameters got no gradient after one "
                                f"optimizer step (unused in forward?): {_names(missing)}")
    return f"{len(params)} parameters"


def _call(model, x):
    """model(x), or model(x, mask) with a box of holes for a model that takes the mask (workbench.images.masks)."""
    h, w = x.shape[-2:]
    hole = torch.zeros(len(x), 1, h, w, dtype=torch.bool)
    hole[..., h // 4:h // 4 + max(1, h // 2), w // 4:w // 4 + max(1, w // 2)] = True
    return call_model(model, x, hole)


def _names(names, n=3):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def assert_model_contract(model, name="model"):
    """AssertionError listing every broken property; for a plugin's own tests."""
    _assert(check_model(model, name), "model", name)
