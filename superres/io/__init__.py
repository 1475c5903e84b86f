"""Image IO that keeps 16-bit samples, alpha, ICC profiles, EXIF and orientation.

``read_image`` / ``write_image`` in :mod:`superres.io.image`; float and alpha helpers for the
model path in :mod:`superres.io.alpha`.
"""

from superres.io.alpha import bleed_colour, from_float, premultiply, to_float, unpremultiply
from superres.io.image import (
    ENV_MAX_PIXELS,
    FORMAT_EXTENSIONS,
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    ImageData,
    ImageError,
    ImageReadError,
    ImageWarning,
    ImageWriteError,
    apply_orientation,
    format_for_path,
    max_pixels_limit,
    output_format_for,
    read_image,
    write_image,
)

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
