"""Reading and writing photos safely: any mode, EXIF rotation, 16-bit, decompression-bomb guard."""
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from workbench.errors import WorkbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Pillow's default bomb limit (~89 MP warns, 2x errors); we make the warning an error too, since a
# 180 MP photo would need gigabytes as float tensors.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def read_image(path):
    """Open any image file as a float tensor 3 x H x W in [0, 1] (RGB), or raise WorkbenchError."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                arr = _to_rgb_array(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise WorkbenchError(f"{path}: image is too large ({e}); downscale it below {MAX_PIXELS:,} pixels.") from e
    except FileNotFoundError as e:
        raise WorkbenchError(f"{path}: no such file.") from e
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow raises OSError for truncated files and UnidentifiedImageError (an OSError) for non-images.
        raise WorkbenchError(f"{path}: cannot read image ({e}); check the file is a complete png/jpg/bmp/tif/webp.") from e
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _to_rgb_array(im):
    """H x W x 3 float32 in [0, 1]; 16-bit images keep their precision, alpha is composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float32)
        a = a / (65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0)
        return np.repeat(np.clip(a, 0, 1)[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def to_pil(img):
    """3 x H x W float tensor in [0, 1] -> RGB PIL image (rounded to 8 bits)."""
    arr = (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def write_image(img, path):
    """Save a tensor image; JPEG outputs use quality 95 with 4:4:4 so saving adds little damage."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = to_pil(img)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=95, subsampling=0)
    else:
        im.save(path)


def list_images(folder):
    """Image files under `folder`, recursively, sorted so runs see them in a stable order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
