"""BT.601 luma as MATLAB ``rgb2ycbcr`` computes it (the Y every SR paper reports on)."""

from __future__ import annotations

import numpy as np

from superres.metrics.resize import round_half_away

# MATLAB rgb2ycbcr for RGB in [0, 1]: YCbCr (0..255 scale) = YCBCR_OFFSET + RGB2YCBCR @ RGB; studio
# swing, Y in [16, 235]. The one definition: archs.luma builds the Y-only models' conversion from it.
RGB2YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
YCBCR_OFFSET = (16.0, 128.0, 128.0)
_Y_COEFFS = RGB2YCBCR[0]


def rgb_to_y(img: np.ndarray, *, as_uint8: bool = False) -> np.ndarray:
    """Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for an HxWx3 RGB image in 0..255.

    Input: uint8, or float on the 0..255 scale (not 0..1). Channel order must be RGB
    (``cv2.imread`` gives BGR: convert first).

    ``as_uint8=False`` (default): float64 Y, what BasicSR/KAIR and ``evaluate_pair`` use.
    ``as_uint8=True``: MATLAB ``rgb2ycbcr`` on a *uint8* image, which returns uint8
    (``imlincomb`` rounds half away from zero); the legacy SRCNN/VDSR scripts work on
    this quantised Y. It lowers Set5 bicubic PSNR by ~0.01-0.03 dB vs the float Y.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    x = img.astype(np.float64, copy=False)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    if as_uint8:
        # imlincomb(T11/255, R, T12/255, G, T13/255, B, 16): scaled terms summed in order.
        y = _Y_COEFFS[0] / 255 * r + _Y_COEFFS[1] / 255 * g + _Y_COEFFS[2] / 255 * b + 16.0
        return np.clip(round_half_away(y), 0, 255).astype(np.uint8)
    return (_Y_COEFFS[0] * r + _Y_COEFFS[1] * g + _Y_COEFFS[2] * b) / 255.0 + 16.0


def gray_to_y(img: np.ndarray) -> np.ndarray:
    """Y of a gray image replicated to RGB: 16 + 219/255 * g (range 16..235), float64."""
    return rgb_to_y(np.repeat(np.asarray(img, dtype=np.float64)[..., None], 3, axis=2))
