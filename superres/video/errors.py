"""Errors of the video pipeline: every message starts with the file it is about."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any


class VideoError(Exception):
    """A video could not be read, planned or written; ``str()`` is ``PATH: reason``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT, whether raised by Python's own I/O or by FFmpeg through PyAV."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: FFmpeg's messages are already readable, others get the type."""
    if is_disk_full(exc):
        return "disk full (no space left on device)"
    text = str(exc).strip() or type(exc).__name__
    module = type(exc).__module__
    if module.startswith("av.") or isinstance(exc, VideoError):
        return text
    return f"{type(exc).__name__}: {text}"
