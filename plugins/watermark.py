"""`watermark`: stamps semi-transparent text and/or a logo over the photo, as stock-photo sites do.

Removing watermarks is one of the exercises of fast.ai's 2022 super-resolution lesson; its
"crappify" step (from the 2019 "decrappify" work) prints a random number on each image. The stamp
is alpha-blended, out = img * (1 - a) + colour * a, and the covered pixels are reported as the mask.
"""
import collections
import functools
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param

KINDS = ("text", "logo", "both")
WORD_MODES = ("random", "numbers", "words")
POSITIONS = ("random", "center")
# What stock-photo previews say across the picture.
WORDS = ("SAMPLE", "PREVIEW", "PROOF", "COPYRIGHT", "(c) studio", "WATERMARK", "DRAFT",
         "stock photo", "DO NOT COPY", "(c) 2024", "COMP", "UNLICENSED")
MIN_PX = 4          # below 4 px FreeType glyphs have almost no ink: tiny images would get no stamp
TEXT_CACHE_BYTES = 16 << 20   # rendered text kept per process: thousands of 64 px crops' stamps
MASK_ALPHA = 1 / 255  # covered where the blend weight exceeds one 8-bit level; the rest moves < 1/255


class Watermark(Degradation):
    """Stamp text and/or a logo, alpha-blended; the mask marks the covered pixels.

    kind: "text", "logo" or "both" (logo left of the text); a list of choices picks one per image.
    text: the words to stamp, used verbatim; "" picks random text (see `words`).
    words: random text for text = "": "words" (SAMPLE, PREVIEW, (c) studio, ...), "numbers" (a
        random number, as the lesson's crappify prints) or "random" (either).
    logo: path to an image file (its colours and alpha are kept); "" draws a random logo of
        circles, rings and polygons in `color`.
    size: text height (font size) or logo side as a fraction of the image's shorter side, at
        least 4 pixels; text wider than the image is shrunk to fit.
    opacity: blend weight of the stamp's opaque pixels, above 0 and at most 1.
    color: "random" (any RGB colour), "white", "black" or "#rrggbb"; for text and drawn logos.
    angle: rotation in degrees, counter-clockwise.
    tiled: true repeats the stamp over the whole image in a staggered grid, as stock overlays do.
    position: "random" (inside the image where the stamp fits) or "center".
    """

    reports_mask = True

    def __init__(self, *, kind="text", text="", words="random", logo="", size=(0.1, 0.3),
                 opacity=(0.3, 0.8), color="random", angle=(-30.0, 30.0), tiled=False, position="random"):
        self.kind = Param(kind, name="kind", kind=str, choices=KINDS)
        self.text = Param(text, name="text", kind=str)
        self.words = Param(words, name="words", kind=str, choices=WORD_MODES)
        self.logo = Param(logo, name="logo", kind=str)
        self.size = Param(size, name="size", kind=float, lo=0.01, hi=1.0)
        self.opacity = Param(opacity, name="opacity", kind=float, lo=0.0, hi=1.0)
        self.color = Param(color, name="color", kind=str)
        self.angle = Param(angle, name="angle", kind=float, lo=-360.0, hi=360.0)
        self.tiled = Param(tiled, name="tiled", kind=bool)
        self.position = Param(position, name="position", kind=str, choices=POSITIONS)
        # 1. check what Param cannot: values that would stamp nothing, colour syntax
        if min(_values(self.opacity)) <= 0:
            raise ValueError(f"opacity = {opacity!r}: must be above 0 (0 stamps nothing), at most 1")
        for t in _values(self.text):
            if t and not t.strip():
                raise ValueError(f"text = {t!r} has no visible characters: give words, or \"\" for random text")
        for c in _values(self.color):
            _rgb(c)
        # 2. read logo files once, so a bad path fails now rather than mid-training
        self._logos = {p: _read_logo(p) for p in _values(self.logo) if p}

    @property
    def is_random(self):
        kinds = set(_values(self.kind))
        uses_text, uses_logo = bool(kinds & {"text", "both"}), bool(kinds & {"logo", "both"})
        return (super().is_random or "random" in _values(self.position) or "random" in _values(self.color)
                or (uses_text and "" in _values(self.text)) or (uses_logo and "" in _values(self.logo)))

    def __call__(self, img, rng):
        _, h, w = img.shape
        # 1. sample this image's stamp settings
        kind, opacity, angle = self.kind.sample(rng), self.opacity.sample(rng), self.angle.sample(rng)
        tiled, position, color = self.tiled.sample(rng), self.position.sample(rng), self.color.sample(rng)
        color = tuple(int(v) for v in rng.integers(0, 256, 3)) if color == "random" else _rgb(color)
        px = max(MIN_PX, round(self.size.sample(rng) * min(h, w)))
        # 2. render the stamp: text and/or logo side by side, then rotated. Unless a logo file
        #    brings its own colours the stamp is one colour: rotate its 1-channel coverage only.
        parts = []
        if kind != "logo":
            text = self._text(rng)
            px = _fit(text, px, w)  # the logo of "both" matches the (possibly shrunk) text height
            parts.append(_text_alpha(text, px))
        if kind != "text":
            parts.insert(0, self._logo(px, rng))
        if any(p.mode == "RGBA" for p in parts):
            parts = [p if p.mode == "RGBA" else _colored(p, color) for p in parts]
        stamp = _hstack(parts, gap=max(1, px // 3)).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        stamp = np.asarray(stamp)
        # 3. place it, once or in a grid, on a layer the size of the image
        layer = np.zeros((h, w, *stamp.shape[2:]), np.uint8)
        boxes = [_paste(layer, stamp, y, x) for y, x in _places(stamp.shape[:2], (h, w), tiled, position, gap=px, rng=rng)]
        # 4. alpha-blend in float
        return _blend(img, layer, [b for b in boxes if b], color, opacity)

    def _text(self, rng):
        text = self.text.sample(rng)
        if text:
            return text
        mode = self.words.sample(rng)
        if mode == "random":
            mode = WORD_MODES[1 + int(rng.integers(2))]
        if mode == "numbers":
            return str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
        return WORDS[int(rng.integers(len(WORDS)))]

    def _logo(self, px, rng):
        """The drawn logo's coverage (L), or the logo file resized (RGBA, its own colours)."""
        path = self.logo.sample(rng)
        if not path:
            return _random_logo(px, rng)
        logo = self._logos[path]
        scale = px / max(logo.size)
        return logo.resize((max(1, round(logo.width * scale)), max(1, round(logo.height * scale))), Image.Resampling.LANCZOS)


# -- helpers ----------------------------------------------------------------------------------------
def _values(p):
    """Every value a Param can take (a numeric range gives its two ends)."""
    if p.range is not None:
        return list(p.range)
    return list(p.choices) if p.choices is not None else [p.value]


def _rgb(c):
    names = {"white": (255, 255, 255), "black": (0, 0, 0)}
    if c in names or c == "random":
        return names.get(c)
    if len(c) == 7 and c[0] == "#":
        try:
            return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
    raise ValueError(f"color = {c!r} is not allowed: use \"random\", \"white\", \"black\" or \"#rrggbb\"")


def _read_logo(path):
    if not os.path.isfile(path):
        raise ValueError(f"logo = {path!r}: no such file; give the path to an image, or \"\" for a random logo")
    try:
        with Image.open(path) as im:
            return im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"logo = {path!r}: not a readable image ({type(e).__name__}: {e})") from e


@functools.lru_cache(maxsize=64)
def _font(px):
    # Pillow >= 10.1 embeds a scalable FreeType font: no font files, same glyphs on every machine.
    return ImageFont.load_default(size=px)


def _fit(text, px, width):
    """Shrink the font so the text fits the image width (stock watermarks stay legible)."""
    x0, _, x1, _ = _bbox(text, px)
    if x1 - x0 > width:
        px = max(MIN_PX, int(px * width / (x1 - x0)))
    return px


def _text_alpha(text, px):
    """Text coverage as an L image cropped to its ink; cached since random words repeat. The cache
    is bounded by bytes, not entries: a training crop's stamp is kilobytes, a 4000 px photo's megabytes."""
    im = _TEXT_CACHE.get((text, px))
    if im is None:
        x0, y0, x1, y1 = _bbox(text, px)
        im = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
        ImageDraw.Draw(im).text((-x0, -y0), text, font=_font(px), fill=255)
        _TEXT_CACHE.put((text, px), im)
    return im


class _ImageCache:
    """Least-recently-used PIL images, at most `limit` bytes of pixels in all."""

    def __init__(self, limit):
        self.items, self.limit, self.bytes = collections.OrderedDict(), limit, 0

    def get(self, key):
        im = self.items.get(key)
        if im is not None:
            self.items.move_to_end(key)
        return im

    def put(self, key, im):
        self.items[key] = im
        self.bytes += _nbytes(im)
        while self.bytes > self.limit and len(self.items) > 1:
            self.bytes -= _nbytes(self.items.popitem(last=False)[1])


def _nbytes(im):
    return im.width * im.height * len(im.getbands())


_TEXT_CACHE = _ImageCache(TEXT_CACHE_BYTES)   # (text, px) -> rendered coverage, per process


@functools.lru_cache(maxsize=4096)  # a tuple per (text, size): layout costs more than the look-up
def _bbox(text, px):
    # ImageDraw's textbbox (unlike the font's getbbox) lays out multi-line text too.
    return ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=_font(px))


