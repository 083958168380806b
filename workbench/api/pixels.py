"""8-bit pixels: the one quantiser. Every conversion to the 256 levels an image file stores happens
here, with one rounding rule (half up, as the files the workbench writes are rounded), so a score
computed in memory equals the score of the saved file."""
import numpy as np
import torch


def to_uint8(img):
    """A float image in [0, 1] (any shape) -> uint8 tensor of the same shape, rounded half up."""
    # float32 first: x * 255 + 0.5 in bfloat16 or float16 would lose whole levels
    return (img.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def quantize(img):
    """A float image in [0, 1] rounded to the 256 levels a file stores, as float32 in [0, 1]."""
    return to_uint8(img).float().div_(255)


def to_uint8_hwc(img):
    """C x H x W float [0, 1] tensor -> H x W x C uint8 array, the layout OpenCV and Pillow take."""
    # made contiguous once: OpenCV and Pillow would each copy a strided array
    return to_uint8(img).permute(1, 2, 0).contiguous().cpu().numpy()


def to_levels(img):
    """A float image in [0, 1] -> float64 tensor of whole levels 0..255, the same shape: scores on
    these are exact, where float32 values of level / 255 would be off in the seventh digit."""
    return to_uint8(img).double()


def from_uint8_hwc(arr, like=None):
    """H x W x C (or H x W) uint8 array or PIL image -> C x H x W float tensor in [0, 1]."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if not arr.flags.writeable:  # np.asarray(PIL image) is read-only; torch wants to own its memory
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255)
    return t if like is None else t.to(dtype=like.dtype, device=like.device)
