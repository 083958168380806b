"""Recipes: TOML look-up by name or path, the defaults, validation, `--set` overrides, writing recipe.toml."""
from workbench.recipe.reader import (
    Recipe,
    apply_override,
    dumps,
    find,
    from_dict,
    load,
    parse_value,
    toml_value,
)

__all__ = ["Recipe", "apply_override", "dumps", "find", "from_dict", "load", "parse_value", "toml_value"]
