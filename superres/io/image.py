"""Image reading and writing that keeps what a demanding photographer cares about.

Division of labour (facts verified in the project's ecosystem survey, §2.1):

* **Pixels** go through OpenCV: it keeps 16-bit samples and alpha, and decoding bytes we read
  ourselves (``cv2.imdecode``) works for any unicode path. Pillow would silently truncate 16-bit
  RGB to 8 bits and cannot write it.
* **Metadata** goes through Pillow, whose ``Image.open`` parses only the header: the declared size
  (checked against the decompression-bomb limit *before* any pixel is decoded), the ICC profile,
  EXIF and its Orientation. OpenCV's ``IMREAD_UNCHANGED`` ignores Orientation for JPEG/PNG/WebP
  (but applies it for TIFF, so TIFF bytes are patched to Orientation=1 before decoding), and
  drops ICC profiles on both read and write.
* **Completeness** is checked structurally before any parser runs (PNG chunk walk up to IEND,
  JPEG marker walk up to EOI, RIFF size of WebP, TIFF directory and strip/tile extents, BMP file
  size): libjpeg-style decoders only warn about a premature end and fill the rest with grey;
  a truncated file must be an error, not a silently half-grey result.
* **Writes** are atomic: encode in memory, write a hidden ``.part`` file next to the target, fsync,
  ``os.replace``. A crash or error never leaves a partial image under the final name.

In-memory convention: ``ImageData.pixels`` is HxWxC with C in {1, 3, 4} (gray / RGB / RGBA,
straight — not premultiplied — alpha), dtype uint8 or uint16 (float32 for float TIFF), upright.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ENV_MAX_PIXELS",
    "FORMAT_EXTENSIONS",
    "MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "ImageData",
    "ImageError",
    "ImageReadError",
    "ImageWarning",
    "ImageWriteError",
    "apply_orientation",
    "format_for_path",
    "max_pixels_limit",
    "output_format_for",
    "read_image",
    "write_image",
]

# Default decompression-bomb limit on the *input* pixel count: 2**28 = 268 Mpx (16384 x 16384).
# Covers every camera including 240 Mpx pixel-shift files; a 2**28 px RGBA16 image is 2 GiB once
# decoded, and its x4 upscale is already 4.3 Gpx. Larger panoramas: set SUPERRES_MAX_PIXELS.
# OpenCV has its own hard limit, CV_IO_MAX_IMAGE_PIXELS (default 2**30), read when cv2 loads.
MAX_PIXELS: int = 1 << 28
ENV_MAX_PIXELS = "SUPERRES_MAX_PIXELS"
_CV_DEFAULT_MAX_PIXELS = 1 << 30

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
# Pillow's names for the formats we read. MPO = camera JPEG with extra pictures appended.
_PIL_FORMATS: dict[str, str] = {
    "PNG": "png",
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
}

JPEG_QUALITY = 95
WEBP_QUALITY = 95  # quality=100 means lossless WebP
PNG_COMPRESSION = 4  # zlib level: ~7% larger than level 6 at a third of its time (upscaled photo)
_WEBP_MAX_SIDE = 16383
_JPEG_MAX_SIDE = 65535

_TAG_ORIENTATION = 0x0112
_TAG_EXTRA_SAMPLES = 338
_TAG_ICC = 34675
_EXIF_PREFIX = b"Exif\x00\x00"
# IFD0 tags worth carrying from a TIFF into EXIF; the rest of a TIFF's IFD0 describes its own
# strips and samples and would be nonsense in another file.
_TIFF_EXIF_TAGS = frozenset({270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432, 0x8769, 0x8825})


# --------------------------------------------------------------------------- errors and data


class ImageError(Exception):
    """An image could not be read or written; ``str()`` starts with the file path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.path, self.reason))


class ImageReadError(ImageError):
    """Missing, empty, truncated, corrupt, oversized or unsupported input."""


class ImageWriteError(ImageError):
    """The output could not be encoded or stored; nothing was left at the destination."""


