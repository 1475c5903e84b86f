"""Reading: one call gives upright pixels with their bit depth, alpha, ICC profile and EXIF.

Division of labour (facts verified in the project's ecosystem survey, §2.1):

* **Pixels** go through OpenCV: it keeps 16-bit samples and alpha, and decoding bytes we read
  ourselves (``cv2.imdecode``) works for any unicode path. Pillow would silently truncate 16-bit
  RGB to 8 bits and cannot write it.
* **Metadata** goes through Pillow, whose ``Image.open`` parses only the header: the declared size
  (checked against :mod:`superres.io.limits` *before* any pixel is decoded), the ICC profile,
  EXIF and its Orientation. OpenCV's ``IMREAD_UNCHANGED`` ignores Orientation for JPEG/PNG/WebP
  (but applies it for TIFF, so TIFF bytes are patched to Orientation=1 before decoding), and
  drops ICC profiles on both read and write.
* **Size and completeness** are checked first: the file size by ``os.fstat`` before reading, the
  structure (and PNG chunk CRCs) by :mod:`superres.io.sniff`.
* **Damage** shows only in what the decoders print: :mod:`superres.io.capture` takes it off
  stderr, per file, and the read fails unless damaged images are allowed (docs/limits.md).

In-memory convention: ``ImageData.pixels`` is HxWxC with C in {1, 3, 4} (gray / RGB / RGBA,
straight — not premultiplied — alpha), dtype uint8 or uint16 (float32 for float TIFF), upright.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import threading
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from superres.io.capture import DECODE_LOCK, DecoderReport, native_stderr, python_warnings
from superres.io.errors import ImageDamagedError, ImageLimitError, ImageReadError, ImageWarning
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
from superres.io.formats import SUPPORTED_FORMATS, icc_problem
from superres.io.limits import (
    ENV_MAX_FILE_BYTES,
    ENV_MAX_PIXELS,
    ENV_MAX_RATIO,
    RATIO_FORMATS,
    Limits,
    human_bytes,
    mpx,
)
from superres.io.sniff import (
    TIFF_COMPRESSIONS,
    TIFF_MAGICS,
    PngChunks,
    check_complete,
    declared_bytes,
    png_crc_errors,
    sniff_format,
    tiff_compression,
)

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
    # What was said about this file without refusing it (a dropped profile, a decoder's complaint,
    # accepted damage), without the path: a front end prints each as "warning: PATH: message".
    warnings: list[str] = field(default_factory=list)

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


# Enough of a file's start to tell its format (ours by magic, others by Pillow for the message).
_HEAD_BYTES = 64 << 10


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, read only after ``os.fstat`` says it is a regular file within the limit.

    A file whose first bytes are none of the formats read here comes back as just those bytes
    (the header parser then says what it is), so a huge non-image is never read whole. Opened
    non-blocking: a FIFO planted under an image name is refused instead of hanging the read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as e:
        if path.is_dir():
            raise ImageReadError(path, "is a directory, not an image file") from None
        raise ImageReadError(path, f"cannot read the file ({e.strerror or e})") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageReadError(path, "is a directory, not an image file")
        raise ImageReadError(path, "is not a regular file (a pipe, socket or device)")
    with os.fdopen(fd, "rb") as f:
        if st.st_size == 0:
            raise ImageReadError(path, "file is empty (0 bytes)")
        if st.st_size > max_bytes:
            raise ImageLimitError(
                path,
                f"file is {human_bytes(st.st_size)}, over the file-size limit of {human_bytes(max_bytes)} "
                f"(set {ENV_MAX_FILE_BYTES} to raise it)",
            )
        try:
            head = f.read(min(_HEAD_BYTES, max_bytes + 1))
            if sniff_format(head) is None:
                return head
            data = head + f.read(max_bytes + 1 - len(head))
        except OSError as e:
            raise ImageReadError(path, f"cannot read the file ({e.strerror or e})") from e
    if not data:
        raise ImageReadError(path, "file is empty (0 bytes)")
    if len(data) > max_bytes:  # it grew after fstat
        limit = human_bytes(max_bytes)
        why = f"file is over the file-size limit of {limit} (set {ENV_MAX_FILE_BYTES} to raise it)"
        raise ImageLimitError(path, why)
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


@dataclass
class _Decoded:
    """What the locked part of a read hands on: pixels as OpenCV gave them, plus header facts."""

    arr: np.ndarray | None
    fmt: str
    width: int
    height: int
    icc: bytes | None
    exif: bytes | None
    orientation: int
    extra_samples: int
    chunks: PngChunks


def _check_budget(p: Path, data: bytes, fmt: str, im: Any, width: int, height: int, limits: Limits) -> None:
    """Refuse, before any pixel is decoded, what the limits do not admit (ImageLimitError)."""
    limit, how = limits.pixel_limit()
    if width * height > limit:
        raise ImageLimitError(
            p,
            f"image is {width}x{height} = {mpx(width * height)} Mpx, over the limit of {mpx(limit)} Mpx "
            f"({how}; set {ENV_MAX_PIXELS} to raise it)",
        )
    max_ratio = limits.ratio_limit()
    if fmt in RATIO_FORMATS and math.isfinite(max_ratio):
        try:
            bands = len(im.getbands())
        except (AttributeError, ValueError):
            bands = 3
        declared = declared_bytes(fmt, data, width, height, bands)
        ratio = declared / len(data)
        if ratio > max_ratio:
            raise ImageLimitError(
                p,
                f"the header declares {width}x{height} ({human_bytes(declared)} of samples) but the file "
                f"is only {human_bytes(len(data))}: {ratio:,.0f}:1, over the limit of {max_ratio:,.0f}:1 "
                f"(the data cannot hold such an image; set {ENV_MAX_RATIO} to raise the limit)",
            )


def _parse_and_decode(
    p: Path, data: bytes, sniffed: str | None, chunks: PngChunks, limits: Limits
) -> _Decoded:
    """Header, limits, metadata, then OpenCV's decode. Runs with the decoders' stderr captured."""
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
        _check_budget(p, data, fmt, im, width, height, limits)
        if fmt != sniffed:
            chunks = check_complete(p, data, fmt)
        if fmt == "tiff":
            compression = tiff_compression(data)
            if compression is not None and compression not in TIFF_COMPRESSIONS:
                raise ImageReadError(p, f"unsupported TIFF compression {compression} (no decoder knows it)")

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
    return _Decoded(arr, fmt, width, height, icc, exif, orientation, extra_samples, chunks)


def _finish(p: Path, d: _Decoded, data: bytes, notes: list[str]) -> ImageData:
    """OpenCV's array as ImageData: RGB(A) layout, alpha association, orientation, metadata."""
    arr = d.arr
    assert arr is not None
    if arr.shape[:2] != (d.height, d.width):
        raise ImageReadError(
            p, f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header's {d.width}x{d.height}"
        )
    pixels = _to_rgb_layout(p, arr)
    if pixels.shape[2] == 1 and d.fmt == "png":
        keyed = _png_gray_key_alpha(data, d.chunks, pixels)
        if keyed is not None:
            pixels = keyed
    if d.extra_samples == 1 and pixels.shape[2] == 4 and pixels.dtype != np.float32:
        pixels = _unassociate(pixels)
    pixels = apply_orientation(pixels, d.orientation)
    icc = d.icc
    if icc is not None:
        problem = icc_problem(icc, pixels.shape[2])
        if problem:
            notes.append(f"{problem}; profile dropped")
            icc = None
    exif = d.exif if d.fmt == "tiff" else exif_upright(d.exif, p)  # tiff_exif wrote Orientation=1
    return ImageData(pixels=pixels, icc_profile=icc, exif=exif, source_format=d.fmt, path=p)


