"""The hostile-user attacks of issue 17, replayed through the real CLI: exit status, the first line
of stderr and what happened to the user's files, for this checkout and optionally an older one.

    python benchmarks/attacks.py                      # this checkout
    python benchmarks/attacks.py --before /tmp/old    # a second checkout (git worktree add /tmp/old REV) beside it

Each checkout runs in its own scratch folder with tiny photos and a tiny recipe it makes itself;
the older one's `workbench` and `workbench_plugins` are put first on PYTHONPATH. Not a test: a
record for the issue, printed as a Markdown table.
"""
import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 240   # seconds for one command; a hang shows as "hung"

RECIPE = """[recipe]
seed = 1
{name}
[data]
train = "{train}"
size = 32
valid_size = 32
batch_size = 2
workers = 0
{degradations}
[model]
type = "unet"
widths = [8, 16]
[[losses]]
type = "l1"
[train]
epochs = {epochs}
steps_per_epoch = 2
cpu_bf16 = false
"""
JPEG = '[[degradations]]\ntype = "jpeg"\nquality = 20'

PLUGINS = {
    "shape.py": '''
import torch
from workbench import hookimpl

class Cropper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)[..., :-1]

@hookimpl
def register_models(register):
    register("cropper", Cropper)
''',
    "u8.py": '''
import torch
from workbench import hookimpl

class Bytes:
    def __call__(self, img, rng):
        return (img * 255).to(torch.uint8)

@hookimpl
def register_degradations(register):
    register("bytes", Bytes)
''',
    "hang.py": '''
import os, time
from workbench import hookimpl

class Hang:
    """Sleeps for ever on its 5th call, after writing the file HANG_FLAG."""
    def __init__(self):
        self.calls = 0

    def __call__(self, img, rng):
        self.calls += 1
        if self.calls == 5:
            open(os.environ["HANG_FLAG"], "w").close()
            time.sleep(10**6)
        return img.clone()

@hookimpl
def register_degradations(register):
    register("hang", Hang)
''',
}


def photo(path, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 5)], -1) + rng.normal(0, 0.05, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)


def digest(*paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:12]


