"""Image IO that keeps 16-bit samples, alpha, ICC profiles, EXIF and orientation.

One module per concern; everything public is re-exported here:

* :mod:`superres.io.read` — ``read_image`` and ``ImageData`` (decoding, channel layouts).
* :mod:`superres.io.encode` — ``write_image`` (encoders, metadata embedding).
* :mod:`superres.io.formats` — format policy: extensions, ``output_format_for``.
* :mod:`superres.io.limits` — every limit on reading (pixels, file size, compression ratio): ``Limits``.
* :mod:`superres.io.capture` — the decoders' stderr and warnings, captured per file.
* :mod:`superres.io.sniff` — format sniffing and truncation checks on the raw bytes.
* :mod:`superres.io.exif` — EXIF / TIFF directory parsing and orientation.
* :mod:`superres.io.errors` — ``ImageError`` and friends (``ImageLimitError``, ``ImageDamagedError``),
  ``ImageWarning``.
* :mod:`superres.io.atomic` — the one atomic file write, used for every output.
* :mod:`superres.io.alpha` — float conversion and alpha helpers for the model path.
"""

from superres.io.alpha import bleed_colour, from_float, premultiply, to_float, unpremultiply
from superres.io.encode import write_image
from superres.io.errors import (
    ImageDamagedError,
    ImageError,
    ImageLimitError,
    ImageReadError,
    ImageWarning,
    ImageWriteError,
)
from superres.io.exif import apply_orientation
from superres.io.formats import (
    FORMAT_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    format_for_path,
    output_format_for,
)
from superres.io.limits import (
    ENV_MAX_FILE_BYTES,
    ENV_MAX_PIXELS,
    ENV_MAX_RATIO,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    MAX_RATIO,
    READ_PIXEL_COST,
    UPSCALE_PIXEL_COST,
    Limits,
    max_pixels_limit,
)
from superres.io.read import ImageData, read_image

__all__ = [
    "ENV_MAX_FILE_BYTES",
    "ENV_MAX_PIXELS",
    "ENV_MAX_RATIO",
    "FORMAT_EXTENSIONS",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_RATIO",
    "READ_PIXEL_COST",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "UPSCALE_PIXEL_COST",
    "ImageDamagedError",
    "ImageData",
    "ImageError",
    "ImageLimitError",
    "ImageReadError",
    "ImageWarning",
    "ImageWriteError",
    "Limits",
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