class ImageWarning(UserWarning):
    """Something was dropped or changed (a profile, EXIF, the output format); the image is fine."""


@dataclass
class ImageData:
    """Decoded, upright pixels plus the metadata worth carrying to the output."""

    pixels: np.ndarray  # HxWxC, C in {1, 3, 4}: gray / RGB / RGBA (straight alpha)
    icc_profile: bytes | None  # raw ICC bytes, only if they match the channel layout
    exif: bytes | None  # b"Exif\0\0" + TIFF structure, Orientation reset to 1
    source_format: str  # one of SUPPORTED_FORMATS, from the content (not the extension)
    path: Path | None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels == 4

    @property
    def bit_depth(self) -> int:
        """8, 16 or 32 (float)."""
        return self.pixels.dtype.itemsize * 8


# --------------------------------------------------------------------------- small helpers


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The limit in force: the argument, else ``$SUPERRES_MAX_PIXELS``, else ``MAX_PIXELS``."""
    if max_pixels is None:
        env = os.environ.get(ENV_MAX_PIXELS, "").strip()
        if not env:
            return MAX_PIXELS
        try:
            max_pixels = int(env.replace("_", ""))
        except ValueError:
            raise ValueError(f"{ENV_MAX_PIXELS}={env!r} is not a whole number of pixels") from None
        source = ENV_MAX_PIXELS
    else:
        source = "max_pixels"
    if max_pixels <= 0:
        raise ValueError(f"{source} must be a positive number of pixels, got {max_pixels}")
    return int(max_pixels)


def _mpx(pixels: int) -> str:
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _normalize_format(name: str) -> str | None:
    key = name.lower().lstrip(".")
    return _FORMAT_ALIASES.get(key)


def format_for_path(path: str | os.PathLike[str]) -> str | None:
    """Format name implied by a file extension, or None if superres does not handle it."""
    return _EXT_TO_FORMAT.get(Path(path).suffix.lower())


def _warn(message: str) -> None:
    warnings.warn(message, ImageWarning, stacklevel=3)


def _icc_colour_space(icc: bytes) -> bytes | None:
    """The profile's data colour space (b"RGB ", b"GRAY", b"CMYK", ...), None if not an ICC profile."""
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    return icc[16:20]


def _icc_problem(icc: bytes, channels: int) -> str | None:
    """Why this profile must not accompany pixels with this many channels, or None if it fits."""
    space = _icc_colour_space(icc)
    if space is None:
        return "the embedded ICC profile is malformed"
    wanted = b"GRAY" if channels == 1 else b"RGB "
    if space != wanted:
        layout = "gray" if channels == 1 else "RGB"
        return f"the ICC profile describes {space.decode('latin-1').strip()} data, the pixels are {layout}"
    return None


# --------------------------------------------------------------------------- TIFF / EXIF structures


# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., LONG8, IFD8).
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
                    13: 4, 16: 8, 17: 8, 18: 8}  # fmt: skip


def _ifd0_entries(buf: bytes | bytearray, base: int) -> list[tuple[str, int, int, int, int, int]]:
    """IFD0 entries of the TIFF structure at ``buf[base:]`` (a TIFF file or an EXIF block).

    Each is (struct byte-order char, tag, field type, count, position of the value field, bytes
    that fit inline in it). Classic TIFF and BigTIFF; ValueError/struct.error when the structure
    does not parse or IFD0 is cut off.
    """
    order = bytes(buf[base : base + 2])
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        raise ValueError("no TIFF byte-order mark")
    (magic,) = struct.unpack_from(e + "H", buf, base + 2)
    if magic == 42:
        (ifd,) = struct.unpack_from(e + "I", buf, base + 4)
        (count,) = struct.unpack_from(e + "H", buf, base + ifd)
        first, size, head, inline = base + ifd + 2, 12, e + "HHI", 4
    elif magic == 43:
        (ifd,) = struct.unpack_from(e + "Q", buf, base + 8)
        (count,) = struct.unpack_from(e + "Q", buf, base + ifd)
        first, size, head, inline = base + ifd + 8, 20, e + "HHQ", 8
    else:
        raise ValueError(f"bad TIFF magic number {magic}")
    if first + count * size + inline > len(buf):  # entries plus the next-IFD pointer
        raise ValueError("TIFF directory is cut off")
    entries = []
    for i in range(count):
        pos = first + i * size
        tag, field_type, n = struct.unpack_from(head, buf, pos)
        entries.append((e, tag, field_type, n, pos + size - inline, inline))
    return entries


