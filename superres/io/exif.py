"""EXIF and TIFF directory (IFD0) parsing, and EXIF orientation.

Metadata goes through Pillow where it can; these small parsers exist because the few fields
that matter (Orientation, ExtraSamples, the ICC profile, strip extents) must be read and
patched *in place* in bytes Pillow does not round-trip: in-place patching keeps every other
byte (maker notes, offsets) exactly as the camera wrote it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from superres.io.errors import warn

TAG_ORIENTATION = 0x0112
TAG_EXTRA_SAMPLES = 338
TAG_ICC = 34675
EXIF_PREFIX = b"Exif\x00\x00"
# IFD0 tags worth carrying from a TIFF into EXIF; the rest of a TIFF's IFD0 describes its own
# strips and samples and would be nonsense in another file.
_TIFF_EXIF_TAGS = frozenset({270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432, 0x8769, 0x8825})

# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., LONG8, IFD8).
TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
                   13: 4, 16: 8, 17: 8, 18: 8}  # fmt: skip


def ifd0_entries(buf: bytes | bytearray, base: int) -> list[tuple[str, int, int, int, int, int]]:
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
    for e, entry_tag, field_type, count, pos, inline in ifd0_entries(buf, base):
        if entry_tag == tag:
            return e, field_type, count, pos, inline
    return None


def ifd0_values(buf: bytes | bytearray, base: int, tag: int) -> list[int] | None:
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


def ifd0_bytes(buf: bytes | bytearray, base: int, tag: int) -> bytes | None:
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


def patch_ifd0_short(buf: bytearray, base: int, tag: int, value: int) -> bool:
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


def normalize_exif(raw: bytes | None) -> bytes | None:
    """EXIF as ``b"Exif\\0\\0" + TIFF structure`` (what Pillow's JPEG writer and Exif.tobytes use)."""
    if not raw:
        return None
    if raw.startswith(EXIF_PREFIX):
        return bytes(raw)
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        return EXIF_PREFIX + bytes(raw)
    return None


def exif_orientation(exif: bytes | None) -> int:
    """EXIF Orientation 1..8 (1 when absent, unreadable or out of range)."""
    if not exif:
        return 1
    try:
        values = ifd0_values(exif, len(EXIF_PREFIX), TAG_ORIENTATION)
        if not values:
            return 1
        value = values[0]
    except (ValueError, struct.error):
        try:  # let Pillow's more forgiving parser have a go
            ex = Image.Exif()
            ex.load(exif)
            value = int(ex.get(TAG_ORIENTATION, 1))
        except Exception:
            return 1
    return value if 1 <= value <= 8 else 1


def exif_upright(exif: bytes | None, path: Path) -> bytes | None:
    """EXIF with Orientation set to 1 (pixels are stored upright); None if it cannot be done safely."""
    if not exif:
        return None
    buf = bytearray(exif)
    try:
        if _ifd0_entry(buf, len(EXIF_PREFIX), TAG_ORIENTATION) is None:
            return exif
        if patch_ifd0_short(buf, len(EXIF_PREFIX), TAG_ORIENTATION, 1):
            return bytes(buf)
    except (ValueError, struct.error):
        pass
    try:  # unusual layout: re-serialise with Pillow (may renumber offsets, keeps the tags)
        ex = Image.Exif()
        ex.load(exif)
        ex[TAG_ORIENTATION] = 1
        return ex.tobytes()
    except Exception:
        warn(f"{path}: EXIF data is malformed and was dropped (its Orientation could not be reset)")
        return None


def tiff_exif(im: Any, path: Path) -> bytes | None:
    """The descriptive part of a TIFF's IFD0 plus its EXIF/GPS sub-IFDs, as an EXIF block."""
    try:
        ex = im.getexif()
        for tag in list(ex):
            if tag not in _TIFF_EXIF_TAGS:
                del ex[tag]
        if not len(ex):
            return None
        if TAG_ORIENTATION in ex:
            ex[TAG_ORIENTATION] = 1
        return normalize_exif(ex.tobytes())
    except Exception:
        warn(f"{path}: the TIFF's EXIF tags could not be parsed and were dropped")
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
