"""`edges`: a photo reduced to its outlines, the starting point of sketch-to-photo (the lesson's "drawing
to painting ... passing them through an edge detection and using that as your starting point").

Three drawings of the same photo, dark lines on white as a pen draws them, the same in all channels:
canny (OpenCV's hysteresis edges: thin, one pixel, all or nothing), xdog (Winnemoeller et al. 2012's
extended difference of Gaussians: soft pencil strokes that keep some shading) and sobel (the gradient's
magnitude: every edge, its strength as darkness).
"""
import cv2
import numpy as np
import torch

from workbench import hookimpl
from workbench.api.degradation import Degradation
from workbench.api.params import Param

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)   # BT.601, as the grayscale degradation's


class Edges(Degradation):
    """Replace the photo by a line drawing of it (sketch-to-photo).

    method: "canny" (thin binary lines), "xdog" (a soft pencil sketch) or "sobel" (edge strength as
      darkness); a list of them picks one per image.
    sigma: Gaussian blur in pixels before the edges are found: larger keeps only the main outlines,
      e.g. [0.8, 2.0].
    low, high: Canny's hysteresis thresholds on the gradient (0-255 grey levels per pixel, L2 norm): a
      pixel above `high` starts a line, one above `low` continues it; e.g. low = [40, 80], high = [120, 200].
    tau, phi: XDoG's weight of the wider Gaussian (below 1 keeps some shading) and the steepness of its
      soft threshold (larger: harder lines).
    gain: Sobel's darkness per unit of gradient (a gradient of 1/gain of the full range is black).
    """

    baselines = ()   # nothing classical turns a drawing back into a photo: the model is judged against the drawing

    def __init__(self, *, method="canny", sigma=1.0, low=50, high=150, tau=0.98, phi=200.0, gain=4.0):
        self.method = Param(method, name="method", kind=str, choices=("canny", "xdog", "sobel"))
        self.sigma = Param(sigma, name="sigma", kind=float, lo=0.0, hi=20.0)
        self.low = Param(low, name="low", kind=int, lo=0, hi=2000)
        self.high = Param(high, name="high", kind=int, lo=0, hi=2000)
        self.tau = Param(tau, name="tau", kind=float, lo=0.0, hi=1.0)
        self.phi = Param(phi, name="phi", kind=float, lo=0.0, hi=10000.0)
        self.gain = Param(gain, name="gain", kind=float, lo=0.0, hi=100.0)

    def __call__(self, img, rng):
        method, sigma = self.method.sample(rng), self.sigma.sample(rng)
        # Every parameter is drawn whatever the method, so one seed draws the same numbers in any setting.
        low, high, tau, phi, gain = (p.sample(rng) for p in (self.low, self.high, self.tau, self.phi, self.gain))
        gray = np.tensordot(LUMA, img.detach().float().cpu().numpy(), axes=1)   # H x W in [0, 1]
        blurred = _blur(gray, sigma)
        if method == "canny":
            u8 = np.clip(blurred * 255 + 0.5, 0, 255).astype(np.uint8)
            lines = cv2.Canny(u8, min(low, high), max(low, high), L2gradient=True).astype(np.float32) / 255
            out = 1 - lines
        elif method == "xdog":
            wide = _blur(gray, max(sigma, 0.5) * 1.6)   # 1.6: the ratio that makes DoG approximate a Laplacian of Gaussian
            d = (blurred if sigma > 0 else gray) - tau * wide
            out = np.where(d >= 0, 1.0, 1 + np.tanh(phi * d)).astype(np.float32)
        else:
            gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
            gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
            out = 1 - np.clip(np.hypot(gx, gy) / 8 * gain, 0, 1)   # /8: the 3x3 Sobel kernel's gain
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(img).expand_as(img).clone()


def _blur(gray, sigma):
    if sigma <= 0:
        return gray.astype(np.float32)
    return cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


@hookimpl
def register_degradations(register):
    register("edges", Edges)
