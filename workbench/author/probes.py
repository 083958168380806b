"""What the contract checks share: the violation they raise, photo-like test images, and running
one check as one (property, passed, reason) row, whatever the component under test does."""
import torch


class ContractViolation(AssertionError):
    def __init__(self, prop, reason):
        super().__init__(f"{prop}: {reason}")
        self.prop, self.reason = prop, reason


def make_image(h, w, seed=0):
    """A smooth photo-like image plus texture, so every degradation has something to damage."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2])
    return (0.7 * base + 0.3 * torch.rand(3, h, w, generator=g)).clamp(0, 1)


def make_batch(h, w, n=2, seed=0):
    """n images from make_image, n x 3 x h x w."""
    return torch.stack([make_image(h, w, seed=seed + i) for i in range(n)])


def run_check(prop, fn):
    """Run fn() -> note as one row; any failure, ours or an exception from the component, fails the row."""
    try:
        return prop, True, fn() or ""
    except ContractViolation as e:
        return prop, False, str(e)
    except Exception as e:   # a crash inside the plugin is a broken contract too, not a crash of the checker
        return prop, False, f"{prop}: {_raised(e)}"


def _raised(e):
    return f"raised {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _at(h, w, fn, *args, prop, **kw):
    """fn(*args) with the image size added to whatever goes wrong."""
    try:
        return fn(*args, **kw)
    except ContractViolation as e:
        raise ContractViolation(e.prop, f"{e.reason} (at {h}x{w})") from e
    except Exception as e:
        raise ContractViolation(prop, f"{_raised(e)} (at {h}x{w})") from e


def _assert(rows, what, name):
    failed = [reason for _, ok, reason in rows if not ok]
    if failed:
        raise AssertionError(f"{what} '{name}' breaks the workbench contract:\n  " + "\n  ".join(failed))
