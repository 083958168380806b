"""The numbers of a report: formatting, the headline verdict and the summary tables.

Every function here is pure (dicts in, HTML strings out), so the tables and the headline can be
tested without writing a page; workbench.judge.report assembles them with the curves and images.
"""

import html
import math
from pathlib import Path

from workbench.images.files import IMAGE_SUFFIXES

PSNR_KEYS = ("psnr_y", "psnr", "psnr_rgb")   # the PSNR a gain is measured in, in order of preference
LABELS = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB", "ssim_rgb": "SSIM-RGB",
          "psnr_mask": "PSNR in mask", "psnr": "PSNR", "ssim": "SSIM", "accuracy": "accuracy", "loss": "loss",
          "lpips": "LPIPS ↓", "dists": "DISTS ↓", "miou": "mIoU", "dice": "Dice", "pixel_accuracy": "pixel accuracy"}
SEGMENT_KEYS = ("miou", "dice", "pixel_accuracy")
LOWER_IS_BETTER = {"lpips", "dists"}   # distances (workbench.judge.perceptual); the rest are similarities
SUMMARY_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "psnr_mask", "lpips", "dists")
NOT_BASELINES = {"model", "input"}
VERDICT_UNITS = {"psnr_y": "PSNR (Y)", "psnr": "PSNR (RGB)", "psnr_rgb": "PSNR (RGB)"}


def esc(s):
    return html.escape(str(s), quote=True)


