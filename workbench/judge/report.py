"""report.html: one self-contained page to judge a run (summary, curves, before/after sliders).

The page carries everything it needs (images as base64 data URIs, inline CSS, a few lines of
vanilla JS), so it opens offline and can be mailed or archived as a single file. Every input is
optional: a run that has just started has only recipe.toml, and the page says what is missing.
"""
import base64
import datetime
import html
import io
import json
import math
import tomllib
from importlib import resources
from pathlib import Path
from string import Template

from PIL import Image

from workbench.images.files import IMAGE_SUFFIXES, to_pil
from workbench.runs import files

MAX_SIDE = 512     # longer side of an embedded sample: sharp enough to judge, small enough to mail
SMALL = 128        # images under this on both sides are embedded as PNG: JPEG would add its own damage
MIN_SHOWN = 256    # tiny crops are enlarged (pixelated, whole multiples) until the longer side reaches this
PSNR_KEYS = ("psnr_y", "psnr", "psnr_rgb")   # the PSNR a gain is measured in, in order of preference
LABELS = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB", "ssim_rgb": "SSIM-RGB",
          "psnr_mask": "PSNR in mask", "psnr": "PSNR", "ssim": "SSIM", "accuracy": "accuracy", "loss": "loss",
          "lpips": "LPIPS ↓", "dists": "DISTS ↓"}
