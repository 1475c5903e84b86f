"""The decoder oracle of the fuzz cases: what OpenCV and Pillow say about a file, captured.

The CLI decodes with the same libraries, so a message recorded here when a case is made tells
the harness which case printed a stray stderr line, and an error-level message is what makes a
flipped-bytes case "damaged" (expected to fail). Kept apart from tests/fuzz_cases.py (the case
makers) so that each stays short.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import Image

_DAMAGE = re.compile(r"corrupt|premature|error|invalid|bad |broken|truncat|can't|cannot|unexpected|too many",
                     re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^\[\s*[A-Z]+:\d+@[\d.]+\]\s*")


@contextlib.contextmanager
def _captured_fd2() -> Iterator[list[str]]:
    """Everything C libraries write to file descriptor 2 inside the block."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when Pillow cannot parse it."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with _captured_fd2(), warnings.catch_warnings():  # Pillow's logger: not on our stderr
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            sys.stderr.flush()
        with im:
            return im.size
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def norm_diag(line: str) -> str:
    """A decoder message without OpenCV's log prefix (level, thread, time), for matching."""
    return _LOG_PREFIX.sub("", line).strip()


def decoder_messages(data: bytes) -> tuple[np.ndarray | None, list[str]]:
    """OpenCV's decode of ``data`` and what the C libraries (and Pillow's header parse) said.

    The same libraries run in the CLI, so these messages identify which case printed a stray
    stderr line there. Pillow's Python warnings are recorded as ``py:Category: message``.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    with _captured_fd2() as lines, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.suppress(Exception), Image.open(io.BytesIO(data)) as im:
                im.getexif()  # Pillow's logger (no handler: to stderr) speaks here
            sys.stderr.flush()
        finally:
            Image.MAX_IMAGE_PIXELS = saved
        try:
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            arr = None
    said = [f"py:{w.category.__name__}: {w.message}" for w in caught]
    return arr, said + [norm_diag(ln) for ln in lines if ln.strip()]


def decoder_reports_damage(data: bytes, ref: tuple[int, int]) -> tuple[bool, list[str], bool]:
    """(damaged, messages, same size): damaged when OpenCV fails or prints an error-like message
    (not a warning), or the header now claims over 4x ``ref``'s pixels (then nothing is decoded).
    A decode without complaint at another size (a flipped width field) is not damage the decoder
    reported; the caller then leaves the expected size open."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > 4 * ref[0] * ref[1] + 4096:
        return True, [], False
    arr, said = decoder_messages(data)
    if arr is None or any(_DAMAGE.search(ln) and "warning" not in ln.lower() for ln in said):
        return True, said, False
    return False, said, (arr.shape[1], arr.shape[0]) in (ref, ref[::-1])
