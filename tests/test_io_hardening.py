"""Issue 17 (items 1, 2, 4) at the io layer: limits decided before decoding, damaged data refused,
decoder messages captured per file, nothing on stderr. Each reproduction of the issue is a test."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import superres.io.limits as limits_mod
from superres.io import (
    MAX_PIXELS,
    READ_PIXEL_COST,
    ImageDamagedError,
    ImageData,
    ImageLimitError,
    ImageReadError,
    ImageWarning,
    Limits,
    read_image,
)
from superres.io.capture import classify
from superres.io.exif import ifd0_values, patch_ifd0_short

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30
LIMIT_VARIABLES = ("SUPERRES_MAX_PIXELS", "SUPERRES_MAX_FILE_BYTES", "SUPERRES_MAX_RATIO")


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests state the limits they rely on; the caller's environment must not move them."""
    for name in LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- makers


def _pattern(h: int = 48, w: int = 64, seed: int = 17) -> np.ndarray:
    """Half flat, half noise: compresses like a photo, small files."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    arr[:, : w // 2] = (120, 130, 140)
    return arr


def _encode(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A 64x48 JPEG whose SOF header declares another size (libjpeg fills the rest with grey)."""
    data = bytearray(_encode(_pattern(), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def deflate_bomb_png(side: int = 16384) -> bytes:
    """A gray PNG of side x side zero pixels, ~260 KB for 16384: built from one repeated deflate
    block (a full flush resets the compressor, so every 1 MiB block of zeros codes the same)."""
    row = side + 1  # filter byte + samples
    rows_per_block = 64
    assert side % rows_per_block == 0
    comp = zlib.compressobj(9)
    zeros = bytes(row * rows_per_block)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    blocks = side // rows_per_block
    tail = comp.flush()[:-4]  # final empty block; its Adler-32 is for 2 blocks only
    total = row * side
    adler = ((total % 65521) << 16) | 1  # all-zero data: a stays 1, b counts the bytes
    idat = first + block * (blocks - 1) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))  # fmt: skip


def tiff_compression_9999() -> bytes:
    """The issue's reproduction: a flat 40x30 grey TIFF saved with Pillow, tag 259 set to 9999."""
    buf = io.BytesIO()
    Image.new("L", (40, 30), 128).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    patch_ifd0_short(data, 0, 259, 9999)
    return bytes(data)


def flipped_tiff(compression: str) -> bytes:
    data = bytearray(_encode(_pattern(30, 40), "TIFF", compression=compression))
    (offset,) = ifd0_values(bytes(data), 0, 273) or [0]
    for k in range(5):
        data[offset + 10 + 7 * k] ^= 0xFF
    return bytes(data)


