"""Pure pixel helpers for the float/alpha path around a model.

Why they exist: upscalers see RGB only. Fully transparent pixels often hold black or garbage
colour, which a convolutional network (or any interpolation) smears into the visible edge: the
"dark halo" complaint (Real-ESRGAN #291, #325). Two remedies are offered:

* ``premultiply`` / ``unpremultiply``: upscale premultiplied colour, divide by the upscaled alpha.
  Mathematically clean for interpolation, but a network trained on straight images sees darkened
  colour near edges.
* ``bleed_colour``: give every fully transparent pixel the colour of its nearest visible pixel,
  so whatever the network pulls in across the edge is the edge's own colour. The alpha channel
  is untouched, so the output looks the same wherever it is visible.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["bleed_colour", "from_float", "premultiply", "to_float", "unpremultiply"]


def to_float(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """float32 copy in [0, 1] and the integer maximum it was scaled by (255, 65535; 1.0 for float).

    Float input (float16, float32, float64) is passed through unclipped (float TIFFs may hold
    values above 1). Other integer types are refused: whether int32 means 0-255 or 0-65535
    cannot be told from the type, and guessing from the values would misread dark images.
    """
    if pixels.dtype == np.uint8 or pixels.dtype == np.uint16:
        maxv = float(np.iinfo(pixels.dtype).max)
        return np.divide(pixels, np.float32(maxv), dtype=np.float32), maxv
    if np.issubdtype(pixels.dtype, np.floating):
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, refused by the engine
            return pixels.astype(np.float32, copy=True), 1.0
    raise ValueError(f"unsupported sample type {pixels.dtype}: give uint8 (0-255), uint16 (0-65535) "
                     "or float (0-1) samples")


def from_float(arr: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """Back from [0, 1] floats: scale, clip, round half to even; NaN becomes 0, +inf the maximum.

    ``from_float(to_float(x)[0], x.dtype)`` returns ``x`` exactly for uint8 and uint16.
    Float output (float16, float32, float64: float in, float out) is a plain cast (no clipping).
    """
    target = np.dtype(dtype)
    if np.issubdtype(target, np.floating):
        return arr.astype(target, copy=True)
    if target not in (np.uint8, np.uint16):
        raise ValueError(f"unsupported output type {target}")
    maxv = float(np.iinfo(target).max)
    out = np.multiply(arr, np.float32(maxv), dtype=np.float32)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=maxv, neginf=0.0)
    np.clip(out, 0.0, maxv, out=out)
    np.rint(out, out=out)
    return out.astype(target)


def _alpha3(alpha: np.ndarray) -> np.ndarray:
    """Alpha as HxWx1 so it broadcasts over colour channels."""
    return alpha[:, :, None] if alpha.ndim == 2 else alpha


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour times alpha (both float in [0, 1]); alpha is HxW or HxWx1."""
    return np.multiply(rgb, _alpha3(alpha), dtype=np.float32)


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied colour divided by alpha, 0 where alpha is 0, clipped to [0, 1].

    The clip matters after upscaling: ringing can make premultiplied colour exceed its alpha.
    """
    a = _alpha3(np.asarray(alpha, dtype=np.float32))
    out = np.zeros(np.broadcast_shapes(rgb.shape, a.shape), dtype=np.float32)
    np.divide(rgb, a, out=out, where=a > 0)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def bleed_colour(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Copy of ``rgb`` where every fully transparent pixel (alpha == 0) takes its nearest visible colour.

    Method: one exact-enough nearest-neighbour pass with ``cv2.distanceTransformWithLabels``
    (L2, 5x5 mask, one label per visible pixel), instead of repeated 3x3 dilation: it is O(pixels)
    whatever the width of the transparent area, fills everything in one go, and copies real edge
    colours instead of averaging them with each other. Any dtype; ``alpha`` is HxW or HxWx1.
    """
    a = alpha[:, :, 0] if alpha.ndim == 3 else alpha
    if a.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {a.shape} and colour {rgb.shape[:2]} sizes differ")
    visible = a > 0
    out = rgb.copy()
    if visible.all() or not visible.any():
        return out
    # distanceTransform measures the distance to the nearest *zero* pixel: visible pixels are zeros.
    src = np.where(visible, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    flat_labels = labels.ravel()
    visible_idx = np.flatnonzero(visible)
    lut = np.zeros(int(flat_labels.max()) + 1, dtype=np.intp)
    lut[flat_labels[visible_idx]] = visible_idx  # label -> flat index of its visible pixel
    hidden_idx = np.flatnonzero(~visible)
    flat_rgb = out.reshape(-1, *rgb.shape[2:])
    flat_rgb[hidden_idx] = flat_rgb[lut[flat_labels[hidden_idx]]]
    return out
