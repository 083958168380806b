"""Contract checks for models and losses, and `workbench check NAME` for any registered component.

`check_model` and `check_loss` return one (property, passed, reason) row per property, like
`contract.check_degradation`. `check_component` finds a name among degradations, models and losses
(it may be all three), builds each with its default parameters and checks it; a component that
cannot be built (a loss whose pretrained weights are missing offline) gets one failing "build" row
carrying the engine's message instead of a crash.
"""
import copy

import torch
import torch.nn.functional as F

from workbench.images import masks
from workbench.author.degradations import ContractViolation, check_degradation, make_batch, run_check
from workbench.errors import WorkbenchError, suggest
from workbench.api.registry import build, parameters

MODEL_SIZES = ((8, 8), (17, 23), (64, 48))   # tiny, odd and non-square, ordinary; batches of 2
TOL = 1e-6
KINDS = {"degradations": "degradation", "models": "model", "losses": "loss"}
CLASSES = 3   # a classifier needs a class count, which the trainer takes from the data: any small one will do


# -- models ---------------------------------------------------------------------------------------
def check_model(model, name="model", sizes=MODEL_SIZES):
    """Any size in, same size out (B x classes for classifiers); finite; input untouched; gradients flow.

    Works on a copy: the optimizer step of the gradient check leaves the caller's model as it was.
    """
    model = copy.deepcopy(model).train()
    classify = getattr(model, "task", "restore") == "classify"   # the engine's own test (workbench.train.task)
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
            if not classify and out.shape != x.shape:
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
            run_check("gradients", lambda: _check_gradients(model, classify))]


def _check_gradients(model, classify):
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ContractViolation("gradients", "the model has no trainable parameters")
    x = make_batch(32, 32)
    opt = torch.optim.Adam(params.values(), lr=1e-3)

    def backward():
        opt.zero_grad(set_to_none=True)
        out = _call(model, x)
        loss = F.cross_entropy(out, torch.arange(len(x)) % out.shape[-1]) if classify else (out - x.flip(-1)).square().mean()
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
    return masks.forward(model, x, hole)


def _names(names, n=3):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# -- losses ---------------------------------------------------------------------------------------
def _loss_cases(loss):
    """(kind, [(output, target, identical)]): kind 'image', or 'classify' for (logits B x C, indices B).

    A loss may say `task = "classify"`; otherwise one that rejects images but takes logits is one.
    """
    kind = "classify" if getattr(loss, "task", None) == "classify" else "image"
    if kind == "image":
        try:
            loss(make_batch(16, 16), make_batch(16, 16, seed=2))
        except Exception:
            try:
                loss(torch.randn(2, 5), torch.tensor([1, 3]))
                kind = "classify"
            except Exception:
                pass   # neither: the image checks below report the error, the common case
    if kind == "classify":
        logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
        return kind, [(logits, torch.tensor([0, 1, 2, 3]), False), (torch.zeros(4, 5), torch.tensor([4, 3, 2, 1]), False)]
    # Textured pairs at two sizes first (the gradient must not vanish there), the extremes, identical pairs.
    return kind, [(make_batch(32, 32), make_batch(32, 32, seed=2), False), (make_batch(17, 23), make_batch(17, 23, seed=5), False),
                  (torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16), False),
                  (make_batch(32, 32, seed=7), make_batch(32, 32, seed=7), True),
                  (make_batch(17, 23, seed=9), make_batch(17, 23, seed=9), True)]


def _value(loss, out, target):
    v = loss(out, target)
    if not isinstance(v, torch.Tensor) or v.ndim != 0:
        got = f"shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
        raise ContractViolation("scalar", f"returned {got}, not a 0-dim tensor (reduce with .mean())")
    return v