def _ifd0_entry(buf: bytes | bytearray, base: int, tag: int) -> tuple[str, int, int, int, int] | None:
    """(byte order, field type, count, value-field position, inline bytes) of one IFD0 tag, or None."""
    for e, entry_tag, field_type, count, pos, inline in _ifd0_entries(buf, base):
        if entry_tag == tag:
            return e, field_type, count, pos, inline
    return None


def _ifd0_values(buf: bytes | bytearray, base: int, tag: int) -> list[int] | None:
    """The integer values (SHORT/LONG/LONG8) of an IFD0 tag, following the offset if not inline."""
    found = _ifd0_entry(buf, base, tag)
    if found is None:
        return None
    e, field_type, count, pos, inline = found
    code = {3: "H", 4: "I", 16: "Q"}.get(field_type)
    if code is None:
        return None
    if struct.calcsize(code) * count > inline:
        (pos,) = struct.unpack_from(e + ("I" if inline == 4 else "Q"), buf, pos)
        pos += base
    return list(struct.unpack_from(f"{e}{count}{code}", buf, pos))


def _ifd0_bytes(buf: bytes | bytearray, base: int, tag: int) -> bytes | None:
    """The raw value bytes of an IFD0 tag of type BYTE/UNDEFINED (e.g. the ICC profile)."""
    found = _ifd0_entry(buf, base, tag)
    if found is None:
        return None
    e, field_type, count, pos, inline = found
    if field_type not in (1, 7):
        return None
    if count > inline:
        (pos,) = struct.unpack_from(e + ("I" if inline == 4 else "Q"), buf, pos)
        pos += base
    if pos + count > len(buf):
        raise ValueError("TIFF tag value is cut off")
    return bytes(buf[pos : pos + count])


def _patch_ifd0_short(buf: bytearray, base: int, tag: int, value: int) -> bool:
    """Overwrite a single-valued SHORT/LONG tag of IFD0 in place; False if absent or not patchable.

    In-place patching keeps every other byte (maker notes, offsets) exactly as the camera wrote it.
    """
    found = _ifd0_entry(buf, base, tag)
    if found is None:
        return False
    e, field_type, count, pos, _ = found
    if count != 1 or field_type not in (3, 4):
        return False
    struct.pack_into(e + ("H" if field_type == 3 else "I"), buf, pos, value)
    return True


def _normalize_exif(raw: bytes | None) -> bytes | None:
    """EXIF as ``b"Exif\\0\\0" + TIFF structure`` (what Pillow's JPEG writer and Exif.tobytes use)."""
    if not raw:
        return None
    if raw.startswith(_EXIF_PREFIX):
        return bytes(raw)
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        return _EXIF_PREFIX + bytes(raw)
    return None


def _exif_orientation(exif: bytes | None) -> int:
    """EXIF Orientation 1..8 (1 when absent, unreadable or out of range)."""
    if not exif:
        return 1
    try:
        values = _ifd0_values(exif, len(_EXIF_PREFIX), _TAG_ORIENTATION)
        if not values:
            return 1
        value = values[0]
    except (ValueError, struct.error):
        try:  # let Pillow's more forgiving parser have a go
            ex = Image.Exif()
            ex.load(exif)
            value = int(ex.get(_TAG_ORIENTATION, 1))
        except Exception:
            return 1
    return value if 1 <= value <= 8 else 1


