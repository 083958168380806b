"""Labelled image grids: rows of tiles (damaged | clean | ...) with a caption above each tile."""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from workbench.images.files import save_pil, to_pil
from workbench.images.metrics import psnr

CAPTION = 18     # caption bar height in pixels
GAP = 4          # white gap between tiles so borders of similar images stay visible


def draw_grid(rows, *, height=192):
    """rows: list of rows, each a list of (image tensor, caption). Tiles are scaled to `height`."""
    font = ImageFont.load_default(size=CAPTION - 5)
    tiles = [[(_fit(to_pil(img), height), caption) for img, caption in row] for row in rows]
    ncols = max(len(r) for r in tiles)
    col_w = [max((r[c][0].width for r in tiles if c < len(r)), default=0) for c in range(ncols)]
    width = sum(col_w) + GAP * (ncols + 1)
    row_h = height + CAPTION + GAP
    canvas = Image.new("RGB", (width, row_h * len(tiles) + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(tiles):
        x, y = GAP, GAP + r * row_h
        for c, (im, caption) in enumerate(row):
            draw.text((x, y + 2), _shorten(draw, caption, font, col_w[c]), fill="black", font=font)
            canvas.paste(im, (x, y + CAPTION))
            x += col_w[c] + GAP
    return canvas


def _fit(im, height):
    """Scale to `height` keeping the aspect ratio; nearest for upscaling so pixels stay honest."""
    width = max(1, round(im.width * height / im.height))
    resample = Image.NEAREST if height >= im.height else Image.LANCZOS
    return im.resize((width, height), resample)


def _shorten(draw, text, font, width):
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def psnr_captions(name, damaged, restored, clean):
    """A restorer's captions: the damaged input's and the restoration's PSNR against the clean image."""
    return f"{name}: damaged {psnr(damaged, clean):.2f} dB", f"restored {psnr(restored, clean):.2f} dB", "clean"


def save_grid(run_dir, images, captions=None):
    """grid.png: damaged | restored | clean for the fixed validation images, with PSNR. `captions(name,
    a, b, c)` -> the three tiles' captions, for a task whose tiles are other things (a task's `grid_captions`)."""
    if not images:
        return
    captions = captions or psnr_captions
    rows = [list(zip((d, r, c), captions(name, d, r, c))) for name, d, r, c in images]
    save_pil(draw_grid(rows), Path(run_dir) / "grid.png", replace=True)   # the run's own, redrawn each epoch
