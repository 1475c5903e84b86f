"""The errors and the warning every io module raises: one type per failed file, path first."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any


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


class ImageLimitError(ImageReadError):
    """Refused before decoding: over a limit of :mod:`superres.io.limits` (the message says which
    limit and how to raise it). A batch goes on with the next file."""


class ImageDamagedError(ImageReadError):
    """The decoder reported damaged data (corrupt scan, CRC/checksum error, broken strip).

    ``details`` is the decoders' account, without the path; ``read_image(..., allow_damaged=True)``
    returns such an image with those details as warnings instead. A front end may word its own
    hint from ``details`` (e.g. name its --allow-damaged flag).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(path, reason)
        self.details = tuple(details)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.details))


class ImageWriteError(ImageError):
    """The output could not be encoded or stored; nothing was left at the destination."""


class ImageWarning(UserWarning):
    """Something was dropped or changed (a profile, EXIF, the output format), or a decoder
    complained without the image being refused; the message starts with the file's path.
    ``read_image`` also returns its warnings (without the path) in ``ImageData.warnings``."""


def warn(message: str) -> None:
    """Warn the caller of the public function that called us (hence stacklevel 3)."""
    warnings.warn(message, ImageWarning, stacklevel=3)
