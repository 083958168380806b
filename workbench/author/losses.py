"""Contract checks for losses: scalar, finite, differentiable, zero for identical inputs (lower for
right logits, for classification and segmentation losses), non-negative. `check_loss` returns one row per property."""
import torch
import torch.nn.functional as F

from workbench.api.contracts import capability
from workbench.author.probes import ContractViolation, _assert, make_batch, run_check

TOL = 1e-6


def _loss_cases(loss):
    """(kind, [(output, target, identical)]): kind 'image', 'classify' for (logits B x C, indices B) or
    'segment' for (logits B x C x H x W, class maps B x H x W).

    A loss may say `task = "classify"` or "segment"; otherwise one that rejects images but takes logits is one.
    """
    kind = capability(loss, "task") if capability(loss, "task") in ("classify", "segment") else "image"
    if kind == "image":
        try:
            loss(make_batch(16, 16), make_batch(16, 16, seed=2))
        except Exception:
            try:
                loss(torch.randn(2, 5), torch.tensor([1, 3]))
                kind = "classify"
            except Exception:
                pass   # neither: the image checks below report the error, the common case
    if kind == "segment":
        logits = torch.randn(2, 5, 17, 23, generator=torch.Generator().manual_seed(0))
        maps = torch.randint(0, 5, (2, 17, 23), generator=torch.Generator().manual_seed(1))
        return kind, [(logits, maps, False), (torch.zeros(2, 5, 16, 16), torch.zeros(2, 16, 16, dtype=torch.int64), False)]
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
        return {"classify": "classification loss: logits B x C, class indices B",
                "segment": "segmentation loss: logits B x C x H x W, class maps B x H x W"}.get(kind, "")

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
        if kind == "segment":   # four 2 x 2 maps, one class each, as B x C x H x W logits
            target = target[:, None, None].expand(4, 2, 2).contiguous()
        hot = lambda t: F.one_hot(t, 5).float().movedim(-1, 1) * 10   # noqa: E731
        right, wrong = hot(target), hot((target + 1) % 5)
        r, w = _value(loss, right, target).item(), _value(loss, wrong, target).item()
        if not r < w:
            raise ContractViolation("lower when right", f"{r:.3g} for logits favouring the targets, {w:.3g} for wrong ones")

    def non_negative():
        for v, out, _ in values():
            if v.item() < -TOL:
                raise ContractViolation("non-negative", f"{v.item():.3g} for output {tuple(out.shape)}")

    return [run_check("scalar", scalar), run_check("finite", finite),
            run_check("differentiable", differentiable),
            run_check("lower when right", prefers_right) if kind != "image" else run_check("zero for identical", identical),
            run_check("non-negative", non_negative)]


def assert_loss_contract(loss, name="loss"):
    """AssertionError listing every broken property; for a plugin's own tests."""
    _assert(check_loss(loss, name), "loss", name)