LOWER_IS_BETTER = {"lpips", "dists"}   # distances (workbench.judge.perceptual); the rest are similarities
SUMMARY_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "psnr_mask", "lpips", "dists")
NOT_BASELINES = {"model", "input"}
VERDICT_UNITS = {"psnr_y": "PSNR (Y)", "psnr": "PSNR (RGB)", "psnr_rgb": "PSNR (RGB)"}
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
        files.write_text(run_dir / "report" / f"{section or VALIDATION}.html", _samples(samples), replace=True,
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
    task = ev.get("task") or ("classify" if "accuracy" in last_valid or model_type == "classifier" else "restore")
    name = ev.get("recipe") or (recipe.get("recipe") or {}).get("name") or "?"
    if isinstance(ev.get("mean"), dict) and ev["mean"]:
        table, verdict = _eval_summary(ev)
    else:
        table, verdict = _valid_summary(records, last_valid, task)
        table += _valid_origin(recipe.get("data") or {})
    page = Template(resources.files("workbench.judge").joinpath(TEMPLATE).read_text(encoding="utf-8")).substitute(
        title=esc(run_dir.resolve().name), recipe=esc(name), task=esc(task),
        date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        verdict_class=verdict[1], verdict=esc(verdict[0]), summary=table,
        curves=_curves(records, task) or '<p class="note">No metrics.jsonl yet: curves appear after the first epoch.</p>',
        samples=_read(run_dir / "report" / f"{VALIDATION}.html") or _samples([]),
        other_data=_other_data(run_dir),
        recipe_text=esc(recipe_text) if recipe_text is not None else "recipe.toml not found")
    out = run_dir / "report.html"
    files.write_text(out, page, replace=True, what="the report")   # atomic: a reader (or a crash) never sees half a page
    return out


def eval_sections(run_dir):
    """[(NAME, path)] of the run's eval-NAME.json files (`eval --data`), sorted by name."""
    return sorted((p.name[len("eval-"):-len(".json")], p) for p in Path(run_dir).glob("eval-?*.json") if p.is_file())


def _other_data(run_dir):
    parts = []
    for name, path in eval_sections(run_dir):
        ev = _read_json(path)
        if not (isinstance(ev.get("mean"), dict) and ev["mean"]):
            continue
        table, (text, cls) = _eval_summary(ev, source=path.name)
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


# -- formatting ----------------------------------------------------------------------------------------
def esc(s):
    return html.escape(str(s), quote=True)


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def fmt(v, key="psnr", sign=False):
    """A metric for display: NaN/missing as '–', infinities as '∞' (identical images)."""
    v = _num(v)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return ("+∞" if sign else "∞") if v > 0 else "−∞"
    digits = 2 if "psnr" in key else 4
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _cls(gain, key=""):
    g = -_num(gain) if key in LOWER_IS_BETTER else _num(gain)   # a smaller distance is a gain
    return "pos" if g > 0 else "neg" if g < 0 else ""


def psnr_gain(metrics):
    """(key, model PSNR - input PSNR) in the preferred PSNR both have; (None, nan) if none."""
    model, inp = (metrics or {}).get("model") or {}, (metrics or {}).get("input") or {}
    for key in PSNR_KEYS:
        if key in model and key in inp:
            a, b = _num(model[key]), _num(inp[key])
            return key, (math.nan if math.isinf(a) and a == b else a - b)
    return None, math.nan


def _verdict(gain, unit, best=None):
    """The headline: the model against the damaged input and, when there are baselines, the best of
    them; `best` is (baseline name, model minus it), and a baseline that wins is named first."""
    if math.isnan(gain):
        return "no PSNR of the model and the damaged input yet", ""
    vs_input = (f"model beats the damaged input by {fmt(gain, sign=True)} dB {unit}" if gain > 0 else
                f"model is {fmt(-gain)} dB worse than the damaged input in {unit}" if gain < 0 else
                f"model matches the damaged input in {unit}")
    if best is None or math.isnan(best[1]):
        return vs_input, _cls(gain)
    name, margin = best
    if margin < 0:
        return (f"the {name} baseline beats the model by {fmt(-margin)} dB {unit}; " + vs_input.replace("model", "the model", 1),
                "neg")
    if margin == 0:
        return f"model only matches the {name} baseline in {unit}; " + vs_input.replace("model", "it", 1), ""
    return (f"model beats the best baseline ({name}) by {fmt(margin, sign=True)} dB {unit}, and the damaged input by "
            f"{fmt(gain, sign=True)} dB" if gain > 0 else
            f"model beats the best baseline ({name}) by {fmt(margin, sign=True)} dB {unit}; " + vs_input.replace("model", "it", 1),
            "pos" if gain > 0 else "neg")


def best_baselines(mean, keys):
    """{key: (baseline, its value)}: the best baseline for each metric (highest, or lowest for a distance)."""
    best = {}
    for key in keys:
        scored = [(m, _num(v.get(key))) for m, v in mean.items() if m not in NOT_BASELINES and isinstance(v, dict)]
        scored = [(m, x) for m, x in scored if not math.isnan(x)]
        if scored:
            pick = min if key in LOWER_IS_BETTER else max
            best[key] = pick(scored, key=lambda mx: mx[1])
    return best


# -- summary table -------------------------------------------------------------------------------------
def _table(rows, keys, gain=None, best=None):
    """rows: [(method, {key: value})]; the model's row and the gain rows are highlighted. best: {key:
    (baseline, value)}, for a row of the model minus the best baseline of each metric."""
    head = "".join(f"<th>{esc(LABELS.get(k, k))}</th>" for k in keys)
    body = "".join(f'<tr class="{"model" if m == "model" else ""}"><th>{esc(m)}</th>'
                   + "".join(f"<td>{fmt(vals.get(k), k)}</td>" for k in keys) + "</tr>" for m, vals in rows)
    if gain:
        body += ('<tr class="gain"><th>model − input</th>'
                 + "".join(f'<td class="{_cls(gain.get(k), k)}">{fmt(gain.get(k), k, sign=True)}</td>' for k in keys) + "</tr>")
    if best:
        model = dict(rows).get("model", {})
        cells = []
        for k in keys:
            if k not in best:
                cells.append("<td>–</td>")
                continue
            name, value = best[k]
            d = _num(model.get(k)) - value
            cells.append(f'<td class="{_cls(d, k)}" title="best baseline: {esc(name)}">{fmt(d, k, sign=True)} '
                         f'<small>({esc(name)})</small></td>')
        body += f'<tr class="gain"><th>model − best baseline</th>{"".join(cells)}</tr>'
    return f'<table><thead><tr><th>method</th>{head}</tr></thead><tbody>{body}</tbody></table>'


def _eval_summary(ev, source="eval.json"):
    mean = {m: v for m, v in ev["mean"].items() if isinstance(v, dict)}
    methods = [m for m in ev.get("methods") or [] if m in mean] + [m for m in mean if m not in (ev.get("methods") or [])]
    keys = [k for k in SUMMARY_KEYS if any(k in mean[m] for m in methods)]
    gain = ev.get("gain") if isinstance(ev.get("gain"), dict) else {k: _num(mean.get("model", {}).get(k)) - _num(mean.get("input", {}).get(k)) for k in keys}
    best = best_baselines(mean, keys) if "model" in mean else {}
    parts = [_table([(m, mean[m]) for m in methods], keys, gain if "model" in mean else None, best)]
    if any(k in LOWER_IS_BETTER for k in keys):
        parts.append('<p class="note">↓ LPIPS and DISTS are distances: lower is better (PSNR and SSIM: higher is better).</p>')
    protocol = ev.get("protocol")
    if isinstance(protocol, dict) and protocol:
        items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(', '.join(map(str, v)) if isinstance(v, list) else v)}</dd>"
                        for k, v in protocol.items())
        parts.append(f'<dl class="protocol">{items}</dl>')
    n = len(ev.get("images") or [])
    parts.append(f'<p class="note">From {esc(source)}: mean over {n} image{"s" * (n != 1)}.</p>')
    skipped = [s for s in ev.get("skipped") or [] if isinstance(s, dict)]
    if skipped:
        items = "".join(f"<li><code>{esc(s.get('name', '?'))}</code>: {esc(s.get('reason', ''))}</li>" for s in skipped)
        parts.append(f'<details class="skipped" open><summary>{len(skipped)} image{"s" * (len(skipped) != 1)} skipped</summary><ul>{items}</ul></details>')
    key = ev.get("primary") if ev.get("primary") in gain else "psnr_y" if "psnr_y" in gain else next((k for k in PSNR_KEYS if k in gain), None)
    margin = None
    if key in best:
        margin = (best[key][0], _num(mean.get("model", {}).get(key)) - best[key][1])
    return "".join(parts), _verdict(_num(gain.get(key)), VERDICT_UNITS.get(key, ""), margin)