def _random_logo(px, rng):
    """A made-up logo: a big circle, ring or polygon plus up to two smaller ones, antialiased."""
    ss = 4 if px < 64 else 2  # supersample: ImageDraw shapes have hard, jagged edges
    s = px * ss
    im = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(im)
    for i in range(1 + int(rng.integers(3))):
        r = s * (rng.uniform(0.35, 0.5) if i == 0 else rng.uniform(0.1, 0.3))  # the first is big: ink
        cx, cy = (s / 2, s / 2) if i == 0 else tuple(rng.uniform(r, s - r, 2))
        fill, hole = (255, 0) if i == 0 or rng.random() < 0.5 else (0, 255)  # later shapes may cut out
        shape = int(rng.integers(3))
        if shape == 2:
            n, turn = int(rng.integers(3, 9)), rng.uniform(0, 2 * np.pi)
            pts = [(cx + r * np.cos(turn + 2 * np.pi * k / n), cy + r * np.sin(turn + 2 * np.pi * k / n)) for k in range(n)]
            draw.polygon(pts, fill=fill)
        else:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            if shape == 1:  # ring: punch the middle out again
                r2 = r * rng.uniform(0.5, 0.8)
                draw.ellipse((cx - r2, cy - r2, cx + r2, cy + r2), fill=hole)
    return im.resize((px, px), Image.Resampling.BOX)


