"""The README stays true: every hook, recipe key and command is documented."""
from pathlib import Path

from workbench import defaults, hookspecs
from workbench.cli import cli

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_hook_is_documented():
    hooks = [name for name in dir(hookspecs) if name.startswith(("register_", "on_"))]
    assert len(hooks) >= 9
    for name in hooks:
        assert f"def {name}(" in README, name


def test_every_recipe_key_is_in_the_reference():
    for section, table in defaults.SECTIONS.items():
        for key in table:
            assert f"`{section}.{key}`" in README, f"{section}.{key}"


def test_every_command_is_documented():
    for name in cli.commands:
        assert f"`workbench {name}" in README, name


def test_every_hook_has_a_test_of_its_own():
    tests = [p.read_text() for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_readme.py"]
    tests += [p.read_text() for folder in ("plugin_files", "example_plugin") for p in (Path(__file__).parent / folder).rglob("*.py")]
    for name in (n for n in dir(hookspecs) if n.startswith(("register_", "on_"))):
        assert any(f"def {name}(" in text for text in tests), f"no test implements the hook {name}"


def test_recipe_reference_states_the_allowed_ranges():
    for key, allowed in defaults.RANGES.items():
        row = next(line for line in README.splitlines() if line.startswith(f"| `{key}` |"))
        assert f"| {allowed} |" in row, key


def test_every_model_parameter_is_in_its_row():
    import inspect

    from workbench import plugins as plugin_manager

    models = plugin_manager.load().models
    for name in ("unet", "edsr", "classifier"):
        row = next(line for line in README.splitlines() if line.startswith(f"| `{name}` |"))
        for param in inspect.signature(models.get(name)).parameters:
            assert f"`{param}" in row, f"{name}.{param}"
