"""superres.io: bit depth, alpha, ICC, EXIF orientation, bad input, bombs, atomic writes."""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import superres.io.atomic as atomic_mod
import superres.io.encode as encode_mod
import superres.io.read as read_mod
from superres.io import (
    SUPPORTED_EXTENSIONS,
    ImageError,
    ImageReadError,
    ImageWarning,
    ImageWriteError,
    apply_orientation,
    bleed_colour,
    from_float,
    output_format_for,
    premultiply,
    read_image,
    to_float,
    unpremultiply,
    write_image,
)

RNG = np.random.default_rng(1234)
# Inverse of each EXIF orientation: what a camera stores so that the viewer shows the upright image.
INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def make_png(arr: np.ndarray, colour_type: int, *, extra_after_idat: bytes = b"", trns: bytes = b"") -> bytes:
    """Hand-made PNG (filter 0 rows), for layouts neither Pillow nor OpenCV write."""
    h, w = arr.shape[:2]
    depth = arr.dtype.itemsize * 8
    rows = arr.astype(arr.dtype.newbyteorder(">")).reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr)
    if trns:
        body += png_chunk(b"tRNS", trns)
    body += png_chunk(b"IDAT", zlib.compress(raw)) + extra_after_idat + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def make_tiff(arr: np.ndarray, *, orientation: int | None = None, extra_samples: int | None = None) -> bytes:
    """Minimal uncompressed little-endian TIFF with one strip (lets tests set any tag)."""
    h, w, c = arr.shape
    pixels = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    entries: list[tuple[int, int, int, bytes]] = []

    def add(tag: int, code: str, *values: int) -> None:
        entries.append(
            (tag, 3 if code == "H" else 4, len(values), struct.pack(f"<{len(values)}{code}", *values))
        )

    add(256, "I", w)
    add(257, "I", h)
    add(258, "H", *[arr.dtype.itemsize * 8] * c)
    add(259, "H", 1)
    add(262, "H", 1 if c == 1 else 2)
    add(273, "I", 0)  # patched below
    if orientation:
        add(274, "H", orientation)
    add(277, "H", c)
    add(278, "I", h)
    add(279, "I", len(pixels))
    if extra_samples is not None:
        add(338, "H", extra_samples)
    add(339, "H", *[3 if arr.dtype.kind == "f" else 1] * c)
    entries.sort()
    data_at = 8 + 2 + 12 * len(entries) + 4
    table, blobs = b"", b""
    for tag, ftype, count, value in entries:
        if len(value) <= 4:
            table += struct.pack("<HHI", tag, ftype, count) + value.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHII", tag, ftype, count, data_at + len(blobs))
            blobs += value
    strip_at = data_at + len(blobs)
    table = table.replace(struct.pack("<HHII", 273, 4, 1, 0), struct.pack("<HHII", 273, 4, 1, strip_at))
    return b"II*\x00" + struct.pack("<IH", 8, len(entries)) + table + b"\x00" * 4 + blobs + pixels


def exif_bytes(orientation: int, make: str = "TestCam") -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = make
    return ex.tobytes()


