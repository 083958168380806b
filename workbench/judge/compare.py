"""`workbench compare`: two or more restorers side by side, each judged on the same images (--data)
or read from the results its run directory already has, with the best run of each metric marked.

Runs are only comparable on the same images under the same damage, so each run carries what it was
judged on; runs judged alike share one input row and one best-baseline row, and runs judged
differently are told apart in one warning line and get those rows each.
"""
import datetime
import math
import os
import tomllib
from pathlib import Path

from workbench import recipe as recipes
from workbench.data.inputs import collect
from workbench.errors import WorkbenchError
from workbench.judge.evaluate import METRICS, evaluate
from workbench.judge.report import _read_json, _read_jsonl
from workbench.judge.summary import LABELS, LOWER_IS_BETTER, NOT_BASELINES, best_baselines, number
from workbench.runs import checkpoint


def check_runs(paths, *, judged):
    """Refuse fewer than two runs, or one named twice (by inode: a link, or a run and its own checkpoint
    file when --data judges checkpoints); returns a unique row label for each."""
    if len(paths) < 2:
        raise WorkbenchError(f"compare needs at least two runs, got {len(paths)}; name them all, e.g. "
                             "`workbench compare runs/l1 runs/perceptual`.")
    seen = {}
    for p in paths:
        where = checkpoint.locate(p) if judged else Path(p)   # with --data: a run without a checkpoint stops here
        st = os.stat(where)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise WorkbenchError(f"{p} and {seen[key]} are the same run; name each run once.")
        seen[key] = p
    names = [_name(Path(p)) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def _name(path):
    path = path.resolve()
    if path.is_file():   # runs/a/checkpoints/best.pt -> a/best
        return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem
    return path.name


def check_tasks(labels, tasks):
    """Only restorers are compared; a classifier among them is named."""
    classifiers = [label for label, t in zip(labels, tasks) if t == "classify"]
    if classifiers and len(classifiers) < len(labels):
        other = next(label for label, t in zip(labels, tasks) if t != "classify")
        raise WorkbenchError(f"{classifiers[0]} is a classifier run and {other} a restorer; their tasks differ, "
                             "and compare puts restorers side by side.")
    if classifiers:
        raise WorkbenchError(f"{classifiers[0]} is a classifier run; `workbench compare` judges restorers.")
    others = [(label, t) for label, t in zip(labels, tasks) if t != "restore"]
    if others:   # a segmenter's mIoU or a stylizer's style distance is no PSNR to rank beside a restorer's
        label, task = others[0]
        raise WorkbenchError(f"{label} is a {task} run; `workbench compare` puts restorers side by side: judge each "
                             "with `workbench eval RUN` (or `workbench grid`) instead.")


# -- without --data: what each run already has ----------------------------------------------------------
def saved(paths, labels):
    """One entry per run from its eval.json (workbench eval on its validation images), else from the last
    validation in its metrics.jsonl; each entry lists the files it read (no output may be one)."""
    entries = [_saved(Path(p), label) for p, label in zip(paths, labels)]
    check_tasks(labels, [e["task"] for e in entries])
    return entries


def _saved(run, label):
    if not run.is_dir():
        raise WorkbenchError(f"{run} is a checkpoint file, not a run directory, so it has no results to compare; "
                             "pass --data DIR to judge every run on the same images.")
    try:
        recipe = tomllib.loads((run / "recipe.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        recipe = {}
    ev = _read_json(run / "eval.json")
    if isinstance(ev.get("mean"), dict) and isinstance(ev["mean"].get("model"), dict):
        entry = from_result(ev, run, label, source="eval.json")
        return {**entry, "task": ev.get("task", "restore"), "inputs": [run / "eval.json"]}
    records = _read_jsonl(run / "metrics.jsonl")
    last = next((r for r in reversed(records) if isinstance(r.get("valid"), dict)), None)
    if last is None:
        raise WorkbenchError(f"{run} has no results to compare (no eval.json, no validation in metrics.jsonl); run "
                             f"`workbench eval {run}` first, or pass --data DIR to judge every run on the same images.")
    valid, data = last["valid"], recipe.get("data") or {}
    chain = recipe.get("degradations") or []
    # Training's validation: no baselines, and the same images only where the [data] that picks them is the same.
    images = ("validation", *(str(data.get(k)) for k in ("train", "valid", "valid_fraction", "limit", "valid_size",
                                                          "damage_first")), str((recipe.get("recipe") or {}).get("seed")))
    return {"label": label, "run": str(run), "recipe": (recipe.get("recipe") or {}).get("name") or "?",
            "epoch": last.get("epoch"), "source": f"metrics.jsonl (validation, epoch {last.get('epoch', '?')})", "notes": [],
            "task": "classify" if "accuracy" in valid else "segment" if "miou" in valid else
            "stylize" if "input_style" in valid else "restore", "primary": "psnr_rgb",
            "mean": {"model": {"psnr_rgb": valid.get("psnr"), "ssim_rgb": valid.get("ssim")},
                     "input": {"psnr_rgb": valid.get("input_psnr"), "ssim_rgb": valid.get("input_ssim")}},
            "damage": (" -> ".join(_step(d) for d in chain) or "none") if recipe else "? (no recipe.toml)",
            "alike": {"source": "validation", "images": images if data else (str(run),), "protocol": ()},
            "about": (f"validation in training: {valid.get('images', '?')} centre crops of {data.get('valid_size', '?')} px, "
                      "PSNR/SSIM on 8-bit RGB, no border crop"),
            "inputs": [run / "metrics.jsonl", run / "recipe.toml"]}


def _step(d):
    d = d if isinstance(d, dict) else {"type": str(d)}
    return f"{d.get('type', '?')}({', '.join(f'{k}={v!r}' for k, v in d.items() if k != 'type')})"


def from_result(result, run, label, *, source):
    """An entry from an evaluate() result, written (eval.json) or just made (--data)."""
    p = result.get("protocol") or {}
    names = tuple(r.get("name") for r in result.get("images") or [] if isinstance(r, dict))
    n = p.get("images", len(names))
    return {"label": label, "run": str(run), "recipe": result.get("recipe") or "?", "epoch": result.get("epoch"),
            "source": source, "task": result.get("task", "restore"), "primary": result.get("primary") or "psnr_y",
            "notes": [str(note) for note in p.get("range_warnings") or []],   # eval's warnings do not name the run; the table does
            "mean": {m: v for m, v in result["mean"].items() if isinstance(v, dict)}, "damage": p.get("degradations", "?"),
            # by image names, not sizes: a x4 run crops the same photos to a multiple of 4, a x2 run of 2
            "alike": {"source": "eval", "images": (*map(str, p.get("data") or ()), *(names or (n,))),
                      "protocol": (p.get("seed"), p.get("crop"), bool(p.get("self_ensemble")))},
            "about": (f"{n} image{'s' * (n != 1)} of {', '.join(map(str, p.get('data') or ['?']))}, seed {p.get('seed', '?')}, "
                      f"border crop {p.get('crop', '?')}" + ("; self-ensembled" if p.get("self_ensemble") else ""))}


# -- with --data: every run on the same images, with the same seed ----------------------------------------
def judgeable(paths, labels, plugins, *, data, overrides=()):
    """Check every run, its --set and the images before judging any (a typo in the third run costs
    nothing); returns the files that will be read: checkpoints and images."""
    states = [checkpoint.load(p) for p in paths]
    check_tasks(labels, [checkpoint.task_of(s, plugins) for s in states])
    for p, state in zip(paths, states):   # one --set for all: a key one recipe lacks is refused now, not after the others
        recipes.from_dict(state["recipe"], f"{p}/recipe.toml", plugins, overrides).degradation_chain(plugins)
    images = [where for _, where in collect(data, verb="compare") if isinstance(where, Path)]
    return [checkpoint.locate(p) for p in paths] + images


def judge(paths, labels, plugins, *, data, metrics, keep=0, keeper=None, **options):
    """evaluate() each run on `data` -> (entries, {label: [kept samples]}, {metric: why skipped}, {label: result}).
    keeper: shrinks each kept sample at once (full-size images of many runs need not pile up)."""
    entries, samples, skipped, results = [], {}, {}, {}
    for path, label in zip(paths, labels):
        result, kept = evaluate(path, plugins, data=data, metrics=metrics, keep=keep, report=False, desc=label, **options)
        skipped.update(result["skipped_metrics"])
        metrics = tuple(m for m in metrics if m not in result["skipped_metrics"])   # warned once, not once a run
        entries.append(from_result(result, path, label, source="--data"))
        samples[label] = [keeper(s) if keeper else s for s in kept]
        results[label] = result
    return entries, samples, skipped, results


# -- the comparison -----------------------------------------------------------------------------------------
def comparison(entries, *, data=(), skipped_metrics=None, results=None):
    """The JSON-able comparison: runs (model metrics, gain over the input), groups of runs judged alike
    (their input and baselines), the best run(s) per metric, and a warning when runs were judged apart."""
    groups = []
    for e in entries:
        key = (e["alike"], e["damage"])
        group = next((g for g in groups if g["key"] == key), None)
        if group is None:
            groups.append(group := {"key": key, "members": []})
        group["members"].append(e)
    metrics = [k for k in METRICS if any(k in e["mean"]["model"] for e in entries)]
    runs = []
    for e in entries:
        model, inp = e["mean"]["model"], e["mean"].get("input") or {}
        runs.append({**{k: e[k] for k in ("label", "run", "recipe", "epoch", "source", "primary", "notes")},
                     "group": next(i for i, g in enumerate(groups) if e in g["members"]),
                     "model": {k: model[k] for k in metrics if k in model},
                     "gain": {k: number(model[k]) - number(inp[k]) for k in metrics if k in model and k in inp}})
    best = {}
    for k in metrics:
        scored = [(r["label"], number(r["model"].get(k))) for r in runs]
        scored = [(label, v) for label, v in scored if not math.isnan(v)]
        if len(scored) >= 2:   # a lone value is no contest
            top = (min if k in LOWER_IS_BETTER else max)(v for _, v in scored)
            best[k] = [label for label, v in scored if v == top]
    out = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "data": [str(d) for d in data] or None,
           "metrics": metrics, "lower_is_better": [k for k in metrics if k in LOWER_IS_BETTER],
           "primary": next(iter({r["primary"] for r in runs})) if len({r["primary"] for r in runs}) == 1 else None,
           "runs": runs, "best": best, "groups": [_group(g, metrics) for g in groups],
           "warning": _apart(entries, groups, bool(data)), "skipped_metrics": skipped_metrics or {}}
    if results:
        out["results"] = results   # each run's full evaluate() result, per image, as `eval --json` writes it
    return out


def _group(g, metrics):
    first = g["members"][0]
    baselines = {m: {k: v[k] for k in metrics if k in v} for m, v in first["mean"].items() if m not in NOT_BASELINES}
    return {"runs": [e["label"] for e in g["members"]], "damage": first["damage"], "about": first["about"],
            "input": {k: v for k, v in (first["mean"].get("input") or {}).items() if k in metrics},
            "baselines": baselines, "best_baseline": {k: list(v) for k, v in best_baselines(baselines, metrics).items()}}


def _apart(entries, groups, judged):
    """One sentence when the runs were not judged alike, naming how they differ; None when they were."""
    if len(groups) == 1:
        return None
    differ = lambda f: len({f(e) for e in entries}) > 1
    if differ(lambda e: e["alike"]["source"]):
        aspects = ["some from eval.json, some from training's validation in metrics.jsonl, which measure differently"]
    else:
        aspects = [what for what, f in (("images", lambda e: e["alike"]["images"]), ("damage", lambda e: e["damage"]),
                                        ("seed", lambda e: e["alike"]["protocol"][:1]),
                                        ("border crop", lambda e: e["alike"]["protocol"][1:2]),
                                        ("self-ensemble", lambda e: e["alike"]["protocol"][2:])) if differ(f)]
    fix = ("each run was damaged as its own recipe says, so each has its input and baseline rows" if judged else
           "pass --data DIR to judge every run on the same images")
    return f"the runs were not judged alike ({'; '.join(aspects)}), so this is not apples to apples: {fix}."


# -- the terminal table -------------------------------------------------------------------------------------
def table(comp):
    """A row per run (best of each column marked *), then the input and the best baseline of each group."""
    metrics, best, groups = comp["metrics"], comp["best"], comp["groups"]
    sources = not comp["data"]
    head = ["run", "recipe", "epoch", *metrics] + (["source"] if sources else [])
    rows = [[r["label"], r["recipe"], "-" if r["epoch"] is None else str(r["epoch"]),
             *[_cell(r["model"].get(k), k, r["label"] in best.get(k, ())) for k in metrics]]
            + ([r["source"]] if sources else []) for r in comp["runs"]]
    notes = []
    for g in groups:
        if not g["input"] and not g["baselines"]:
            continue
        whose = f" ({', '.join(g['runs'])})" if len(groups) > 1 else ""
        rows.append([f"input{whose}", "(damaged)", "", *[_cell(g["input"].get(k), k) for k in metrics]] + [""] * sources)
        picks = g["best_baseline"]
        if picks:
            names = list(dict.fromkeys(name for name, _ in picks.values()))
            label = names[0] if len(names) == 1 else "best baseline"
            rows.append([f"{label}{whose}", "(best baseline)", "",
                         *[_cell(picks[k][1] if k in picks else None, k) for k in metrics]] + [""] * sources)
            if len(names) > 1:
                notes.append(f"best baseline{whose} per column: " + ", ".join(f"{k} {picks[k][0]}" for k in metrics if k in picks))
    numeric = set(range(3, 3 + len(metrics)))
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    line = lambda row: "  ".join(c.rjust(w) if i in numeric or i == 2 else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    rule = "-" * len(line(head))
    n = len(comp["runs"])
    lines = [line(head), rule, *map(line, rows[:n])] + ([rule, *map(line, rows[n:])] if rows[n:] else [])
    lower = [LABELS[k].rstrip(" ↓") for k in comp["lower_is_better"]]
    lines.append("* best run in each column" + (f"; {', '.join(lower)}: lower is better (distances)" if lower else ""))
    lines += notes
    if comp["primary"] == "psnr_rgb" and "psnr_y" in metrics:   # training's validation has RGB alone, for no such reason
        lines.append("judge by psnr_rgb: this damage leaves luma (Y) intact, so the Y columns cannot see it")
    for g in groups:
        whose = f"{', '.join(g['runs'])}: " if len(groups) > 1 else ""
        lines.append(f"{whose}{g['about']}; damage {g['damage']}")
    lines += [f"{r['label']}: {note}" for r in comp["runs"] for note in r["notes"]]
    lines += [f"{m.upper()} skipped (weights missing)" for m in comp["skipped_metrics"]]
    return "\n".join(lines)


def _cell(v, key, best=False):
    """A number as `workbench eval` prints it (dB to 0.01, unitless scores to 1e-4), the best one starred."""
    v = number(v)
    text = "-" if math.isnan(v) else "inf" if math.isinf(v) else f"{v:.{2 if 'psnr' in key else 4}f}"
    return text + ("*" if best else " ")
