"""`workbench new degradation|model|loss NAME`: write a ready-to-install plugin package.

The package is what tests/example_plugin is: a pyproject with a `workbench` entry point, a module
with a working example, contract tests and a README. The files come from workbench/templates,
filled in with `string.Template` (`${name}`, `${Class}`, ...).
"""
import keyword
import re
from pathlib import Path
from string import Template

from workbench.errors import WorkbenchError
from workbench.runs import files

TEMPLATES = Path(__file__).with_name("templates")
KINDS = ("degradation", "model", "loss")
REGISTRY = {"degradation": "degradations", "model": "models", "loss": "losses"}
SUMMARY = {
    "degradation": "A workbench degradation: ${name} (example body: block-average pixelation).",
    "model": "A workbench model: ${name} (example: a small residual conv net that starts as the identity).",
    "loss": "A workbench loss: ${name} (example: L1 distance between image gradients, an edge loss).",
}
SNIPPET = {
    "degradation": '[[degradations]]\ntype = "${name}"\nblock = [2, 8]        # a range, sampled per image',
    "model": '[model]\ntype = "${name}"\nwidth = 32\ndepth = 4',
    "loss": '[[losses]]\ntype = "l1"            # a pixel loss keeps the colours right\n\n'
            '[[losses]]\ntype = "${name}"\nweight = 0.5',
}
TAKEN = {"Degradation", "Param", "F", "DISTANCES"}   # names the templates import or define
# Lowercase, digits and underscores: the name is also the Python package `workbench_NAME`.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_name(name):
    """NAME must be a lowercase identifier fragment; WorkbenchError suggesting a fixed name otherwise."""
    if _NAME.match(name):
        return name
    fixed = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    fixed = re.sub(r"^[^a-z]+", "", fixed) or "my_plugin"
    raise WorkbenchError(f"Plugin name {name!r} is not allowed: use lowercase letters, digits and underscores, "
                         f"starting with a letter (it becomes the Python package workbench_NAME). Try '{fixed}'.")


def class_name(name, kind="degradation"):
    """'pixel_art' -> 'PixelArt'; 'none' or 'param', a keyword or a name the template imports -> 'NoneDegradation'."""
    cls = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return cls + kind.capitalize() if keyword.iskeyword(cls) or cls in TAKEN else cls


def registered_warning(plugins, kind, name):
    """A warning when an installed plugin already registers `name` for `kind`, else None.

    Only a warning: the user may be writing a replacement, but both installed at once is an error.
    """
    reg = plugins.registry(REGISTRY[kind])
    if name not in reg:
        return None
    return (f"Warning: {kind} '{name}' is already registered by plugin '{reg.plugin_of(name)}'; installing this "
            f"package beside it makes '{name}' registered twice, an error, until one is uninstalled or renamed.")


def new_plugin(kind, name, outdir="."):
    """Write the plugin package for a `kind` named `name` into outdir/name; returns that folder."""
    if kind not in KINDS:
        raise WorkbenchError(f"Unknown plugin kind {kind!r}: choose one of {', '.join(KINDS)}.")
    check_name(name)
    root = Path(outdir) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise WorkbenchError(f"{root} already exists and is not empty; choose another NAME or -o DIR, or remove it.")
    values = {"name": name, "Class": class_name(name, kind), "kind": kind, "kinds": REGISTRY[kind]}
    values["summary"] = Template(SUMMARY[kind]).substitute(values)
    values["snippet"] = Template(SNIPPET[kind]).substitute(values)
    made = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"workbench_{name}/__init__.py": f"{kind}.py.tmpl",
        f"tests/test_{name}.py": f"test_{kind}.py.tmpl",
    }
    for dest, template in made.items():
        files.write_text(root / dest, Template((TEMPLATES / template).read_text()).substitute(values))
    return root
