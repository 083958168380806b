"""report.html: one self-contained page to judge a run (summary, curves, before/after sliders).

The page carries everything it needs (images as base64 data URIs, inline CSS, a few lines of
vanilla JS), so it opens offline and can be mailed or archived as a single file. Every input is
optional: a run that has just started has only recipe.toml, and the page says what is missing.
"""

import base64
import datetime
import io
import json
import math
import tomllib
from importlib import resources
from pathlib import Path
from string import Template

from workbench.judge.pictures import samples_html
from workbench.judge.summary import esc, eval_summary, number, table_html, valid_origin, valid_summary
from workbench.runs import files

TEMPLATE = "report_template.html"   # package data next to this module: the page's HTML, CSS and JS
VALIDATION = "validation"   # report/validation.html: the images of the run's own validation (or eval.json)


def write_report(run_dir, samples=None, section=None):
    """Write run_dir/report.html from what run_dir holds plus `samples`; returns its path.

    samples: [{"name", "damaged", "restored", "clean" (3 x H x W tensors in [0, 1]),
    "metrics": {method: {metric: float}}}], shown as before/after sliders sortable by gain.
    section: the `eval --data` result these samples belong to (its NAME in eval-NAME.json), or None
    for the run's own validation. Each section's images are kept in report/NAME.html, so that a later
    eval on other data adds its section and the earlier ones stay on the page.
    """
    run_dir = Path(run_dir)
    if samples:
        files.write_text(run_dir / "report" / f"{section or VALIDATION}.html", samples_html(samples), replace=True,
                         what="the report's images")
    recipe_text = _read(run_dir / "recipe.toml")
    try:
        recipe = tomllib.loads(recipe_text or "")
    except tomllib.TOMLDecodeError:
        recipe = {}
    records = _read_jsonl(run_dir / "metrics.jsonl")
    ev = _read_json(run_dir / "eval.json")
    last_valid = next((r["valid"] for r in reversed(records) if isinstance(r.get("valid"), dict)), {})
    model_type = (recipe.get("model") or {}).get("type")
    task = ev.get("task") or ("classify" if "accuracy" in last_valid or model_type == "classifier" else
                              "segment" if "miou" in last_valid else "stylize" if "input_style" in last_valid else "restore")
    name = ev.get("recipe") or (recipe.get("recipe") or {}).get("name") or "?"
    if isinstance(ev.get("mean"), dict) and ev["mean"]:
        table, verdict = eval_summary(ev)
    elif task == "stylize":   # `eval` refuses a stylizer: it judges the photos with `grid`
        table, verdict = _stylize_summary(records, last_valid)
        table += valid_origin(recipe.get("data") or {}).replace("workbench eval RUN --data DIR", "workbench grid RUN --data DIR -o grid.png")
    else:
        table, verdict = valid_summary(records, last_valid, task)
        table += valid_origin(recipe.get("data") or {})
    page = Template(resources.files("workbench.judge").joinpath(TEMPLATE).read_text(encoding="utf-8")).substitute(
        title=esc(run_dir.resolve().name), recipe=esc(name), task=esc(task),
        date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        verdict_class=verdict[1], verdict=esc(verdict[0]), summary=table,
        curves=_curves(records, task) or '<p class="note">No metrics.jsonl yet: curves appear after the first epoch.</p>',
        samples=_read(run_dir / "report" / f"{VALIDATION}.html") or samples_html([]),
        other_data=_other_data(run_dir),
        recipe_text=esc(recipe_text) if recipe_text is not None else "recipe.toml not found")
    out = run_dir / "report.html"
    files.write_text(out, page, replace=True, what="the report")   # atomic: a reader (or a crash) never sees half a page
    return out


def _stylize_summary(records, valid):
    """A stylizer's table: the objective of its validation crops beside the unstyled photo's. No PSNR: it would
    only measure how much the style changed the photo, which is the point."""
    epoch = next((r.get("epoch", "?") for r in reversed(records) if isinstance(r.get("valid"), dict)), None)
    style, photo = number(valid.get("style")), number(valid.get("input_style"))
    if epoch is None or math.isnan(style):
        return '<p class="note">No validation yet: no metrics.jsonl.</p>', ("no validation results yet", "")
    rows = [("stylized", valid), ("unstyled photo", {"loss": photo, "style": photo, "content": 0.0})]
    note = (f'<p class="note">From the validation of epoch {esc(epoch)} in metrics.jsonl: the training objective on the '
            "validation crops, lower is better; <code>style</code> is its part that matches the style image's Gram matrices, "
            "<code>content</code> the rest (what ties the output to the photo). The unstyled photo is the baseline: its "
            "content distance is 0, and its style distance is what the photo scores as it is; a stylizer earns its name "
            "below it.</p>")
    nearer = style < photo
    text = (f"the stylized crops are {'nearer' if nearer else 'no nearer'} the style than the unstyled photo: style distance "
            f"{style:.4g} against {photo:.4g} (validation, lower is better)")
    return table_html(rows, ["loss", "style", "content"]) + note, (text, "pos" if nearer else "neg")


