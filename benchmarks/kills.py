"""kill -9 at random moments of `degrade`, `restore`, `grid` and `run`: is anything left truncated
under a final name, or any input changed?

Each try starts the real CLI in a fresh folder, sends SIGKILL to its process group after a random
delay drawn over the command's own measured duration, then reads back every file it left: images
decode fully, JSON and checkpoints load, metrics lines parse, a run directory is resumable, restarts or is gone,
and the inputs hash as before. Not a test (it takes minutes); tests/test_kills.py runs one try of each.

    python benchmarks/kills.py [--tries 10] [--seed 0]
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("degrade", "restore", "grid", "run")
RUN = ["--set", "train.epochs=3", "--set", "train.steps_per_epoch=3", "--set", "data.size=48", "--set", "data.workers=0",
       "--set", "data.batch_size=4", "--set", "data.valid_size=48", "--set", "model.widths=[8, 16]", "-q"]


def photos(folder, n=8, side=384):
    folder.mkdir(parents=True)
    for k in range(n):
        rng = np.random.default_rng(k)
        y, x = np.mgrid[0:side, 0:side] / side
        img = np.stack([x, y, 0.5 + 0.4 * np.sin(9 * x + k) * np.cos(7 * y)], -1) + rng.normal(0, 0.05, (side, side, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"p{k}.png")


def command(kind, root):
    wb = [sys.executable, "-m", "workbench"]
    return {"degrade": wb + ["degrade", "jpeg", "photos", "-o", "out", "--masks"],
            "restore": wb + ["restore", "trained", "photos", "-o", "out", "--tile", "128", "--device", "cpu"],
            "grid": wb + ["grid", "trained", "--data", "photos", "-o", "out/grid.png", "-n", "4", "--device", "cpu"],
            "run": wb + ["run", "colorize", "--data", "photos", "--out", "out/run", *RUN]}[kind]


def setup(root):
    """photos/ (the inputs) and trained/ (a tiny colorize run for restore and grid)."""
    photos(root / "photos")
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", "colorize", "--data", "photos", "--out", "trained",
                           *RUN[:2], "--set", "train.epochs=1", *RUN[4:]], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"setting up the trained run failed: {proc.stderr.strip().splitlines()[-1:]}")


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def broken(out):
    """Files under their final names that do not read back whole: [(path, why)]."""
    import torch

    bad = []
    for p in sorted(Path(out).rglob("*")) if Path(out).exists() else []:
        if not p.is_file() or p.name.endswith(".tmp") or p.name == ".lock" or "tensorboard" in p.parts:
            continue
        try:
            if p.suffix in (".png", ".jpg"):
                with Image.open(p) as im:
                    im.load()
            elif p.suffix == ".pt":
                torch.load(p, weights_only=True)
            elif p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".jsonl":
                [json.loads(line) for line in p.read_text().splitlines()]
            elif p.suffix == ".toml":
                import tomllib

                tomllib.loads(p.read_text())
            elif p.suffix == ".html":
                text = p.read_text().rstrip()
                # report/NAME.html: a section of the report, a fragment the page embeds (pictures.samples_html),
                # whole when it closes the tag it opens; every other page ends its document
                end = ("</div>" if text.startswith("<div") else "</p>") if p.parent.name == "report" else "</html>"
                assert text.endswith(end), f"{p.name} does not end with {end}"
        except Exception as e:   # noqa: BLE001 - whatever fails to read is the finding
            bad.append((str(p), f"{type(e).__name__}: {e}"[:80]))
    return bad


def resumable(root):
    """A killed run is gone (nothing was saved), starts over when run again into the same folder
    (killed before its first checkpoint, where no clean-up could run), or continues with --resume."""
    run = root / "out" / "run"
    if not (run / "checkpoints" / "last.pt").exists():
        if not run.exists():
            return "gone"
        again = subprocess.run(command("run", root), cwd=root, capture_output=True, text=True)
        if again.returncode == 0 and (run / "checkpoints" / "last.pt").exists():
            return "restarted"
        return f"RESTART FAILED: {again.stderr.strip().splitlines()[-1:]}"
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", "--resume", str(run), "-q"], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode == 0 or "already finished" in proc.stderr:
        return "resumed"
    return f"RESUME FAILED: {proc.stderr.strip().splitlines()[-1:]}"


def trial(kind, base, delay):
    """One kill: a fresh copy of `base`, the command killed after `delay` s -> a result row."""
    root = Path(tempfile.mkdtemp(prefix=f"kill-{kind}-"))
    try:
        shutil.copytree(base / "photos", root / "photos")
        shutil.copytree(base / "trained", root / "trained")
        before = digest(root / "photos")
        proc = subprocess.Popen(command(kind, root), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        start = time.perf_counter()
        try:
            proc.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        row = {"kind": kind, "delay_s": round(delay, 2), "killed": not finished, "seconds": time.perf_counter() - start,
               "broken": broken(root / "out"),
               "inputs_changed": digest(root / "photos") != before}
        row["run"] = resumable(root) if kind == "run" else ""
        return row
    finally:
        shutil.rmtree(root, ignore_errors=True)


def duration(kind, base):
    """Seconds the command takes when left alone (start-up included)."""
    row = trial(kind, base, 600)
    assert not row["killed"] and not row["broken"], row
    return row["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of: {', '.join(KINDS)}")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        sys.exit(f"error: --kinds takes {', '.join(KINDS)}")
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        setup(base)
        print("| command | tries | killed mid-way | truncated files | inputs changed | killed runs |")
        print("| --- | --- | --- | --- | --- | --- |")
        for kind in kinds:
            full = duration(kind, base)
            # Anywhere from the interpreter's start-up to the last writes; a few may land after the end.
            rows = [trial(kind, base, rnd.uniform(0.1, 1.0) * full) for _ in range(args.tries)]
            fates = [r["run"] for r in rows if r["killed"]]
            runs = ", ".join(f"{fate} {fates.count(fate)}" for fate in sorted(set(fates))) if kind == "run" else "-"
            bad = [b for r in rows for b in r["broken"]]
            print(f"| {kind} ({full:.1f} s whole) | {len(rows)} | {sum(r['killed'] for r in rows)} | {len(bad)} "
                  f"{bad[:2] if bad else ''} | {sum(r['inputs_changed'] for r in rows)} | {runs} |", flush=True)


if __name__ == "__main__":
    main()
