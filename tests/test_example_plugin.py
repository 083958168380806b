"""A separate package with a `workbench` entry point, installed for real, used from a recipe."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PACKAGE = Path(__file__).parent / "example_plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Install the example package into a private folder so the test leaves the venv untouched."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(PACKAGE)],
                          capture_output=True, text=True, cwd=build)
    assert proc.returncode == 0, proc.stderr
    return target


def workbench(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORKBENCH_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True, env=env)


def test_entry_point_plugin_is_listed(site):
    proc = workbench(site, "list", "degradations")
    assert proc.returncode == 0, proc.stderr
    assert "posterize(bits=[2, 4])  [posterize]" in proc.stdout
    assert "deposterize" in workbench(site, "recipes").stdout


def test_recipe_uses_plugin_degradation(site, tmp_path, photo):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('[[degradations]]\ntype = "posterize"\nbits = 1\n\n[[degradations]]\ntype = "blur"\nsigma = 0.0\n')
    proc = workbench(site, "degrade", recipe, photo, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    values = np.unique(np.asarray(Image.open(tmp_path / "out" / "photo.png")))
    assert set(values) <= {0, 255}                    # one bit per channel
    # and the recipe the plugin ships is found by name
    assert workbench(site, "degrade", "deposterize", photo, "-o", tmp_path / "o2").returncode == 0


def test_plugin_degradation_keeps_the_contract(site):
    code = ("from workbench.api import registry as plugins; from workbench.author.degradations import check_degradation;"
            "p = plugins.load(); deg = p.degradations.get('posterize')();"
            "rows = check_degradation(deg, 'posterize'); print(rows); assert all(ok for _, ok, _ in rows)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