def _exif_upright(exif: bytes | None, path: Path) -> bytes | None:
    """EXIF with Orientation set to 1 (pixels are stored upright); None if it cannot be done safely."""
    if not exif:
        return None
    buf = bytearray(exif)
    try:
        if _ifd0_entry(buf, len(_EXIF_PREFIX), _TAG_ORIENTATION) is None:
            return exif
        if _patch_ifd0_short(buf, len(_EXIF_PREFIX), _TAG_ORIENTATION, 1):
            return bytes(buf)
    except (ValueError, struct.error):
        pass
    try:  # unusual layout: re-serialise with Pillow (may renumber offsets, keeps the tags)
        ex = Image.Exif()
        ex.load(exif)
        ex[_TAG_ORIENTATION] = 1
        return ex.tobytes()
    except Exception:
        _warn(f"{path}: EXIF data is malformed and was dropped (its Orientation could not be reset)")
        return None


def _tiff_exif(im: Any, path: Path) -> bytes | None:
    """The descriptive part of a TIFF's IFD0 plus its EXIF/GPS sub-IFDs, as an EXIF block."""
    try:
        ex = im.getexif()
        for tag in list(ex):
            if tag not in _TIFF_EXIF_TAGS:
                del ex[tag]
        if not len(ex):
            return None
        if _TAG_ORIENTATION in ex:
            ex[_TAG_ORIENTATION] = 1
        return _normalize_exif(ex.tobytes())
    except Exception:
        _warn(f"{path}: the TIFF's EXIF tags could not be parsed and were dropped")
        return None


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (1..8) upright (same mapping as exif_transpose)."""
    if orientation == 2:
        out = pixels[:, ::-1]
    elif orientation == 3:
        out = pixels[::-1, ::-1]
    elif orientation == 4:
        out = pixels[::-1]
    elif orientation == 5:
        out = pixels.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(pixels, k=-1)
    elif orientation == 7:
        out = pixels[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(pixels, k=1)
    else:
        return pixels
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- completeness checks

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# A JPEG marker: 0xFF then a code that is not stuffing (00), a restart (D0-D7) or fill (FF).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def _png_chunks(data: bytes) -> dict[bytes, list[tuple[int, int]]]:
    """Walk PNG chunks up to IEND: {type: [(payload start, length)]}. ValueError says what is missing."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    chunks: dict[bytes, list[tuple[int, int]]] = {}
    pos, n = len(_PNG_SIGNATURE), len(data)
    while True:
        if pos + 8 > n:
            raise ValueError("PNG ends before its IEND chunk")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > n:
            raise ValueError(f"PNG ends inside its {ctype.decode('latin-1')!r} chunk")
        chunks.setdefault(ctype, []).append((pos + 8, length))
        pos += 12 + length
        if ctype == b"IEND":
            return chunks


def _jpeg_complete(data: bytes) -> bool:
    """True if the primary JPEG image runs to its EOI marker.

    Segments are skipped by their lengths and entropy-coded data is searched for the next real
    marker, so bytes appended after EOI (MPO pictures, motion-photo videos) can't fool the check.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    pos, n = 2, len(data)
    while True:
        m = _JPEG_MARKER.search(data, pos)
        if m is None:
            return False
        code = data[m.start() + 1]
        pos = m.end()
        if code == 0xD9:
            return True
        if code in (0xD8, 0x01):  # markers without a length field
            continue
        if pos + 2 > n:
            return False
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if pos > n:
            return False


def _tiff_incomplete(data: bytes) -> str | None:
    """Why the TIFF's IFD0 or pixel data (strips or tiles) is cut off, or None if it is all there."""
    try:
        for e, _, field_type, count, pos, inline in _ifd0_entries(data, 0):
            size = _TIFF_TYPE_SIZES.get(field_type, 1) * count
            if size > inline:
                (at,) = struct.unpack_from(e + ("I" if inline == 4 else "Q"), data, pos)
                if at + size > len(data):
                    return "TIFF ends inside its directory"
        offsets = _ifd0_values(data, 0, 273) or _ifd0_values(data, 0, 324)
        counts = _ifd0_values(data, 0, 279) or _ifd0_values(data, 0, 325)
    except (ValueError, struct.error):
        return "TIFF directory is cut off"
    if offsets and counts and len(offsets) == len(counts):
        end = max(o + c for o, c in zip(offsets, counts, strict=True))
        if end > len(data):
            return "TIFF ends inside its pixel data"
    return None


