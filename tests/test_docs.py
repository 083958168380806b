"""The docs stay true: every hook, recipe key, range, command and model parameter is documented in its
docs/ page, the README stays a short front door with the set-up commands CI runs, and no link is dead."""
import inspect
import re
from pathlib import Path

from workbench.api import hookspecs, registry
from workbench.cli import cli
from workbench.recipe import defaults

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
HOOKS = [name for name in dir(hookspecs) if name.startswith(("register_", "on_"))]


def page(name):
    return (DOCS / name).read_text()


def rows(text, first):
    """The table row of `text` whose first cell is `first` (as in `| `unet` | ...`)."""
    found = [line for line in text.splitlines() if line.startswith(f"| `{first}` |")]
    assert found, f"no table row for `{first}`"
    return found[0]


def test_every_hook_is_documented():
    guide = page("plugins.md")
    assert len(HOOKS) >= 9
    for name in HOOKS:
        assert f"def {name}(" in guide, f"docs/plugins.md does not document the hook {name}"


def test_every_recipe_key_is_in_the_reference():
    reference = page("recipes.md")
    for section, table in defaults.SECTIONS.items():
        for key in table:
            assert f"`{section}.{key}`" in reference, f"docs/recipes.md lacks {section}.{key}"


def test_every_command_is_documented():
    commands = page("commands.md")
    for name in cli.commands:
        assert f"`workbench {name}" in commands, f"docs/commands.md lacks `workbench {name}`"


def test_every_hook_has_a_test_of_its_own():
    here = Path(__file__).parent
    tests = [p.read_text() for p in here.glob("test_*.py") if p.name != Path(__file__).name]
    tests += [p.read_text() for folder in ("plugin_files", "example_plugin") for p in (here / folder).rglob("*.py")]
    for name in HOOKS:
        assert any(f"def {name}(" in text for text in tests), f"no test implements the hook {name}"


def test_recipe_reference_states_the_allowed_ranges():
    reference = page("recipes.md")
    for key, allowed in defaults.RANGES.items():
        assert f"| {allowed} |" in rows(reference, key), key


def test_every_model_parameter_is_in_its_row():
    models = registry.load().models
    text = page("models.md")
    for name in ("unet", "edsr", "classifier", "segmenter"):
        row = rows(text, name)
        for param in inspect.signature(models.get(name)).parameters:
            assert f"`{param}" in row, f"{name}.{param}"


def test_the_readme_is_a_front_door_under_200_lines():
    assert len(README.splitlines()) < 200


def test_the_readme_has_the_set_up_commands_ci_runs_verbatim():
    lines = {line.strip() for line in README.splitlines()}
    assert 'pip install -e . && workbench run colorize' in lines       # the main job
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    runs = [line for line in ci if line.startswith("pip install")]
    assert any("pytest" in line for line in runs), ".ci/run no longer runs the README's test command"
    for line in runs:
        assert line in lines, f"README.md lacks the command .ci/run runs: {line}"
    assert 'pip install -e ".[test]" && pytest' in lines


def test_every_docs_page_is_linked_from_the_readme():
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    for path in pages:
        assert f"](docs/{path.name}" in README, f"README.md does not link docs/{path.name}"


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text):
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", prose(text), re.M)}


def prose(text):
    """`text` without its fenced code blocks (a `[[losses]]` line is not a link, a `# comment` not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def test_every_relative_link_points_to_a_file_that_exists():
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue                                      # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            where = f"{doc.relative_to(ROOT)}: link {target}"
            assert dest.exists(), f"{where} points to no file"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest.read_text()), f"{where}: no heading #{anchor} there"


def test_every_key_a_resume_may_change_is_documented():
    from workbench.train.resume import RESUMABLE

    text = page("training.md")
    for key in RESUMABLE:
        assert f"| `{key}` |" in text, f"docs/training.md lacks the resumable key {key}"


def test_every_overwrite_flag_is_in_the_command_reference():
    commands = page("commands.md")
    for name, command in cli.commands.items():
        if any(p.name == "overwrite" for p in command.params):
            row = next(line for line in commands.splitlines() if line.startswith(f"| `workbench {name} "))
            assert "[--overwrite]" in row, f"docs/commands.md: `workbench {name}` lacks --overwrite"