def number(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def fmt(v, key="psnr", sign=False):
    """A metric for display: NaN/missing as '–', infinities as '∞' (identical images)."""
    v = number(v)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return ("+∞" if sign else "∞") if v > 0 else "−∞"
    digits = 2 if "psnr" in key else 4
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def gain_class(gain, key=""):
    g = -number(gain) if key in LOWER_IS_BETTER else number(gain)   # a smaller distance is a gain
    return "pos" if g > 0 else "neg" if g < 0 else ""


def psnr_gain(metrics):
    """(key, model PSNR - input PSNR) in the preferred PSNR both have; (None, nan) if none."""
    model, inp = (metrics or {}).get("model") or {}, (metrics or {}).get("input") or {}
    for key in PSNR_KEYS:
        if key in model and key in inp:
            a, b = number(model[key]), number(inp[key])
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
        return vs_input, gain_class(gain)
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
        scored = [(m, number(v.get(key))) for m, v in mean.items() if m not in NOT_BASELINES and isinstance(v, dict)]
        scored = [(m, x) for m, x in scored if not math.isnan(x)]
        if scored:
            pick = min if key in LOWER_IS_BETTER else max
            best[key] = pick(scored, key=lambda mx: mx[1])
    return best


# -- summary table -------------------------------------------------------------------------------------
def table_html(rows, keys, gain=None, best=None):
    """rows: [(method, {key: value})]; the model's row and the gain rows are highlighted. best: {key:
    (baseline, value)}, for a row of the model minus the best baseline of each metric."""
    head = "".join(f"<th>{esc(LABELS.get(k, k))}</th>" for k in keys)
    body = "".join(f'<tr class="{"model" if m == "model" else ""}"><th>{esc(m)}</th>'
                   + "".join(f"<td>{fmt(vals.get(k), k)}</td>" for k in keys) + "</tr>" for m, vals in rows)
    if gain:
        body += ('<tr class="gain"><th>model − input</th>'
                 + "".join(f'<td class="{gain_class(gain.get(k), k)}">{fmt(gain.get(k), k, sign=True)}</td>' for k in keys) + "</tr>")
    if best:
        model = dict(rows).get("model", {})
        cells = []
        for k in keys:
            if k not in best:
                cells.append("<td>–</td>")
                continue
            name, value = best[k]
            d = number(model.get(k)) - value
            cells.append(f'<td class="{gain_class(d, k)}" title="best baseline: {esc(name)}">{fmt(d, k, sign=True)} '
                         f'<small>({esc(name)})</small></td>')
        body += f'<tr class="gain"><th>model − best baseline</th>{"".join(cells)}</tr>'
    return f'<table><thead><tr><th>method</th>{head}</tr></thead><tbody>{body}</tbody></table>'


def eval_summary(ev, source="eval.json"):
    mean = {m: v for m, v in ev["mean"].items() if isinstance(v, dict)}
    if ev.get("task") == "segment":
        n = len(ev.get("images") or [])
        return segment_summary(mean, f'<p class="note">From {esc(source)}: over all pixels of {n} image{"s" * (n != 1)}.</p>')
    methods = [m for m in ev.get("methods") or [] if m in mean] + [m for m in mean if m not in (ev.get("methods") or [])]
    keys = [k for k in SUMMARY_KEYS if any(k in mean[m] for m in methods)]
    gain = ev.get("gain") if isinstance(ev.get("gain"), dict) else {k: number(mean.get("model", {}).get(k)) - number(mean.get("input", {}).get(k)) for k in keys}
    best = best_baselines(mean, keys) if "model" in mean else {}
    parts = [table_html([(m, mean[m]) for m in methods], keys, gain if "model" in mean else None, best)]
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
        margin = (best[key][0], number(mean.get("model", {}).get(key)) - best[key][1])
    return "".join(parts), _verdict(number(gain.get(key)), VERDICT_UNITS.get(key, ""), margin)


def valid_origin(data):
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


def valid_summary(records, valid, task):
    epoch = next((r.get("epoch", "?") for r in reversed(records) if isinstance(r.get("valid"), dict)), None)
    if epoch is None:
        return '<p class="note">No validation yet: no metrics.jsonl, no eval.json.</p>', ("no validation results yet", "")
    note = (f'<p class="note">From the validation of epoch {esc(epoch)} in metrics.jsonl (8-bit RGB), not from '
            "eval.json: run <code>workbench eval</code> for PSNR-Y and the classical baselines.</p>")
    if task == "classify":
        acc = number(valid.get("accuracy"))
        text = f"validation accuracy {acc:.1%}" if math.isfinite(acc) else "no validation accuracy yet"
        return table_html([("model", valid)], ["accuracy", "loss"]) + note, (text, "")
    if task == "segment":
        return segment_summary({"model": valid, **(valid.get("baselines") or {})}, note.replace(
            "8-bit RGB", "over all validation pixels").replace("PSNR-Y and the classical baselines", "photos it never saw"))
    model = {"psnr_rgb": valid.get("psnr"), "ssim_rgb": valid.get("ssim")}
    inp = {"psnr_rgb": valid.get("input_psnr"), "ssim_rgb": valid.get("input_ssim")}
    gain = {k: number(model[k]) - number(inp[k]) for k in model}
    if valid.get("undamaged"):
        note += f'<p class="note">{esc(valid["undamaged"])} image(s) the damage left intact are not judged.</p>'
    return table_html([("model", model), ("input", inp)], ["psnr_rgb", "ssim_rgb"], gain) + note, \
        _verdict(gain["psnr_rgb"], "PSNR (RGB, validation)")


def segment_summary(mean, note=""):
    """A segmenter's table (mIoU, Dice, pixel accuracy of the model and each baseline) and its headline
    against the best baseline by mIoU: all-background scores high pixel accuracy and is still no answer."""
    rows = [(m, v) for m, v in mean.items() if isinstance(v, dict)]
    best = best_baselines(dict(rows), SEGMENT_KEYS)
    miou = number((mean.get("model") or {}).get("miou"))
    if math.isnan(miou):
        return table_html(rows, SEGMENT_KEYS) + note, ("no mIoU of the model yet", "")
    if "miou" not in best:
        return table_html(rows, SEGMENT_KEYS) + note, (f"model mIoU {miou:.3f}", "")
    name, value = best["miou"]
    margin = miou - value
    text = (f"model mIoU {miou:.3f} beats the best baseline ({name}, {value:.3f}) by {margin:+.3f}" if margin > 0 else
            f"the {name} baseline ({value:.3f}) beats the model's mIoU {miou:.3f} by {-margin:.3f}" if margin < 0 else
            f"model mIoU {miou:.3f} only matches the {name} baseline")
    return table_html(rows, SEGMENT_KEYS, best=best) + note, (text, gain_class(margin))
