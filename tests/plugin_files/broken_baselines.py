"""Degradations and baselines that break the judging contract in each way a plugin author might."""
from workbench import hookimpl
from workbench.api.degradation import Degradation


def asking(names, **extra):
    return type("Asks", (Degradation,), {"__call__": lambda self, img, rng: img.clone(), "baselines": names, **extra})


def explodes(deg, chain):
    raise RuntimeError("factory exploded")


def wrong(deg, chain):
    return lambda clean, damaged, mask: "not an image"


@hookimpl
def register_baselines(register):
    register("explodes", explodes)
    register("wrong", wrong)


@hookimpl
def register_degradations(register):
    register("asks-explodes", asking(("explodes",)))
    register("asks-wrong", asking(("wrong",)))
    register("asks-missing", asking(("nonexistent",)))
    register("asks-string", asking("bicubic"))
    register("no-shrink", asking(("bicubic",), scale_factor=2, is_random=False))
