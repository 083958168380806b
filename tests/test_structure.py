"""The house stays walkable: rooms with a docstring, small modules, arrows that point down, no cycles,
and a core that never imports a built-in plugin (it asks the plugin instead)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "workbench"
MAX_LINES = 300        # DESIGN.md: a module over ~300 lines wants splitting
MAX_MODULES = 10       # ... and a folder over ~10 modules
# cli -> train/judge/infer/author -> data/recipe/runs/images/devices -> api -> (errors, the package root)
LAYERS = {"cli": 4, "train": 3, "judge": 3, "infer": 3, "author": 3, "data": 2, "recipe": 2, "runs": 2,
          "images": 2, "devices": 2, "api": 1, "tasks": 3}


def modules():
    """{dotted module name: path} of every module of the engine."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path, name, known):
    """The engine modules `path` (module `name`) imports, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in out if m.split(".")[0] in ("workbench", "workbench_plugins")} - {name}


MODULES = modules()
GRAPH = {name: imports(path, name, MODULES) for name, path in MODULES.items()}


ROOMS = {f"workbench.{p.name}" for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def room(name):
    """'train' for workbench.train.loop; None for the package root and errors.py, which every room may use."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and f"workbench.{parts[1]}" in ROOMS else None


def test_no_module_imports_a_builtin_plugin():
    offenders = {name: sorted(m for m in deps if m.startswith("workbench_plugins")) for name, deps in GRAPH.items()}
    assert not {k: v for k, v in offenders.items() if v}
    # nor by name through importlib
    assert not [n for n, p in MODULES.items() if "workbench_plugins" in p.read_text()]


def test_no_import_cycle():
    seen, done, cycles = set(), set(), []

    def visit(node, path):
        seen.add(node)
        for dep in sorted(GRAPH.get(node, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in seen:
                visit(dep, path + [dep])
        done.add(node)

    for name in sorted(GRAPH):
        if name not in seen:
            visit(name, [name])
    assert not cycles


def test_rooms_point_down_and_form_no_cycle():
    arrows = {(room(a), room(b)) for a, deps in GRAPH.items() for b in deps if room(a) and room(b) and room(a) != room(b)}
    upward = sorted((a, b) for a, b in arrows if LAYERS[a] < LAYERS[b])
    assert not upward, f"arrows that point up: {upward}"
    both_ways = sorted((a, b) for a, b in arrows if (b, a) in arrows and a < b)
    assert not both_ways, f"rooms that import each other: {both_ways}"


def test_every_room_is_layered_and_says_what_lives_there():
    for pkg in sorted(ROOMS):
        assert pkg.split(".")[1] in LAYERS, f"{pkg}: add it to LAYERS (and docs/layout.md)"
        doc = ast.get_docstring(ast.parse(MODULES[pkg].read_text()))
        assert doc and doc.strip(), f"{pkg} has no docstring"
        assert len(doc.strip().splitlines()[0]) <= 120, f"{pkg}: the first line should say in one line what lives there"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small_and_documented(name):
    path = MODULES[name]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it (DESIGN.md)"
    assert ast.get_docstring(ast.parse(path.read_text())) or name.endswith("__main__"), f"{path} has no docstring"


def test_rooms_are_small():
    for pkg in ROOMS:
        folder = ROOT / pkg.split(".")[1]
        count = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
        assert count <= MAX_MODULES, f"{folder} holds {count} modules; split it"


def test_the_top_level_holds_only_the_package_and_the_shared_error():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "__main__.py", "errors.py"]
