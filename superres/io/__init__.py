"""Image IO that keeps 16-bit samples, alpha, ICC profiles, EXIF and orientation.

One module per concern; everything public is re-exported here:

* :mod:`superres.io.read` — ``read_image`` and ``ImageData`` (decoding, channel layouts).
* :mod:`superres.io.encode` — ``write_image`` (encoders, metadata embedding).
* :mod:`superres.io.formats` — format policy: extensions, ``output_format_for``, the pixel limit.
* :mod:`superres.io.sniff` — format sniffing and truncation checks on the raw bytes.
* :mod:`superres.io.exif` — EXIF / TIFF directory parsing and orientation.
* :mod:`superres.io.errors` — ``ImageError`` and friends, ``ImageWarning``.
* :mod:`superres.io.atomic` — the one atomic file write, used for every output.
* :mod:`superres.io.alpha` — float conversion and alpha helpers for the model path.
"""

from superres.io.alpha import bleed_colour, from_float, premultiply, to_float, unpremultiply
from superres.io.encode import write_image
from superres.io.errors import ImageError, ImageReadError, ImageWarning, ImageWriteError
from superres.io.exif import apply_orientation
from superres.io.formats import (
    ENV_MAX_PIXELS,
    FORMAT_EXTENSIONS,
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    format_for_path,
    max_pixels_limit,
    output_format_for,
)
from superres.io.read import ImageData, read_image

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
    "bleed_colour",
    "format_for_path",
    "from_float",
    "max_pixels_limit",
    "output_format_for",
    "premultiply",
    "read_image",
    "to_float",
    "unpremultiply",
    "write_image",
]