def _sniff(data: bytes) -> str | None:
    """Format from the magic bytes, so the structure can be checked before any parser runs."""
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in _TIFF_MAGICS:
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return None


def _check_complete(path: Path, data: bytes, fmt: str) -> dict[bytes, list[tuple[int, int]]]:
    """Raise ImageReadError for a truncated file; returns PNG chunks (empty for other formats)."""
    reason = None
    chunks: dict[bytes, list[tuple[int, int]]] = {}
    if fmt == "png":
        try:
            chunks = _png_chunks(data)
        except (ValueError, struct.error) as e:
            reason = str(e)
    elif fmt == "jpeg":
        if not _jpeg_complete(data):
            reason = "JPEG ends before its end-of-image marker"
    elif fmt == "webp":
        if len(data) < 12 or int.from_bytes(data[4:8], "little") + 8 > len(data):
            reason = "WebP is shorter than its RIFF header declares"
    elif fmt == "tiff":
        reason = _tiff_incomplete(data)
    elif fmt == "bmp":
        declared = int.from_bytes(data[2:6], "little") if len(data) >= 6 else 0
        if declared > len(data):
            reason = "BMP is shorter than its header declares"
    if reason:
        raise ImageReadError(path, f"file is truncated or corrupt ({reason})")
    return chunks


# --------------------------------------------------------------------------- reading

_PIL_LIMIT_LOCK = threading.Lock()


class _TiffHeader:
    """The little of a Pillow image that read_image uses, parsed from a TIFF's IFD0.

    For TIFFs Pillow cannot open although OpenCV decodes them, e.g. float32 RGB (Pillow has no
    such mode). EXIF sub-IFDs are not parsed here; the ICC profile and Orientation are.
    """

    format = "TIFF"

    def __init__(self, data: bytes) -> None:
        def first(tag: int) -> int | None:
            values = _ifd0_values(data, 0, tag)
            return values[0] if values else None

        width, height = first(256), first(257)
        if not width or not height:
            raise ValueError("TIFF without ImageWidth/ImageLength")
        self.size = (width, height)
        self.tag_v2: dict[int, Any] = {
            256: width,
            257: height,
            _TAG_ORIENTATION: first(_TAG_ORIENTATION) or 1,
        }
        extra = first(_TAG_EXTRA_SAMPLES)
        if extra is not None:
            self.tag_v2[_TAG_EXTRA_SAMPLES] = (extra,)
        self.info: dict[str, Any] = {}
        icc = _ifd0_bytes(data, 0, _TAG_ICC)
        if icc:
            self.info["icc_profile"] = icc

    def getexif(self) -> Image.Exif:
        return Image.Exif()

    def close(self) -> None:
        pass


