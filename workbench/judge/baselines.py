"""Which classical baselines judge a chain: each degradation names those that fit its damage (its
`baselines` capability) and plugins register them by name (the `register_baselines` hook; the
built-ins are in plugins/baselines.py). The engine knows none of them by name."""
from workbench.api.contracts import capability
from workbench.errors import WorkbenchError


def for_chain(chain, plugins):
    """{baseline name: fn(clean, damaged, mask) -> image} for the degradations in `chain`, in the
    order they name them; a baseline that cannot judge this chain honestly (its factory returns
    None) is left out."""
    found = {}
    for step in chain:
        name, deg = step
        for method in capability(deg, "baselines"):
            if method in found:
                continue
            if method not in plugins.baselines:
                raise WorkbenchError(f"degradation '{name}' asks for the baseline '{method}', which no plugin registers; "
                                     f"registered: {', '.join(plugins.baselines.names()) or 'none'}.")
            fn = plugins.baselines.get(method)(deg, chain)
            if fn is not None:
                found[method] = fn
    return found
