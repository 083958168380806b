"""A checkpoint is data, never code: a crafted pickle whose __reduce__ would run code is refused by
every command that loads one (exit status 2, one line), and its payload never runs."""
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli


class Evil:
    """Unpickling this calls open(marker, "w"): it creates `marker`, proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_evil(path, marker, how):
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": 1, "model": {"w": Evil(marker)}, "recipe": {"model": {"type": "unet"}}}
    if how == "torch.save":
        torch.save(state, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=2)   # torch.load's own protocol: no warning about it


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_the_payload_is_real(tmp_path, how):
    """Loaded without weights_only the file does run code, so the refusals below mean something."""
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    write_evil(path, marker, how)
    if how == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as f:
            pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
@pytest.mark.parametrize("command", ["eval", "restore", "resume"])
def test_malicious_checkpoint_is_refused(tmp_path, monkeypatch, photo, how, command):
    monkeypatch.delenv("WORKBENCH_PLUGINS", raising=False)
    run, marker = tmp_path / "run", tmp_path / "pwned"
    write_evil(run / "checkpoints" / ("last.pt" if command == "resume" else "best.pt"), marker, how)
    if command == "eval":
        args = ["eval", run, "--data", photo, "--device", "cpu"]
    elif command == "restore":
        args = ["restore", run, photo, "-o", tmp_path / "out", "--device", "cpu"]
    else:   # a resume reads recipe.toml, builds data and model, then loads last.pt
        (run / "recipe.toml").write_text(f'[data]\ntrain = "{photo}"\nsize = 8\nvalid_size = 16\nworkers = 0\n'
                                         '[model]\ntype = "unet"\nwidths = [8, 16]\n[train]\nepochs = 1\n')
        args = ["run", "--resume", run, "--device", "cpu", "-q"]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert output.startswith("Error:") and "\n" not in output, output
    assert "refused to load" in output and "checkpoints/" in output
    assert not marker.exists(), "the checkpoint ran code"
    assert not (tmp_path / "out").exists()
