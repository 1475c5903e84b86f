"""Every limit on reading an image, in one place: decided from the file size and the header, before
any pixel is decoded, so that a small hostile file cannot take the machine's memory.

Three limits, each overridable by a keyword (through :class:`Limits`) or an environment variable;
docs/limits.md lists them with their defaults and the measurements behind them.

* **Pixels** (``max_pixels`` / ``$SUPERRES_MAX_PIXELS``): by default derived per image from the
  memory available right now and what the caller will spend per input pixel (``pixel_cost``):
  ``min(MAX_PIXELS, MEMORY_FRACTION * available / pixel_cost)``. The default cost,
  ``UPSCALE_PIXEL_COST``, is the upscale path's measured ~200 bytes per input pixel (issue 17: a
  2048^2 input peaked at 1.08 GB, 4096^2 at 3.39 GB: 184 bytes per added pixel); a caller that
  knows better (the engine, for its model and scale; a reader that only decodes,
  ``READ_PIXEL_COST``) passes its own.
* **File size** (``max_file_bytes`` / ``$SUPERRES_MAX_FILE_BYTES``): checked with ``os.stat``
  before the file is opened, since the whole file is read into memory.
* **Compression ratio** (``max_ratio`` / ``$SUPERRES_MAX_RATIO``): the bytes the header declares
  (width x height x samples x bits) over the file's size. A JPEG whose header claims far more
  pixels than its data can hold decodes as grey fill, at full memory cost: a 1,155-byte JPEG
  with a 16384x16384 header is 700,000:1. Not applied to WebP, whose lossless coder legitimately
  reaches 68,000:1 on flat images and whose decoder refuses (rather than fills) missing data.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

# Hard ceiling of the derived pixel limit: 2**28 = 268 Mpx (16384 x 16384), whatever the memory.
# Covers every camera including 240 Mpx pixel-shift files; larger panoramas: SUPERRES_MAX_PIXELS.
# OpenCV has its own hard limit, CV_IO_MAX_IMAGE_PIXELS (default 2**30), read when cv2 loads.
MAX_PIXELS: int = 1 << 28
# Bytes of memory per *input* pixel of the default upscale path (x4 model, float32 tiles and
# output): measured in issue 17 at ~184-200. The engine passes its own model's cost.
UPSCALE_PIXEL_COST: float = 200.0
# Peak bytes per pixel of read_image alone for the largest common layout (16-bit RGBA: 8 bytes
# decoded, about three copies at the peak: measured 24 bytes per pixel on a 12 Mpx RGBA16 PNG).
READ_PIXEL_COST: float = 24.0
# Share of the available memory (MemAvailable) one image may plan to use: the rest is for the
# model's weights, the tile buffers and everything else running.
MEMORY_FRACTION: float = 0.75
# Files are read whole: 1 GiB holds any compressed photo and an uncompressed 16-bit RGB TIFF of
# 179 Mpx, beyond what the default pixel budget admits on machines under ~48 GB.
MAX_FILE_BYTES: int = 1 << 30
# Declared decoded bytes per file byte. Measured on 66 photos (BSD200, Set5, chelsea): JPEG at
# most 87:1 (quality 50), PNG 4.4:1, TIFF LZW/deflate 4.5:1; flat synthetic 4000x3000 images:
# JPEG 506:1 (progressive, optimised), PNG 852:1, TIFF deflate 683:1. Deflate cannot exceed
# 1032:1, LZW about 1365:1 (12-bit codes), baseline Huffman JPEG 512:1 for flat 4:2:0 data.
# Above 1400:1 the data cannot hold the image: the header was enlarged, the rest would be fill.
MAX_RATIO: float = 1400.0
RATIO_FORMATS: frozenset[str] = frozenset({"jpeg", "png", "tiff", "bmp"})

ENV_MAX_PIXELS = "SUPERRES_MAX_PIXELS"
ENV_MAX_FILE_BYTES = "SUPERRES_MAX_FILE_BYTES"
ENV_MAX_RATIO = "SUPERRES_MAX_RATIO"

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def host_available_memory() -> int | None:
    """Bytes of host RAM available right now (Linux MemAvailable, else the OS's free pages), or
    None where neither is reported. The one free-memory probe: the engine sizes tiles with it too."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int:
    """:func:`host_available_memory`, or 4 GiB where the system reports nothing."""
    host = host_available_memory()
    return host if host is not None else 4 << 30


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB': for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def mpx(pixels: float) -> str:
    """Pixels as megapixels, for messages: 3 significant digits, whole numbers from 100 up."""
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _parse_pixels(text: str, source: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{source}={text!r} is not a whole number of pixels") from None
    if value <= 0:
        raise ValueError(f"{source} must be a positive number of pixels, got {value}")
    return value


def parse_size(text: str, source: str) -> int:
    """'1073741824', '1_000_000', '512M', '2GiB' -> bytes (binary units). ValueError names ``source``."""
    m = _SIZE.fullmatch(text.replace("_", "").strip())
    if m is None:
        raise ValueError(f"{source}={text!r} is not a size in bytes (e.g. 1073741824, 512M, 2G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise ValueError(f"{source} must be a positive number of bytes, got {text!r}")
    return value


def _parse_ratio(text: str, source: str) -> float:
    if text.lower() in ("off", "none", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{source}={text!r} is not a ratio (a number like 1400, or 'off')") from None
    if not value > 0:
        raise ValueError(f"{source} must be a positive ratio (or 'off'), got {text!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """What one read may cost. ``None`` fields mean: the environment variable, else the default.

    ``max_pixels`` replaces the derived pixel limit (no ceiling then); ``pixel_cost`` and
    ``memory_fraction`` shape the derived one. ``max_ratio=math.inf`` turns the ratio check off.
    The environment is read at each call, so a long-running process picks up changes.
    """

    max_pixels: int | None = None
    max_file_bytes: int | None = None
    max_ratio: float | None = None
    pixel_cost: float = UPSCALE_PIXEL_COST
    memory_fraction: float = MEMORY_FRACTION

    def __post_init__(self) -> None:
        if self.max_pixels is not None and self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be a positive number of pixels, got {self.max_pixels}")
        if self.max_file_bytes is not None and self.max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if self.max_ratio is not None and not self.max_ratio > 0:
            raise ValueError(f"max_ratio must be positive (math.inf: off), got {self.max_ratio}")
        if not (self.pixel_cost > 0 and math.isfinite(self.pixel_cost)):
            raise ValueError(f"pixel_cost must be a positive number of bytes, got {self.pixel_cost}")
        if not 0 < self.memory_fraction <= 1:
            raise ValueError(f"memory_fraction must be in (0, 1], got {self.memory_fraction}")

    def pixel_limit(self) -> tuple[int, str]:
        """(limit, how it was decided, for the error message)."""
        if self.max_pixels is not None:
            return int(self.max_pixels), f"max_pixels={self.max_pixels}"
        env = _env(ENV_MAX_PIXELS)
        if env is not None:
            return _parse_pixels(env, ENV_MAX_PIXELS), f"{ENV_MAX_PIXELS}={env}"
        avail = available_memory()
        derived = int(self.memory_fraction * avail / self.pixel_cost)
        if derived >= MAX_PIXELS:
            return MAX_PIXELS, "the hard ceiling"
        return max(derived, 1), (
            f"{self.memory_fraction:g} of {human_bytes(avail)} available memory at "
            f"{self.pixel_cost:g} bytes per pixel"
        )

    def file_limit(self) -> int:
        if self.max_file_bytes is not None:
            return int(self.max_file_bytes)
        env = _env(ENV_MAX_FILE_BYTES)
        return parse_size(env, ENV_MAX_FILE_BYTES) if env is not None else MAX_FILE_BYTES

    def ratio_limit(self) -> float:
        if self.max_ratio is not None:
            return float(self.max_ratio)
        env = _env(ENV_MAX_RATIO)
        return _parse_ratio(env, ENV_MAX_RATIO) if env is not None else MAX_RATIO

    def check_config(self) -> None:
        """Raise ValueError now for a malformed environment variable (not per file, later)."""
        if self.max_pixels is None and _env(ENV_MAX_PIXELS) is not None:
            self.pixel_limit()
        self.file_limit()
        self.ratio_limit()


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: the argument, else ``$SUPERRES_MAX_PIXELS``, else derived."""
    return Limits(max_pixels=max_pixels).pixel_limit()[0]
