"""PSNR and SSIM as the SR literature computes them (MATLAB-parity, float64).

Inputs are HxWx3 RGB or HxW / HxWx1 gray arrays, uint8 or float on the 0..255 scale.
By default both metrics are computed on float BT.601 Y (``rgb_to_y``), after cropping
``crop_border`` pixels from every side -- the usual "Y channel, border = scale" protocol.

Gray images have two conventions in circulation (``gray_mode``):

* ``"raw"`` (default): compare the 0..255 gray values as they are. The legacy MATLAB
  scripts behind the published bicubic/SRCNN/VDSR tables skip ``rgb2ycbcr`` for
  1-channel images; this reproduces e.g. the Set14 bicubic rows (``bridge.png`` is gray).
* ``"y"``: treat gray as RGB with R = G = B and take BT.601 Y = 16 + 219/255 * g, as
  BasicSR/KAIR (which load gray PNGs as 3-channel) do. The error shrinks by 219/255, i.e.
  +20*log10(255/219) = +1.32 dB on a gray image (about +0.09 dB on the Set14 average).

Only matters when ``y_channel=True``; with ``y_channel=False`` gray is always compared raw.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from superres.metrics.colour import gray_to_y, rgb_to_y

GrayMode = Literal["raw", "y"]

_SSIM_WIN = 11
_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2, _SSIM_L = 0.01, 0.03, 255.0


def _prepare(img: np.ndarray, crop_border: int, y_channel: bool, gray_mode: GrayMode) -> np.ndarray:
    """HxWxC float64 plane(s) to compare: Y (C=1) or the raw channels, border cropped."""
    x = np.asarray(img)
    if x.ndim == 2:
        x = x[..., None]
    channels = x.shape[2]
    if y_channel and channels == 3:
        x = rgb_to_y(x)[..., None]
    elif y_channel and channels == 1 and gray_mode == "y":
        x = gray_to_y(x[..., 0])[..., None]
    else:
        x = x.astype(np.float64, copy=False)
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {img.shape[:2]} image")
    return x


def _check_pair(a: np.ndarray, b: np.ndarray, crop_border: int, gray_mode: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"expected HxW, HxWx1 or HxWx3 images, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if gray_mode not in ("raw", "y"):
        raise ValueError(f"gray_mode must be 'raw' or 'y', got {gray_mode!r}")


def psnr(
    a: np.ndarray,
    b: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    max_value: float = 255.0,
    gray_mode: GrayMode = "raw",
) -> float:
    """PSNR in dB = 10 log10(max_value^2 / MSE); ``inf`` when the images are identical.

    MSE is over all compared pixels (and channels when ``y_channel=False``). See the module
    docstring for ``gray_mode``.
    """
    a, b = np.asarray(a), np.asarray(b)
    _check_pair(a, b, crop_border, gray_mode)
    x = _prepare(a, crop_border, y_channel, gray_mode)
    y = _prepare(b, crop_border, y_channel, gray_mode)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value**2 / mse)


def _gaussian_1d() -> np.ndarray:
    """1-D factor of ``fspecial('gaussian', 11, 1.5)`` (the 2-D window is its outer product)."""
    r = np.arange(_SSIM_WIN, dtype=np.float64) - (_SSIM_WIN - 1) / 2
    g = np.exp(-(r * r) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(outer(g, g), x, 'valid')``, done separably."""
    n = g.size
    h, w = x.shape
    rows = sum(g[k] * x[k : h - n + 1 + k] for k in range(n))
    return sum(g[k] * rows[:, k : w - n + 1 + k] for k in range(n))


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM map of one plane, Wang et al. 2004 ``ssim_index`` (no downsampling)."""
    g = _gaussian_1d()
    c1 = (_SSIM_K1 * _SSIM_L) ** 2
    c2 = (_SSIM_K2 * _SSIM_L) ** 2
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _filter_valid(x * x, g) - mu_xx
    var_y = _filter_valid(y * y, g) - mu_yy
    cov = _filter_valid(x * y, g) - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    gray_mode: GrayMode = "raw",
) -> float:
    """SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K = (0.01, 0.03), L = 255.

    'valid' filtering (no padding) in float64, mean of the map; with ``y_channel=False``
    on RGB, the mean over the three channels. Images must be at least 11x11 after the crop.
    """
    a, b = np.asarray(a), np.asarray(b)
    _check_pair(a, b, crop_border, gray_mode)
    x = _prepare(a, crop_border, y_channel, gray_mode)
    y = _prepare(b, crop_border, y_channel, gray_mode)
    if min(x.shape[:2]) < _SSIM_WIN:
        raise ValueError(f"SSIM needs at least {_SSIM_WIN}x{_SSIM_WIN} pixels, got {x.shape[:2]}")
    return float(np.mean([_ssim_plane(x[..., c], y[..., c]) for c in range(x.shape[2])]))