def _colored(alpha, color):
    im = Image.new("RGBA", alpha.size, color + (0,))
    im.putalpha(alpha)
    return im


def _hstack(parts, gap):
    if len(parts) == 1:
        return parts[0]
    hh = max(p.height for p in parts)
    out = Image.new(parts[0].mode, (sum(p.width for p in parts) + gap * (len(parts) - 1), hh), 0)
    x = 0
    for p in parts:
        out.paste(p, (x, (hh - p.height) // 2))
        x += p.width + gap
    return out


def _places(stamp_hw, img_hw, tiled, position, gap, rng):
    """Top-left corners of the stamp copies; they never overlap, so pasting need not blend."""
    (sh, sw), (h, w) = stamp_hw, img_hw
    if position == "center":
        y0, x0 = (h - sh) // 2, (w - sw) // 2
    else:  # inside the image where it fits, else covering the whole side: never all in a gap
        y0 = int(rng.integers(min(0, h - sh), max(0, h - sh) + 1))
        x0 = int(rng.integers(min(0, w - sw), max(0, w - sw) + 1))
    if not tiled:
        return [(y0, x0)]
    sy, sx = sh + gap, sw + gap
    out = []  # rows/columns k, j around the anchor copy, enough to reach every edge (extras clip away)
    for k in range(-((y0 + sh) // sy) - 1, (h - y0) // sy + 1):
        xk = x0 + (k % 2) * (sx // 2)  # stagger alternate rows like brickwork, as stock overlays do
        out += [(y0 + k * sy, xk + j * sx) for j in range(-((xk + sw) // sx) - 1, (w - xk) // sx + 1)]
    return out


def _blend(img, layer, boxes, color, opacity):
    """(img with `layer` alpha-blended over it, mask), computed only inside the box that the
    pasted copies cover: a single stamp touches a small part of a large crop. `layer` is H x W
    coverage in `color`, or H x W x 4 RGBA (a logo file's own colours)."""
    _, h, w = img.shape
    out, mask = img.clone(), torch.zeros(1, h, w, dtype=torch.bool, device=img.device)
    if not boxes:
        return out, mask
    y0, x0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    y1, x1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    box = torch.from_numpy(layer[y0:y1, x0:x1]).to(img.device)
    if box.ndim == 2:
        a, rgb = box, torch.tensor(color, device=img.device)[:, None, None]
    else:
        a, rgb = box[..., 3], box[..., :3].permute(2, 0, 1)
    a = a.to(img.dtype).mul_(opacity / 255)
    out[:, y0:y1, x0:x1] = torch.lerp(img[:, y0:y1, x0:x1], rgb.to(img.dtype).div_(255), a[None]).clamp_(0, 1)
    mask[0, y0:y1, x0:x1] = a > MASK_ALPHA
    return out, mask


def _paste(layer, stamp, y, x):
    """Copy the part of `stamp` at (y, x) that falls inside `layer`; returns that box, or None."""
    h, w = layer.shape[:2]
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + stamp.shape[0], h), min(x + stamp.shape[1], w)
    if y0 < y1 and x0 < x1:
        layer[y0:y1, x0:x1] = stamp[y0 - y:y1 - y, x0 - x:x1 - x]
        return y0, x0, y1, x1
    return None


@hookimpl
def register_degradations(register):
    register("watermark", Watermark)