def _valid_origin(data):
    """A note when validation came from the training photos themselves (workbench.data.splits)."""
    from itertools import islice

    from workbench.data.splits import MIN_IMAGES_FOR_IMAGE_SPLIT

    if data.get("valid") or not data:
        return ""
    train = str(data.get("train", ""))
    if train == "sample":
        few = True
    else:
        folder = Path(train)
        if not folder.is_dir():
            return ""
        images = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        few = len(list(islice(images, MIN_IMAGES_FOR_IMAGE_SPLIT))) < MIN_IMAGES_FOR_IMAGE_SPLIT
    if few:
        return ('<p class="note warn">Validation images are held-out strips of the training photos themselves (fewer '
                f"than {MIN_IMAGES_FOR_IMAGE_SPLIT} photos, no data.valid): they flatter the model. Judge it on photos it "
                "never saw: <code>workbench eval RUN --data DIR</code>.</p>")
    return ('<p class="note">Validation images are photos held out of the training folder (no data.valid): the same '
            "kind of photos, never trained on.</p>")


def _valid_summary(records, valid, task):
    epoch = next((r.get("epoch", "?") for r in reversed(records) if isinstance(r.get("valid"), dict)), None)
    if epoch is None:
        return '<p class="note">No validation yet: no metrics.jsonl, no eval.json.</p>', ("no validation results yet", "")
    note = (f'<p class="note">From the validation of epoch {esc(epoch)} in metrics.jsonl (8-bit RGB), not from '
            "eval.json: run <code>workbench eval</code> for PSNR-Y and the classical baselines.</p>")
    if task == "classify":
        acc = _num(valid.get("accuracy"))
        text = f"validation accuracy {acc:.1%}" if math.isfinite(acc) else "no validation accuracy yet"
        return _table([("model", valid)], ["accuracy", "loss"]) + note, (text, "")
    model = {"psnr_rgb": valid.get("psnr"), "ssim_rgb": valid.get("ssim")}
    inp = {"psnr_rgb": valid.get("input_psnr"), "ssim_rgb": valid.get("input_ssim")}
    gain = {k: _num(model[k]) - _num(inp[k]) for k in model}
    if valid.get("undamaged"):
        note += f'<p class="note">{esc(valid["undamaged"])} image(s) the damage left intact are not judged.</p>'
    return _table([("model", model), ("input", inp)], ["psnr_rgb", "ssim_rgb"], gain) + note, \
        _verdict(gain["psnr_rgb"], "PSNR (RGB, validation)")


