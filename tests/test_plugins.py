"""Plugin manager: built-ins, files, entry points; duplicates, unknown names, broken plugins."""
import pytest

from workbench.api import registry as plugin_manager
from workbench.errors import WorkbenchError

BUILTIN_DEGRADATIONS = {"downsample", "grayscale", "jpeg", "watermark", "erase", "noise", "blur"}


def test_builtins_register_through_hooks(plugins):
    assert BUILTIN_DEGRADATIONS <= set(plugins.degradations.names())
    assert plugins.degradations.plugin_of("jpeg") == "workbench_plugins.jpeg"
    assert {"colorize", "superres", "dejpeg", "dewatermark", "inpaint", "outpaint"} <= set(plugins.recipes.names())


def test_plugin_file_is_loaded_and_recorded(plugins):
    assert plugins.degradations.plugin_of("vignette").endswith("vignette.py")
    entry = next(p for p in plugins.describe() if p["degradations"] == ["vignette"])
    assert entry["source"] == "file"


def test_env_var_loads_plugin_files(monkeypatch):
    from conftest import VIGNETTE
    monkeypatch.setenv(plugin_manager.ENV_VAR, str(VIGNETTE))
    assert "vignette" in plugin_manager.load().degradations


def test_unknown_name_lists_available(plugins):
    with pytest.raises(WorkbenchError) as e:
        plugins.degradations.get("jpg")
    msg = str(e.value)
    assert "Unknown degradation 'jpg'" in msg and "Did you mean 'jpeg'" in msg and "downsample" in msg


def test_duplicate_name_names_both_plugins(tmp_path):
    dup = tmp_path / "dup.py"
    dup.write_text("from workbench import hookimpl\n"
                   "@hookimpl\ndef register_degradations(register):\n    register('jpeg', lambda **kw: None)\n")
    with pytest.raises(WorkbenchError) as e:
        plugin_manager.load([dup])
    assert "'jpeg' is registered twice" in str(e.value)
    assert "workbench_plugins.jpeg" in str(e.value) and "dup.py" in str(e.value)


def test_plugin_that_fails_to_import_is_named(tmp_path):
    bad = tmp_path / "broken_plugin.py"
    bad.write_text("import no_such_module_anywhere\n")
    with pytest.raises(WorkbenchError) as e:
        plugin_manager.load([bad])
    assert "broken_plugin.py failed to import" in str(e.value) and "no_such_module_anywhere" in str(e.value)


def test_missing_plugin_file(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        plugin_manager.load([tmp_path / "nope.py"])


def test_plugin_with_unknown_hook_is_invalid(tmp_path):
    bad = tmp_path / "typo.py"
    bad.write_text("from workbench import hookimpl\n@hookimpl\ndef register_degradation(register):\n    pass\n")
    with pytest.raises(WorkbenchError, match="invalid"):
        plugin_manager.load([bad])


def test_build_checks_keys_and_wraps_value_errors(plugins):
    name, deg = plugin_manager.build(plugins.degradations, {"type": "jpeg", "quality": 20})
    assert name == "jpeg" and deg.quality.value == 20
    with pytest.raises(WorkbenchError, match="unknown key 'qualty'.*Did you mean 'quality'"):
        plugin_manager.build(plugins.degradations, {"type": "jpeg", "qualty": 20})
    with pytest.raises(WorkbenchError, match="plugin 'workbench_plugins.jpeg'.*out of range"):
        plugin_manager.build(plugins.degradations, {"type": "jpeg", "quality": 0})


def test_register_commands_adds_a_cli_command(tmp_path, run_cli):
    plugin = tmp_path / "hello.py"
    plugin.write_text("import click\nfrom workbench import hookimpl\n\n"
                      "@hookimpl\ndef register_commands(cli):\n"
                      "    @cli.command()\n    @click.argument('who')\n"
                      "    def hello(who):\n        '''Say hello.'''\n        click.echo(f'hello {who}')\n")
    from workbench.cli import cli
    try:
        result = run_cli("--plugin", plugin, "hello", "world")
        assert result.exit_code == 0 and result.output == "hello world\n"
        assert "hello" in run_cli("--plugin", plugin, "--help").output
    finally:
        cli.commands.pop("hello", None)   # the group is shared by every in-process test