def _open_header(path: Path, data: bytes) -> Any:
    """Pillow object with the header parsed and no pixels decoded.

    Pillow's own bomb limit (MAX_IMAGE_PIXELS, process-wide: warns over 89 Mpx, refuses over
    179 Mpx, with no size in the error) is switched off for this header-only open, under a lock,
    and restored right after: ours replaces it, is configurable, and is checked on the returned
    size before anything is decoded. Pillow never decodes pixels for us. The price: another
    thread opening an image through Pillow during that header parse skips Pillow's check.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:  # only if someone re-set the limit concurrently
            raise ImageReadError(path, f"{e} (set {ENV_MAX_PIXELS} to raise the limit)") from e
        except UnidentifiedImageError:
            if data[:4] in _TIFF_MAGICS:
                try:
                    return _TiffHeader(data)
                except (ValueError, struct.error):
                    pass
            names = ", ".join(SUPPORTED_FORMATS)
            raise ImageReadError(
                path, f"not an image file, or not a format superres reads ({names})"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            raise ImageReadError(path, f"cannot parse the image header ({e})") from e
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read the file ({e.strerror or e})") from e
    if not data:
        raise ImageReadError(path, "file is empty (0 bytes)")
    return data


def _tiff_for_cv2(data: bytes, im: Any) -> tuple[bytes | bytearray, int]:
    """TIFF bytes OpenCV decodes as stored, and the ExtraSamples value that was there.

    OpenCV applies the TIFF Orientation tag itself and, for 8-bit RGBA with ExtraSamples=2
    (unassociated alpha), premultiplies through libtiff's RGBA interface. Patching IFD0 to
    Orientation=1 / ExtraSamples=0 in a copy gives the raw samples; orientation and alpha
    association are then handled like for every other format.
    """
    tags = getattr(im, "tag_v2", {})
    orientation = tags.get(_TAG_ORIENTATION, 1)
    extra = tags.get(_TAG_EXTRA_SAMPLES, ())
    extra_value = int(extra[0]) if isinstance(extra, tuple) and len(extra) == 1 else 0
    if orientation == 1 and extra_value == 0:
        return data, 0
    buf = bytearray(data)
    try:
        if orientation != 1:
            _patch_ifd0_short(buf, 0, _TAG_ORIENTATION, 1)
        if extra_value:
            _patch_ifd0_short(buf, 0, _TAG_EXTRA_SAMPLES, 0)
    except (ValueError, struct.error):
        return data, 0
    return buf, extra_value


def _to_rgb_layout(path: Path, arr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A)/gray result as HxWxC RGB(A)/gray in uint8, uint16 or float32."""
    if arr.dtype in (np.float64, np.float16):
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(
            path, f"unsupported sample type {arr.dtype} (superres handles 8/16-bit and float)"
        )
    if arr.ndim == 2:
        return arr[:, :, None]
    channels = arr.shape[2]
    if channels == 1:
        return arr
    if channels == 2:  # gray + alpha (never produced by cv2's PNG reader, maybe by others)
        g, a = arr[..., 0], arr[..., 1]
        return np.ascontiguousarray(np.stack([g, g, g, a], axis=-1))
    if channels == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    raise ImageReadError(path, f"unsupported channel count {channels}")


def _png_gray_key_alpha(
    data: bytes, chunks: dict[bytes, list[tuple[int, int]]], gray: np.ndarray
) -> np.ndarray | None:
    """RGBA for a gray PNG with a tRNS colour key (OpenCV ignores that transparency), else None."""
    if b"tRNS" not in chunks or b"IHDR" not in chunks:
        return None
    ihdr, _ = chunks[b"IHDR"][0]
    bit_depth, colour_type = data[ihdr + 8], data[ihdr + 9]
    start, length = chunks[b"tRNS"][0]
    if colour_type != 0 or bit_depth not in (8, 16) or length != 2:
        return None
    key = int.from_bytes(data[start : start + 2], "big")
    g = gray[..., 0]
    alpha = np.where(g == key, 0, np.iinfo(g.dtype).max).astype(g.dtype)
    return np.stack([g, g, g, alpha], axis=-1)