def check_loss(loss, name="loss"):
    """Scalar, finite, differentiable, zero for identical inputs, non-negative.

    A classification loss (logits B x C, class indices B) is checked to be lower when the logits
    favour the target classes than when they favour wrong ones, instead of zero for identical inputs.
    """
    kind, cases = _loss_cases(loss)
    def values():
        return [(_value(loss, out, target), out, same) for out, target, same in cases]

    def scalar():
        values()
        return "classification loss: logits B x C, class indices B" if kind == "classify" else ""

    def finite():
        for v, out, _ in values():
            if not torch.isfinite(v):
                raise ContractViolation("finite", f"{v.item()} for output {tuple(out.shape)}")

    def differentiable():
        for i, (out, target, same) in enumerate(c for c in cases if not c[2]):
            out = out.clone().requires_grad_(True)
            v = _value(loss, out, target)
            if not v.requires_grad:
                raise ContractViolation("differentiable", "the value does not depend on the output through autograd")
            (grad,) = torch.autograd.grad(v, out)
            if not torch.isfinite(grad).all():
                raise ContractViolation("differentiable", f"NaN or Inf gradient for output {tuple(out.shape)}")
            # Only the textured pair must move: zeros vs ones rightly gives an edge loss no gradient.
            if i == 0 and grad.abs().sum() == 0:
                raise ContractViolation("differentiable", f"zero gradient for a different output and target {tuple(out.shape)}")

    def identical():
        for v, out, same in values():
            if same and abs(v.item()) > TOL:
                raise ContractViolation("zero for identical", f"{v.item():.3g} for identical output and target {tuple(out.shape)}")

    def prefers_right():
        target = torch.tensor([0, 1, 2, 3])
        right, wrong = F.one_hot(target, 5).float() * 10, F.one_hot((target + 1) % 5, 5).float() * 10
        r, w = _value(loss, right, target).item(), _value(loss, wrong, target).item()
        if not r < w:
            raise ContractViolation("lower when right", f"{r:.3g} for logits favouring the targets, {w:.3g} for wrong ones")

    def non_negative():
        for v, out, _ in values():
            if v.item() < -TOL:
                raise ContractViolation("non-negative", f"{v.item():.3g} for output {tuple(out.shape)}")

    return [run_check("scalar", scalar), run_check("finite", finite),
            run_check("differentiable", differentiable),
            run_check("lower when right", prefers_right) if kind == "classify" else run_check("zero for identical", identical),
            run_check("non-negative", non_negative)]


# -- components by name ---------------------------------------------------------------------------
def find_kinds(plugins, name):
    """The registry kinds ('degradations', ...) that register `name`; WorkbenchError listing all names if none."""
    kinds = [k for k in KINDS if name in plugins.registry(k)]
    if not kinds:
        every = sorted({n for k in KINDS for n in plugins.registry(k).names()})
        listing = "; ".join(f"{k}: {', '.join(plugins.registry(k).names()) or 'none'}" for k in KINDS)
        raise WorkbenchError(f"Unknown degradation, model or loss '{name}'.{suggest(name, every)} Available {listing}.")
    return kinds


def check_component(plugins, name):
    """[(kind, rows)] for each kind registering `name` ('degradation', 'model', 'loss')."""
    return [(KINDS[kind], check_one(plugins, kind, name)) for kind in find_kinds(plugins, name)]


def check_one(plugins, kind, name):
    """Build `name` from registry `kind` with its default parameters and run that kind's contract."""
    reg = plugins.registry(kind)
    spec, note, factory = {"type": name}, "default parameters", reg.get(name)
    if kind == "models" and getattr(factory, "task", "restore") == "classify" and "classes" in parameters(factory)[0]:
        spec["classes"], note = CLASSES, f"built with classes={CLASSES}"
    try:
        _, obj = build(reg, spec)
    except WorkbenchError as e:
        return [("build", False, f"build: {e}")]
    except Exception as e:   # build() turns ValueError and TypeError into WorkbenchError; anything else is a plugin bug
        return [("build", False, f"build: {KINDS[kind]} '{name}' raised {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")]
    check = {"degradations": check_degradation, "models": check_model, "losses": check_loss}[kind]
    return [("build", True, note), *check(obj, name)]


def format_rows(name, kind, rows):
    """Terminal text: a summary line, then PASS or FAIL and one line per property."""
    failed = sum(not ok for _, ok, _ in rows)
    head = f"{kind} '{name}': " + (f"{failed} of {len(rows)} checks failed" if failed else f"all {len(rows)} checks passed")
    lines = [f"  PASS  {prop}" + (f"  ({reason})" if reason else "") if ok else f"  FAIL  {reason}" for prop, ok, reason in rows]
    return "\n".join([head, *lines])


def to_json(name, kind, rows):
    """One component's results as a JSON-ready dict."""
    return {"name": name, "kind": kind, "passed": all(ok for _, ok, _ in rows),
            "checks": [{"property": p, "passed": ok, "reason": r} for p, ok, r in rows]}
