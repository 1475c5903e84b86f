"""What the decoders say, captured per file instead of printed on the process's stderr.

libjpeg, libpng and libtiff (inside OpenCV) print their complaints with ``fprintf(stderr)``, and
OpenCV logs its own (``imdecode_``, ``TIFF_Error``) the same way: the only way to tie a message to
the file is to point file descriptor 2 somewhere else while that file decodes. Those messages
are also the only sign that data was damaged (libjpeg fills a corrupt scan with grey, libtiff a
broken strip with black, and both return success), so they are classified here into
*damage* (the read fails unless damaged images are allowed), *unsupported* (always fails),
*notes* (the caller prints them as ``warning: PATH: ...``) and *quiet* (colour-profile pedantry,
unknown private TIFF tags: said nothing about the pixels, shown to nobody).

File descriptors are process-wide: one decode at a time holds :data:`DECODE_LOCK` while fd 2 is
swapped, so decodes in threads are serialised (they are short next to an upscale). Anything
another thread writes to fd 2 during that window lands in this file's messages, not on stderr.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from superres.io.errors import ImageWarning

DECODE_LOCK = threading.RLock()
_MAX_CAPTURE = 64 << 10  # a hostile TIFF can make libtiff print a line per tag: keep the first 64 KiB
_MAX_LINES = 20

# "[ WARN:0@0.085] global grfmt_tiff.cpp:117 TIFF_Error " -> kind "TIFF_Error", rest is the message.
_CV_PREFIX = re.compile(r"^\[\s*(?:WARN|ERROR|INFO|FATAL|DEBUG)[^\]]*\]\s+(?:global\s+)?\S+:\d+\s+")
_CV_TIFF = re.compile(r"^\[\s*(?:WARN|ERROR)[^\]]*\].*?\b(TIFF_Error|TIFF_Warning)\s+(.*)$")
_TIFF_UNSUPPORTED = re.compile(r"compression scheme \d+|not (?:implemented|configured|supported)", re.I)
# libpng warnings that do not mean the pixels are wrong (colour-profile pedantry, API notes).
_PNG_BENIGN = re.compile(
    r"^(?:iCCP|sRGB|cHRM|gAMA|sBIT|pHYs|tIME|tEXt|zTXt|iTXt|bKGD|eXIf):|Interlace handling", re.I
)
# libtiff warnings that do not mean the pixels are wrong (private camera tags and the like).
_TIFF_BENIGN = re.compile(
    r"Unknown field with tag|unknown field|ASCII value for tag|Nonstandard tile"
    r"|Defining non-color channels",  # what our own ExtraSamples=0 patch for OpenCV makes it say
    re.I,
)
# "Corrupt JPEG data: 2 extraneous bytes before marker 0xd9": padding some cameras leave before
# the end-of-image marker after a complete scan. A few fill bytes (0x00 or 0xFF) are a note; other
# bytes there are scan data the decoder lost its way in (a damaged scan ends the same way), and
# more than a few are damage either way. ``settle_jpeg_padding`` looks at the bytes themselves.
_JPEG_PADDING = re.compile(r"Corrupt JPEG data: (\d+) extraneous bytes before marker 0xd9")
_JPEG_PADDING_MAX = 16
_JPEG_FILL = frozenset((0x00, 0xFF))
# libjpeg's warnings (JWRN_*) that mean the scan data is wrong; it fills what it cannot decode.
_JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG", "Invalid SOS", "Inconsistent progression",
                "Bogus ", "Huffman table", "Invalid JPEG", "Unsupported JPEG")  # fmt: skip


@dataclass
class DecoderReport:
    """What one decode said, sorted by consequence. Messages carry no path: the caller adds it."""

    damage: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)  # harmless pedantry, not shown to anyone

    def settle_jpeg_padding(self, data: bytes) -> None:
        """Keep a padding note only when the bytes before the final EOI marker are fill bytes."""
        end = data.rfind(b"\xff\xd9")
        kept = []
        for note in self.notes:
            pad = _JPEG_PADDING.search(note)
            count = int(pad.group(1)) if pad else 0
            if pad and (end < count or not set(data[end - count:end]) <= _JPEG_FILL):
                self.damage.append(note)
            else:
                kept.append(note)
        self.notes = kept

    def add_text(self, text: str) -> None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for line in lines[:_MAX_LINES]:
            kind, message = classify(line)
            getattr(self, kind).append(message)
        if len(lines) > _MAX_LINES:
            self.notes.append(f"{len(lines) - _MAX_LINES} more decoder messages not shown")


def classify(line: str) -> tuple[str, str]:
    """('damage' | 'unsupported' | 'notes' | 'quiet', readable message) for one decoder line."""
    tiff = _CV_TIFF.match(line)
    if tiff:
        kind, message = tiff.groups()
        message = f"libtiff: {message}"
        if kind == "TIFF_Error":
            return ("unsupported" if _TIFF_UNSUPPORTED.search(message) else "damage"), message
        return ("quiet" if _TIFF_BENIGN.search(message) else "notes"), message
    if line.startswith("libpng error:"):
        return "damage", line
    if line.startswith("libpng warning:"):
        body = line.split(":", 1)[1].strip()
        return ("quiet" if _PNG_BENIGN.search(body) else "damage"), line
    if line.startswith(_JPEG_DAMAGE):
        pad = _JPEG_PADDING.match(line)
        if pad and int(pad.group(1)) <= _JPEG_PADDING_MAX:
            return "notes", f"libjpeg: {line}"
        return "damage", f"libjpeg: {line}"
    if line.startswith("["):  # OpenCV's own log line
        message = _CV_PREFIX.sub("", line) or line
        if re.match(r"^\[\s*(?:ERROR|FATAL)", line) or "imdecode_" in line or "can't read" in line:
            return "damage", f"OpenCV: {message}"
        return "notes", f"OpenCV: {message}"
    return "notes", line


def _sink() -> int | None:
    """A file descriptor to point fd 2 at: anonymous memory where possible, else a temp file."""
    try:
        return os.memfd_create("superres-decoder-stderr", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        pass
    try:
        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())
    except OSError:
        return None


def _read_back(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, left = [], _MAX_CAPTURE
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@contextmanager
def native_stderr(report: DecoderReport) -> Iterator[None]:
    """Point fd 2 at a private sink for the block; its text goes into ``report``. Always restored.

    Call with :data:`DECODE_LOCK` held. If no sink can be made, the block runs uncaptured.
    """
    sink = _sink()
    if sink is None:
        yield
        return
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()  # Python's own buffered text belongs on the real stderr
        except (OSError, ValueError):
            pass
    try:
        saved: int | None = os.dup(2)
    except OSError:  # fd 2 closed: the sink becomes fd 2 for the block, then is closed again
        saved = None
    try:
        os.dup2(sink, 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
            else:
                os.close(2)
            report.add_text(_read_back(sink))
    finally:
        if saved is not None:
            os.close(saved)
        os.close(sink)


def _ours(w: warnings.WarningMessage) -> bool:
    """A warning raised by this read (ours or Pillow's), not by some other thread meanwhile."""
    if issubclass(w.category, ImageWarning):
        return True
    name = w.filename.replace("\\", "/")
    return "/PIL/" in name or "/superres/io/" in name


@contextmanager
def python_warnings(notes: list[str]) -> Iterator[None]:
    """Collect the Python warnings of the block into ``notes``; others' warnings are passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, ImageWarning):
            notes.append(str(w.message))
        elif _ours(w):
            notes.append(f"{w.category.__name__}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
