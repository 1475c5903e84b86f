"""The one exception every unusable weight file raises."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A weight file that cannot be used; the message names the file and the reason."""
