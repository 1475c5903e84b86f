"""Writing: encode in memory (pixels via OpenCV or Pillow, metadata spliced in), then store atomically.

The encoded file is a list of byte pieces handed to :func:`superres.io.atomic.atomic_write`
(hidden temporary beside the target, fsync, rename), so a crash or error never leaves a
partial image under the final name, and a large PNG/TIFF is never joined into one more copy.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from superres.io.atomic import atomic_write
from superres.io.errors import ImageError, ImageWriteError, warn
from superres.io.exif import EXIF_PREFIX, TAG_EXTRA_SAMPLES, TAG_ICC, exif_upright, normalize_exif
from superres.io.formats import (
    JPEG_MAX_SIDE,
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    WEBP_MAX_SIDE,
    format_for_path,
    icc_problem,
    normalize_format,
)

JPEG_QUALITY = 95
WEBP_QUALITY = 95  # quality=100 means lossless WebP
PNG_COMPRESSION = 4  # zlib level: ~7% larger than level 6 at a third of its time (upscaled photo)


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _png_add_metadata(png: memoryview, icc: bytes | None, exif: bytes | None) -> list[Any]:
    """Insert iCCP/eXIf right after IHDR (both must precede IDAT) of an OpenCV-encoded PNG."""
    if bytes(png[12:16]) != b"IHDR":
        raise ValueError("encoder output does not start with IHDR")
    ihdr_end = 8 + 12 + 13
    extra = []
    if icc:
        extra.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        extra.append(_png_chunk(b"eXIf", exif[len(EXIF_PREFIX) :]))
    return [png[:ihdr_end], *extra, png[ihdr_end:]]


def _tiff_add_tags(tiff: memoryview, icc: bytes | None, extra_samples: int | None) -> list[Any]:
    """Give an OpenCV-encoded TIFF an ICC profile / ExtraSamples tag without re-encoding it.

    A copy of IFD0 with the new entries (kept sorted) is appended after the profile bytes and the
    header is pointed at it; the old IFD0 stays as unused bytes, all its offsets remain valid.
    """
    order = bytes(tiff[:2])
    e = "<" if order == b"II" else ">"
    if order not in (b"II", b"MM") or struct.unpack_from(e + "H", tiff, 2)[0] != 42:
        raise ValueError("not a classic TIFF")
    (ifd,) = struct.unpack_from(e + "I", tiff, 4)
    (count,) = struct.unpack_from(e + "H", tiff, ifd)
    entries = {}
    for i in range(count):
        pos = ifd + 2 + 12 * i
        entries[struct.unpack_from(e + "H", tiff, pos)[0]] = bytes(tiff[pos : pos + 12])
    (next_ifd,) = struct.unpack_from(e + "I", tiff, ifd + 2 + 12 * count)
    pieces: list[Any] = [None, tiff[8:]]
    end = len(tiff)
    if end % 2:
        pieces.append(b"\x00")
        end += 1
    if icc:
        entries[TAG_ICC] = struct.pack(e + "HHII", TAG_ICC, 7, len(icc), end)
        pieces.append(icc)
        end += len(icc)
        if end % 2:
            pieces.append(b"\x00")
            end += 1
    if extra_samples is not None:
        entries[TAG_EXTRA_SAMPLES] = struct.pack(e + "HHIH2x", TAG_EXTRA_SAMPLES, 3, 1, extra_samples)
    new_ifd = struct.pack(e + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries))
    new_ifd += struct.pack(e + "I", next_ifd)
    if end + len(new_ifd) >= 1 << 32:
        raise ValueError("TIFF would exceed 4 GiB")
    pieces[0] = order + struct.pack(e + "HI", 42, end)
    pieces.append(new_ifd)
    return pieces


def _cv_encode(ext: str, pixels: np.ndarray, params: list[int]) -> memoryview:
    channels = pixels.shape[2]
    if channels == 3:
        arr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif channels == 4:
        arr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    else:
        arr = pixels[:, :, 0]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {ext}")
    return memoryview(buf).cast("B")


def _pil_encode(fmt: str, pixels: np.ndarray, **options: Any) -> bytes:
    arr = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format=fmt, **options)
    return out.getvalue()


def _encode(
    fmt: str, pixels: np.ndarray, icc: bytes | None, exif: bytes | None, quality: int | None
) -> list[Any]:
    """Encoded file contents as a list of byte pieces (written in order, never joined)."""
    if fmt == "png":
        png = _cv_encode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        return _png_add_metadata(png, icc, exif)
    if fmt == "tiff":
        tiff = _cv_encode(".tif", pixels, [])  # LZW + horizontal predictor: OpenCV's default
        extra = 2 if pixels.shape[2] == 4 else None  # 2 = unassociated (straight) alpha
        if icc or extra is not None:
            try:
                return _tiff_add_tags(tiff, icc, extra)
            except (ValueError, struct.error) as e:  # e.g. a BigTIFF (> 4 GiB): keep the pixels
                warn(f"ICC profile / alpha tag not added to the TIFF ({e})")
        return [tiff]
    if fmt == "bmp":
        return [_cv_encode(".bmp", pixels, [])]
    meta: dict[str, Any] = {}
    if icc:
        meta["icc_profile"] = icc
    if exif:
        meta["exif"] = exif
    if fmt == "jpeg":
        q = JPEG_QUALITY if quality is None else quality
        # 4:4:4 chroma at high quality: 4:2:0 visibly smears fine colour detail an upscaler made.
        return [
            _pil_encode("JPEG", pixels, quality=q, subsampling=0 if q >= 90 else 2, optimize=True, **meta)
        ]
    if fmt == "webp":
        q = WEBP_QUALITY if quality is None else quality
        if q >= 100:
            return [_pil_encode("WEBP", pixels, lossless=True, quality=100, exact=True, **meta)]
        return [_pil_encode("WEBP", pixels, quality=q, **meta)]
    raise ValueError(f"no encoder for {fmt}")


def _check_pixels(path: Path, pixels: Any) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise ImageWriteError(path, f"pixels must be a numpy array, got {type(pixels).__name__}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4) or 0 in pixels.shape:
        raise ImageWriteError(path, f"pixels must be HxWxC with C in 1, 3, 4; got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageWriteError(path, f"pixels must be uint8, uint16 or float32, got {pixels.dtype}")
    return np.ascontiguousarray(pixels)


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int | None = None,
    format: str | None = None,
) -> None:
    """Write upright HxWxC RGB(A)/gray pixels atomically, with ICC profile and EXIF.

    The format comes from ``format`` or the extension (png, jpg/jpeg, webp, tif/tiff, bmp).
    16-bit goes to PNG/TIFF only, float32 to TIFF only, alpha not to JPEG/BMP: asking otherwise
    raises ImageWriteError (use output_format_for to pick a format that fits). ``quality``
    (1-100) applies to JPEG (default 95) and WebP (default 95; 100 = lossless). EXIF is written
    to PNG, JPEG and WebP with Orientation forced to 1; the ICC profile to PNG, JPEG, WebP, TIFF.
    """
    p = Path(path)
    arr = _check_pixels(p, pixels)
    if format:
        fmt = normalize_format(format)
        if fmt is None:
            raise ImageWriteError(p, f"unknown format {format!r}; choose from {', '.join(SUPPORTED_FORMATS)}")
    else:
        fmt = format_for_path(p)
        if fmt is None:
            raise ImageWriteError(
                p,
                f"cannot tell the format from the extension {p.suffix!r}; use one of "
                f"{', '.join(sorted(SUPPORTED_EXTENSIONS))} or pass format=",
            )
    channels, depth = arr.shape[2], arr.dtype.itemsize * 8
    if arr.dtype == np.float32 and fmt != "tiff":
        raise ImageWriteError(
            p, f"{fmt.upper()} cannot store float samples; write TIFF or convert with from_float"
        )
    if depth == 16 and fmt not in ("png", "tiff"):
        raise ImageWriteError(p, f"{fmt.upper()} cannot store 16-bit samples; write PNG or TIFF")
    if channels == 4 and fmt in ("jpeg", "bmp"):
        raise ImageWriteError(p, f"{fmt.upper()} cannot store an alpha channel; write PNG, WebP or TIFF")
    if fmt == "webp" and max(arr.shape[:2]) > WEBP_MAX_SIDE:
        raise ImageWriteError(
            p, f"WebP cannot store {arr.shape[1]}x{arr.shape[0]} (max {WEBP_MAX_SIDE} a side)"
        )
    if fmt == "jpeg" and max(arr.shape[:2]) > JPEG_MAX_SIDE:
        raise ImageWriteError(
            p, f"JPEG cannot store {arr.shape[1]}x{arr.shape[0]} (max {JPEG_MAX_SIDE} a side)"
        )
    if quality is not None and not 1 <= quality <= 100:
        raise ImageWriteError(p, f"quality must be 1-100, got {quality}")

    icc = icc_profile or None
    if icc is not None:
        problem = icc_problem(icc, 3 if fmt == "webp" else channels)
        if fmt == "bmp":
            problem = "BMP output carries no ICC profile"
        if problem:
            warn(f"{p}: {problem}; profile not written")
            icc = None
    exif_out = exif_upright(normalize_exif(exif), p) if exif else None
    if exif and exif_out is None and normalize_exif(exif) is None:
        warn(f"{p}: EXIF data is not a TIFF structure; not written")
    if exif_out and fmt in ("tiff", "bmp"):
        warn(f"{p}: EXIF is not written to {fmt.upper()} output")
        exif_out = None

    try:
        pieces = _encode(fmt, arr, icc, exif_out, quality)
        atomic_write(p, pieces)
    except ImageError:
        raise
    except Exception as e:  # encoder or file system: the caller needs one error type per file
        raise ImageWriteError(p, f"cannot write {fmt.upper()} ({type(e).__name__}: {e})") from e
