"""benchmarks/gpu.py: its CPU smoke path measures every configuration, and without CUDA it says so and exits 0."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"
NO_CUDA = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}   # so a GPU machine also takes the no-CUDA path


def bench(*args):
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=NO_CUDA, timeout=300)


def test_cpu_quick_run_writes_a_row_per_config(tmp_path):
    out = tmp_path / "gpu.json"
    proc = bench("--device", "cpu", "--quick", "--recipes", "dejpeg", "colorize", "inpaint", "classify", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "| dejpeg | 16 | 2 | fp32 |" in proc.stdout and "| colorize | 16 | 2 | fp32 |" in proc.stdout
    result = json.loads(out.read_text())
    rows = result["rows"]
    configs = ("fp32", "amp", "channels_last", "amp+cl", "amp+cl+compile")
    assert sorted((r["recipes"][0], r["size"], r["config"]) for r in rows) == sorted(
        (name, sz, c) for name in ("dejpeg", "colorize", "inpaint", "classify") for sz in (16, 32) for c in configs)
    # colorize's U-Net keeps the input's luma and inpaint's takes a mask: each another network, a row of its own.
    assert {tuple(r["recipes"]) for r in rows if r["model"]["type"] == "unet"} == {("dejpeg",), ("colorize",), ("inpaint",)}
    measured = [r for r in rows if r["config"] != "amp+cl+compile"]
    assert all(r["images_per_s"] > 0 and r["vs_fp32"] > 0 for r in measured)
    assert all(r["note"].startswith("skipped: --quick") for r in rows if r["config"] == "amp+cl+compile")
    assert result["device"] == "cpu" and result["quick"]
    loader = result["loader"]   # the loader table: JPEG folder and shards, one worker and automatic
    assert [(r["source"], r["workers"] > 0) for r in loader["rows"]] == [
        ("JPEG folder", False), ("JPEG folder", True), ("prepared shards", False), ("prepared shards", True)]
    assert all(r["crops_s"] > 0 for r in loader["rows"]) and loader["decode"]["pillow_ms"] > 0
    assert "## Loader vs model" in proc.stdout


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = bench("--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout and not out.exists()
