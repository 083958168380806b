"""`workbench check NAME` for any registered component: find the name among degradations, models
and losses (it may be all three), build each with its default parameters and run its contract; a
component that cannot be built (a loss whose pretrained weights are missing offline) gets one
failing "build" row carrying the engine's message instead of a crash.
"""
import numpy as np
import torch

from workbench.api.contracts import capability
from workbench.api.degradation import apply_chain
from workbench.api.registry import build, parameters
from workbench.author.degradations import check_degradation
from workbench.author.losses import check_loss
from workbench.author.models import check_model
from workbench.author.probes import ContractViolation, make_image, run_check
from workbench.errors import WorkbenchError, suggest

KINDS = {"degradations": "degradation", "models": "model", "losses": "loss"}
CLASSES = 3   # a classifier needs a class count, which the trainer takes from the data: any small one will do


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
    if kind == "models" and capability(factory, "task") in ("classify", "segment") and "classes" in parameters(factory)[0]:
        spec["classes"], note = CLASSES, f"built with classes={CLASSES}"
    try:
        _, obj = build(reg, spec)
    except WorkbenchError as e:
        return [("build", False, f"build: {e}")]
    except Exception as e:   # build() turns ValueError and TypeError into WorkbenchError; anything else is a plugin bug
        return [("build", False, f"build: {KINDS[kind]} '{name}' raised {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")]
    check = {"degradations": check_degradation, "models": check_model, "losses": check_loss}[kind]
    rows = [("build", True, note), *check(obj, name)]
    if kind == "degradations":   # what eval, grid and restore will ask of it, asked now rather than after training
        rows.append(run_check("baselines and scale", lambda: check_judging(obj, name, plugins)))
    return rows


def check_judging(deg, name, plugins):
    """Its baselines are registered and run on a test image; a super-resolution factor comes with a
    `shrink` to that size and a `prepare` that enlarges a real photo by it."""
    from workbench.judge.baselines import for_chain

    clean = make_image(48, 64)
    damaged, mask = apply_chain([(name, deg)], clean, np.random.default_rng(0))
    methods = for_chain([(name, deg)], plugins)
    for fn in methods.values():
        fn(clean, damaged, mask)
    s = int(capability(deg, "scale_factor"))
    if s > 1:
        small = capability(deg, "shrink")(clean, np.random.default_rng(0))
        if not isinstance(small, torch.Tensor) or tuple(small.shape[-2:]) != (48 // s, 64 // s):
            got = tuple(small.shape) if isinstance(small, torch.Tensor) else small
            raise ContractViolation("baselines and scale", f"scale_factor is {s} but shrink() of a 48x64 image gave {got}, "
                                    f"not a {64 // s}x{48 // s} image")
        big = capability(deg, "prepare")(small)
        if tuple(big.shape[-2:]) != (small.shape[-2] * s, small.shape[-1] * s):
            raise ContractViolation("baselines and scale", f"scale_factor is {s} but prepare() of a {small.shape[-1]}x"
                                    f"{small.shape[-2]} photo gave {big.shape[-1]}x{big.shape[-2]}: `restore` would not enlarge it")
    return ", ".join(methods) or "no baselines"



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
