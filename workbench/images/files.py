"""Reading and writing photos safely: any mode, EXIF rotation, 16-bit, decompression-bomb guard."""
import math
import re
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from workbench.api.pixels import to_uint8_hwc
from workbench.errors import WorkbenchError, first_line
from workbench.runs.files import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_KINDS = "png/jpg/bmp/tif/webp"
ORIENTATION = 0x0112   # the EXIF tag exif_transpose reads
# Pillow's bomb limit, Image.MAX_IMAGE_PIXELS (about 89 MP): Pillow only warns up to twice that and
# errors beyond; we make the warning an error too, since a 100 MP photo (10000 x 10000) would need
# over a gigabyte as a float tensor. Such a photo is refused with a message naming the limit: downscale
# or crop it first. The limit is read at call time, so a program may raise (or lower) it on purpose.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# What Pillow's decoders raise for damaged files: OSError (truncated data, UnidentifiedImageError),
# SyntaxError and ValueError (bad headers), and for crafted ones also EOFError, struct.error,
# IndexError or KeyError from the format parsers.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)


def read_image(path):
    """Open any image file as a float tensor 3 x H x W in [0, 1] (RGB), or raise WorkbenchError
    with one sentence naming the file, what is wrong and what to do."""
    return to_float(read_pixels(path))


@dataclass(frozen=True)
class Look:
    """What a photo was beyond its RGB pixels, so that its restored (or damaged) copy can be written
    the same way: `kind` "RGB", "L" (8-bit gray), "I;16" (16-bit gray) or "P" (palette), and its
    transparency as a 1 x H x W float `alpha`, or None."""
    kind: str = "RGB"
    alpha: object = None

    def with_kind(self, kind):
        return Look(kind, self.alpha)


RGB = Look()


def read_image_and_look(path):
    """`read_image`, plus the photo's `Look` (one decode)."""
    pixels, look = read_pixels(path, look=True)
    return to_float(pixels), look


def to_float(pixels):
    """A `read_pixels` tensor as float in [0, 1]: uint8 is divided by 255, float is kept."""
    out = pixels.to(torch.float32, memory_format=torch.contiguous_format)
    return out.div_(255) if pixels.dtype == torch.uint8 else out


def read_pixels(path, *, look=False):
    """Like `read_image`, but 8-bit photos stay uint8 (3 x H x W): a training crop is cut before
    any float conversion, a quarter of the memory traffic of converting the whole photo first.
    16-bit and float images come back as float32 in [0, 1], keeping their precision.
    look: return (pixels, Look)."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():   # a FIFO would block open() forever
        raise WorkbenchError(f"{path}: not a regular file (a pipe, socket or device); give an image file.")
    if path.is_file() and path.stat().st_size == 0:
        raise WorkbenchError(f"{path}: cannot read image (the file is empty: 0 bytes); copy it again or remove it.")
    return decode_pixels(path, path, look=look)


def decode_pixels(source, name, *, look=False):
    """`read_pixels` of a path or a binary file object; errors name `name`."""
    path = name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                _note_frames(im, name)
                if im.getexif().get(ORIENTATION, 1) != 1:   # exif_transpose copies even upright photos: 36 MB at 12 MP
                    im = ImageOps.exif_transpose(im)
                seen = _look(im) if look else None
                if seen is not None and seen.alpha is not None:
                    # its transparency is written back: restore the colours as stored, not composited on white
                    arr = np.ascontiguousarray(np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., :3])
                else:
                    arr = _to_rgb_array(im)
    except WorkbenchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise WorkbenchError(_too_large(path, e)) from e
    except FileNotFoundError as e:
        raise WorkbenchError(f"{path}: no such file.") from e
    except Image.UnidentifiedImageError as e:
        raise WorkbenchError(f"{path}: cannot read image (not an image file Pillow can identify); remove it or convert it to {_KINDS}.") from e
    except _READ_ERRORS as e:
        # Pillow raises OSError for truncated files ("image file is truncated").
        raise WorkbenchError(f"{path}: cannot read image ({first_line(e)}); check the file is a complete {_KINDS}.") from e
    return (_chw(arr), seen) if look else _chw(arr)


def _look(im):
    alpha = None
    if has_alpha(im):
        a = im.getchannel("A") if im.mode in ("RGBA", "LA") else im.convert("RGBA").getchannel("A")
        alpha = torch.from_numpy(np.asarray(a, dtype=np.float32) / 255)[None]
    if im.mode in ("L", "LA", "1"):
        kind = "L"
    elif im.mode.startswith("I") or im.mode == "F":
        kind = "I;16"
    elif im.mode == "P" and alpha is None:   # a palette with transparency comes back as RGBA
        kind = "P"
    else:
        kind = "RGB"
    return Look(kind, alpha)


_FRAMES_NOTED = set()   # names already warned about, so a training set's GIF is named once, not every epoch


def _note_frames(im, name):
    """A multi-frame file (animated GIF or WebP, multi-page TIFF) is read as its first frame: say so once."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and str(name) not in _FRAMES_NOTED:
        _FRAMES_NOTED.add(str(name))
        print(f"warning: {name} has {frames} frames; using the first.", file=sys.stderr)


