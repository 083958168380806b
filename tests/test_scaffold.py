"""`workbench new`: the packages it writes install for real, are listed, keep the contract, pass their
own tests, and train from a recipe; bad names and overwrites are one-line errors."""
import os
import subprocess
import sys
import tomllib

import pytest
from click.testing import CliRunner

from workbench.author.scaffold import REGISTRY, check_name, class_name, new_plugin
from workbench.cli import cli
from workbench.errors import WorkbenchError

MADE = {"degradation": "pixelate", "model": "tiny_res", "loss": "edge_loss"}


def run(*args, site=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(site or ""), os.environ.get("PYTHONPATH", "")] if p),
           "OMP_NUM_THREADS": "1"}   # tiny nets run fastest on one thread, and the machine may be busy
    env.pop("WORKBENCH_PLUGINS", None)
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """`workbench new` for each kind, all three installed into one private folder (the venv stays untouched)."""
    root, site = tmp_path_factory.mktemp("plugins"), tmp_path_factory.mktemp("site")
    for kind, name in MADE.items():
        result = CliRunner().invoke(cli, ["new", kind, name, "-o", str(root)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"Wrote {root / name}" in result.output
    proc = run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", site,
               *(root / name for name in MADE.values()), cwd=tmp_path_factory.mktemp("build"))
    assert proc.returncode == 0, proc.stderr
    return root, site


def test_package_layout(tmp_path):
    pkg = new_plugin("degradation", "pixelate", tmp_path / "new")
    assert pkg == tmp_path / "new" / "pixelate"
    assert sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "tests/test_pixelate.py", "workbench_pixelate/__init__.py"]
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "workbench-pixelate" and meta["project"]["dependencies"] == []
    assert meta["project"]["entry-points"]["workbench"] == {"pixelate": "workbench_pixelate"}
    assert "class Pixelate(Degradation):" in (pkg / "workbench_pixelate" / "__init__.py").read_text()
    model = new_plugin("model", "tiny_res", tmp_path)
    assert "class TinyRes(nn.Module):" in (model / "workbench_tiny_res" / "__init__.py").read_text()
    readme = (pkg / "README.md").read_text()
    for words in ("pip install -e ./pixelate", '[[degradations]]\ntype = "pixelate"', "workbench check pixelate",
                  "pytest", "twine upload"):
        assert words in readme


def test_degradation_is_listed_checked_tested_and_trains(made, tmp_path):
    root, site = made
    proc = run("-m", "workbench", "list", "degradations", site=site)
    assert proc.returncode == 0, proc.stderr
    assert "pixelate(block=[2, 8])  [pixelate]  Average the image over square blocks" in proc.stdout
    proc = run("-m", "workbench", "check", "pixelate", site=site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "degradation 'pixelate': all 10 checks passed" in proc.stdout
    proc = run("-m", "pytest", root / "pixelate" / "tests", "-q", "-p", "no:cacheprovider", site=site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    recipe = tmp_path / "pixelated.toml"
    recipe.write_text('[[degradations]]\ntype = "pixelate"\n\n[model]\ntype = "unet"\nwidths = [8, 16]\n\n'
                      "[data]\nsize = 32\nvalid_size = 32\nbatch_size = 4\nworkers = 0\n\n"
                      "[train]\nepochs = 1\nsteps_per_epoch = 2\n")
    proc = run("-m", "workbench", "run", recipe, "--out", tmp_path / "out", "--device", "cpu", "-q", site=site)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "checkpoints" / "best.pt").is_file()


def test_model_and_loss_are_listed_checked_and_tested(made):
    root, site = made
    proc = run("-m", "workbench", "list", site=site)
    assert proc.returncode == 0, proc.stderr
    assert "tiny_res(width=32, depth=4)  [tiny_res]" in proc.stdout and "edge_loss(distance=\"l1\")  [edge_loss]" in proc.stdout
    proc = run("-m", "workbench", "check", "tiny_res", "edge_loss", site=site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model 'tiny_res': all 5 checks passed" in proc.stdout and "loss 'edge_loss': all 6 checks passed" in proc.stdout
    proc = run("-m", "pytest", root / "tiny_res" / "tests", root / "edge_loss" / "tests", "-q", "-p", "no:cacheprovider",
               site=site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout


@pytest.mark.parametrize("bad, fixed", [("Pixelate", "pixelate"), ("my-plugin", "my_plugin"), ("2fast", "fast"),
                                        ("_x", "x"), ("", "my_plugin")])
def test_bad_names_suggest_a_fix(run_cli, tmp_path, bad, fixed):
    result = run_cli("new", "degradation", bad, "-o", tmp_path)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and f"Try '{fixed}'." in result.output
    assert not any(tmp_path.iterdir())


def test_refuses_to_overwrite(run_cli, tmp_path):
    assert run_cli("new", "loss", "edges", "-o", tmp_path).exit_code == 0
    readme = (tmp_path / "edges" / "README.md").read_text()
    result = run_cli("new", "model", "edges", "-o", tmp_path)
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "already exists and is not empty" in result.output
    assert (tmp_path / "edges" / "README.md").read_text() == readme
    (tmp_path / "empty").mkdir()
    assert run_cli("new", "model", "empty", "-o", tmp_path).exit_code == 0   # an empty folder is fine


def test_a_taken_name_only_warns(run_cli, tmp_path):
    result = run_cli("new", "degradation", "jpeg", "-o", tmp_path)
    assert result.exit_code == 0
    assert "degradation 'jpeg' is already registered by plugin 'workbench_plugins.jpeg'" in result.output
    assert (tmp_path / "jpeg" / "workbench_jpeg" / "__init__.py").is_file()


def test_unknown_kind():
    with pytest.raises(WorkbenchError, match="choose one of degradation, model, loss"):
        new_plugin("filter", "x", ".")


def test_names():
    assert check_name("pixel_art2") == "pixel_art2"
    assert [class_name(n) for n in ("pixelate", "pixel_art", "jpeg_2k", "a__b_")] == ["Pixelate", "PixelArt", "Jpeg2k", "AB"]
    # A keyword or a name the module imports would break it: class None(...) or a Param that shadows Param.
    assert [class_name(n, k) for n, k in (("none", "model"), ("param", "degradation"), ("f", "loss"))] == [
        "NoneModel", "ParamDegradation", "FLoss"]


@pytest.mark.parametrize("kind, name", [("degradation", "param"), ("model", "none"), ("loss", "f")])
def test_awkward_names_still_make_working_code(tmp_path, kind, name):
    pkg = new_plugin(kind, name, tmp_path)
    namespace = {}
    exec(compile((pkg / f"workbench_{name}" / "__init__.py").read_text(), "plugin", "exec"), namespace)
    found = {}
    namespace[f"register_{REGISTRY[kind]}"](lambda n, factory: found.setdefault(n, factory))
    assert found[name]() is not None   # builds with its defaults
