"""The images of a report: per sample a four-way slider, 1:1 zoom crops, error maps and the mask.

A sample shows damaged | best baseline | restored | clean side by side in one frame, split by three
draggable dividers, so the model is judged against the strongest classical answer and not only
against the damaged input. An error-map toggle swaps each picture for its difference from the
clean image; the zoom crops show, at one image pixel per CSS pixel, the region where the model
and the best baseline differ most (where the choice between them matters). Images are embedded
as data URIs (JPEG 4:4:4 at quality 90; PNG when small, for the error maps and for the crops, which
must not carry JPEG's own damage), scaled once per sample so that its pictures align.
"""

import base64
import io
import math

import torch
import torch.nn.functional as F
from PIL import Image

from workbench.images.files import to_pil
from workbench.judge import summary
from workbench.judge.summary import LABELS, esc, fmt, gain_class, number, psnr_gain, table_html

MAX_SIDE = 512     # longer side of an embedded sample: sharp enough to judge, small enough to mail
SMALL = 128        # images under this on both sides are embedded as PNG: JPEG would add its own damage
MIN_SHOWN = 256    # tiny crops are enlarged (pixelated, whole multiples) until the longer side reaches this
ZOOM = 96          # side of the 1:1 crops, in image pixels
ERROR_GAIN = 4     # error maps show |x - clean| x 4: most restoration errors are a few percent


def samples_html(samples):
    if not samples:
        return '<p class="note">No sample images were given to this report.</p>'
    buttons = "".join(f'<button type="button" data-sort="{k}">{t}</button>'
                      for k, t in (("down", "sort by gain ↓"), ("up", "sort by gain ↑"), ("name", "sort by name")))
    return f'<div class="images"><div class="sort">{buttons}</div><div class="samples">{"".join(_sample(prepare(s)) for s in samples)}</div></div>'


def best_baseline(metrics, baselines):
    """The name of the sample's best baseline by its preferred PSNR (or LPIPS), or None."""
    for key in (*summary.PSNR_KEYS, *summary.LOWER_IS_BETTER):
        scored = [(number((metrics.get(m) or {}).get(key)), m) for m in baselines]
        scored = [(v, m) for v, m in scored if not math.isnan(v)]
        if scored:
            return (min if key in summary.LOWER_IS_BETTER else max)(scored)[1]
    return next(iter(baselines), None)


