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


class ImageWriteError(ImageError):
    """The output could not be encoded or stored; nothing was left at the destination."""


class ImageWarning(UserWarning):
    """Something was dropped or changed (a profile, EXIF, the output format); the image is fine."""


def warn(message: str) -> None:
    """Warn the caller of the public function that called us (hence stacklevel 3)."""
    warnings.warn(message, ImageWarning, stacklevel=3)
