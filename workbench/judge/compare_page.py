"""The page of `workbench compare -o FILE.html`: the table, and sample images side by side.

Self-contained like report.html (inline CSS, images as data URIs), so it opens offline and can be
mailed. Each sample shows damaged | best baseline | run A | run B | ... | clean at one size, then
1:1 crops where the first two runs differ most: where choosing between them matters.
"""
import datetime
import math

import torch

from workbench.judge.pictures import _pil, _uri, as_rgb, best_baseline, zoom_box
from workbench.judge.summary import LABELS, esc, fmt, number

MAX_SIDE = 512    # longer side of a shown picture, as in report.html
MIN_SHOWN = 192   # tiny pictures are enlarged (whole multiples, pixelated) until their longer side reaches this

CSS = """body{margin:0 auto;max-width:1400px;padding:16px;font:15px/1.45 system-ui,sans-serif;color:#1f2328}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.15em}h3{font-size:1em;margin:16px 0 6px;overflow-wrap:anywhere}
.note{color:#59636e;font-size:.9em;margin:4px 0}.warn{color:#9a6700;font-weight:600}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;display:block;overflow-x:auto;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;white-space:nowrap;text-align:right}
th:first-child,.text{text-align:left}thead th{background:#f6f8fa}tr.ref{color:#59636e}td.best{font-weight:700;background:#eef6ff}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}figure{margin:0;flex:none}
figcaption{font-size:.85em;color:#59636e;overflow-wrap:anywhere}img.px{image-rendering:pixelated}"""


def keep(s):
    """A sample of evaluate(report=False) as the page needs it: 8-bit pictures at the clean image's size,
    the best baseline only: a quarter of the memory, whatever the number of runs."""
    h, w = s["clean"].shape[-2:]
    u8 = lambda img: (as_rgb(img, (h, w)) * 255).round().to(torch.uint8)
    best = best_baseline(s["metrics"], s["baselines"])
    return {"name": s["name"], "metrics": s["metrics"], "best": best, "damaged": u8(s["damaged"]),
            "baseline": u8(s["baselines"][best]) if best else None, "restored": u8(s["restored"]), "clean": u8(s["clean"])}


def page(comp, samples=None):
    """The whole HTML page of comparison `comp` (workbench.judge.compare) with {label: [kept samples]}."""
    labels = [r["label"] for r in comp["runs"]]
    warning = f'<p class="note warn">{esc(comp["warning"])}</p>' if comp["warning"] else ""
    notes = "".join(f'<p class="note">{esc(", ".join(g["runs"]) + ": " if len(comp["groups"]) > 1 else "")}'
                    f'{esc(g["about"])}; damage <code>{esc(g["damage"])}</code></p>' for g in comp["groups"])
    lower = [LABELS[k] for k in comp["lower_is_better"]]
    notes += ('<p class="note">Bold: the best run in each column' + (f"; {esc(', '.join(lower))}: lower is better "
              "(distances; PSNR and SSIM: higher is better)" if lower else "") + ".</p>")
    notes += "".join(f'<p class="note warn">{esc(r["label"])}: {esc(n)}</p>' for r in comp["runs"] for n in r["notes"])
    notes += "".join(f'<p class="note">{esc(m.upper())} skipped: {esc(why)}</p>' for m, why in comp["skipped_metrics"].items())
    shown = _samples(comp, samples or {})
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(" vs ".join(labels))} · workbench compare</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(' vs '.join(labels))}</h1>"
            f'<p class="note">workbench compare, {datetime.datetime.now():%Y-%m-%d %H:%M}; '
            f'{"judged on " + esc(", ".join(comp["data"])) if comp["data"] else "from the results each run already had"}</p>'
            f"{warning}{_table(comp)}{notes}{shown}</body></html>")


