"""Reading: one call gives upright pixels with their bit depth, alpha, ICC profile and EXIF.

Division of labour (facts verified in the project's ecosystem survey, §2.1):

* **Pixels** go through OpenCV: it keeps 16-bit samples and alpha, and decoding bytes we read
  ourselves (``cv2.imdecode``) works for any unicode path. Pillow would silently truncate 16-bit
  RGB to 8 bits and cannot write it.
* **Metadata** goes through Pillow, whose ``Image.open`` parses only the header: the declared size
  (checked against the decompression-bomb limit *before* any pixel is decoded), the ICC profile,
  EXIF and its Orientation. OpenCV's ``IMREAD_UNCHANGED`` ignores Orientation for JPEG/PNG/WebP
  (but applies it for TIFF, so TIFF bytes are patched to Orientation=1 before decoding), and
  drops ICC profiles on both read and write.
* **Completeness** is checked first, by :mod:`superres.io.sniff`.

In-memory convention: ``ImageData.pixels`` is HxWxC with C in {1, 3, 4} (gray / RGB / RGBA,
straight — not premultiplied — alpha), dtype uint8 or uint16 (float32 for float TIFF), upright.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from superres.io.errors import ImageReadError, warn
from superres.io.exif import (
    TAG_EXTRA_SAMPLES,
    TAG_ICC,
    TAG_ORIENTATION,
    apply_orientation,
    exif_orientation,
    exif_upright,
    ifd0_bytes,
    ifd0_values,
    normalize_exif,
    patch_ifd0_short,
    tiff_exif,
)
from superres.io.formats import ENV_MAX_PIXELS, SUPPORTED_FORMATS, icc_problem, max_pixels_limit
from superres.io.sniff import TIFF_MAGICS, PngChunks, check_complete, sniff_format

# OpenCV's own limit, CV_IO_MAX_IMAGE_PIXELS, at its default: only for a hint in an error.
_CV_DEFAULT_MAX_PIXELS = 1 << 30

# Pillow's names for the formats we read. MPO = camera JPEG with extra pictures appended.
_PIL_FORMATS: dict[str, str] = {
    "PNG": "png",
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
}


@dataclass
class ImageData:
    """Decoded, upright pixels plus the metadata worth carrying to the output."""

    pixels: np.ndarray  # HxWxC, C in {1, 3, 4}: gray / RGB / RGBA (straight alpha)
    icc_profile: bytes | None  # raw ICC bytes, only if they match the channel layout
    exif: bytes | None  # b"Exif\0\0" + TIFF structure, Orientation reset to 1
    source_format: str  # one of SUPPORTED_FORMATS, from the content (not the extension)
    path: Path | None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels == 4

    @property
    def bit_depth(self) -> int:
        """8, 16 or 32 (float)."""
        return self.pixels.dtype.itemsize * 8


def _mpx(pixels: int) -> str:
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


_PIL_LIMIT_LOCK = threading.Lock()


class _TiffHeader:
    """The little of a Pillow image that read_image uses, parsed from a TIFF's IFD0.

    For TIFFs Pillow cannot open although OpenCV decodes them, e.g. float32 RGB (Pillow has no
    such mode). EXIF sub-IFDs are not parsed here; the ICC profile and Orientation are.
    """

    format = "TIFF"

    def __init__(self, data: bytes) -> None:
        def first(tag: int) -> int | None:
            values = ifd0_values(data, 0, tag)
            return values[0] if values else None

        width, height = first(256), first(257)
        if not width or not height:
            raise ValueError("TIFF without ImageWidth/ImageLength")
        self.size = (width, height)
        self.tag_v2: dict[int, Any] = {
            256: width,
            257: height,
            TAG_ORIENTATION: first(TAG_ORIENTATION) or 1,
        }
        extra = first(TAG_EXTRA_SAMPLES)
        if extra is not None:
            self.tag_v2[TAG_EXTRA_SAMPLES] = (extra,)
        self.info: dict[str, Any] = {}
        icc = ifd0_bytes(data, 0, TAG_ICC)
        if icc:
            self.info["icc_profile"] = icc

    def getexif(self) -> Image.Exif:
        return Image.Exif()

    def close(self) -> None:
        pass


def _open_header(path: Path, data: bytes) -> Any:
    """Pillow object with the header parsed and no pixels decoded.

    Pillow's own bomb limit (MAX_IMAGE_PIXELS, process-wide: warns over 89 Mpx, refuses over
    179 Mpx, with no size in the error) is switched off for this header-only open, under a lock,
    and restored right after: ours replaces it, is configurable, and is checked on the returned
    size before anything is decoded. Pillow never decodes pixels for us. The price: another
    thread opening an image through Pillow during that header parse skips Pillow's check.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:  # only if someone re-set the limit concurrently
            raise ImageReadError(path, f"{e} (set {ENV_MAX_PIXELS} to raise the limit)") from e
        except UnidentifiedImageError:
            if data[:4] in TIFF_MAGICS:
                try:
                    return _TiffHeader(data)
                except (ValueError, struct.error):
                    pass
            names = ", ".join(SUPPORTED_FORMATS)
            raise ImageReadError(
                path, f"not an image file, or not a format superres reads ({names})"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            raise ImageReadError(path, f"cannot parse the image header ({e})") from e
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read the file ({e.strerror or e})") from e
    if not data:
        raise ImageReadError(path, "file is empty (0 bytes)")
    return data


def _tiff_for_cv2(data: bytes, im: Any) -> tuple[bytes | bytearray, int]:
    """TIFF bytes OpenCV decodes as stored, and the ExtraSamples value that was there.

    OpenCV applies the TIFF Orientation tag itself and, for 8-bit RGBA with ExtraSamples=2
    (unassociated alpha), premultiplies through libtiff's RGBA interface. Patching IFD0 to
    Orientation=1 / ExtraSamples=0 in a copy gives the raw samples; orientation and alpha
    association are then handled like for every other format.
    """
    tags = getattr(im, "tag_v2", {})
    orientation = tags.get(TAG_ORIENTATION, 1)
    extra = tags.get(TAG_EXTRA_SAMPLES, ())
    extra_value = int(extra[0]) if isinstance(extra, tuple) and len(extra) == 1 else 0
    if orientation == 1 and extra_value == 0:
        return data, 0
    buf = bytearray(data)
    try:
        if orientation != 1:
            patch_ifd0_short(buf, 0, TAG_ORIENTATION, 1)
        if extra_value:
            patch_ifd0_short(buf, 0, TAG_EXTRA_SAMPLES, 0)
    except (ValueError, struct.error):
        return data, 0
    return buf, extra_value


def _to_rgb_layout(path: Path, arr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A)/gray result as HxWxC RGB(A)/gray in uint8, uint16 or float32."""
    if arr.dtype in (np.float64, np.float16):
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(
            path, f"unsupported sample type {arr.dtype} (superres handles 8/16-bit and float)"
        )
    if arr.ndim == 2:
        return arr[:, :, None]
    channels = arr.shape[2]
    if channels == 1:
        return arr
    if channels == 2:  # gray + alpha (never produced by cv2's PNG reader, maybe by others)
        g, a = arr[..., 0], arr[..., 1]
        return np.ascontiguousarray(np.stack([g, g, g, a], axis=-1))
    if channels == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    raise ImageReadError(path, f"unsupported channel count {channels}")


def _png_gray_key_alpha(data: bytes, chunks: PngChunks, gray: np.ndarray) -> np.ndarray | None:
    """RGBA for a gray PNG with a tRNS colour key (OpenCV ignores that transparency), else None."""
    if b"tRNS" not in chunks or b"IHDR" not in chunks:
        return None
    ihdr, _ = chunks[b"IHDR"][0]
    bit_depth, colour_type = data[ihdr + 8], data[ihdr + 9]
    start, length = chunks[b"tRNS"][0]
    if colour_type != 0 or bit_depth not in (8, 16) or length != 2:
        return None
    key = int.from_bytes(data[start : start + 2], "big")
    g = gray[..., 0]
    alpha = np.where(g == key, 0, np.iinfo(g.dtype).max).astype(g.dtype)
    return np.stack([g, g, g, alpha], axis=-1)


def _unassociate(pixels: np.ndarray) -> np.ndarray:
    """Straight alpha from associated (premultiplied) integer RGBA samples, rounded."""
    maxv = float(np.iinfo(pixels.dtype).max)
    rgb = pixels[..., :3].astype(np.float32)
    alpha = pixels[..., 3:].astype(np.float32)
    out = np.zeros_like(rgb)
    np.divide(rgb * maxv, alpha, out=out, where=alpha > 0)
    np.clip(np.rint(out), 0, maxv, out=out)
    return np.concatenate([out.astype(pixels.dtype), pixels[..., 3:]], axis=-1)


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> ImageData:
    """Read an image upright, with its bit depth, alpha, ICC profile and EXIF intact.

    Raises ImageReadError (message starts with the path) for a missing, empty, truncated, corrupt,
    unsupported or oversized file. ``max_pixels`` overrides ``$SUPERRES_MAX_PIXELS`` and
    ``MAX_PIXELS``; it is checked against the header before any pixel is decoded.
    Gray+alpha and palette images come back as RGBA (or RGB without transparency).
    """
    p = Path(path)
    limit = max_pixels_limit(max_pixels)
    data = _read_bytes(p)
    # Structure first (cheap, decodes nothing): a cut-off file gets a "truncated" error rather
    # than whatever a parser trips over.
    sniffed = sniff_format(data)
    chunks = check_complete(p, data, sniffed) if sniffed else {}
    im = _open_header(p, data)
    try:
        fmt = _PIL_FORMATS.get(im.format or "")
        if fmt is None:
            names = ", ".join(SUPPORTED_FORMATS)
            raise ImageReadError(p, f"unsupported format {im.format} (superres reads {names})")
        width, height = im.size
        if fmt == "tiff":  # stored size: Pillow reports TIFF Orientation 5-8 already swapped
            tags = getattr(im, "tag_v2", {})
            width, height = int(tags.get(256, width)), int(tags.get(257, height))
        if width * height > limit:
            raise ImageReadError(
                p,
                f"image is {width}x{height} = {_mpx(width * height)} Mpx, over the limit of "
                f"{_mpx(limit)} Mpx (set {ENV_MAX_PIXELS} to raise it)",
            )
        if fmt != sniffed:
            chunks = check_complete(p, data, fmt)

        # Metadata, from the header Pillow already parsed.
        icc = im.info.get("icc_profile") or None
        if fmt == "tiff":
            exif = tiff_exif(im, p)
            orientation = int(getattr(im, "tag_v2", {}).get(TAG_ORIENTATION, 1))
        else:
            raw = im.info.get("exif")
            if not raw and b"eXIf" in chunks:  # PNG eXIf after IDAT: Pillow only sees it after load()
                start, length = chunks[b"eXIf"][0]
                raw = data[start : start + length]
            exif = normalize_exif(raw)
            orientation = exif_orientation(exif)
        orientation = orientation if 1 <= orientation <= 8 else 1
        extra_samples = 0
        buf: bytes | bytearray = data
        if fmt == "tiff":
            buf, extra_samples = _tiff_for_cv2(data, im)
    finally:
        im.close()

    try:
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ImageReadError(p, f"cannot decode the pixel data ({str(e).strip().splitlines()[-1]})") from e
    del buf
    if arr is None:
        hint = ""
        if width * height > _CV_DEFAULT_MAX_PIXELS:
            hint = "; OpenCV also refuses images over CV_IO_MAX_IMAGE_PIXELS, default 2**30 pixels"
        raise ImageReadError(p, f"cannot decode the pixel data (corrupt or truncated file{hint})")
    if arr.shape[:2] != (height, width):
        raise ImageReadError(
            p, f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header's {width}x{height}"
        )
    pixels = _to_rgb_layout(p, arr)
    if pixels.shape[2] == 1 and fmt == "png":
        keyed = _png_gray_key_alpha(data, chunks, pixels)
        if keyed is not None:
            pixels = keyed
    if extra_samples == 1 and pixels.shape[2] == 4 and pixels.dtype != np.float32:
        pixels = _unassociate(pixels)
    pixels = apply_orientation(pixels, orientation)

    if icc is not None:
        problem = icc_problem(icc, pixels.shape[2])
        if problem:
            warn(f"{p}: {problem}; profile dropped")
            icc = None
    if fmt != "tiff":  # _tiff_exif already wrote Orientation=1
        exif = exif_upright(exif, p)
    return ImageData(pixels=pixels, icc_profile=icc, exif=exif, source_format=fmt, path=p)
