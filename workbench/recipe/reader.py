"""TOML recipes: look-up by name or path, validation against defaults, `--set key=value` overrides."""
import copy
import math
import operator
import tomllib
from pathlib import Path

from workbench.api.degradation import Step
from workbench.api.registry import build, parameters
from workbench.errors import WorkbenchError, suggest
from workbench.recipe import defaults

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
# The comparisons defaults.RANGES is written in, and how each reads in an error message.
_COMPARE = {">=": (operator.ge, "{} or more"), ">": (operator.gt, "more than {}"),
            "<=": (operator.le, "{} or less"), "<": (operator.lt, "less than {}")}


class Recipe:
    """A validated recipe: `cfg` holds every section with defaults filled in; `source` names its file."""

    def __init__(self, cfg, source, *, from_file=True):
        self.cfg, self.source, self.from_file = cfg, source, from_file

    def __getitem__(self, section):
        return self.cfg[section]

    @property
    def name(self):
        return self.cfg["recipe"]["name"]

    def degradation_chain(self, plugins):
        """[(name, degradation)] in recipe order, each built and validated; each pair is a `Step` that
        also knows its plugin, so a failure while training names it."""
        steps = [build(plugins.degradations, spec, where=f"{self.source}: [[degradations]] #{i + 1}" if self.from_file else "")
                 for i, spec in enumerate(self.cfg["degradations"])]
        return [Step(name, deg, plugins.degradations.plugin_of(name)) for name, deg in steps]


def find(spec, plugins):
    """A recipe path or registered name -> (path-like, display name)."""
    path = Path(spec)
    if path.is_file():
        return path, str(path)
    if spec in plugins.recipes:
        return plugins.recipes.get(spec), spec
    if path.suffix == ".toml" or "/" in spec:
        raise WorkbenchError(f"Recipe file {spec} not found; check the path or run `workbench recipes` for built-in names.")
    names = plugins.recipes.names()
    raise WorkbenchError(f"Unknown recipe '{spec}'.{suggest(spec, names)} Available: {', '.join(names) or 'none'}; or give a path to a .toml file.")