def _unassociate(pixels: np.ndarray) -> np.ndarray:
    """Straight alpha from associated (premultiplied) integer RGBA samples, rounded."""
    maxv = float(np.iinfo(pixels.dtype).max)
    rgb = pixels[..., :3].astype(np.float32)
    alpha = pixels[..., 3:].astype(np.float32)
    out = np.zeros_like(rgb)
    np.divide(rgb * maxv, alpha, out=out, where=alpha > 0)
    np.clip(np.rint(out), 0, maxv, out=out)
    return np.concatenate([out.astype(pixels.dtype), pixels[..., 3:]], axis=-1)


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> ImageData:
    """Read an image upright, with its bit depth, alpha, ICC profile and EXIF intact.

    Raises ImageReadError (message starts with the path) for a missing, empty, truncated, corrupt,
    unsupported or oversized file. ``max_pixels`` overrides ``$SUPERRES_MAX_PIXELS`` and
    ``MAX_PIXELS``; it is checked against the header before any pixel is decoded.
    Gray+alpha and palette images come back as RGBA (or RGB without transparency).
    """
    p = Path(path)
    limit = max_pixels_limit(max_pixels)
    data = _read_bytes(p)
    # Structure first (cheap, decodes nothing): a cut-off file gets a "truncated" error rather
    # than whatever a parser trips over.
    sniffed = _sniff(data)
    chunks = _check_complete(p, data, sniffed) if sniffed else {}
    im = _open_header(p, data)
    try:
        fmt = _PIL_FORMATS.get(im.format or "")
        if fmt is None:
            names = ", ".join(SUPPORTED_FORMATS)
            raise ImageReadError(p, f"unsupported format {im.format} (superres reads {names})")
        width, height = im.size
        if fmt == "tiff":  # stored size: Pillow reports TIFF Orientation 5-8 already swapped
            tags = getattr(im, "tag_v2", {})
            width, height = int(tags.get(256, width)), int(tags.get(257, height))
        if width * height > limit:
            raise ImageReadError(
                p,
                f"image is {width}x{height} = {_mpx(width * height)} Mpx, over the limit of "
                f"{_mpx(limit)} Mpx (set {ENV_MAX_PIXELS} to raise it)",
            )
        if fmt != sniffed:
            chunks = _check_complete(p, data, fmt)

        # Metadata, from the header Pillow already parsed.
        icc = im.info.get("icc_profile") or None
        if fmt == "tiff":
            exif = _tiff_exif(im, p)
            orientation = int(getattr(im, "tag_v2", {}).get(_TAG_ORIENTATION, 1))
        else:
            raw = im.info.get("exif")
            if not raw and b"eXIf" in chunks:  # PNG eXIf after IDAT: Pillow only sees it after load()
                start, length = chunks[b"eXIf"][0]
                raw = data[start : start + length]
            exif = _normalize_exif(raw)
            orientation = _exif_orientation(exif)
        orientation = orientation if 1 <= orientation <= 8 else 1
        extra_samples = 0
        buf: bytes | bytearray = data
        if fmt == "tiff":
            buf, extra_samples = _tiff_for_cv2(data, im)
    finally:
        im.close()

    try:
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ImageReadError(p, f"cannot decode the pixel data ({str(e).strip().splitlines()[-1]})") from e
    del buf
    if arr is None:
        hint = ""
        if width * height > _CV_DEFAULT_MAX_PIXELS:
            hint = "; OpenCV also refuses images over CV_IO_MAX_IMAGE_PIXELS, default 2**30 pixels"
        raise ImageReadError(p, f"cannot decode the pixel data (corrupt or truncated file{hint})")
    if arr.shape[:2] != (height, width):
        raise ImageReadError(
            p, f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header's {width}x{height}"
        )
    pixels = _to_rgb_layout(p, arr)
    if pixels.shape[2] == 1 and fmt == "png":
        keyed = _png_gray_key_alpha(data, chunks, pixels)
        if keyed is not None:
            pixels = keyed
    if extra_samples == 1 and pixels.shape[2] == 4 and pixels.dtype != np.float32:
        pixels = _unassociate(pixels)
    pixels = apply_orientation(pixels, orientation)

    if icc is not None:
        problem = _icc_problem(icc, pixels.shape[2])
        if problem:
            _warn(f"{p}: {problem}; profile dropped")
            icc = None
    if fmt != "tiff":  # _tiff_exif already wrote Orientation=1
        exif = _exif_upright(exif, p)
    return ImageData(pixels=pixels, icc_profile=icc, exif=exif, source_format=fmt, path=p)


