"""Calibration and held-out images for INT8 quantisation.

Activation ranges are calibrated on one set of crops and the INT8 output is judged on images the
calibration never saw, so the achieved PSNR is not flattered by ranges fitted to the very pixels
it is measured on. Every source image is split the same way: its left part (about 2/3) gives the
calibration crops, at several scales; its right part, past a gap, gives the held-out crops.
The bundled set is the sample photo (:mod:`superres.io.sample`); ``calib=DIR`` uses the user's images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superres.io.sample import SAMPLE_PATH, sample_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SCALES = (1.0, 0.75, 0.5)  # calibration crops at several scales: textures at several frequencies
HELD_SCALES = (1.0, 0.5)  # held-out crops at full and half scale: finer detail is harder for INT8
GAP = 4  # pixels between the calibration part and the held-out part of an image


@dataclass
class CalibrationSet:
    """NCHW float32 crops in [0, 1]: ``calib`` for the ranges, ``held`` for the quality measurement."""

    calib: list[np.ndarray]
    held: list[np.ndarray]
    identity: str  # names the image content, for cache keys


def _read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 float32 in [0, 1] (alpha dropped, gray repeated)."""
    from superres.io.alpha import to_float
    from superres.io.read import read_image

    pixels, _ = to_float(read_image(path, emit_warnings=False).pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.clip(pixels[:, :, :3], 0.0, 1.0).astype(np.float32)


def _user_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _crops(img: np.ndarray, side: int) -> Iterator[np.ndarray]:
    """Non-overlapping side x side crops covering ``img`` (a smaller image gives one crop of its size)."""
    h, w = img.shape[:2]
    if h < side or w < side:
        yield img
        return
    for y in range(0, h - side + 1, side):
        for x in range(0, w - side + 1, side):
            yield img[y : y + side, x : x + side]


def _fit(img: np.ndarray, multiple: int) -> np.ndarray | None:
    h, w = img.shape[:2]
    h, w = h - h % multiple, w - w % multiple
    return img[:h, :w] if h >= multiple and w >= multiple else None


def _nchw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))[None].astype(np.float32)


def _variant(img: np.ndarray, k: int) -> np.ndarray:
    """Crop ``k``'s photometric variant: one photo's crops alone leave the activation ranges too
    narrow for saturated, high-contrast or dark images, whose values then clip in INT8."""
    v = k % 4
    if v == 1:
        return 1.0 - img  # dark/bright swapped
    if v == 2:
        return np.clip((img - 0.5) * 2.5 + 0.5, 0.0, 1.0)  # high contrast, saturated
    if v == 3:
        return np.ascontiguousarray(img[:, :, ::-1] ** 0.5)  # other hues, lifted shadows
    return img


def split(img: np.ndarray, *, crop: int, held_side: int, multiple: int,
          max_calib: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Calibration crops from the left part of ``img``, held-out crops from the right part."""
    w = img.shape[1]
    cut = max(1, (2 * w) // 3)
    left, right = img[:, :cut], img[:, min(w - 1, cut + GAP):]
    calib: list[np.ndarray] = []
    for scale in SCALES:
        for raw in _crops(_resize(left, scale), crop):
            if (c := _fit(raw, multiple)) is not None and len(calib) < max_calib:
                calib.append(_nchw(_variant(c, len(calib))))
    shrunk = (_resize(right, scale) for scale in HELD_SCALES)
    fitted = (_fit(raw, multiple) for img in shrunk for raw in _crops(img, held_side))
    held = [_nchw(v) for c in fitted if c is not None for v in (c, _variant(c, 2))]
    return calib, held


def calibration_set(calib: Path | None = None, *, crop: int = 48, held_side: int = 96, multiple: int = 1,
                    max_calib: int = 64, max_held: int = 6) -> CalibrationSet:
    """The calibration and held-out crops of the bundled sample, or of the images in folder ``calib``."""
    if calib is None:
        images = [sample_rgb().astype(np.float32) / 255]
        h = hashlib.sha256(SAMPLE_PATH.read_bytes())
        identity = f"bundled:{h.hexdigest()[:16]}"
    else:
        files = _user_files(Path(calib))
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
        images = [_read_rgb(f) for f in files]
        identity = f"dir:{h.hexdigest()[:16]}"
    cal: list[np.ndarray] = []
    held: list[np.ndarray] = []
    per_image = max(1, max_calib // len(images))
    for img in images:
        c, hd = split(img, crop=crop, held_side=held_side, multiple=multiple, max_calib=per_image)
        cal += c
        held += hd
    if not cal or not held:
        raise ValueError("the calibration images are too small to give calibration and held-out crops")
    step = max(1, -(-len(held) // max_held))
    identity += f":c{crop}h{held_side}m{multiple}n{max_calib}s{HELD_SCALES}v4"
    return CalibrationSet(calib=cal, held=held[::step][:max_held], identity=identity)
