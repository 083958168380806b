"""Mutation testing of the core behaviours with mutmut: how many small bugs the tests catch.

    python benchmarks/mutation.py                      # every group, 2 workers
    python benchmarks/mutation.py --groups tiling,objective --children 1

Each group (modules, and the tests that judge them) is copied with the tracked and untracked
files of this checkout into WORK/GROUP (default /tmp/wb-mutation, outside the repository) and
mutated there by mutmut (https://mutmut.readthedocs.io), which runs only the tests that reach
each mutated function. Prints, per group, the mutants killed, timed out and survived, and each
survivor's diff line, so that it can be judged equivalent, acceptable or a missing test; the
same lines go to WORK/GROUP.survivors.txt as each group ends (WORK/survivors.txt gathers them). Not part
of CI: a full run takes hours on 2 cores. `--keep` goes on with a group's earlier work folder, so a run
broken off (a session's end, kill) resumes where mutmut left it: each mutant's verdict is kept on disk.

Torch is not fork-safe once it has run, so mutmut forks its workers from a fork server
(process_isolation = "forkserver") and OMP_NUM_THREADS=1 keeps each worker on one thread.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).with_name("mutmut")

# group -> (modules to mutate, pytest arguments that select the tests judging them)
PINNED = "tests/test_pinned.py"
GROUPS = {
    "metrics": (["workbench/images/metrics.py", "workbench/judge/protocol.py"],
                ["tests/test_metrics.py", "tests/test_evaluate.py", PINNED]),
    "restore": (["workbench/infer/restore.py"],   # tiling, and restore's files, masks and outputs
                ["tests/test_restore.py", "tests/test_restore_pins.py", "tests/test_self_ensemble.py", "tests/test_masks.py", "tests/test_bad_images.py",
                 "tests/test_never_lost.py", "tests/test_user_inputs.py", PINNED]),
    "objective": (["workbench/train/objective.py"],
                  ["tests/test_losses.py", "tests/test_bad_recipes.py", "tests/test_detect.py", "tests/test_never_lost.py",
                   "tests/test_train.py", PINNED]),
    "contracts": (["workbench/api/contracts.py", "workbench/api/degradation.py", "workbench/author/models.py",
                   "workbench/author/degradations.py", "workbench/author/losses.py", "workbench/author/probes.py"],
                  ["tests/test_check.py", "tests/test_contract_rows.py", "tests/test_contract.py", "tests/test_contracts.py", "tests/test_builtin_degradations.py",
                   "tests/test_never_lost.py", PINNED]),
    "writers": (["workbench/runs/files.py", "workbench/runs/outputs.py"],
                ["tests/test_outputs.py", "tests/test_writers.py", "tests/test_never_lost.py", "tests/test_user_inputs.py", "tests/test_reliability.py",
                 PINNED]),
    "archive": (["workbench/data/archive.py"], ["tests/test_archive.py", "tests/test_security.py", "tests/test_prepare.py"]),
    "checkpoint": (["workbench/runs/checkpoint.py", "workbench/train/resume.py", "workbench/train/state.py"],
                   ["tests/test_checkpoint_state.py", "tests/test_never_lost.py", "tests/test_security.py",
                    "tests/test_reliability.py", "tests/test_train.py", PINNED]),
}
KILLED = ("killed", "timeout")   # a mutant that hangs the tests is caught too


def copy_tree(dest):
    """The checkout's files as git sees them (tracked, and untracked but not ignored)."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def configure(dest, modules, tests):
    toml = lambda items: "[" + ", ".join(f'"{x}"' for x in items) + "]"  # noqa: E731
    with open(dest / "pyproject.toml", "a") as f:
        f.write(f"""
[tool.mutmut]
source_paths = ["workbench"]
only_mutate = {toml(modules)}
pytest_add_cli_args_test_selection = {toml(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-k", "not two_process"]   # torchrun runs the unmutated install
also_copy = ["benchmarks", "recipes", "plugins", "docs", "README.md"]
process_isolation = "forkserver"
""")


def run_group(name, work, children, keep):
    modules, tests = GROUPS[name]
    dest = work / name
    if not (keep and (dest / "mutants").is_dir()):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        copy_tree(dest)
        configure(dest, modules, tests)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([str(MUTMUT), "run", "--max-children", str(children)], cwd=dest, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    listed = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=dest, env=env, capture_output=True, text=True)
    status = dict(line.strip().rsplit(": ", 1) for line in listed.stdout.splitlines() if ": " in line)
    survivors = []
    for mutant, state in sorted(status.items()):
        if state not in KILLED and state != "not checked":   # a broken-off run's untried mutants are counted, not listed
            shown = subprocess.run([str(MUTMUT), "show", mutant], cwd=dest, env=env, capture_output=True, text=True).stdout
            diff = [line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")]
            survivors.append(f"{mutant} [{state}]: " + "  =>  ".join(x.strip() for x in diff))
    return status, survivors, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, of: {', '.join(GROUPS)}")
    ap.add_argument("--work", type=Path, default=Path("/tmp/wb-mutation"))
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="go on with each group's earlier work folder (resume)")
    args = ap.parse_args()
    if not MUTMUT.exists():
        sys.exit(f"error: {MUTMUT} not found; pip install mutmut (3.x) into this environment.")
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        sys.exit(f"error: unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}.")
    args.work.mkdir(parents=True, exist_ok=True)
    report, totals = [], {"mutants": 0, "killed": 0}
    print(f"{'group':<11} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} {'not run':>7} {'score':>6} {'time':>7}")
    for name in groups:
        status, survivors, seconds = run_group(name, args.work, args.children, args.keep)
        count = lambda *states: sum(1 for s in status.values() if s in states)  # noqa: E731
        killed = count(*KILLED)
        totals["mutants"] += len(status)
        totals["killed"] += killed
        score = killed / len(status) if status else float("nan")
        print(f"{name:<11} {len(status):>7} {count('killed'):>6} {count('timeout'):>7} {count('survived'):>8} "
              f"{count('no tests'):>8} {count('not checked'):>7} {score:>6.1%} {seconds:>6.0f}s", flush=True)
        report += [f"## {name}", *survivors, ""]
        (args.work / f"{name}.survivors.txt").write_text("\n".join(survivors) + "\n")
    if totals["mutants"]:
        print(f"{'all':<11} {totals['mutants']:>7} {totals['killed']:>6} {'':>7} {'':>8} {'':>8} {'':>7} "
              f"{totals['killed'] / totals['mutants']:>6.1%}")
    (args.work / "survivors.txt").write_text("\n".join(report) + "\n")
    print(f"survivors (each to judge: equivalent, acceptable or a missing test): {args.work / 'survivors.txt'}")


if __name__ == "__main__":
    main()
