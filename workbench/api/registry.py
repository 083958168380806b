"""Plugin manager: built-ins, `workbench` entry points, and plugin files named by the user.

Every name a plugin registers is recorded with the plugin that registered it, so a duplicate is
an error naming both plugins and `workbench plugins` can say who provides what.
"""
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
from pathlib import Path

import pluggy

from workbench.api import hookspecs
from workbench.errors import WorkbenchError, suggest

KINDS = ("degradations", "models", "losses", "baselines", "recipes")
SINGULAR = {"degradations": "degradation", "models": "model", "losses": "loss", "baselines": "baseline", "recipes": "recipe"}
HOME = "workbench"   # the distribution whose own entry points are the built-in plugins
ENV_VAR = "WORKBENCH_PLUGINS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Registry:
    """Names of one kind (degradations, models, ...) mapped to (object, plugin name)."""

    def __init__(self, kind):
        self.kind, self.singular = kind, SINGULAR[kind]
        self._items = {}

    def add(self, name, obj, plugin):
        if not isinstance(name, str) or not _NAME.match(name):
            raise WorkbenchError(f"Plugin '{plugin}' registered a {self.singular} with an invalid name {name!r}: use letters, digits, '-', '_' or '.'.")
        if self.kind != "recipes" and not callable(obj):
            raise WorkbenchError(f"Plugin '{plugin}' registered {self.singular} '{name}' with {obj!r}, which is not callable.")
        if name in self._items:
            first = self._items[name][1]
            raise WorkbenchError(f"{self.singular.capitalize()} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'; uninstall or rename one of them.")
        self._items[name] = (obj, plugin)

    def get(self, name):
        if name not in self._items:
            available = ", ".join(sorted(self._items)) or "none"
            raise WorkbenchError(f"Unknown {self.singular} '{name}'.{suggest(name, self._items)} Available: {available}.")
        return self._items[name][0]

    def plugin_of(self, name):
        self.get(name)
        return self._items[name][1]

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __len__(self):
        return len(self._items)


class Plugins:
    """The loaded plugin manager and one Registry per kind."""

    def __init__(self, pm, sources):
        self.pm, self.sources = pm, sources
        for kind in KINDS:
            setattr(self, kind, _collect(pm, kind))

    def registry(self, kind):
        if kind not in KINDS:
            raise WorkbenchError(f"Unknown kind '{kind}'.{suggest(kind, KINDS)} Choose one of: {', '.join(KINDS)}.")
        return getattr(self, kind)

    def describe(self):
        """Each plugin with where it came from and the names it registers (for `workbench plugins`)."""
        out = []
        for name in sorted(self.sources, key=lambda n: (self.sources[n]["source"] != "builtin", n)):
            entry = {"name": name, **self.sources[name]}
            for kind in KINDS:
                reg = getattr(self, kind)
                entry[kind] = [n for n in reg.names() if reg.plugin_of(n) == name]
            out.append(entry)
        return out


def _collect(pm, kind):
    reg = Registry(kind)
    # pluggy lists implementations last-registered first; reverse so built-ins register first.
    for impl in reversed(getattr(pm.hook, f"register_{kind}").get_hookimpls()):
        def register(name, obj, _plugin=impl.plugin_name):
            reg.add(name, obj, _plugin)
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except WorkbenchError:
            raise
        except Exception as e:
            raise WorkbenchError(f"Plugin '{impl.plugin_name}' failed in register_{kind}: {type(e).__name__}: {e}") from e
    return reg


def load(paths=()):
    """Build the plugin manager: built-ins, installed entry points, then `paths` and $WORKBENCH_PLUGINS.

    The built-ins are the workbench's own entry points (pyproject.toml), loaded first and named by
    their module; the engine imports none of them itself."""
    pm = pluggy.PluginManager("workbench")
    pm.add_hookspecs(hookspecs)
    sources = {}
    points = importlib.metadata.entry_points(group="workbench")
    own = sorted((ep for ep in points if _dist(ep) == HOME), key=lambda ep: ep.name)
    if not own:
        raise WorkbenchError(f"the built-in plugins are not registered: the '{HOME}' package is not installed; "
                             "run `pip install -e .` in its source folder (or `pip install workbench`).")
    for ep in own:
        pm.register(_import_entry_point(ep, HOME), name=ep.value)
        sources[ep.value] = {"source": "builtin"}
    for ep in points:
        if _dist(ep) == HOME:
            continue
        dist = _dist(ep)
        module = _import_entry_point(ep, dist)
        _register(pm, module, ep.name, f"entry point '{ep.name}' of package '{dist}'")
        sources[ep.name] = {"source": "entry point", "package": dist, "module": ep.value}
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for path in [*paths, *env]:
        module = _import_file(Path(path))
        name = str(Path(path))
        _register(pm, module, name, f"plugin file {name}")
        sources[name] = {"source": "file", "path": str(Path(path).resolve())}
    return Plugins(pm, sources)


def _dist(ep):
    return ep.dist.name if ep.dist else "?"


def _register(pm, module, name, where):
    if pm.has_plugin(name) or module in pm.get_plugins():
        raise WorkbenchError(f"Plugin '{name}' ({where}) is loaded twice; remove the duplicate.")
    try:
        pm.register(module, name=name)
        pm.check_pending()  # a misspelt hook name would otherwise be silently ignored
    except pluggy.PluginValidationError as e:
        raise WorkbenchError(f"Plugin '{name}' ({where}) is invalid: {e}") from e


def _import_entry_point(ep, dist):
    try:
        return ep.load()
    except Exception as e:
        raise WorkbenchError(f"Plugin '{ep.name}' from package '{dist}' failed to import: {type(e).__name__}: {e}. Fix it or `pip uninstall {dist}`.") from e


def _import_file(path):
    if path.suffix != ".py" or not path.is_file():
        raise WorkbenchError(f"Plugin file {path} does not exist or is not a .py file; give the path to a Python module.")
    modname = "workbench_user_plugin_" + re.sub(r"\W", "_", str(path.resolve()))
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise WorkbenchError(f"Plugin file {path} failed to import: {type(e).__name__}: {e}") from e
    return module


def parameters(factory):
    """Keyword parameters of a factory with their defaults (inspect.Parameter.empty if required)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}, True
    params, open_kwargs = {}, False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_kwargs = True
        elif p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self":
            params[p.name] = p.default
    return params, open_kwargs


def build(registry, spec, *, where=""):
    """Build a component from a recipe table {type = NAME, **params}, validating the keys first."""
    spec, where = dict(spec), f"{where}: " if where else ""
    if "type" not in spec:
        raise WorkbenchError(f"{where}missing 'type'; choose a {registry.singular}: {', '.join(registry.names())}.")
    name = spec.pop("type")
    factory = registry.get(name)
    known, open_kwargs = parameters(factory)
    for key in spec:
        if key not in known and not open_kwargs:
            raise WorkbenchError(f"{where}unknown key '{key}' for {registry.singular} '{name}'.{suggest(key, known)} Allowed: {', '.join(known) or 'none'}.")
    missing = [k for k, d in known.items() if d is inspect.Parameter.empty and k not in spec]
    if missing:
        raise WorkbenchError(f"{where}{registry.singular} '{name}' needs {', '.join(missing)}.")
    try:
        return name, factory(**spec)
    except (ValueError, TypeError) as e:
        raise WorkbenchError(f"{where}{registry.singular} '{name}' (plugin '{registry.plugin_of(name)}'): {e}") from e