# -- curves --------------------------------------------------------------------------------------------
def _curves(records, task):
    if not records:
        return ""
    # A bare Figure (no pyplot) draws with Agg without touching global state: safe inside training.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [_num(r.get("epoch", i + 1)) for i, r in enumerate(records)]
    terms = sorted({k for r in records for k in r if k.startswith("loss/")})
    terms = ["train_loss"] + (terms if len(terms) > 1 else [])   # a lone term is the total again
    valid = [r.get("valid") if isinstance(r.get("valid"), dict) else {} for r in records]
    lines = {"accuracy": "accuracy"} if task == "classify" else {"model": "psnr", "damaged input": "input_psnr"}
    plots = [("Training loss", "loss", [(k.replace("train_", "train "), [r.get(k) for r in records]) for k in terms]),
             ("Validation", "accuracy" if task == "classify" else "PSNR (dB, RGB)",
              [(label, [v.get(k) for v in valid]) for label, k in lines.items()])]
    out = []
    for title, ylabel, series in plots:
        fig = Figure(figsize=(6, 3.4), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        drawn = 0
        for i, (label, ys) in enumerate(series):
            ys = [y if math.isfinite(y) else math.nan for y in map(_num, ys)]   # inf cannot be drawn
            if any(math.isfinite(y) for y in ys):
                ax.plot(epochs, ys, "o-" if i == 0 else "o--", label=label, markersize=3)
                drawn += 1
        if not drawn:
            continue
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out.append(f'<img class="curve" alt="{esc(title)} per epoch" src="data:image/png;base64,{_b64(buf)}">')
    return "".join(out)


# -- samples -------------------------------------------------------------------------------------------
def _b64(buf):
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _data_uri(im):
    buf = io.BytesIO()
    if max(im.size) < SMALL:
        im.save(buf, "PNG")
        return f"data:image/png;base64,{_b64(buf)}"
    im.save(buf, "JPEG", quality=90, subsampling=0)   # 4:4:4: chroma subsampling would smear colour edges
    return f"data:image/jpeg;base64,{_b64(buf)}"


def _js_number(v):
    """A float as JavaScript's parseFloat reads it ('' for NaN, which sorts last)."""
    return "" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity") if math.isinf(v) else repr(v)


def _pil(img):
    img = img[0] if img.dim() == 4 else img
    return to_pil(img.expand(3, -1, -1) if img.shape[0] == 1 else img)


def _slider(left, right, labels, size, name):
    """Two stacked images; the top (left) one is clipped at --pos, which the range input sets."""
    w, h = size
    shown = w * max(1, math.ceil(MIN_SHOWN / max(w, h)))    # whole multiples keep pixels square and honest
    a, b = (esc(x) for x in labels)
    return (f'<div class="ba{" pixelated" if shown > w else ""}" style="--pos:50%;width:min(100%,{shown}px);'
            f'aspect-ratio:{w}/{h}"><img src="{right}" alt="{b}: {name}"><img class="top" src="{left}" alt="{a}: {name}">'
            f'<div class="bar" aria-hidden="true"></div><span class="lab l">{a}</span><span class="lab r">{b}</span>'
            f'<input type="range" min="0" max="100" step="0.5" value="50" aria-label="{a} | {b} divider, {name}"></div>')


def _sample(s):
    imgs = [_pil(s[k]) for k in ("damaged", "restored", "clean")]
    w, h = max(im.width for im in imgs), max(im.height for im in imgs)
    scale = min(1.0, MAX_SIDE / max(w, h))    # one scale for all three, so the sliders align
    if scale < 1:
        imgs = [im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS) for im in imgs]
    damaged, restored, clean = (_data_uri(im) for im in imgs)
    name, metrics = esc(s.get("name", "")), s.get("metrics") or {}
    key, gain = psnr_gain(metrics)
    size = imgs[2].size
    keys = [k for k in LABELS if any(k in (v or {}) for v in metrics.values())]
    keys += sorted({k for v in metrics.values() for k in (v or {}) if k not in keys})
    model, inp = metrics.get("model") or {}, metrics.get("input") or {}
    gains = {k: _num(model[k]) - _num(inp[k]) for k in keys if k in model and k in inp} or None
    table = _table([(m, v or {}) for m, v in metrics.items()], keys, gains) if metrics else ""
    gain_text = f"{fmt(gain, sign=True)} dB {LABELS[key]}" if key else "no PSNR"
    return (f'<article class="sample" data-gain="{_js_number(gain)}" data-name="{name}">'
            f'<h3>{name} <span class="gain {_cls(gain)}">{gain_text}</span></h3><div class="pair">'
            + _slider(damaged, restored, ("damaged", "restored"), size, name)
            + _slider(restored, clean, ("restored", "clean"), size, name) + f"</div>{table}</article>")


def _samples(samples):
    if not samples:
        return '<p class="note">No sample images were given to this report.</p>'
    buttons = "".join(f'<button type="button" data-sort="{k}">{t}</button>'
                      for k, t in (("down", "sort by gain ↓"), ("up", "sort by gain ↑"), ("name", "sort by name")))
    return f'<div class="images"><div class="sort">{buttons}</div><div class="samples">{"".join(_sample(s) for s in samples)}</div></div>'
