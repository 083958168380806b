"""Registers the built-in recipes in `recipes/` (installed as `workbench_recipes`)."""
from importlib.resources import files

from workbench import hookimpl


@hookimpl
def register_recipes(register):
    for entry in sorted(files("workbench_recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            register(entry.name.removesuffix(".toml"), entry)