def zoom_box(a, b, side=ZOOM):
    """(x, y, w, h) of the side x side window where images a and b (C x H x W) differ most."""
    h, w = a.shape[-2:]
    ch, cw = min(side, h), min(side, w)
    diff = (a.float() - b.float()).abs().mean(0, keepdim=True)[None]
    stride = max(1, min(ch, cw) // 4)
    mean = F.avg_pool2d(diff, (ch, cw), stride=stride)[0, 0]   # the mean difference of each window
    i = int(torch.argmax(mean))
    return (i % mean.shape[1]) * stride, (i // mean.shape[1]) * stride, cw, ch


def prepare(s):
    """What the report shows of a sample (`titles`: display names of its "damaged", "restored" and "clean"
    pictures, when a task's are other things), small enough to keep two dozen of 12 MP photos: the pictures
    and their error maps at the frame's size (at most MAX_SIDE), the 1:1 crops, the mask overlay (PIL
    images), the zoom box. Error maps and crops are taken at full resolution; idempotent."""
    if "views" in s:
        return s
    clean = as_rgb(s["clean"])
    h, w = clean.shape[-2:]
    baselines, metrics = s.get("baselines") or {}, s.get("metrics") or {}
    best = best_baseline(metrics, baselines)
    views = [("damaged", as_rgb(s["damaged"], (h, w))),
             *([(best, as_rgb(baselines[best], (h, w)))] if best else []),
             ("restored", as_rgb(s["restored"], (h, w))), ("clean", clean)]
    scale = min(1.0, MAX_SIDE / max(w, h))    # one scale for all, so the pictures align
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = zoom_box(views[-2][1], views[1 if best else 0][1])   # against the best baseline, else the damaged input
    x, y, bw, bh = box
    crop_clean = clean[:, y:y + bh, x:x + bw]
    mask = s.get("mask")
    mask = None if mask is None or not bool(torch.as_tensor(mask).any()) else as_rgb(torch.as_tensor(mask).float(), (h, w))
    # A task whose pictures are not damaged | restored | clean names them: {"damaged": "photo", ...}
    title = lambda label: (s.get("titles") or {}).get(label, label)
    return {"name": s.get("name", ""), "metrics": metrics, "best": best, "box": box, "full": (w, h),
            "views": [(title(label), _pil(img, size), None if label == "clean" else _pil(_error(img, clean), size))
                      for label, img in views],
            "crops": [(title(label), _pil(img[:, y:y + bh, x:x + bw]),
                       None if label == "clean" else _pil(_error(img[:, y:y + bh, x:x + bw], crop_clean)))
                      for label, img in views],
            "mask": None if mask is None else _mask_rgba(mask).resize(size, Image.NEAREST)}


def _headline(metrics):
    """A sample's header where there is no PSNR gain: a segmenter's mIoU, a stylizer's style distance."""
    model = metrics.get("model") or {}
    if "miou" in model:
        return f"mIoU {fmt(model['miou'], 'miou')}"
    stylized = metrics.get("stylized") or {}
    if "style" in stylized:
        return f"style distance {fmt(stylized['style'], 'style')} (lower is better)"
    return "no PSNR"


def _sample(p):
    metrics, best, box, w, h = p["metrics"], p["best"], p["box"], *p["full"]
    pictures = [(label, _uri(im), None if err is None else _uri(err)) for label, im, err in p["views"]]
    size = p["views"][0][1].size
    name = esc(p["name"])
    key, gain = psnr_gain(metrics)
    gain_text = f"{fmt(gain, sign=True)} dB {LABELS[key]}" if key else _headline(metrics)
    keys = [k for k in LABELS if any(k in (v or {}) for v in metrics.values())]
    keys += sorted({k for v in metrics.values() for k in (v or {}) if k not in keys})
    model, inp = metrics.get("model") or {}, metrics.get("input") or {}
    gains = {k: number(model[k]) - number(inp[k]) for k in keys if k in model and k in inp} or None
    best_of = summary.best_baselines({m: v for m, v in metrics.items() if isinstance(v, dict)}, keys) if "model" in metrics else {}
    table = table_html([(m, v or {}) for m, v in metrics.items()], keys, gains, best_of) if metrics else ""
    tools = '<label><input type="checkbox" class="show-errors"> error map (|x − clean| ×4)</label>'
    if p["mask"] is not None:
        tools += ' <label><input type="checkbox" class="show-mask"> mask (red: missing)</label>'
    return (f'<article class="sample" data-gain="{_js_number(gain)}" data-name="{name}">'
            f'<h3>{name} <span class="gain {gain_class(gain)}">{gain_text}</span></h3>'
            + _frame(pictures, size, (w, h), name, p["mask"], box)
            + f'<div class="tools">{tools}</div>' + _zooms(p["crops"], box, best, name) + f"{table}</article>")


def _frame(pictures, size, full, name, mask, box):
    """N stacked pictures, picture k visible between dividers k and k+1 (positions --p1 .. --pN-1)."""
    w, h = size
    shown = w * max(1, math.ceil(MIN_SHOWN / max(w, h)))    # whole multiples keep pixels square and honest
    n = len(pictures)
    pos = [round(100 * k / n, 2) for k in range(1, n)]
    style = "".join(f"--p{k + 1}:{p}%;" for k, p in enumerate(pos)) + f"width:min(100%,{shown}px);aspect-ratio:{w}/{h}"
    parts = []
    for k, (label, src, err) in enumerate(pictures):
        clip = f' style="clip-path:inset(0 calc(100% - var(--p{k + 1})) 0 0)"' if k < n - 1 else ""
        data = f' data-err="{err}"' if err else ""
        parts.append(f'<img class="view" src="{src}"{data}{clip} alt="{esc(label)}: {name}">')
    parts.reverse()   # the last (clean) at the bottom, the first (damaged) on top
    if mask is not None:
        parts.append(f'<img class="mask" hidden src="{_uri(mask, png=True)}" alt="mask: {name}">')
    x, y, bw, bh = box
    fw, fh = full
    parts.append(f'<div class="zoombox" style="left:{100 * x / fw:.3f}%;top:{100 * y / fh:.3f}%;'
                 f'width:{100 * bw / fw:.3f}%;height:{100 * bh / fh:.3f}%" title="the 1:1 crops below"></div>')
    for k in range(1, n):
        parts.append(f'<div class="bar" style="left:var(--p{k})" aria-hidden="true"></div>')
    for k, (label, _, _) in enumerate(pictures):
        left = f"var(--p{k})" if k else "0%"
        parts.append(f'<span class="lab" data-band="{k}" style="left:calc({left} + 4px)">{esc(label)}</span>')
    ranges = "".join(f'<input type="range" min="0" max="100" step="any" value="{p}" data-divider="{k + 1}" '
                     f'aria-label="{esc(pictures[k][0])} | {esc(pictures[k + 1][0])} divider, {name}">'
                     for k, p in enumerate(pos))
    legend = " | ".join(esc(f"{label} (best baseline)" if k == 1 and n == 4 else label) for k, (label, _, _) in enumerate(pictures))
    return (f'<p class="legend">{legend}: drag anywhere to move the nearest divider</p>'
            f'<div class="quad{" pixelated" if shown > w else ""}" style="{style}" data-n="{n}">{"".join(parts)}</div>'
            f'<div class="dividers" style="width:min(100%,{shown}px)">{ranges}</div>')


def _zooms(crops, box, best, name):
    x, y, w, h = box
    figures = []
    for label, crop, err in crops:
        caption = f"{label} (best baseline)" if label == best else label
        err = "" if err is None else f' data-err="{_uri(err, png=True)}"'
        figures.append(f'<figure><img class="zoom" width="{w}" height="{h}" src="{_uri(crop, png=True)}"{err} '
                       f'alt="{esc(caption)} 1:1: {name}"><figcaption>{esc(caption)}</figcaption></figure>')
    why = f"the model differs most from {best}" if best else "the model changed the damaged input most"
    return (f'<details class="zooms" open><summary>1:1 crops ({w}×{h} px at x {x}, y {y}): where {esc(why)}</summary>'
            f'<div class="crops">{"".join(figures)}</div></details>')


def as_rgb(img, size=None):
    """3 x H x W float in [0, 1] (a batch of one or a gray image accepted), resized to `size` (h, w)
    by nearest neighbour when it differs: a low-resolution input keeps its honest pixel blocks."""
    img = torch.as_tensor(img).detach().float().cpu()
    img = img[0] if img.dim() == 4 else img
    img = img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img[None], size=size, mode="nearest")[0]
    return img.clamp(0, 1)


def _error(img, clean):
    return ((img - clean).abs().mean(0, keepdim=True) * ERROR_GAIN).clamp(0, 1).expand(3, -1, -1)


def _mask_rgba(mask):
    alpha = (mask[0] > 0.5).numpy().astype("uint8") * 140
    rgba = Image.new("RGBA", (mask.shape[-1], mask.shape[-2]), (255, 32, 32, 0))
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return rgba


def _pil(img, size=None):
    im = to_pil(img)
    return im if size is None or im.size == size else im.resize(size, Image.LANCZOS)


def _uri(im, png=False):
    buf = io.BytesIO()
    if png or max(im.size) < SMALL:
        im.save(buf, "PNG")
        kind = "png"
    else:
        im.save(buf, "JPEG", quality=90, subsampling=0)   # 4:4:4: chroma subsampling would smear colour edges
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _js_number(v):
    """A float as JavaScript's parseFloat reads it ('' for NaN, which sorts last)."""
    return "" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity") if math.isinf(v) else repr(v)
