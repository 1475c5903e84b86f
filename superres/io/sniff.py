"""Format sniffing and completeness checks, done on the raw bytes before any parser runs.

libjpeg-style decoders only warn about a premature end and fill the rest with grey; a
truncated file must be an error, not a silently half-grey result. So the structure is walked
first (PNG chunks up to IEND, JPEG markers up to EOI, RIFF size of WebP, TIFF directory and
strip/tile extents, BMP file size): cheap, and nothing is decoded.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from superres.io.errors import ImageReadError
from superres.io.exif import TIFF_TYPE_SIZES, ifd0_entries, ifd0_values

# {chunk type: [(payload start, length)]} of a PNG, in file order.
PngChunks = dict[bytes, list[tuple[int, int]]]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# A JPEG marker: 0xFF then a code that is not stuffing (00), a restart (D0-D7) or fill (FF).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def _png_chunks(data: bytes) -> PngChunks:
    """Walk PNG chunks up to IEND: {type: [(payload start, length)]}. ValueError says what is missing."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    chunks: PngChunks = {}
    pos, n = len(PNG_SIGNATURE), len(data)
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
        for e, _, field_type, count, pos, inline in ifd0_entries(data, 0):
            size = TIFF_TYPE_SIZES.get(field_type, 1) * count
            if size > inline:
                (at,) = struct.unpack_from(e + ("I" if inline == 4 else "Q"), data, pos)
                if at + size > len(data):
                    return "TIFF ends inside its directory"
        offsets = ifd0_values(data, 0, 273) or ifd0_values(data, 0, 324)
        counts = ifd0_values(data, 0, 279) or ifd0_values(data, 0, 325)
    except (ValueError, struct.error):
        return "TIFF directory is cut off"
    if offsets and counts and len(offsets) == len(counts):
        end = max(o + c for o, c in zip(offsets, counts, strict=True))
        if end > len(data):
            return "TIFF ends inside its pixel data"
    return None


def sniff_format(data: bytes) -> str | None:
    """Format from the magic bytes, so the structure can be checked before any parser runs."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in TIFF_MAGICS:
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return None


def check_complete(path: Path, data: bytes, fmt: str) -> PngChunks:
    """Raise ImageReadError for a truncated file; returns PNG chunks (empty for other formats)."""
    reason = None
    chunks: PngChunks = {}
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


# Compression codes libtiff knows (tif_codec.c); any other value cannot decode at all, and
# OpenCV would return an all-black image for it. Whether a known codec was built in shows at decode.
TIFF_COMPRESSIONS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 32766, 32771, 32773, 32809, 32908, 32909, 32946,
                               34661, 34676, 34677, 34887, 34925, 50000, 50001, 50002})  # fmt: skip
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # samples per pixel by IHDR colour type


def png_crc_errors(data: bytes, chunks: PngChunks) -> list[str]:
    """One line per PNG chunk whose CRC does not match: flipped bytes anywhere, APNG frames included.

    libpng checks only what it decodes (OpenCV decodes the first frame), so this is the one check
    that sees damage in animation frames; it costs about a millisecond per megabyte.
    """
    bad: dict[str, int] = {}
    for ctype, spans in chunks.items():
        for start, length in spans:
            stored = int.from_bytes(data[start + length : start + length + 4], "big")
            if zlib.crc32(data[start - 4 : start + length]) != stored:
                name = ctype.decode("latin-1")
                bad[name] = bad.get(name, 0) + 1
    return [f"PNG chunk {name!r} fails its CRC check" + (f" ({n} chunks)" if n > 1 else "")
            for name, n in bad.items()]


def tiff_compression(data: bytes) -> int | None:
    """IFD0's Compression tag (259), or None if absent or unreadable."""
    try:
        values = ifd0_values(data, 0, 259)
    except (ValueError, struct.error):
        return None
    return values[0] if values else None


def declared_bytes(fmt: str, data: bytes, width: int, height: int, bands: int) -> int:
    """Bytes of samples the header says the coded data holds (before any conversion by the decoder).

    ``bands`` is the channel count Pillow reports, used where the format's own field is not parsed.
    The denominator of the compression-ratio limit: what the decoder will produce or fill in.
    """
    bits = 8 * bands
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            depth, colour = data[24], data[25]
            bits = depth * _PNG_SAMPLES.get(colour, 4)
        elif fmt == "tiff":
            samples = ifd0_values(data, 0, 277) or [1]
            depth = ifd0_values(data, 0, 258) or [1]
            bits = max(1, samples[0]) * max(1, depth[0])
        elif fmt == "bmp" and len(data) >= 30:
            bits = max(1, int.from_bytes(data[28:30], "little"))
    except (ValueError, struct.error, IndexError):
        pass
    return height * ((width * bits + 7) // 8)