def flipped_png(*, fix_crc: bool) -> bytes:
    """Noise PNG in stored deflate blocks: flipped pixel bytes decode, but fail CRC and Adler-32."""
    arr = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    raw = bytearray(b"".join(b"\x00" + row.tobytes() for row in arr))
    stream = bytearray(zlib.compress(bytes(raw), 0))  # 2-byte header, 5-byte stored-block header
    for k in range(5):
        stream[2 + 5 + 121 * (10 + k) + 50] ^= 0xFF  # inside rows 10-14, not their filter bytes
    ihdr = struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0)
    idat = _png_chunk(b"IDAT", bytes(stream))
    if not fix_crc:  # as flipped on disk; else a careful corruption only zlib's checksum tells
        idat = idat[:-4] + bytes(4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + idat + _png_chunk(b"IEND", b"")


def flipped_apng(chunk: bytes = b"fdAT") -> bytes:
    """An animated PNG with flipped bytes in its first frame (IDAT) or a later one (fdAT)."""
    frames = [Image.fromarray(_pattern(30, 40, seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    data = bytearray(buf.getvalue())
    at = data.index(chunk)
    for k in range(5):
        data[at + 20 + 9 * k] ^= 0xFF
    return bytes(data)


DAMAGED = {
    "lzw.tif": lambda: flipped_tiff("tiff_lzw"),
    "deflate.tif": lambda: flipped_tiff("tiff_adobe_deflate"),
    "enlarged.jpg": lambda: jpeg_with_size(128, 96),
    "frames.png": flipped_apng,
    "first-frame.png": lambda: flipped_apng(b"IDAT"),
}
# libpng (in OpenCV) stops at a zlib checksum error in a plain PNG: no pixels to accept.
UNDECODABLE = {
    "idat.png": lambda: flipped_png(fix_crc=False),
    "adler.png": lambda: flipped_png(fix_crc=True),
}


# --------------------------------------------------------------------------- item 1: limits


def test_jpeg_with_a_16384_header_is_refused_before_any_allocation(tmp_path: Path) -> None:
    """1,155-byte JPEG, 16384x16384 header: took 22.6 GB. Now refused from the header, in a fresh
    process whose peak memory is checked, even with the pixel limit at its hard ceiling."""
    path = tmp_path / "bomb.jpg"
    path.write_bytes(jpeg_with_size(16384, 16384))
    assert len(path.read_bytes()) < 4096
    code = (
        "import json, sys\n"
        "from superres.io import read_image, ImageLimitError\n"
        "from tests.test_io_hardening import peak_kib\n"
        "before = peak_kib()\n"
        "try:\n"
        f"    read_image(sys.argv[1], max_pixels={MAX_PIXELS})\n"
        "    message = None\n"
        "except ImageLimitError as e:\n"
        "    message = str(e)\n"
        "print(json.dumps({'message': message, 'grew_kib': peak_kib() - before}))\n"
    )
    out = _child(code, str(path))
    assert out["message"] is not None, "the 16384x16384 JPEG was decoded"
    assert out["message"].startswith(str(path))
    assert "16384x16384" in out["message"] and "SUPERRES_MAX_RATIO" in out["message"]
    assert out["grew_kib"] < 64 * 1024  # decoding would take 805 MB, upscaling it 50+ GB


def test_deflate_bomb_png_is_refused_by_the_memory_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~260 KB PNG of 16384^2 zeros passed the old limit. On a 24 GiB machine at the upscale
    path's 200 bytes per pixel, the budget is 0.75 * 24 GiB / 200 = 97 Mpx."""
    data = deflate_bomb_png()
    assert len(data) < 300_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    monkeypatch.setattr(limits_mod, "available_memory", lambda: 24 * GIB)
    start = time.perf_counter()
    with pytest.raises(ImageLimitError) as info:
        read_image(path)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "16384x16384 = 268 Mpx, over the limit of 96.6 Mpx" in message
    assert "available memory at 200 bytes per pixel" in message and "SUPERRES_MAX_PIXELS" in message
    # A caller that only decodes spends ~24 bytes per pixel: the ceiling (2**28) decides.
    assert Limits(pixel_cost=READ_PIXEL_COST).pixel_limit() == (MAX_PIXELS, "the hard ceiling")


def test_sparse_2gib_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.truncate(2 * GIB)  # sparse: no disk used
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(ImageLimitError, match=r"file is 2 GiB, over the file-size limit of 1 GiB") as e:
            read_image(path)
        assert "SUPERRES_MAX_FILE_BYTES" in str(e.value)
        assert time.perf_counter() - start < 1.0
        # Limit raised: the first bytes are no image format, so only they are read (the peak
        # says so; the time would not: Pillow imports all its plugins to name an unknown format).
        with pytest.raises(ImageReadError, match="not an image file"):
            read_image(path, limits=Limits(max_file_bytes=4 * GIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_limits_from_keywords_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(_encode(_pattern(), "PNG"))
    size = path.stat().st_size
    monkeypatch.setenv("SUPERRES_MAX_FILE_BYTES", "1K")
    with pytest.raises(ImageLimitError, match="over the file-size limit of 1 KiB"):
        read_image(path)
    assert read_image(path, limits=Limits(max_file_bytes=size)).pixels.shape == (48, 64, 3)  # keyword wins
    monkeypatch.setenv("SUPERRES_MAX_FILE_BYTES", "lots")
    with pytest.raises(ValueError, match="SUPERRES_MAX_FILE_BYTES"):
        read_image(path)
    monkeypatch.delenv("SUPERRES_MAX_FILE_BYTES")

    jpeg = tmp_path / "big.jpg"
    jpeg.write_bytes(jpeg_with_size(2048, 2048))  # 12 MiB of samples in ~2 KB: over 1400:1
    with pytest.raises(ImageLimitError, match=r"over the limit of 1,400:1"):
        read_image(jpeg)
    monkeypatch.setenv("SUPERRES_MAX_RATIO", "off")  # then the decoder says what is wrong
    with pytest.raises(ImageDamagedError, match="Corrupt JPEG data"):
        read_image(jpeg)
    monkeypatch.setenv("SUPERRES_MAX_RATIO", "-3")
    with pytest.raises(ValueError, match="SUPERRES_MAX_RATIO"):
        read_image(jpeg)
    monkeypatch.delenv("SUPERRES_MAX_RATIO")
    with pytest.raises(ImageLimitError, match=r"over the limit of 0.001 Mpx \(max_pixels=1000"):
        read_image(path, limits=Limits(max_pixels=1000))


def test_derived_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_mod, "available_memory", lambda: 1 * GIB)
    limit, how = Limits().pixel_limit()
    assert limit == int(0.75 * GIB / 200) and "1 GiB available memory" in how
    assert Limits(pixel_cost=50, memory_fraction=0.5).pixel_limit()[0] == int(0.5 * GIB / 50)
    monkeypatch.setattr(limits_mod, "available_memory", lambda: 1 << 50)
    assert Limits().pixel_limit()[0] == MAX_PIXELS
    monkeypatch.setenv("SUPERRES_MAX_PIXELS", "1_000_000")
    assert Limits().pixel_limit()[0] == 1_000_000
    with pytest.raises(ValueError, match="pixel_cost"):
        Limits(pixel_cost=0)
    assert limits_mod.parse_size("512M", "x") == 512 << 20 and limits_mod.parse_size("2GiB", "x") == 2 * GIB


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(path)


# --------------------------------------------------------------------------- item 2: damaged data


def test_tiff_with_unknown_compression_is_an_error(tmp_path: Path) -> None:
    """Compression=9999 read as an all-black image with no error."""
    path = tmp_path / "c.tif"
    path.write_bytes(tiff_compression_9999())
    for allow in (False, True):  # not damage: nothing can decode it
        with pytest.raises(ImageReadError, match="unsupported TIFF compression 9999") as info:
            read_image(path, allow_damaged=allow)
        assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_data_is_an_error_unless_allowed(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(DAMAGED[name]())
    with pytest.raises(ImageDamagedError, match="damaged image data") as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: ") and info.value.details
    img = read_image(path, allow_damaged=True, emit_warnings=False)
    assert isinstance(img, ImageData) and img.pixels.ndim == 3
    assert img.warnings and img.warnings[0].startswith("damaged image data, accepted: ")
    assert all(str(path) not in w for w in img.warnings)  # the caller adds the path


@pytest.mark.parametrize("name", sorted(UNDECODABLE))
def test_undecodable_png_is_an_error_even_when_damage_is_allowed(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(UNDECODABLE[name]())
    for allow in (False, True):
        with pytest.raises(ImageReadError, match=r"cannot decode the pixel data \(.*libpng error: IDAT"):
            read_image(path, allow_damaged=allow)


def test_damage_is_named_by_the_decoder(tmp_path: Path) -> None:
    cases = {"enlarged.jpg": "libjpeg: Corrupt JPEG data", "lzw.tif": "libtiff: ",
             "first-frame.png": "libpng warning: IDAT",
             "frames.png": "PNG chunk 'fdAT' fails its CRC check"}  # fmt: skip
    for name, expected in cases.items():
        path = tmp_path / name
        path.write_bytes(DAMAGED[name]())
        with pytest.raises(ImageDamagedError) as info:
            read_image(path)
        assert expected in str(info.value), (name, str(info.value))


def test_warnings_are_returned_and_optionally_emitted(tmp_path: Path) -> None:
    path = tmp_path / "enlarged.jpg"
    path.write_bytes(DAMAGED["enlarged.jpg"]())
    with pytest.warns(ImageWarning, match="enlarged.jpg: damaged image data, accepted: libjpeg"):
        img = read_image(path, allow_damaged=True)
    assert img.pixels.shape == (96, 128, 3) and len(img.warnings) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = read_image(path, allow_damaged=True, emit_warnings=False)
    assert not caught and len(img.warnings) == 1
    good = tmp_path / "good.png"
    good.write_bytes(_encode(_pattern(), "PNG"))
    assert read_image(good).warnings == []


def test_errors_pickle_with_their_details(tmp_path: Path) -> None:
    import pickle

    err = ImageDamagedError(tmp_path / "x.jpg", "damaged image data (x)", details=("libjpeg: x",))
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ImageDamagedError) and again.details == err.details and str(again) == str(err)


CLASSIFIED = [
    ("[ERROR:0@0.09] global grfmt_tiff.cpp:117 TIFF_Error Compression scheme 9999 strip decoding is not "
     "implemented", "unsupported"),
    ("[ERROR:0@0.08] global grfmt_tiff.cpp:117 TIFF_Error ZIPDecode: Decoding error at scanline 0", "damage"),
    ("[ WARN:0@0.1] global grfmt_tiff.cpp:120 TIFF_Warning TIFFReadDirectory: Unknown field with tag 33723 "
     "(0x83bb) encountered", "quiet"),
    ("[ WARN:0@0.1] global grfmt_tiff.cpp:120 TIFF_Warning something else", "notes"),
    ("libpng warning: iCCP: known incorrect sRGB profile", "quiet"),
    ("libpng warning: IDAT: ADLER32 checksum mismatch", "damage"),
    ("libpng error: IDAT: incorrect data check", "damage"),
    ("Corrupt JPEG data: premature end of data segment", "damage"),
    ("Corrupt JPEG data: 2 extraneous bytes before marker 0xd9", "notes"),  # camera padding
    ("Corrupt JPEG data: 468 extraneous bytes before marker 0xd9", "damage"),
    ("Premature end of JPEG file", "damage"),
    ("Warning: unknown JFIF revision number 0.00", "notes"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "kind"), CLASSIFIED)
def test_decoder_lines_are_classified(line: str, kind: str) -> None:
    assert classify(line)[0] == kind


# --------------------------------------------------------------------------- item 4: stderr


def test_nothing_reaches_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    files = {**DAMAGED, **UNDECODABLE, "c9999.tif": tiff_compression_9999,
             "big.jpg": lambda: jpeg_with_size(4096, 4096)}  # fmt: skip
    for name, make in files.items():
        (tmp_path / name).write_bytes(make())
    capfd.readouterr()
    for name in files:
        for allow in (False, True):
            with contextlib.suppress(ImageReadError):
                read_image(tmp_path / name, allow_damaged=allow, emit_warnings=False)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    os.write(2, b"fd 2 restored\n")  # the capture always hands fd 2 back
    assert capfd.readouterr().err == "fd 2 restored\n"


def test_concurrent_reads_keep_their_own_messages(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    damaged, good = tmp_path / "enlarged.jpg", tmp_path / "good.png"
    damaged.write_bytes(DAMAGED["enlarged.jpg"]())
    good.write_bytes(_encode(_pattern(), "PNG"))
    results: dict[str, list[str]] = {}

    def work(i: int) -> None:
        path = damaged if i % 2 else good
        img = read_image(path, allow_damaged=True, emit_warnings=False)
        results[f"{i}"] = img.warnings

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for key, notes in results.items():
        assert (len(notes) == 1) if int(key) % 2 else (notes == []), (key, notes)
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- mini fuzz


def _fuzz_seeds() -> dict[str, bytes]:
    rgb = _pattern(24, 32)
    im = Image.fromarray(rgb)
    seeds = {
        "rgb.png": _encode(rgb, "PNG"),
        "gray.png": _encode(rgb[..., 0], "PNG"),
        "base.jpg": _encode(rgb, "JPEG", quality=90),
        "prog.jpg": _encode(rgb, "JPEG", quality=80, progressive=True),
        "lossy.webp": _encode(rgb, "WEBP", quality=80),
        "lossless.webp": _encode(rgb, "WEBP", lossless=True),
        "lzw.tif": _encode(rgb, "TIFF", compression="tiff_lzw"),
        "zip.tif": _encode(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "raw.tif": _encode(rgb, "TIFF"),
        "rgb.bmp": _encode(rgb, "BMP"),
    }
    buf = io.BytesIO()
    im.save(buf, "PNG", save_all=True, append_images=[im.rotate(90), im.transpose(0)])
    seeds["anim.png"] = buf.getvalue()
    return seeds


def _enlarge(name: str, data: bytes, rng: np.random.Generator) -> bytes:
    d = bytearray(data)
    w, h = (int(rng.choice([200, 2048, 16384, 65535])) for _ in range(2))
    if name.endswith(".png"):
        struct.pack_into(">II", d, 16, w, h)
    elif name.endswith(".jpg"):
        sof = max(d.find(b"\xff\xc0"), d.find(b"\xff\xc2"))
        struct.pack_into(">HH", d, sof + 5, h, w)
    elif name.endswith(".tif"):
        patch_ifd0_short(d, 0, 256, w)
        patch_ifd0_short(d, 0, 257, h)
    elif name.endswith(".bmp"):
        struct.pack_into("<ii", d, 18, w, h)
    elif d[12:16] == b"VP8 ":
        struct.pack_into("<HH", d, 26, w & 0x3FFF, h & 0x3FFF)
    return bytes(d)


def fuzz_cases(n: int, seed: int = 17) -> list[tuple[str, bytes]]:
    """Flipped bytes (anywhere, or in the header), truncations and enlarged headers, seeded."""
    rng = np.random.default_rng(seed)
    seeds = _fuzz_seeds()
    names = sorted(seeds)
    cases = []
    for k in range(n):
        name = names[k % len(names)]
        d = bytearray(seeds[name])
        kind = ("flip", "head", "cut", "enlarge")[k // len(names) % 4]
        if kind == "flip":
            for _ in range(int(rng.integers(1, 9))):
                d[int(rng.integers(8, len(d)))] ^= int(rng.integers(1, 256))
        elif kind == "head":
            for _ in range(int(rng.integers(1, 4))):
                d[int(rng.integers(2, 64))] ^= int(rng.integers(1, 256))
        elif kind == "cut":
            d = d[: int(rng.integers(1, len(d)))]
        else:
            d = bytearray(_enlarge(name, bytes(d), rng))
        cases.append((f"{k:03d}_{kind}_{name}", bytes(d)))
    return cases


FUZZ_MEMORY = 4 * GIB  # the child's pretended available memory: a pixel budget of 16.1 Mpx


def _fuzz_child(folder: str) -> None:
    """Runs in a fresh process: read every case, report outcomes, time and peak memory.

    The available memory is pinned so that the pixel budget, and with it the peak, is the same on
    every machine: a WebP header enlarged within the budget is allocated before libwebp finds
    its data short (WebP is exempt from the ratio check).
    """
    limits_mod.available_memory = lambda: FUZZ_MEMORY
    outcomes: dict[str, int] = {}
    others: list[str] = []
    slowest = 0.0
    for path in sorted(Path(folder).iterdir()):
        start = time.perf_counter()
        try:
            img = read_image(path, emit_warnings=False)
            assert img.pixels.ndim == 3 and img.pixels.size > 0
            outcome = "ok"
        except ImageReadError as e:
            outcome = type(e).__name__
        except Exception as e:  # the point of the test: report, don't stop
            outcome = "other"
            others.append(f"{path.name}: {type(e).__name__}: {e}")
        slowest = max(slowest, time.perf_counter() - start)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(json.dumps({"outcomes": outcomes, "others": others, "slowest": slowest, "peak_kib": peak_kib()}))


def peak_kib() -> int:
    """This process's peak resident memory in KiB. VmHWM, not ru_maxrss: on Linux the latter
    keeps the parent's peak across fork and exec, so a child of a big pytest process reads high."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LIMIT_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # nothing from any decoder, no Python warning
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mini_fuzz(tmp_path: Path) -> None:
    """~200 mutated small images: each is an ImageData or one ImageReadError, nothing else, with
    nothing on stderr, fast, and in bounded memory (a fresh process's peak RSS)."""
    cases = fuzz_cases(220)
    for name, data in cases:
        (tmp_path / name).write_bytes(data)
    result = _child("import sys, tests.test_io_hardening as t; t._fuzz_child(sys.argv[1])", str(tmp_path))
    assert result["others"] == []
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == len(cases)
    assert outcomes.get("ImageLimitError", 0) > 10 and outcomes.get("ImageReadError", 0) > 50
    assert outcomes.get("ImageDamagedError", 0) > 5 and outcomes.get("ok", 0) > 10
    assert result["slowest"] < 2.0
    # The libraries take ~100 MB; then at most the budget at read_image's own cost per pixel.
    budget = int(0.75 * FUZZ_MEMORY / 200)
    assert result["peak_kib"] * 1024 < 150e6 + budget * READ_PIXEL_COST


def _jpeg_with_tail(tail: bytes) -> bytes:
    """A valid JPEG with ``tail`` inserted before its end-of-image marker."""
    data = _encode(_pattern(), "JPEG")
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + tail + b"\xff\xd9"


def test_camera_padding_before_eoi_is_a_warning_but_stray_scan_bytes_are_damage(tmp_path: Path) -> None:
    """libjpeg words both alike ("N extraneous bytes before marker 0xd9"); the bytes tell them apart."""
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(_jpeg_with_tail(b"\x00\x00"))
    img = read_image(padded, emit_warnings=False)
    assert any("extraneous bytes" in w for w in img.warnings)
    stray = tmp_path / "stray.jpg"
    stray.write_bytes(_jpeg_with_tail(b"\x5a\x13"))
    with pytest.raises(ImageDamagedError, match="extraneous bytes"):
        read_image(stray)
