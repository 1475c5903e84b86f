"""Format policy: which files superres handles, what each format can hold.

The limits on reading (pixels, file size, compression ratio) live in :mod:`superres.io.limits`.

Kept apart from the codecs so that callers planning outputs (the CLI, batch jobs) can ask
"which format, which extension" without touching an encoder.
"""

from __future__ import annotations

import os
from pathlib import Path

from superres.io.errors import warn

SUPPORTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "tiff", "bmp")
_EXT_TO_FORMAT: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXT_TO_FORMAT)
FORMAT_EXTENSIONS: dict[str, str] = {
    "png": ".png",
    "jpeg": ".jpg",
    "webp": ".webp",
    "tiff": ".tif",
    "bmp": ".bmp",
}
_FORMAT_ALIASES: dict[str, str] = {k[1:]: v for k, v in _EXT_TO_FORMAT.items()}

WEBP_MAX_SIDE = 16383
JPEG_MAX_SIDE = 65535


def normalize_format(name: str) -> str | None:
    """One of SUPPORTED_FORMATS for a format name or extension ("JPG", ".tif"), else None."""
    key = name.lower().lstrip(".")
    return _FORMAT_ALIASES.get(key)


def format_for_path(path: str | os.PathLike[str]) -> str | None:
    """Format name implied by a file extension, or None if superres does not handle it."""
    return _EXT_TO_FORMAT.get(Path(path).suffix.lower())


def _icc_colour_space(icc: bytes) -> bytes | None:
    """The profile's data colour space (b"RGB ", b"GRAY", b"CMYK", ...), None if not an ICC profile."""
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    return icc[16:20]


def icc_problem(icc: bytes, channels: int) -> str | None:
    """Why this profile must not accompany pixels with this many channels, or None if it fits."""
    space = _icc_colour_space(icc)
    if space is None:
        return "the embedded ICC profile is malformed"
    wanted = b"GRAY" if channels == 1 else b"RGB "
    if space != wanted:
        layout = "gray" if channels == 1 else "RGB"
        return f"the ICC profile describes {space.decode('latin-1').strip()} data, the pixels are {layout}"
    return None


def output_format_for(
    src_format: str,
    has_alpha: bool,
    bit_depth: int,
    requested: str | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> str:
    """A format that can hold the output: ``requested`` (or the source's) unless it would lose data.

    16-bit and float samples, alpha and very large sizes do not fit every format; the fallback is
    PNG (lossless, 16-bit, alpha) — TIFF for float — and an ImageWarning says so.
    ``size`` is (width, height) of the output, if known (WebP stops at 16383 px a side).
    Raises ValueError for a ``requested`` name superres does not write.
    """
    if requested:
        fmt = normalize_format(requested)
        if fmt is None:
            raise ValueError(
                f"unknown output format {requested!r}; choose from {', '.join(SUPPORTED_FORMATS)}"
            )
    else:
        fmt = normalize_format(src_format) or "png"
    chosen = fmt
    if bit_depth > 16 and chosen != "tiff":
        chosen = "tiff"
        why = "float samples"
    elif bit_depth == 16 and chosen in ("jpeg", "webp", "bmp"):
        chosen = "png"
        why = "16-bit samples"
    elif has_alpha and chosen in ("jpeg", "bmp"):
        chosen = "png"
        why = "an alpha channel"
    elif size is not None and chosen == "webp" and max(size) > WEBP_MAX_SIDE:
        chosen = "png" if has_alpha else "jpeg"
        why = f"{size[0]}x{size[1]} pixels (WebP stops at {WEBP_MAX_SIDE} a side)"
    elif size is not None and chosen == "jpeg" and max(size) > JPEG_MAX_SIDE:
        chosen = "png"
        why = f"{size[0]}x{size[1]} pixels (JPEG stops at {JPEG_MAX_SIDE} a side)"
    if chosen != fmt:
        warn(f"{fmt.upper()} cannot hold {why}; writing {chosen.upper()} instead")
    return chosen
