"""Small image makers shared by the end-to-end tests (real photo crops, crafted bad files)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import SAMPLE


def photo(h: int = 48, w: int = 64, y: int = 60, x: int = 150) -> np.ndarray:
    """An RGB uint8 crop of the bundled real photo."""
    bgr = cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[y : y + h, x : x + w, ::-1])


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write RGB(A) or gray with OpenCV (which wants BGR order)."""
    arr = rgb
    if rgb.ndim == 3 and rgb.shape[2] >= 3:
        arr = rgb[:, :, [2, 1, 0, *range(3, rgb.shape[2])]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr))
    return path


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header declares a huge image (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path
