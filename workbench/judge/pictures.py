"""The images of a report: before/after sliders, one article per sample, sortable by gain.

Images are embedded as data URIs (JPEG 4:4:4 at quality 90, PNG when tiny), scaled once per sample
so that its sliders align; small crops are enlarged by whole multiples so pixels stay square.
"""

import base64
import io
import math

from PIL import Image

from workbench.images.files import to_pil
from workbench.judge.summary import LABELS, esc, fmt, gain_class, number, psnr_gain, table_html

MAX_SIDE = 512     # longer side of an embedded sample: sharp enough to judge, small enough to mail
SMALL = 128        # images under this on both sides are embedded as PNG: JPEG would add its own damage
MIN_SHOWN = 256    # tiny crops are enlarged (pixelated, whole multiples) until the longer side reaches this


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
    gains = {k: number(model[k]) - number(inp[k]) for k in keys if k in model and k in inp} or None
    table = table_html([(m, v or {}) for m, v in metrics.items()], keys, gains) if metrics else ""
    gain_text = f"{fmt(gain, sign=True)} dB {LABELS[key]}" if key else "no PSNR"
    return (f'<article class="sample" data-gain="{_js_number(gain)}" data-name="{name}">'
            f'<h3>{name} <span class="gain {gain_class(gain)}">{gain_text}</span></h3><div class="pair">'
            + _slider(damaged, restored, ("damaged", "restored"), size, name)
            + _slider(restored, clean, ("restored", "clean"), size, name) + f"</div>{table}</article>")


def samples_html(samples):
    if not samples:
        return '<p class="note">No sample images were given to this report.</p>'
    buttons = "".join(f'<button type="button" data-sort="{k}">{t}</button>'
                      for k, t in (("down", "sort by gain ↓"), ("up", "sort by gain ↑"), ("name", "sort by name")))
    return f'<div class="images"><div class="sort">{buttons}</div><div class="samples">{"".join(_sample(s) for s in samples)}</div></div>'