def _table(comp):
    metrics, best, groups = comp["metrics"], comp["best"], comp["groups"]
    sources = not comp["data"]
    head = "".join(f"<th>{esc(LABELS.get(k, k))}</th>" for k in metrics)
    head = f'<th>run</th><th class="text">recipe</th><th>epoch</th>{head}' + ('<th class="text">source</th>' if sources else "")
    body = ""
    for r in comp["runs"]:
        cells = "".join(f'<td class="best">{fmt(r["model"].get(k), k)} *</td>' if r["label"] in best.get(k, ())
                        else f"<td>{fmt(r['model'].get(k), k)}</td>" for k in metrics)
        body += (f'<tr><th title="{esc(r["run"])}">{esc(r["label"])}</th><td class="text">{esc(r["recipe"])}</td>'
                 f'<td>{esc("–" if r["epoch"] is None else r["epoch"])}</td>{cells}'
                 + (f'<td class="text">{esc(r["source"])}</td>' if sources else "") + "</tr>")
    for g in groups:
        whose = f" ({', '.join(g['runs'])})" if len(groups) > 1 else ""
        refs = [(f"input{whose}", "damaged", g["input"], {})] if g["input"] else []
        picks = g["best_baseline"]
        if picks:
            refs.append((f"best baseline{whose}", "classical", {k: v[1] for k, v in picks.items()}, picks))
        for label, kind, values, named in refs:
            cells = "".join(f"<td>{fmt(values.get(k), k)}" + (f" <small>({esc(named[k][0])})</small>" if k in named else "")
                            + "</td>" for k in metrics)
            body += (f'<tr class="ref"><th>{esc(label)}</th><td class="text">{kind}</td><td></td>{cells}'
                     + ("<td></td>" if sources else "") + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _samples(comp, samples):
    """Per image judged by every run: one row of pictures, then one of 1:1 crops."""
    labels = [r["label"] for r in comp["runs"]]
    if not samples or not all(samples.get(label) for label in labels):
        return ""
    by_name = {label: {s["name"]: s for s in samples[label]} for label in labels}
    key = comp["primary"] or "psnr_y"
    parts = []
    for first in samples[labels[0]]:
        name = first["name"]
        if not all(name in by_name[label] for label in labels):
            continue
        views = []
        for g in comp["groups"]:
            s = by_name[g["runs"][0]][name]
            whose = f" ({', '.join(g['runs'])})" if len(comp["groups"]) > 1 else ""
            views.append(("input", f"damaged{whose}", s["damaged"], s["metrics"].get("input")))
            if s["baseline"] is not None:
                views.append(("baseline", f"{s['best']} (best baseline{whose.replace(' (', ' for ').rstrip(')')})", s["baseline"],
                              s["metrics"].get(s["best"])))
            views += [("run", label, by_name[label][name]["restored"], by_name[label][name]["metrics"].get("model"))
                      for label in g["runs"]]
        views.append(("clean", "clean", first["clean"], None))
        parts.append(f"<h3>{esc(name)}</h3>" + _row(views, key))
    if not parts:
        return ""
    return ('<h2>Samples</h2><p class="note">Each image under the same damage and seed for every run; below it, crops '
            f"where {esc(labels[0])} and {esc(labels[1])} differ most, enlarged 2× with square pixels.</p>" + "".join(parts))


def _row(views, key):
    h, w = views[-1][2].shape[-2:]
    fit = lambda img: as_rgb(img.float() / 255, (h, w))   # a x4 run's photo is cropped to a multiple of 4, a x2 run's of 2
    a, b = [fit(img) for kind, _, img, _ in views if kind == "run"][:2]
    x, y, cw, ch = zoom_box(a, b)
    scale = min(1.0, MAX_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    grow = max(1, math.ceil(MIN_SHOWN / max(size)))   # whole multiples keep pixels square and honest
    pictures, crops = [], []
    for _, label, img, metrics in views:
        img = fit(img)
        caption = esc(label) + _scores(metrics, key)
        pictures.append(f'<figure style="width:{size[0] * grow}px"><img{" class=px" if grow > 1 else ""} width="{size[0] * grow}" height="{size[1] * grow}" '
                        f'src="{_uri(_pil(img, size))}" alt="{esc(label)}"><figcaption>{caption}</figcaption></figure>')
        crops.append(f'<figure style="width:{cw * 2}px"><img class="px" width="{cw * 2}" height="{ch * 2}" src="{_uri(_pil(img[:, y:y + ch, x:x + cw]), png=True)}" '
                     f'alt="{esc(label)} 1:1"><figcaption>{esc(label)}</figcaption></figure>')
    return (f'<div class="row">{"".join(pictures)}</div><p class="note">{cw}×{ch} px at x {x}, y {y}:</p>'
            f'<div class="row">{"".join(crops)}</div>')


def _scores(metrics, key):
    if not metrics:
        return ""
    parts = [f"{fmt(metrics.get(key), key)} dB {LABELS.get(key, key)}"] if key in metrics else []
    parts += [f"{LABELS[k]} {fmt(metrics[k], k)}" for k in ("lpips", "dists") if k in metrics and not math.isnan(number(metrics[k]))]
    return "<br>" + esc(" · ".join(parts)) if parts else ""