def has_alpha(im):
    """Whether a Pillow image carries transparency (an alpha channel, or a palette with a transparent entry)."""
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def _chw(arr):
    """3 x H x W view of an H x W x 3 array, without copying (a 12 MP copy costs 36 ms). Pillow's
    arrays are read-only; every consumer copies (crops, converts) before it writes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr).permute(2, 0, 1)


def _too_large(path, err):
    limit = Image.MAX_IMAGE_PIXELS or MAX_PIXELS
    found = re.search(r"\((\d+) pixels\)", str(err))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    side = math.isqrt(limit)
    return (f"{path}: image is too large: {size}, over the limit of {limit:,} pixels (Pillow's decompression-bomb "
            f"guard); downscale or crop it below that, e.g. to {side} x {side}, before using it.")




def _to_rgb_array(im):
    """H x W x 3: uint8 for 8-bit images, float32 in [0, 1] for 16-bit and float ones (they keep
    their precision); alpha is composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float32)
        a = a / (65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0)
        return np.repeat(np.clip(a, 0, 1)[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        return np.repeat(a[:, :, None], 3, axis=2)
    if has_alpha(im):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def to_pil(img):
    """3 x H x W float tensor in [0, 1] -> RGB PIL image (rounded to 8 bits)."""
    return Image.fromarray(to_uint8_hwc(img), "RGB")


def save_pil(im, path, *, replace=False):
    """Save a PIL image atomically (workbench.runs.files) in the format its suffix names; JPEG at
    quality 95 with 4:4:4 and WebP lossless, so saving adds little or no damage of its own.
    `replace`: whether a file already at `path` may be replaced (workbench.runs.files.atomic_write)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise WorkbenchError(f"{path}: cannot tell the image format from the name; end it in one of "
                             f"{', '.join(IMAGE_SUFFIXES)}.")
    options = {"JPEG": dict(quality=95, subsampling=0), "WEBP": dict(lossless=True)}.get(fmt, {})
    return atomic_write(path, lambda f: im.save(f, fmt, **options), replace=replace, what="image")


def write_image(img, path, *, replace=False, look=RGB):
    """Save a 3 x H x W tensor image in [0, 1] as `save_pil` does, the way `look` says the photo it
    came from was: gray as gray (8 or 16 bits: the luma of `img`), a palette as a palette (256
    colours again), with its transparency (resized to `img`'s size, for super-resolution)."""
    return save_pil(like(img, look, Path(path)), path, replace=replace)


def like(img, look, path=None):
    """`img` as a PIL image of `look`'s kind and transparency (see write_image)."""
    if look.kind == "I;16":
        r, g, b = img.float().clamp(0, 1)
        levels = ((0.299 * r + 0.587 * g + 0.114 * b) * 65535).round().to(torch.int32).numpy().astype(np.uint16)
        im = Image.fromarray(levels)   # mode I;16
    else:
        im = to_pil(img)
        if look.kind == "L":
            im = im.convert("L")
    alpha_ok = path is None or Path(path).suffix.lower() not in (".jpg", ".jpeg")
    if look.alpha is not None and alpha_ok:
        a = Image.fromarray((look.alpha[0].numpy() * 255).round().astype(np.uint8), "L")
        if a.size != im.size:
            a = a.resize(im.size, Image.BICUBIC)
        im = Image.merge("LA", (im.convert("L"), a)) if im.mode in ("L", "I;16") else Image.merge("RGBA", (*im.split(), a))
    elif look.kind == "P":
        im = im.quantize(256, dither=Image.Dither.NONE)
    return im


def output_name(name):
    """The name a damaged or restored copy of the image `name` is written under: the same, or with
    .png where its format is one the workbench does not write (a GIF's 256-colour palette would
    damage the result again)."""
    name = Path(name)
    return name if name.suffix.lower() in IMAGE_SUFFIXES else name.with_suffix(".png")


def list_images(folder):
    """Image files under `folder`, recursively, sorted so runs see them in a stable order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