# --------------------------------------------------------------------------- choosing a format


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
        fmt = _normalize_format(requested)
        if fmt is None:
            raise ValueError(
                f"unknown output format {requested!r}; choose from {', '.join(SUPPORTED_FORMATS)}"
            )
    else:
        fmt = _normalize_format(src_format) or "png"
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
    elif size is not None and chosen == "webp" and max(size) > _WEBP_MAX_SIDE:
        chosen = "png" if has_alpha else "jpeg"
        why = f"{size[0]}x{size[1]} pixels (WebP stops at {_WEBP_MAX_SIDE} a side)"
    elif size is not None and chosen == "jpeg" and max(size) > _JPEG_MAX_SIDE:
        chosen = "png"
        why = f"{size[0]}x{size[1]} pixels (JPEG stops at {_JPEG_MAX_SIDE} a side)"
    if chosen != fmt:
        _warn(f"{fmt.upper()} cannot hold {why}; writing {chosen.upper()} instead")
    return chosen


# --------------------------------------------------------------------------- writing


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
        extra.append(_png_chunk(b"eXIf", exif[len(_EXIF_PREFIX) :]))
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
        entries[_TAG_ICC] = struct.pack(e + "HHII", _TAG_ICC, 7, len(icc), end)
        pieces.append(icc)
        end += len(icc)
        if end % 2:
            pieces.append(b"\x00")
            end += 1
    if extra_samples is not None:
        entries[_TAG_EXTRA_SAMPLES] = struct.pack(e + "HHIH2x", _TAG_EXTRA_SAMPLES, 3, 1, extra_samples)
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
                _warn(f"ICC profile / alpha tag not added to the TIFF ({e})")
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


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_UMASK = _current_umask()


def _atomic_write(path: Path, pieces: Iterable[Any]) -> None:
    """Write ``pieces`` to ``path`` via a hidden temporary file in the same directory + os.replace.

    The temporary file is fsynced before the rename, so after a crash the destination holds either
    the old file or the complete new one. The new file gets the old file's mode (or the umask's).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not possible everywhere (e.g. Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
        fmt = _normalize_format(format)
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
    if fmt == "webp" and max(arr.shape[:2]) > _WEBP_MAX_SIDE:
        raise ImageWriteError(
            p, f"WebP cannot store {arr.shape[1]}x{arr.shape[0]} (max {_WEBP_MAX_SIDE} a side)"
        )
    if fmt == "jpeg" and max(arr.shape[:2]) > _JPEG_MAX_SIDE:
        raise ImageWriteError(
            p, f"JPEG cannot store {arr.shape[1]}x{arr.shape[0]} (max {_JPEG_MAX_SIDE} a side)"
        )
    if quality is not None and not 1 <= quality <= 100:
        raise ImageWriteError(p, f"quality must be 1-100, got {quality}")

    icc = icc_profile or None
    if icc is not None:
        problem = _icc_problem(icc, 3 if fmt == "webp" else channels)
        if fmt == "bmp":
            problem = "BMP output carries no ICC profile"
        if problem:
            _warn(f"{p}: {problem}; profile not written")
            icc = None
    exif_out = _exif_upright(_normalize_exif(exif), p) if exif else None
    if exif and exif_out is None and _normalize_exif(exif) is None:
        _warn(f"{p}: EXIF data is not a TIFF structure; not written")
    if exif_out and fmt in ("tiff", "bmp"):
        _warn(f"{p}: EXIF is not written to {fmt.upper()} output")
        exif_out = None

    try:
        pieces = _encode(fmt, arr, icc, exif_out, quality)
        _atomic_write(p, pieces)
    except ImageError:
        raise
    except Exception as e:  # encoder or file system: the caller needs one error type per file
        raise ImageWriteError(p, f"cannot write {fmt.upper()} ({type(e).__name__}: {e})") from e