def pil_exif(path: Path) -> Image.Exif:
    with Image.open(path) as im:
        im.load()
        return im.getexif()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def upright_pattern(h: int = 48, w: int = 72) -> np.ndarray:
    """Smooth, asymmetric RGB image (JPEG-friendly; every flip/rotation of it is distinguishable)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 60)], axis=-1).astype(np.uint8)
    img[: h // 3, : w // 4] = (250, 250, 250)  # bright block in the top-left corner
    return img


def random_pixels(kind: str, h: int = 9, w: int = 13) -> np.ndarray:
    if kind == "rgb8":
        return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "rgba8":
        return RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if kind == "rgb16":
        return RNG.integers(0, 65536, (h, w, 3), dtype=np.uint16)
    if kind == "rgba16":
        return RNG.integers(0, 65536, (h, w, 4), dtype=np.uint16)
    if kind == "dark16":  # max <= 256: must stay 16-bit, no "looks like 8-bit" guessing
        return RNG.integers(0, 257, (h, w, 3), dtype=np.uint16)
    if kind == "gray8":
        return RNG.integers(0, 256, (h, w, 1), dtype=np.uint8)
    if kind == "gray16":
        return RNG.integers(0, 65536, (h, w, 1), dtype=np.uint16)
    if kind == "float32":
        return RNG.random((h, w, 3), dtype=np.float32) * 2 - 0.5
    if kind == "grayf32":
        return RNG.random((h, w, 1), dtype=np.float32)
    raise AssertionError(kind)


# --------------------------------------------------------------------------- round trips

LOSSLESS = [
    ("rgb8", "png"), ("rgb8", "tiff"), ("rgb8", "bmp"), ("rgb8", "webp"),
    ("rgba8", "png"), ("rgba8", "tiff"), ("rgba8", "webp"),
    ("rgb16", "png"), ("rgb16", "tiff"), ("rgba16", "png"), ("rgba16", "tiff"),
    ("dark16", "png"), ("dark16", "tiff"),
    ("gray8", "png"), ("gray8", "tiff"), ("gray8", "bmp"),
    ("gray16", "png"), ("gray16", "tiff"),
    ("float32", "tiff"), ("grayf32", "tiff"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "fmt"), LOSSLESS)
def test_lossless_round_trip(tmp_path: Path, kind: str, fmt: str) -> None:
    pixels = random_pixels(kind)
    path = tmp_path / f"out.{fmt}"
    write_image(path, pixels, quality=100)  # quality 100 = lossless WebP; ignored elsewhere
    got = read_image(path)
    assert got.pixels.dtype == pixels.dtype
    assert got.pixels.shape == pixels.shape
    np.testing.assert_array_equal(got.pixels, pixels)
    assert got.source_format == fmt
    assert got.path == path


def test_dark_16bit_png_is_not_mistaken_for_8bit(tmp_path: Path) -> None:
    pixels = random_pixels("dark16")
    assert pixels.max() <= 256
    write_image(tmp_path / "dark.png", pixels)
    got = read_image(tmp_path / "dark.png").pixels
    assert got.dtype == np.uint16 and got.max() == pixels.max()


def test_sample_photo(sample_path: Path, tmp_path: Path) -> None:
    img = read_image(sample_path)
    assert img.pixels.shape == (200, 300, 3) and img.pixels.dtype == np.uint8
    assert img.source_format == "png" and img.icc_profile is None and img.exif is None
    # Same pixels as Pillow (RGB order, not BGR).
    np.testing.assert_array_equal(img.pixels, np.asarray(Image.open(sample_path).convert("RGB")))
    for fmt, floor in (("jpg", 38.0), ("webp", 36.0)):
        out = tmp_path / f"chelsea.{fmt}"
        write_image(out, img.pixels)
        assert psnr(read_image(out).pixels, img.pixels) > floor
    write_image(tmp_path / "chelsea.png", img.pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "chelsea.png").pixels, img.pixels)


def test_gray_jpeg_stays_single_channel(tmp_path: Path) -> None:
    gray = upright_pattern()[..., :1]
    write_image(tmp_path / "g.jpg", gray)
    got = read_image(tmp_path / "g.jpg").pixels
    assert got.shape == gray.shape and np.abs(got.astype(int) - gray).mean() < 2


def test_unicode_path(tmp_path: Path) -> None:
    path = tmp_path / "фото 写真 ü" / "chat é.png"
    pixels = random_pixels("rgba16")
    write_image(path, pixels)
    np.testing.assert_array_equal(read_image(str(path)).pixels, pixels)


# --------------------------------------------------------------------------- PNG layouts OpenCV expands


def test_gray_alpha_png_becomes_rgba(tmp_path: Path) -> None:
    la8 = RNG.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    Image.fromarray(la8, "LA").save(tmp_path / "la8.png")
    la16 = RNG.integers(0, 65536, (5, 6, 2), dtype=np.uint16)
    (tmp_path / "la16.png").write_bytes(make_png(la16, colour_type=4))
    for name, la in (("la8.png", la8), ("la16.png", la16)):
        got = read_image(tmp_path / name).pixels
        assert got.dtype == la.dtype and got.shape == (5, 6, 4)
        expected = np.stack([la[..., 0]] * 3 + [la[..., 1]], axis=-1)
        np.testing.assert_array_equal(got, expected)


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.png", transparency=0)
    got = read_image(tmp_path / "p.png").pixels
    np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / "p.png").convert("RGBA")))
    pal.save(tmp_path / "p_opaque.png")
    assert read_image(tmp_path / "p_opaque.png").pixels.shape == (6, 7, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_png_colour_key_becomes_alpha(tmp_path: Path, dtype: type) -> None:
    gray = np.array([[0, 7, 9], [7, 3, 7]], dtype=dtype)
    (tmp_path / "k.png").write_bytes(make_png(gray, colour_type=0, trns=struct.pack(">H", 7)))
    got = read_image(tmp_path / "k.png").pixels
    assert got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got[..., 3] == 0, gray == 7)
    np.testing.assert_array_equal(got[..., 0], gray)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation(tmp_path: Path, orientation: int) -> None:
    upright = upright_pattern()
    stored = apply_orientation(upright, INVERSE_ORIENTATION[orientation])
    path = tmp_path / "o.jpg"
    Image.fromarray(stored).save(path, quality=98, subsampling=0, exif=exif_bytes(orientation))
    got = read_image(path)
    assert got.pixels.shape == upright.shape
    assert np.abs(got.pixels.astype(int) - upright).mean() < 1.5
    # Same answer as Pillow's exif_transpose.
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert np.abs(got.pixels.astype(int) - reference).max() <= 2
    ex = Image.Exif()
    ex.load(got.exif)
    assert ex[0x0112] == 1 and ex[0x010F] == "TestCam"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_and_tiff_exif_orientation_exact(tmp_path: Path, orientation: int) -> None:
    upright = random_pixels("rgba8", 5, 8)
    stored = apply_orientation(upright, INVERSE_ORIENTATION[orientation])
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif_bytes(orientation))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").pixels, upright)
    for kind in ("rgb16", "rgba8", "gray16"):  # OpenCV applies TIFF Orientation itself: must not double
        upright = random_pixels(kind, 5, 8)
        stored = apply_orientation(upright, INVERSE_ORIENTATION[orientation])
        (tmp_path / "o.tif").write_bytes(make_tiff(stored, orientation=orientation))
        np.testing.assert_array_equal(read_image(tmp_path / "o.tif").pixels, upright)


def test_png_exif_after_idat_is_found(tmp_path: Path) -> None:
    upright = random_pixels("rgb8", 4, 6)
    stored = apply_orientation(upright, INVERSE_ORIENTATION[6])
    chunk = png_chunk(b"eXIf", exif_bytes(6)[6:])
    (tmp_path / "late.png").write_bytes(make_png(stored, colour_type=2, extra_after_idat=chunk))
    got = read_image(tmp_path / "late.png")
    np.testing.assert_array_equal(got.pixels, upright)
    assert got.exif is not None and got.exif.startswith(b"Exif\x00\x00")


def test_exif_written_upright(tmp_path: Path) -> None:
    pixels8, pixels16 = random_pixels("rgb8"), random_pixels("rgb16")
    for name, pixels in (("e.jpg", pixels8), ("e.webp", pixels8), ("e.png", pixels8), ("e16.png", pixels16)):
        # A caller passing the camera's EXIF (Orientation=6) with upright pixels must not get a
        # double rotation in viewers.
        write_image(tmp_path / name, pixels, exif=exif_bytes(6))
        ex = pil_exif(tmp_path / name)
        assert ex[0x010F] == "TestCam", name
        assert ex[0x0112] == 1, name
        assert read_image(tmp_path / name).pixels.shape == pixels.shape


def test_tiff_exif_is_carried_without_strip_tags(tmp_path: Path) -> None:
    upright = random_pixels("rgb8", 4, 6)
    stored = apply_orientation(upright, INVERSE_ORIENTATION[8])
    Image.fromarray(stored).save(tmp_path / "cam.tif", exif=exif_bytes(8, make="TiffCam"))
    got = read_image(tmp_path / "cam.tif")
    np.testing.assert_array_equal(got.pixels, upright)
    ex = Image.Exif()
    ex.load(got.exif)
    assert ex[0x010F] == "TiffCam" and ex[0x0112] == 1
    assert 273 not in ex and 256 not in ex  # StripOffsets, ImageWidth: describe the TIFF itself
    with pytest.warns(ImageWarning, match="EXIF"):
        write_image(tmp_path / "out.tif", got.pixels, exif=got.exif)


# --------------------------------------------------------------------------- TIFF alpha


def test_tiff_unassociated_alpha_is_not_premultiplied(tmp_path: Path) -> None:
    rgba = random_pixels("rgba8")
    Image.fromarray(rgba).save(tmp_path / "a.tif")  # Pillow writes ExtraSamples=2
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif").pixels, rgba)


def test_tiff_associated_alpha_is_unpremultiplied(tmp_path: Path) -> None:
    rgba = random_pixels("rgba8")
    rgba[..., 3] = np.where(rgba[..., 3] < 40, 0, rgba[..., 3])
    stored = rgba.copy()
    stored[..., :3] = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)
    (tmp_path / "pm.tif").write_bytes(make_tiff(stored, extra_samples=1))
    got = read_image(tmp_path / "pm.tif").pixels
    visible = rgba[..., 3] > 0
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    assert np.abs(got[..., :3].astype(int) - rgba[..., :3])[visible].max() <= 4


def test_written_rgba_tiff_declares_alpha(tmp_path: Path) -> None:
    write_image(tmp_path / "a.tif", random_pixels("rgba16"))
    with Image.open(tmp_path / "a.tif") as im:
        assert im.tag_v2[338] == (2,)  # unassociated alpha, so other programs show transparency


# --------------------------------------------------------------------------- ICC

ICC_CASES = [("png", "rgb8"), ("png", "rgb16"), ("png", "rgba16"), ("jpg", "rgb8"), ("webp", "rgb8"),
             ("webp", "rgba8"), ("tif", "rgb8"), ("tif", "rgb16"), ("tif", "float32")]  # fmt: skip


@pytest.mark.parametrize(("ext", "kind"), ICC_CASES)
def test_icc_round_trip(tmp_path: Path, srgb_icc: bytes, ext: str, kind: str) -> None:
    path = tmp_path / f"icc.{ext}"
    write_image(path, random_pixels(kind), icc_profile=srgb_icc)
    if kind != "float32":  # Pillow has no mode for float RGB TIFF
        with Image.open(path) as im:
            assert im.info.get("icc_profile") == srgb_icc  # at open: iCCP precedes IDAT in PNG
            if ext == "png":
                im.verify()  # chunk CRCs
    assert read_image(path).icc_profile == srgb_icc


def test_icc_that_does_not_fit_is_dropped_with_a_warning(tmp_path: Path, srgb_icc: bytes) -> None:
    with pytest.warns(ImageWarning, match="ICC"):
        write_image(tmp_path / "g.png", random_pixels("gray8"), icc_profile=srgb_icc)
    with Image.open(tmp_path / "g.png") as im:
        assert "icc_profile" not in im.info
    # A CMYK JPEG decodes to RGB; its CMYK profile would now be wrong.
    cmyk_icc = srgb_icc[:16] + b"CMYK" + srgb_icc[20:]
    cmyk = Image.fromarray(RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / "c.jpg", icc_profile=cmyk_icc)
    with pytest.warns(ImageWarning, match="CMYK"):
        got = read_image(tmp_path / "c.jpg")
    assert got.icc_profile is None and got.pixels.shape == (8, 8, 3)


# --------------------------------------------------------------------------- bad input


def _truncated(tmp_path: Path, sample: Path, fmt: str, keep: float | int) -> Path:
    pixels = read_image(sample).pixels
    full = tmp_path / f"full.{fmt}"
    write_image(full, pixels)
    data = full.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else len(data) + keep
    path = tmp_path / f"cut_{fmt}_{keep}.{fmt}"
    path.write_bytes(data[:n])
    return path


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tif", "bmp"])
@pytest.mark.parametrize("keep", [0.5, 0.95, -1, -2])
def test_truncated_file_is_an_error(tmp_path: Path, sample_path: Path, fmt: str, keep: float | int) -> None:
    path = _truncated(tmp_path, sample_path, fmt, keep)
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    assert str(info.value).startswith(str(path))


def test_truncated_pillow_tiff_is_an_error(tmp_path: Path, sample_path: Path) -> None:
    buf = io.BytesIO()
    Image.open(sample_path).save(buf, "TIFF")  # IFD at the start, pixels after it
    (tmp_path / "cut.tif").write_bytes(buf.getvalue()[:-1000])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.tif")


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    cases = {"missing": tmp_path / "missing.png"}
    cases["empty"] = tmp_path / "empty.png"
    cases["empty"].write_bytes(b"")
    cases["text"] = tmp_path / "notes.png"
    cases["text"].write_text("this is not an image\n")
    cases["directory"] = tmp_path / "folder.jpg"
    cases["directory"].mkdir()
    cases["gif"] = tmp_path / "anim.gif"
    Image.fromarray(random_pixels("rgb8")).save(cases["gif"])
    good = make_png(random_pixels("rgb8"), colour_type=2)
    idat = good.index(b"IDAT")
    corrupt = bytearray(good)
    corrupt[idat + 10 : idat + 30] = bytes(20)  # complete file, wrong data (CRC mismatch)
    cases["corrupt"] = tmp_path / "corrupt.png"
    cases["corrupt"].write_bytes(bytes(corrupt))
    cases["header_only"] = tmp_path / "header_only.png"
    cases["header_only"].write_bytes(good[:33])
    return cases


@pytest.mark.parametrize("case", ["missing", "empty", "text", "directory", "gif", "corrupt", "header_only"])
def test_bad_input_gives_clear_read_error(tmp_path: Path, case: str) -> None:
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) and path.name in message
    assert info.value.path == path and info.value.reason
    expected = {"missing": "no such file", "empty": "empty", "text": "not an image", "directory": "directory",
                "gif": "unsupported format GIF", "header_only": "truncated"}  # fmt: skip
    if case in expected:
        assert expected[case] in message


def test_jpeg_with_appended_data_still_reads(tmp_path: Path) -> None:
    """Motion photos append a video after EOI; its bytes contain stray 0xFFDA markers."""
    buf = io.BytesIO()
    Image.fromarray(upright_pattern()).save(buf, "JPEG", quality=95)
    trailer = RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\xff\xda\x00\x08junk"
    (tmp_path / "motion.jpg").write_bytes(buf.getvalue() + trailer)
    assert read_image(tmp_path / "motion.jpg").pixels.shape == (48, 72, 3)


def test_camera_mpo_reads_as_its_primary_jpeg(tmp_path: Path) -> None:
    first, second = upright_pattern(), upright_pattern()[::-1].copy()
    Image.fromarray(first).save(
        tmp_path / "cam.jpg", "MPO", save_all=True, append_images=[Image.fromarray(second)]
    )
    got = read_image(tmp_path / "cam.jpg")
    assert got.source_format == "jpeg"
    assert np.abs(got.pixels.astype(int) - first).mean() < 2


def test_errors_pickle(tmp_path: Path) -> None:
    err = ImageReadError(tmp_path / "x.png", "file is empty (0 bytes)")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ImageError) and str(again) == str(err) and again.reason == err.reason


# --------------------------------------------------------------------------- decompression bombs


def test_decompression_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb + png_chunk(b"IEND", b""))
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert time.perf_counter() - start < 1.0  # nothing decoded (30 GB if it were)
    message = str(info.value)
    assert message.startswith(str(path))
    # The default limit is derived from the memory available (issue 17), at most 268 Mpx.
    assert "100000x100000 = 10000 Mpx" in message and re.search(r"limit of [\d.]+ Mpx", message)
    assert "SUPERRES_MAX_PIXELS" in message
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit is restored for everyone else


def test_pixel_limit_from_env_and_argument(sample_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERRES_MAX_PIXELS", "50_000")
    with pytest.raises(ImageReadError, match=r"300x200 = 0.06 Mpx, over the limit of 0.05 Mpx"):
        read_image(sample_path)
    assert read_image(sample_path, max_pixels=60_000).pixels.shape == (200, 300, 3)  # argument wins
    monkeypatch.setenv("SUPERRES_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="SUPERRES_MAX_PIXELS"):
        read_image(sample_path)


def test_large_image_under_our_limit_but_over_pillows(tmp_path: Path) -> None:
    """Pillow refuses > 179 Mpx at open; ours (268 Mpx) decides. Header only: decoding is not needed."""
    ihdr = struct.pack(">IIBBBBB", 20_000, 10_000, 8, 0, 0, 0, 0)  # 200 Mpx
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    header = read_mod._open_header(path, path.read_bytes())
    assert header.size == (20_000, 10_000)
    with pytest.raises(ImageReadError, match="20000x10000 = 200 Mpx, over the limit of 100 Mpx"):
        read_image(path, max_pixels=100_000_000)


# --------------------------------------------------------------------------- writing rules


@pytest.mark.parametrize(
    ("name", "kind", "match"),
    [
        ("x.jpg", "rgb16", "16-bit"),
        ("x.webp", "rgba16", "16-bit"),
        ("x.jpg", "rgba8", "alpha"),
        ("x.bmp", "rgba8", "alpha"),
        ("x.png", "float32", "float"),
        ("x.gif", "rgb8", "extension"),
    ],
)
def test_write_refuses_what_the_format_cannot_hold(tmp_path: Path, name: str, kind: str, match: str) -> None:
    path = tmp_path / name
    with pytest.raises(ImageWriteError, match=match) as info:
        write_image(path, random_pixels(kind))
    assert str(info.value).startswith(str(path))
    assert list(tmp_path.iterdir()) == []


def test_write_validates_array_and_quality(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="HxWxC"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageWriteError, match="uint8, uint16 or float32"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ImageWriteError, match="quality"):
        write_image(tmp_path / "a.jpg", random_pixels("rgb8"), quality=0)
    write_image(tmp_path / "two_d.png", np.zeros((4, 5), np.uint8))  # 2-D is taken as gray
    assert read_image(tmp_path / "two_d.png").pixels.shape == (4, 5, 1)
    write_image(tmp_path / "noext", random_pixels("rgb8"), format="JPG")
    assert read_image(tmp_path / "noext").source_format == "jpeg"


def test_output_format_for() -> None:
    assert output_format_for("jpeg", False, 8, None) == "jpeg"
    assert output_format_for("png", False, 8, "jpg") == "jpeg"
    assert output_format_for("png", False, 16, "tiff") == "tiff"
    assert output_format_for("tiff", True, 16, None) == "tiff"
    with pytest.warns(ImageWarning, match="alpha"):
        assert output_format_for("jpeg", True, 8, None) == "png"
    with pytest.warns(ImageWarning, match="16-bit"):
        assert output_format_for("png", False, 16, "jpeg") == "png"
    with pytest.warns(ImageWarning, match="16-bit"):
        assert output_format_for("webp", True, 16, None) == "png"
    with pytest.warns(ImageWarning, match="float"):
        assert output_format_for("tiff", False, 32, "png") == "tiff"
    with pytest.warns(ImageWarning, match="16383"):
        assert output_format_for("webp", False, 8, None, size=(30720, 17280)) == "jpeg"
    with pytest.raises(ValueError, match="unknown output format"):
        output_format_for("png", False, 8, "heic")


def test_supported_extensions() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"} <= SUPPORTED_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in SUPPORTED_EXTENSIONS)


# --------------------------------------------------------------------------- atomic writes


def _only_file(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("failure", ["encoder", "fsync", "replace"])
def test_failed_write_leaves_previous_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    dest = tmp_path / "photo.png"
    old = random_pixels("rgb8")
    write_image(dest, old)
    before = dest.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("simulated failure")

    if failure == "encoder":
        monkeypatch.setattr(encode_mod, "_encode", boom)
    elif failure == "fsync":  # temp file fully written, then the disk fails
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ImageWriteError, match="simulated failure") as info:
        write_image(dest, random_pixels("rgb16"))
    monkeypatch.undo()
    assert str(info.value).startswith(str(dest))
    assert _only_file(tmp_path) == ["photo.png"]  # no .photo.png.*.part left behind
    assert dest.read_bytes() == before


def test_write_into_a_file_instead_of_a_folder_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ImageWriteError):
        write_image(tmp_path / "file.txt" / "out.png", random_pixels("rgb8"))
    assert _only_file(tmp_path) == ["file.txt"]


def test_write_creates_folders_and_keeps_modes(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "out.png"
    write_image(dest, random_pixels("rgb8"))
    umask = atomic_mod._UMASK
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    dest.chmod(0o640)
    write_image(dest, random_pixels("rgb8"))
    assert dest.stat().st_mode & 0o777 == 0o640
    assert _only_file(dest.parent) == ["out.png"]


# --------------------------------------------------------------------------- float and alpha helpers


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_to_float_from_float_round_trip_every_value(dtype: type) -> None:
    values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype).reshape(1, -1, 1)
    arr, maxv = to_float(values)
    assert arr.dtype == np.float32 and maxv == np.iinfo(dtype).max
    assert arr.min() == 0.0 and arr.max() == 1.0
    np.testing.assert_array_equal(from_float(arr, dtype), values)


def test_from_float_rounds_and_clips() -> None:
    arr = np.array([-0.1, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.7, np.nan, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(from_float(arr, np.uint8), [0, 0, 0, 1, 255, 255, 0, 255, 0])
    assert from_float(np.array([0.5], np.float32), np.uint16)[0] == 32768  # 32767.5 rounds to even
    f = np.array([1.5, -0.25], np.float32)
    np.testing.assert_array_equal(from_float(f, np.float32), f)  # float output is not clipped
    np.testing.assert_array_equal(to_float(f)[0], f)


def test_premultiply_round_trip_and_zero_alpha() -> None:
    rgb = RNG.random((6, 7, 3), dtype=np.float32)
    alpha = RNG.random((6, 7), dtype=np.float32)
    alpha[0, :] = 0.0
    pm = premultiply(rgb, alpha)
    assert pm.dtype == np.float32
    np.testing.assert_allclose(pm, rgb * alpha[..., None], rtol=1e-6)
    with np.errstate(all="raise"):  # no division by zero anywhere
        back = unpremultiply(pm, alpha[..., None])
    np.testing.assert_allclose(back[1:], rgb[1:], atol=1e-4)
    assert (back[0] == 0).all()
    assert unpremultiply(np.full((1, 1, 3), 0.6, np.float32), np.full((1, 1), 0.5, np.float32)).max() == 1.0


def _disc_on_transparent_black(size: int = 32, radius: float = 8.5) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size]
    inside = (y - size / 2) ** 2 + (x - size / 2) ** 2 <= radius**2
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[inside] = 255
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return rgb, alpha


def test_bleed_colour_removes_dark_halo() -> None:
    rgb, alpha = _disc_on_transparent_black()
    bled = bleed_colour(rgb, alpha)
    assert bled.dtype == rgb.dtype and bled is not rgb
    np.testing.assert_array_equal(bled[alpha > 0], rgb[alpha > 0])  # visible pixels untouched
    ring = (cv2.dilate(alpha, np.ones((3, 3), np.uint8)) > 0) & (alpha == 0)
    assert ring.any() and (bled[ring] == 255).all()  # white under the transparent pixels next to the disc
    # What the complaint is about: upscaling the colour pulls the background into the edge.
    big_alpha = cv2.resize(alpha, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    edge = big_alpha > 128
    naive = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)[edge]
    fixed = cv2.resize(bled, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)[edge]
    assert naive.min() < 200  # dark halo without bleeding
    assert fixed.min() >= 254


def test_bleed_colour_takes_the_nearest_colour() -> None:
    rgb = np.zeros((5, 9, 3), np.uint16)
    alpha = np.zeros((5, 9, 1), np.uint16)
    rgb[2, 1], alpha[2, 1] = (65535, 0, 0), 65535
    rgb[2, 7], alpha[2, 7] = (0, 0, 65535), 1  # barely visible still counts as visible
    bled = bleed_colour(rgb, alpha)
    assert tuple(bled[0, 0]) == (65535, 0, 0) and tuple(bled[4, 8]) == (0, 0, 65535)
    assert tuple(bled[2, 3]) == (65535, 0, 0) and tuple(bled[2, 5]) == (0, 0, 65535)
    none_visible = np.zeros((3, 3), np.uint8)
    np.testing.assert_array_equal(bleed_colour(rgb[:3, :3], none_visible), rgb[:3, :3])


def test_sample_photo_ships_in_the_package_and_crops_wrap() -> None:
    """Probes and INT8 calibration need the photo in an installed wheel too (package data)."""
    from superres.io.sample import SAMPLE_PATH, sample_crop, sample_rgb

    assert SAMPLE_PATH.is_file() and "superres" in SAMPLE_PATH.parts
    rgb = sample_rgb()
    h, w = rgb.shape[:2]
    crop = sample_crop(h + 5, 7, top=1, left=w - 3)
    assert crop.shape == (3, h + 5, 7) and crop.dtype == np.float32
    assert np.array_equal(crop[:, 0, 0], rgb[1, w - 3] / np.float32(255))
    assert np.array_equal(crop[:, h - 1, 3], rgb[0, 0] / np.float32(255))  # wrapped both ways
