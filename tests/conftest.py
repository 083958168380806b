import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.api import registry as plugin_manager
from workbench.cli import cli

HERE = Path(__file__).parent
VIGNETTE = HERE / "plugin_files" / "vignette.py"


@pytest.fixture(scope="session")
def empty_torch_home(tmp_path_factory):
    return tmp_path_factory.mktemp("torch_home_empty")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, empty_torch_home):
    """Tests never reach the network nor see the developer's weight cache: pretrained weights
    (LPIPS's AlexNet, ...) are missing unless a test writes them into its own TORCH_HOME."""
    import torch.hub

    def offline(url, *args, **kwargs):
        raise OSError(f"tests do not download ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setenv("TORCH_HOME", str(empty_torch_home))
    # Nor the developer's WORKBENCH_PROGRESS: tests count stderr's lines, and test_progress sets it itself.
    monkeypatch.delenv("WORKBENCH_PROGRESS", raising=False)


@pytest.fixture(scope="session")
def plugins():
    """Built-ins plus a plugin file, so checks cover a non-built-in degradation too."""
    return plugin_manager.load([VIGNETTE])


@pytest.fixture
def run_cli(monkeypatch):
    """Invoke the CLI in-process; returns click's Result (exit_code, output)."""
    monkeypatch.delenv(plugin_manager.ENV_VAR, raising=False)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def photo(tmp_path):
    """A 96 x 128 photo-like PNG: smooth shading, edges and texture, made by the test."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128] / 96.0
    img = np.stack([x, y, 0.5 + 0.4 * np.sin(8 * x) * np.cos(6 * y)], axis=-1)
    img[20:60, 30:70] = [0.9, 0.2, 0.1]             # a hard-edged red square
    img += rng.normal(0, 0.04, img.shape)            # fine texture, like film grain
    path = tmp_path / "photo.png"
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


sys.path.insert(0, str(HERE))