class Bench:
    """One checkout's scratch folder and CLI."""

    def __init__(self, checkout, scratch):
        self.dir = scratch
        path = scratch / "_path"
        path.mkdir()
        (path / "workbench").symlink_to(checkout / "workbench")
        (path / "workbench_plugins").symlink_to(checkout / "plugins")
        self.env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1", "WORKBENCH_STOP_GRACE": "5"}
        self.env.pop("WORKBENCH_PLUGINS", None)
        for i, name in enumerate(["a.png", "b.jpg", "c.png", "d.png"]):
            photo(scratch / "photos" / name, seed=i)
        for name, text in PLUGINS.items():
            (scratch / name).write_text(text)
        self.recipe("tiny.toml")
        self.run = scratch / "runs" / "tiny"
        self.cli("run", "tiny.toml", "--out", self.run, "-q")

    def recipe(self, name, *, train="photos", degradations=JPEG, epochs=1, model=None, recipe_name=""):
        text = RECIPE.format(train=train, degradations=degradations, epochs=epochs,
                             name=f"name = {recipe_name!r}".replace("'", '"') if recipe_name else "")
        if model:
            text = text.replace('type = "unet"\nwidths = [8, 16]', model)
        (self.dir / name).write_text(text)
        return name

    def popen(self, *args, plugins=()):
        argv = [sys.executable, "-m", "workbench", *[a for p in plugins for a in ("--plugin", p)], *map(str, args)]
        return subprocess.Popen(argv, cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def cli(self, *args, plugins=(), timeout=TIMEOUT):
        proc = self.popen(*args, plugins=plugins)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, f"hung: killed after {timeout} s", ""
        return proc.returncode, first_line(err), out


def first_line(err):
    """The error line (click puts its own after two lines of usage), a traceback's last line, or the first."""
    lines = [x.strip() for x in err.strip().splitlines() if x.strip()]
    if any(x.startswith("Traceback") for x in lines):
        return "Traceback ... " + lines[-1]
    errors = [x for x in lines if x.startswith("Error:")]
    return errors[0] if errors else lines[0] if lines else ""


def wait_for(path, proc):
    """Until `path` appears, the process ends or TIMEOUT passes."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def interrupted(b, name, epochs=3):
    """A run stopped by Ctrl-C after its first checkpoint: resumable."""
    b.recipe(f"{name}.toml", epochs=epochs, degradations='[[degradations]]\ntype = "jpeg"\nquality = 20\n'
             '[[degradations]]\ntype = "blur"\nsigma = 1.0')
    run = b.dir / "runs" / name
    proc = b.popen("run", f"{name}.toml", "--out", run, "-q")
    wait_for(run / "checkpoints" / "last.pt", proc)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=TIMEOUT)
    return run


# -- the attacks: each returns (exit status, first stderr line, what became of the user's files) ----
def a1(b):
    same = b.dir / "same"
    shutil.copytree(b.dir / "photos", same)
    before = digest(same / "a.png", same / "b.jpg")
    code, err, _ = b.cli("degrade", "jpeg", same, "-o", same)
    return code, err, "originals kept" if digest(same / "a.png", same / "b.jpg") == before else "ORIGINALS REPLACED"


def a2a(b):
    photo(b.dir / "par" / "sub" / "base.png", seed=5)
    photo(b.dir / "par" / "base.png", seed=6)   # the user's own file
    before = digest(b.dir / "par" / "base.png")
    code, err, _ = b.cli("restore", b.run, b.dir / "par" / "sub", "-o", b.dir / "par")
    return code, err, "par/base.png kept" if digest(b.dir / "par" / "base.png") == before else "par/base.png REPLACED"


def a2b(b):
    src = b.dir / "linked"
    shutil.copytree(b.dir / "photos", src)
    (b.dir / "out2b").mkdir()
    os.link(src / "a.png", b.dir / "out2b" / "a.png")
    before = digest(src / "a.png")
    code, err, _ = b.cli("restore", b.run, src, "-o", b.dir / "out2b")
    return code, err, "input kept" if digest(src / "a.png") == before else "INPUT OVERWRITTEN"


def a2c(b):
    src = b.dir / "twice"
    shutil.copytree(b.dir / "photos", src)
    b.cli("restore", b.run, src, "-o", src / "restored")
    code, err, _ = b.cli("restore", b.run, src, "-o", src / "restored")
    nested = (src / "restored" / "restored").exists()
    return code, err, "restored its own outputs" if nested else "outputs not re-read"


def a3a(b):
    occupied = b.dir / "occupied"
    occupied.mkdir()
    (occupied / "metrics.jsonl").write_text('{"mine": 1}\n')
    (occupied / "notes.txt").write_text("mine")
    code, err, _ = b.cli("run", "tiny.toml", "--out", occupied, "-q")
    kept = (occupied / "metrics.jsonl").read_text() == '{"mine": 1}\n' and (occupied / "notes.txt").exists()
    return code, err, "user files kept" if kept else "USER FILES REPLACED"


def a3b(b):
    run = interrupted(b, "twice3b")
    first, second = b.popen("run", "--resume", run, "-q"), b.popen("run", "--resume", run, "-q")
    (_, e1), (_, e2) = first.communicate(timeout=TIMEOUT), second.communicate(timeout=TIMEOUT)
    epochs = [line.split('"epoch": ')[1].split(",")[0] for line in (run / "metrics.jsonl").read_text().splitlines()]
    err = first_line(e2) or first_line(e1)
    return f"{first.returncode}, {second.returncode}", err, f"epochs logged {', '.join(epochs)}"


def a4(b):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[10:20, 10:30, 3] = 255   # strokes on a transparent layer: 200 of 2000 pixels
    Image.fromarray(rgba, "RGBA").save(b.dir / "strokes.png")
    code = "from workbench.images.masks import read_mask; print(float(read_mask('strokes.png', (50, 40)).float().mean()))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=b.dir, env=b.env, capture_output=True, text=True)
    return proc.returncode, first_line(proc.stderr), f"marked missing: {float(proc.stdout or 'nan'):.0%} (strokes: 10%)"


def a5(b, key, value):
    run = interrupted(b, f"edit5{key.replace('.', '')}")
    text = (run / "recipe.toml").read_text()
    section, name = key.split(".")
    lines, inside = [], False
    for line in text.splitlines():
        inside = line.strip() == f"[{section}]" if line.startswith("[") else inside
        lines.append(f"{name} = {value}" if inside and line.split("=")[0].strip() == name else line)
    (run / "recipe.toml").write_text("\n".join(lines) + "\n")
    code, err, _ = b.cli("run", "--resume", run, "-q")
    again = b.cli("run", "--resume", run, "-q")[0] if code == 0 else None
    return code, err, "" if again is None else f"a second resume exits {again}"


def a5c(b):
    run = b.dir / "runs" / "extend5"
    b.cli("run", "tiny.toml", "--out", run, "-q")
    code, err, _ = b.cli("run", "--resume", run, "--set", "train.epochs=2", "-q")
    epochs = (run / "metrics.jsonl").read_text().count('"epoch"')
    return code, err, f"{epochs} epochs logged"


def a6a(b):
    return b.cli("eval", b.run, "--data", "photos", "--json", "/sys/e.json")[:2] + ("",)


def a6b(b):
    return b.cli("lr-find", "tiny.toml", "-o", "/sys/lr.png", "--steps", "5")[:2] + ("",)


def simple(*args, plugins=()):
    return lambda b: b.cli(*args, plugins=plugins)[:2] + ("",)


def a7f(b):
    b.recipe("shape.toml", model='type = "cropper"')
    return b.cli("run", "shape.toml", "--out", b.dir / "runs" / "shape", "-q", plugins=["shape.py"])[:2] + ("",)


def a7g(b, key_value):
    code, err, _ = b.cli("run", "tiny.toml", "--set", key_value, "--out", b.dir / "runs" / "oom", "-q")
    left = (b.dir / "runs" / "oom").exists()
    shutil.rmtree(b.dir / "runs" / "oom", ignore_errors=True)
    return code, err, "run directory left, no checkpoint" if left else "nothing left"


def a8(b):
    b.recipe("u8.toml", degradations='[[degradations]]\ntype = "bytes"')
    return b.cli("run", "u8.toml", "--out", b.dir / "runs" / "u8", "-q", plugins=["u8.py"])[:2] + ("",)


def a9a(b):
    b.recipe("empty.toml", train="")
    return b.cli("run", "empty.toml", "--out", b.dir / "runs" / "empty", "-q", timeout=60)[:2] + ("",)


def a9b(b):
    b.recipe("none.toml", degradations="")
    return b.cli("run", "none.toml", "--out", b.dir / "runs" / "none", "-q")[:2] + ("",)


def a10(b):
    for name in ("a.jpg", "a.png"):
        photo(b.dir / "twins" / name, seed=len(name))
    code, err, _ = b.cli("degrade", "jpeg", b.dir / "twins", "-o", b.dir / "out10", "--masks")
    return code, err, ""


def a11a(b):
    b.recipe("escape.toml", recipe_name="../../escaped")
    code, err, _ = b.cli("run", "escape.toml", "-q")
    outside = [p for p in (b.dir.parent, b.dir) if any(q.name.startswith("escaped") for q in p.iterdir())]
    for p in outside:
        for q in p.iterdir():
            if q.name.startswith("escaped"):
                shutil.rmtree(q)
    return code, err, "run directory outside runs/" if outside else "no run directory outside runs/"


def a11b(b):
    odd = b.dir / "ph\x1bto"
    shutil.copytree(b.dir / "photos", odd)
    b.recipe("ctrl.toml", train=str(odd.name).replace("\x1b", "\\u001b"))
    run = b.dir / "runs" / "ctrl"
    b.cli("run", "ctrl.toml", "--out", run, "-q")
    code, err, _ = b.cli("run", "--resume", run, "-q")
    return code, err, "recipe.toml reads back" if "Traceback" not in err and "TOML" not in err else ""


def a12a(b):
    os.mkfifo(b.dir / "pipe.png")
    return b.cli("degrade", "jpeg", b.dir / "pipe.png", "-o", b.dir / "out12", timeout=20)[:2] + ("",)


def a12b(b):
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    frames[0].save(b.dir / "anim.gif", save_all=True, append_images=frames[1:])
    return b.cli("degrade", "jpeg", b.dir / "anim.gif", "-o", b.dir / "out12b")[:2] + ("",)


def a12c(b):
    b.recipe("hang.toml", degradations='[[degradations]]\ntype = "hang"', epochs=3)
    env = dict(b.env)
    b.env["HANG_FLAG"] = str(b.dir / "hang.flag")
    proc = b.popen("run", "hang.toml", "--out", b.dir / "runs" / "hang", "-q", plugins=["hang.py"])
    b.env = env
    wait_for(b.dir / "hang.flag", proc)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)   # once, as a scheduler does
    try:
        _, err = proc.communicate(timeout=45)
        return proc.returncode, first_line(err), f"stopped {time.monotonic() - t0:.0f} s after one SIGTERM"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, "", "still running 45 s after one SIGTERM"


ATTACKS = [
    ("1", "degrade jpeg same -o same", a1),
    ("2", "restore RUN par/sub -o par (par/base.png is the user's)", a2a),
    ("2", "restore RUN in -o out, out/a.png a hard link to in/a.png", a2b),
    ("2", "restore RUN in -o in/restored, twice", a2c),
    ("3", "run --out FOLDER holding the user's metrics.jsonl and notes.txt", a3a),
    ("3", "two run --resume RUN at once", a3b),
    ("4", "mask: white strokes on a transparent layer", a4),
    ("5", "edit train.steps_per_epoch in recipe.toml, resume", lambda b: a5(b, "train.steps_per_epoch", "3")),
    ("5", "edit train.lr in recipe.toml, resume", lambda b: a5(b, "train.lr", "0.1")),
    ("5", "run --resume FINISHED --set train.epochs=2", a5c),
    ("6", "eval RUN --json /sys/e.json", a6a),
    ("6", "lr-find SPEC -o /sys/lr.png", a6b),
    ("7", "grid RUN -o photo (no suffix)", lambda b: simple("grid", b.run, "--data", "photos", "-o", "photo")(b)),
    ("7", "degrade jpeg photos -o o --seed -1", simple("degrade", "jpeg", "photos", "-o", "o7", "--seed", "-1")),
    ("7", "degrade ... --seed 2**64", simple("degrade", "jpeg", "photos", "-o", "o7", "--seed", str(2**64))),
    ("7", "restore RUN photos -o o --device meta", lambda b: simple("restore", b.run, "photos", "-o", "o7m", "--device", "meta")(b)),
    ("7", "restore RUN photos -o o --device xpu", lambda b: simple("restore", b.run, "photos", "-o", "o7x", "--device", "xpu")(b)),
    ("7", "a model plugin returning the wrong shape", a7f),
    ("7", "run --set model.widths=[65536]", lambda b: a7g(b, "model.widths=[65536]")),
    ("7", "run --set data.size=100000", lambda b: a7g(b, "data.size=100000")),
    ("8", "a degradation plugin returning uint8 0-255", a8),
    ("9", 'data.train = ""', a9a),
    ("9", "a recipe with no [[degradations]]", a9b),
    ("10", "degrade --masks with a.jpg and a.png", a10),
    ("11", 'recipe.name = "../../escaped"', a11a),
    ("11", "an escape character in data.train, then --resume", a11b),
    ("12", "degrade jpeg a FIFO", a12a),
    ("12", "degrade jpeg a 3-frame GIF", a12b),
    ("12", "a plugin that hangs (workers = 0), one SIGTERM", a12c),
]


def replay(checkout):
    scratch = Path(tempfile.mkdtemp(prefix="wb-attacks-"))
    try:
        bench = Bench(Path(checkout).resolve(), scratch)
        rows = []
        for item, what, attack in ATTACKS:
            try:
                rows.append(attack(bench))
            except Exception as e:   # the attack itself could not be staged on this checkout
                rows.append(("-", f"(not staged: {type(e).__name__}: {e})", ""))
            print(f"  {item:>3} {what}: {rows[-1]}", file=sys.stderr, flush=True)
        return rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cell(text, width=150):
    text = str(text).replace("|", "\\|").replace(str(Path(tempfile.gettempdir())), "/tmp")
    return text if len(text) <= width else text[:width - 1] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="an older checkout to replay beside this one")
    args = ap.parse_args()
    before = replay(args.before) if args.before else None
    after = replay(ROOT)
    if before:
        print("| # | attack | before: exit, first stderr line, files | after: exit, first stderr line, files |")
        print("| --- | --- | --- | --- |")
        for (item, what, _), old, new in zip(ATTACKS, before, after):
            show = lambda r: cell(f"{r[0]}: {r[1]}" + (f" ({r[2]})" if r[2] else ""))  # noqa: E731
            print(f"| {item} | {what} | {show(old)} | {show(new)} |")
    else:
        print("| # | attack | exit | first stderr line | files |")
        print("| --- | --- | --- | --- | --- |")
        for (item, what, _), r in zip(ATTACKS, after):
            print(f"| {item} | {what} | {r[0]} | {cell(r[1])} | {cell(r[2])} |")


if __name__ == "__main__":
    main()