def _more(items: list[str], shown: int = 3) -> str:
    """The first few messages of a list, for one error line."""
    text = "; ".join(items[:shown])
    return text + (f"; and {len(items) - shown} more" if len(items) > shown else "")


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = None,
    limits: Limits | None = None,
    allow_damaged: bool = False,
    emit_warnings: bool = True,
) -> ImageData:
    """Read an image upright, with its bit depth, alpha, ICC profile and EXIF intact.

    Raises ImageReadError (message starts with the path) for a missing, empty, truncated, corrupt,
    unsupported or damaged file; ImageLimitError (a subclass) for one over a limit of ``limits``
    (see :mod:`superres.io.limits`), decided from the file size and the header before any pixel is
    decoded; ImageDamagedError (a subclass) when a decoder reported damaged data, unless
    ``allow_damaged`` (then the damage is one of the warnings). ``max_pixels`` overrides
    ``limits.max_pixels``. ValueError for a malformed limit environment variable.

    Nothing reaches stderr: the decoders' messages and Python warnings are captured for this file
    and come back in ``ImageData.warnings`` (without the path); with ``emit_warnings`` each is also
    issued as an ImageWarning ``"PATH: message"``. A front end that prints
    ``warning: PATH: message`` itself passes ``emit_warnings=False``.
    Gray+alpha and palette images come back as RGBA (or RGB without transparency).
    """
    p = Path(path)
    limits = limits or Limits()
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    limits.check_config()
    data = _read_bytes(p, limits.file_limit())
    # Structure first (cheap, decodes nothing): a cut-off file gets a "truncated" error rather
    # than whatever a parser trips over.
    sniffed = sniff_format(data)
    chunks = check_complete(p, data, sniffed) if sniffed else {}
    damage = png_crc_errors(data, chunks) if chunks else []
    report = DecoderReport()
    notes: list[str] = []
    with DECODE_LOCK, python_warnings(notes):
        try:
            with native_stderr(report):
                decoded = _parse_and_decode(p, data, sniffed, chunks, limits)
            if sniffed == "jpeg":
                report.settle_jpeg_padding(data)
            damage += report.damage
            if report.unsupported:
                raise ImageReadError(p, f"cannot decode the pixel data: {_more(report.unsupported)}")
            if decoded.arr is None:
                why = _more(damage) if damage else "corrupt or truncated file"
                if decoded.width * decoded.height > _CV_DEFAULT_MAX_PIXELS:
                    why += "; OpenCV also refuses images over CV_IO_MAX_IMAGE_PIXELS, default 2**30 pixels"
                raise ImageReadError(p, f"cannot decode the pixel data ({why})")
            if damage and not allow_damaged:
                raise ImageDamagedError(
                    p, f"damaged image data ({_more(damage)}); pass allow_damaged=True to accept it",
                    details=tuple(damage),
                )
            image = _finish(p, decoded, data, notes)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(p, "not enough memory to decode it") from None
        except Exception as e:  # a parser tripping over hostile bytes: still this file's one error
            raise ImageReadError(p, f"cannot read the image ({type(e).__name__}: {e})") from e
    prefix = f"{p}: "
    messages = [f"damaged image data, accepted: {'; '.join(damage)}"] if damage else []
    messages += report.notes
    messages += [n[len(prefix) :] if n.startswith(prefix) else n for n in notes]
    image.warnings = messages
    if emit_warnings:
        for message in messages:
            warnings.warn(f"{p}: {message}", ImageWarning, stacklevel=2)
    return image
