"""Image quality numbers. PSNR here is on 8-bit RGB, as the saved files are; eval adds the Y protocol."""
import math

import torch


def quantize(img):
    """Round a [0, 1] image to the 256 levels an image file stores."""
    return (img.clamp(0, 1) * 255).round() / 255


def psnr(a, b):
    """Peak signal-to-noise ratio in dB between two [0, 1] images after 8-bit quantisation."""
    mse = torch.mean((quantize(a).double() - quantize(b).double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