def eval_sections(run_dir):
    """[(NAME, path)] of the run's eval-NAME.json files (`eval --data`), sorted by name."""
    return sorted((p.name[len("eval-"):-len(".json")], p) for p in Path(run_dir).glob("eval-?*.json") if p.is_file())


def _other_data(run_dir):
    parts = []
    for name, path in eval_sections(run_dir):
        ev = _read_json(path)
        if not (isinstance(ev.get("mean"), dict) and ev["mean"]):
            continue
        table, (text, cls) = eval_summary(ev, source=path.name)
        images = _read(Path(run_dir) / "report" / f"{name}.html") or ""
        parts.append(f'<section class="other-data" id="eval-{esc(name)}"><h2>Evaluation on {esc(name)}</h2>'
                     f'<p class="verdict {cls}">{esc(text)}</p>{table}{images}</section>')
    return "".join(parts)


# -- reading: a missing or half-written file is "not there yet", never an error ----------------------
def _read(path):
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path):
    try:
        data = json.loads(_read(path) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _read_jsonl(path):
    records = []
    for line in (_read(path) or "").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue    # the line a running trainer is writing right now
    return [r for r in records if isinstance(r, dict)]


# -- curves --------------------------------------------------------------------------------------------
def _curves(records, task):
    """PNG plots: the training loss per step (with each epoch's mean), the learning rate per step, and
    validation per epoch. Runs logged before per-step values existed are drawn per epoch."""
    if not records:
        return ""
    # A bare Figure (no pyplot) draws with Agg without touching global state: safe inside training.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [number(r.get("epoch", i + 1)) for i, r in enumerate(records)]
    per_step = all(isinstance(r.get("step_loss"), list) and r["step_loss"] for r in records)
    ends = [sum(len(r["step_loss"]) for r in records[:i + 1]) for i in range(len(records))] if per_step else epochs
    terms = sorted({k for r in records for k in r if k.startswith("loss/")})
    terms = ["train_loss"] + (terms if len(terms) > 1 else [])   # a lone term is the total again
    valid = [r.get("valid") if isinstance(r.get("valid"), dict) else {} for r in records]
    lines = {"accuracy": "accuracy"} if task == "classify" else {"model mIoU": "miou", "model Dice": "dice"} \
        if task == "segment" else {"stylized: objective": "loss", "stylized: style": "style", "unstyled photo: style": "input_style"} \
        if task == "stylize" else {"model": "psnr", "damaged input": "input_psnr"}
    x_train = "step" if per_step else "epoch"
    loss = [(k.replace("train_", "train ") + (" (epoch mean)" if per_step else ""), ends, [r.get(k) for r in records], "o-")
            for k in terms]
    if per_step:
        steps = [v for r in records for v in r["step_loss"]]
        loss.insert(0, ("train loss (each step)", range(1, len(steps) + 1), steps, "-"))
        lr = [("learning rate", range(1, len(steps) + 1), [v for r in records for v in r.get("step_lr") or []], "-")]
    else:
        lr = [("learning rate (end of epoch)", epochs, [r.get("lr") for r in records], "o-")]
    plots = [("Training loss", x_train, "loss", loss), ("Learning rate", x_train, "lr", lr),
             ("Validation", "epoch", {"classify": "accuracy", "segment": "mIoU, Dice", "stylize": "objective (lower is better)"}.get(task, "PSNR (dB, RGB)"),
              [(label, epochs, [v.get(k) for v in valid], "o-" if i == 0 else "o--") for i, (label, k) in enumerate(lines.items())])]
    out = []
    for title, xlabel, ylabel, series in plots:
        fig = Figure(figsize=(6, 3.4), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        drawn = 0
        for label, xs, ys, style in series:
            ys = [y if math.isfinite(y) else math.nan for y in map(number, ys)]   # inf and skipped steps cannot be drawn
            if len(ys) == len(xs) and any(math.isfinite(y) for y in ys):
                thin = style == "-" and label.endswith("(each step)")
                ax.plot(list(xs), ys, style, label=label, markersize=3, linewidth=0.8 if thin else 1.5, alpha=0.45 if thin else 1)
                drawn += 1
        if not drawn:
            continue
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # steps and epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out.append(f'<img class="curve" alt="{esc(title)} per {xlabel}" src="data:image/png;base64,'
                   f'{base64.b64encode(buf.getvalue()).decode("ascii")}">')
    return "".join(out)