def load(spec, plugins, overrides=()):
    """Read, validate and override a recipe named by `spec` (name or path)."""
    path, shown = find(spec, plugins)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise WorkbenchError(f"{shown}: invalid TOML: {e}.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise WorkbenchError(f"{shown}: cannot read recipe: {e}.") from e
    return from_dict(raw, shown, plugins, overrides)


def from_dict(raw, source, plugins, overrides=(), *, from_file=True):
    """Validate a recipe given as a dict; `source` names it in error messages."""
    cfg = _validate(copy.deepcopy(raw), source)
    _check_types(cfg, source, plugins)
    for item in overrides:
        apply_override(cfg, item, source, plugins)
    if not cfg["recipe"]["name"]:
        cfg["recipe"]["name"] = Path(str(source)).stem
    _check_name(cfg["recipe"]["name"], source)
    return Recipe(cfg, source, from_file=from_file)


def _check_name(name, source):
    """recipe.name becomes the run directory runs/NAME-DATE: one plain folder name, inside runs/."""
    bad = "/" in name or "\\" in name or name.startswith(".") or any(_control(c) for c in name)   # "." and ".." too
    if bad:
        raise WorkbenchError(f"{source}: recipe.name = {toml_value(name)} cannot name a run directory: use letters, "
                             "digits, '-' and '_' (no '/', no leading '.', no control characters).")


def _validate(raw, source):
    allowed = [*defaults.SECTIONS, *defaults.COMPONENTS]
    for section in raw:
        if section not in allowed:
            raise WorkbenchError(f"{source}: unknown section [{section}].{suggest(section, allowed)} Allowed: {', '.join(allowed)}.")
    cfg = {}
    for section, table in defaults.SECTIONS.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise WorkbenchError(f"{source}: [{section}] must be a table of keys.")
        cfg[section] = dict(table)
        for key, value in given.items():
            cfg[section][key] = _typed(f"{section}.{key}", value, table, source)
    for section, (_, shape) in defaults.COMPONENTS.items():
        given = raw.get(section, [] if shape is list else {})
        items = given if shape is list else [given]
        if not isinstance(given, shape) or not all(isinstance(t, dict) for t in items):
            form = f"[[{section}]] tables" if shape is list else f"a [{section}] table"
            raise WorkbenchError(f"{source}: {section} must be written as {form}.")
        for i, t in enumerate(items):
            if t and "type" not in t:
                raise WorkbenchError(f"{source}: {section} #{i + 1} has no 'type' key; name the plugin component to use.")
        if section == "model" and not given:   # the default model, filled in here so nothing else names it
            given = {"type": defaults.MODEL}
        cfg[section] = given
    return cfg


def _check_types(cfg, source, plugins):
    """Every component's `type` is a registered name, so an unknown one names the recipe file too."""
    for section, (kind, shape) in defaults.COMPONENTS.items():
        tables = cfg[section] if shape is list else [cfg[section]]
        for i, table in enumerate(tables):
            if table:
                where = f"[[{section}]] #{i + 1}" if shape is list else f"[{section}]"
                _known(plugins, kind, table["type"], f"{source}: {where}")


def _known(plugins, kind, name, where):
    try:
        plugins.registry(kind).get(name)
    except WorkbenchError as e:
        raise WorkbenchError(f"{where}: {e}") from e


def _typed(dotted, value, table, source):
    section, key = dotted.split(".", 1)
    if key not in table:
        raise WorkbenchError(f"{source}: unknown key '{dotted}'.{suggest(key, table)} Allowed in [{section}]: {', '.join(table)}.")
    default = table[key]
    want = type(default)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise WorkbenchError(f"{source}: {dotted} must be {_TYPE_NAMES.get(want, want.__name__)} (like {default!r}), got {value!r}.")
    _check_range(dotted, value, source)
    return value


def _check_range(dotted, value, source):
    """A numeric key's value against defaults.RANGES: '{source}: {key} = {value} is out of range: allowed ...'."""
    rule = defaults.RANGES.get(dotted)
    if rule is None:
        return
    conditions = [_condition(part) for part in rule.split(",")]
    finite = not isinstance(value, float) or math.isfinite(value)   # nan compares false with everything
    if not finite or not all(test(value, bound) for test, bound, _ in conditions):
        allowed = " and ".join(text for _, _, text in conditions)
        raise WorkbenchError(f"{source}: {dotted} = {toml_value(value)} is out of range: allowed {allowed}.")


def _condition(part):
    """'>= 1' -> (operator.ge, 1, '1 or more')."""
    op, number = part.split()
    test, text = _COMPARE[op]
    bound = float(number) if any(c in number for c in ".e") else int(number)
    return test, bound, text.format(number)


def parse_value(text):
    """A `--set` value is read as a TOML value (2, 1e-3, true, [2, 4], "x"); anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(cfg, item, source, plugins):
    """Apply one `key=value` to a validated cfg, checking the key exists and the value's type."""
    if "=" not in item:
        raise WorkbenchError(f"--set {item}: write KEY=VALUE, for example --set train.epochs=2.")
    key, text = (s.strip() for s in item.split("=", 1))
    value, parts = parse_value(text), key.split(".")
    where = f"--set {item}"
    head = parts[0]
    if head in defaults.SECTIONS:
        if len(parts) != 2:
            raise WorkbenchError(f"{where}: write {head}.KEY=VALUE; keys: {', '.join(defaults.SECTIONS[head])}.")
        cfg[head][parts[1]] = _typed(key, value, defaults.SECTIONS[head], where)
        return
    if head not in defaults.COMPONENTS:
        allowed = [*defaults.SECTIONS, *defaults.COMPONENTS]
        raise WorkbenchError(f"{where}: unknown section '{head}'.{suggest(head, allowed)} Allowed: {', '.join(allowed)}.")
    kind, shape = defaults.COMPONENTS[head]
    if shape is dict:
        table, rest = cfg[head], parts[1:]
        if not table and rest != ["type"]:
            raise WorkbenchError(f"{where}: the recipe has no [{head}]; set {head}.type first.")
    else:
        if len(parts) < 3:
            raise WorkbenchError(f"{where}: write {head}.N.KEY=VALUE or {head}.TYPE.KEY=VALUE.")
        rest = parts[2:]
        if parts[1] == str(len(cfg[head])) and rest == ["type"]:
            cfg[head].append({})   # `losses.N.type=...` one past the end adds a component
        table = _pick(cfg[head], parts[1], head, where)
    if len(rest) != 1:
        raise WorkbenchError(f"{where}: too many parts in the key; write {head}{'.N' if shape is list else ''}.KEY=VALUE.")
    param = rest[0]
    if param == "type":
        _known(plugins, kind, value, where)
    if param != "type" and not (head == "losses" and param == "weight"):  # weight is the engine's
        registry = plugins.registry(kind)
        known, open_kwargs = parameters(registry.get(table["type"]))
        if param not in known and not open_kwargs:
            raise WorkbenchError(f"{where}: unknown key '{param}' for {registry.singular} '{table['type']}'.{suggest(param, known)} Allowed: {', '.join(known) or 'none'}.")
    table[param] = value


def _pick(items, selector, head, where):
    """Select a list entry by 0-based index or by its unique `type`."""
    if selector.isdigit():
        i = int(selector)
        if i >= len(items):
            raise WorkbenchError(f"{where}: the recipe has {len(items)} {head} (numbered from 0).")
        return items[i]
    hits = [t for t in items if t.get("type") == selector]
    if len(hits) != 1:
        types = ", ".join(t.get("type", "?") for t in items) or "none"
        how = "appears more than once; use its index" if hits else "is not in the recipe"
        raise WorkbenchError(f"{where}: {head} '{selector}' {how} (recipe has: {types}).")
    return hits[0]


# TOML basic strings: these escaped by name, every other control character as \uXXXX, so any text
# (a path with an escape code, a tab in a name) reads back from recipe.toml exactly.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _control(c):
    return ord(c) < 0x20 or ord(c) == 0x7F


def toml_value(v):
    """A Python value as TOML source (the subset recipes use)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _control(c) else c) for c in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to TOML")


def dumps(cfg):
    """A resolved recipe as TOML text that `load` reads back to the same cfg."""
    lines = []
    for section in [*defaults.SECTIONS, *defaults.COMPONENTS]:
        tables = cfg.get(section)
        if not tables:
            continue
        for table in tables if isinstance(tables, list) else [tables]:
            lines.append(f"[[{section}]]" if isinstance(tables, list) else f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
    return "\n".join(lines)
