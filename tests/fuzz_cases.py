"""Fuzzed input files for ``superres upscale``: seeded, built from small valid images made here.

Shared by ``tests/test_fuzz_inputs.py`` (a few hundred cases) and ``benchmarks/fuzz_inputs.py``
(thousands). Each :class:`Case` is a file (or link, FIFO, folder entry) on disk plus what the
CLI must do with it, written down when the case is made, so the checker in
:mod:`tests.fuzz_harness` needs no knowledge of how it was damaged:

* ``ok``: an undamaged image (odd name, symlink, EXIF orientation, APNG, multi-page TIFF...):
  it must be written, decodable, at twice its upright size.
* ``fail``: a file the CLI must refuse with exactly one ``error: PATH: reason`` line and no output
  (truncated, empty, text, bombs and enlarged headers, TIFF Compression=9999, dangling or looping
  links, FIFOs, and flipped bytes after which the decoder itself reports damaged data).
* ``any``: damaged in a way a decoder may not notice (e.g. a flipped byte in JPEG entropy data):
  either written at a plausible size or refused with one line, never both.
* ``skip``: a non-regular entry met while scanning a folder (FIFO, dangling link): ignored or
  refused with one line, never written.
* ``ignored``: not an image file in a scanned folder (``notes.txt``): no output, no line.

The case class (``flip:png8``, ``huge-header:jpeg``, ``symlink``...) is what the result table
is grouped by. See docs/fuzzing.md.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.fuzz_oracle import decoder_messages, decoder_reports_damage, header_size

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "chelsea.png"
PNG_SIG = b"\x89PNG\r\n\x1a\n"
SPARSE_BYTES = 3 << 30  # a "huge" file that costs no disk (a hole); reading it whole costs 3 GiB
HUGE_SIZES = ((16384, 16384), (65535, 65535), (65535, 16384), (20000, 20000))


@dataclass
class Case:
    """One fuzzed input and what the CLI must do with it."""

    name: str  # path relative to the fuzz root, as passed on the command line (or scanned)
    cls: str  # case class, e.g. "flip:tiff-lzw"
    expect: str  # ok | fail | any | skip | ignored
    size: tuple[int, int] | None  # upright (width, height) of the input, when known
    what: str  # how it was made, for the report
    recursive: bool = False  # found by scanning the tree with --recursive (else passed by name)
    diag: tuple[str, ...] = ()  # what the decoders print for this file (to attribute stderr noise)

    @property
    def out_rel(self) -> Path:
        """Output path relative to OUT, without the extension (the CLI may change it)."""
        p = Path(self.name)
        p = p.relative_to(TREE) if self.recursive else Path(p.name)
        return p.parent / p.stem


TREE = "tree"  # folder (under the fuzz root) that the recursive run scans


# --------------------------------------------------------------------------------------------
# the valid images every mutation starts from


@dataclass
class Base:
    name: str
    ext: str
    data: bytes
    size: tuple[int, int]  # upright (width, height)


def _photo(w: int, h: int, y: int = 60, x: int = 150) -> np.ndarray:
    bgr = cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[y : y + h, x : x + w, ::-1])


def _cv(ext: str, arr: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[:, :, [2, 1, 0, *range(3, arr.shape[2])]]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), list(params))
    assert ok, ext
    return buf.tobytes()


def _pil(img: Image.Image | list[Image.Image], fmt: str, **kw: object) -> bytes:
    bio = io.BytesIO()
    if isinstance(img, list):
        img[0].save(bio, fmt, save_all=True, append_images=img[1:], **kw)
    else:
        img.save(bio, fmt, **kw)
    return bio.getvalue()


def make_bases() -> list[Base]:
    """Small valid images in every format and layout superres reads (built in memory)."""
    rgb = _photo(40, 30)
    odd = _photo(37, 23, 100, 200)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.linspace(0, 255, 40 * 30).reshape(30, 40, 1).astype(np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    rgb16 = rgb.astype(np.uint16) * 257
    pil = Image.fromarray(rgb)
    frames = [Image.fromarray(np.roll(rgb, 3 * i, axis=1)) for i in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 cw to view: upright size is 30x40
    w, h = 40, 30
    return [
        Base("png8", ".png", _cv(".png", rgb), (w, h)),
        Base("png16", ".png", _cv(".png", rgb16), (w, h)),
        Base("png-gray", ".png", _cv(".png", gray), (w, h)),
        Base("png-rgba", ".png", _cv(".png", rgba), (w, h)),
        Base("png-odd", ".png", _cv(".png", odd), (37, 23)),
        Base("jpeg", ".jpg", _cv(".jpg", rgb, (cv2.IMWRITE_JPEG_QUALITY, 90)), (w, h)),
        Base("jpeg-progressive", ".jpg", _pil(pil, "JPEG", quality=85, progressive=True), (w, h)),
        Base("jpeg-exif6", ".jpg", _pil(pil, "JPEG", quality=90, exif=exif), (h, w)),
        Base("webp", ".webp", _cv(".webp", rgb, (cv2.IMWRITE_WEBP_QUALITY, 90)), (w, h)),
        Base("webp-rgba", ".webp", _pil(Image.fromarray(rgba), "WEBP", lossless=True), (w, h)),
        Base("tiff-lzw", ".tif", _pil(pil, "TIFF", compression="tiff_lzw"), (w, h)),
        Base("tiff-deflate", ".tif", _pil(pil, "TIFF", compression="tiff_adobe_deflate"), (w, h)),
        Base("tiff-raw", ".tif", _pil(pil, "TIFF"), (w, h)),
        Base("tiff-gray", ".tif", _pil(Image.fromarray(gray), "TIFF", compression="tiff_lzw"), (w, h)),
        Base("tiff-multipage", ".tif", _pil(frames, "TIFF", compression="tiff_lzw"), (w, h)),
        Base("bmp", ".bmp", _cv(".bmp", rgb), (w, h)),
        Base("apng", ".png", _pil(frames, "PNG", duration=100, loop=0), (w, h)),
    ]


# --------------------------------------------------------------------------------------------
# byte-level helpers: JPEG SOF, PNG chunks, TIFF IFD0


def jpeg_sof(data: bytes) -> int | None:
    """Offset of the SOFn marker (its 0xFF), walking segments by their lengths."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        code = data[pos + 1]
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            return pos
        if code == 0xDA:
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_set_size(data: bytes, w: int, h: int) -> bytes:
    """The PNG with IHDR's width and height replaced and its CRC made right again."""
    ihdr = bytearray(data[16:29])
    struct.pack_into(">II", ihdr, 0, w, h)
    return data[:8] + png_chunk(b"IHDR", bytes(ihdr)) + data[33:]


def _tiff_entries(buf: bytes | bytearray) -> tuple[str, list[tuple[int, int, int, int]]]:
    """Byte order and IFD0 entries as (tag, type, count, entry offset)."""
    e = "<" if buf[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(e + "I", buf, 4)
    (n,) = struct.unpack_from(e + "H", buf, ifd)
    out = []
    for i in range(n):
        at = ifd + 2 + 12 * i
        tag, typ, count = struct.unpack_from(e + "HHI", buf, at)
        out.append((tag, typ, count, at))
    return e, out


def tiff_set_tag(data: bytes, tag: int, value: int) -> bytes | None:
    """The TIFF with every value of IFD0's ``tag`` set to ``value`` (SHORT made LONG when needed)."""
    buf = bytearray(data)
    e, entries = _tiff_entries(buf)
    for t, typ, count, at in entries:
        if t != tag or typ not in (3, 4):
            continue
        if count == 1:
            typ = 4 if value > 0xFFFF else typ
            struct.pack_into(e + "HHI", buf, at, tag, typ, 1)
            struct.pack_into(e + ("I" if typ == 4 else "H"), buf, at + 8, value)
            if typ == 3:
                struct.pack_into(e + "H", buf, at + 10, 0)
            return bytes(buf)
        size = 2 if typ == 3 else 4
        inline = count * size <= 4
        (off,) = (at + 8,) if inline else struct.unpack_from(e + "I", buf, at + 8)
        code, mask = ("H", 0xFFFF) if typ == 3 else ("I", 0xFFFFFFFF)
        for i in range(count):
            struct.pack_into(e + code, buf, off + size * i, value & mask)
        return bytes(buf)
    return None


def jpeg_with_exif(data: bytes, exif_payload: bytes) -> bytes:
    """The JPEG with an APP1 Exif segment (``Exif\\0\\0`` + payload) right after SOI."""
    body = b"Exif\x00\x00" + exif_payload
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]


def exif_tiff(entries: list[tuple[int, int, int, bytes]], ifd_offset: int = 8,
              claimed: int | None = None) -> bytes:
    """A little-endian TIFF structure with IFD0 ``entries`` (tag, type, count, 4 value bytes)."""
    n = len(entries) if claimed is None else claimed
    head = b"II*\x00" + struct.pack("<I", ifd_offset)
    pad = b"\x00" * max(0, ifd_offset - 8) if ifd_offset < 4096 else b""  # else: points past the end
    ifd = struct.pack("<H", n) + b"".join(struct.pack("<HHI", t, ty, c) + v[:4].ljust(4, b"\0")
                                          for t, ty, c, v in entries)
    return head + pad + ifd + b"\x00\x00\x00\x00"


def add_diagnostics(root: Path, cases: list[Case]) -> None:
    """Record what the decoders say about each small regular case file (see Case.diag)."""
    for c in cases:
        p = root / c.name
        if c.diag or p.is_symlink() or not p.is_file() or p.stat().st_size > 1 << 20:
            continue
        data = p.read_bytes()
        size = header_size(data)
        if size is not None and size[0] * size[1] > 4_000_000:
            continue  # an enlarged header: decoding it here would be the bomb
        c.diag = tuple(decoder_messages(data)[1])


# --------------------------------------------------------------------------------------------
# the case classes: each maker writes one case file and returns its Case (None: not applicable)

Maker = Callable[[random.Random, Path, str, Base], "Case | None"]


def _write(root: Path, name: str, data: bytes) -> None:
    (root / name).write_bytes(data)


def _flip(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    buf = bytearray(b.data)
    k = rng.choice((1, 1, 2, 4, 8))
    spots = []
    for _ in range(k):
        pos = rng.randrange(len(buf)) if rng.random() < 0.6 else rng.randrange(min(len(buf), 256))
        buf[pos] ^= rng.randrange(1, 256)
        spots.append(pos)
    data = bytes(buf)
    if data == b.data:
        return None
    name = f"{stem}{b.ext}"
    _write(root, name, data)
    damaged, said, same_size = decoder_reports_damage(data, b.size)
    return Case(name, f"flip:{b.name}", "fail" if damaged else "any", b.size if same_size else None,
                f"{k} byte(s) xor-ed at {sorted(spots)}", diag=tuple(said))


def _trunc(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    cut = rng.randrange(1, len(b.data) - 1)
    name = f"{stem}{b.ext}"
    _write(root, name, b.data[:cut])
    return Case(name, f"trunc:{b.name}", "fail", b.size, f"cut to {cut} of {len(b.data)} bytes")


def _huge(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    w, h = rng.choice(HUGE_SIZES)
    if b.ext == ".jpg":
        sof = jpeg_sof(b.data)
        if sof is None:
            return None
        buf = bytearray(b.data)
        struct.pack_into(">HH", buf, sof + 5, h, w)
        data, fmt = bytes(buf), "jpeg"
    elif b.ext == ".png":
        data, fmt = png_set_size(b.data, w, h), "png"
    elif b.ext == ".tif":
        d1 = tiff_set_tag(b.data, 256, w)
        data = tiff_set_tag(d1, 257, h) if d1 else None
        if data is None:
            return None
        fmt = "tiff"
    else:
        return None
    name = f"{stem}{b.ext}"
    _write(root, name, data)
    return Case(name, f"huge-header:{fmt}", "fail", None, f"{b.name} header set to {w}x{h}")


_TIFF_TAGS = (  # (tag, value, expectation)
    (259, 9999, "fail"),  # Compression unknown: the all-black output
    (259, 7, "any"),  # says JPEG-in-TIFF although the data is LZW/raw
    (258, 0, "any"), (258, 3, "any"), (258, 12, "any"), (258, 64, "any"),  # BitsPerSample
    (277, 0, "any"), (277, 9, "any"),  # SamplesPerPixel
    (262, 99, "any"),  # Photometric
    (284, 7, "any"),  # PlanarConfiguration
    (279, 0x7FFFFFF0, "fail"),  # StripByteCounts past the end of the file
    (273, 0x7FFFFFF0, "fail"),  # StripOffsets past the end of the file
    (274, 0, "any"), (274, 9, "any"), (274, 65535, "any"),  # Orientation out of range
)


def _tiff_tag(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    if b.ext != ".tif" or b.name == "tiff-multipage":
        return None
    tag, value, expect = rng.choice(_TIFF_TAGS)
    data = tiff_set_tag(b.data, tag, value)
    if data is None:
        return None
    name = f"{stem}.tif"
    _write(root, name, data)
    return Case(name, "tiff-tag", expect, b.size, f"{b.name} tag {tag} set to {value}")


def _exif(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    if b.name != "jpeg":
        return None
    orient = rng.choice((0, 9, 255, 65535, 3, 6))
    variants = {
        "orientation": exif_tiff([(0x0112, 3, 1, struct.pack("<H", orient))]),
        "orientation-ascii": exif_tiff([(0x0112, 2, 4, b"six\0")]),
        "orientation-count": exif_tiff([(0x0112, 3, 50000, struct.pack("<I", 8))]),
        "ifd-count-huge": exif_tiff([(0x0112, 3, 1, b"\x01\0")], claimed=0xFFFF),
        "ifd-offset-out": exif_tiff([(0x0112, 3, 1, b"\x06\0")], ifd_offset=0x7FFFFFF0),
        "exif-ifd-loop": exif_tiff([(0x8769, 4, 1, struct.pack("<I", 8)), (0x0112, 3, 1, b"\x06\0")]),
        "garbage": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
        "empty": b"",
    }
    kind = rng.choice(sorted(variants))
    data = jpeg_with_exif(b.data, variants[kind])
    name = f"{stem}.jpg"
    _write(root, name, data)
    what = f"EXIF {kind}" + (f" = {orient}" if kind == "orientation" else "")
    return Case(name, "exif", "any", b.size, what)


def _empty(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    name = f"{stem}{b.ext}"
    _write(root, name, b"")
    return Case(name, "empty", "fail", None, "0 bytes")


_TEXTS = (b"hello, world\n", b"<!DOCTYPE html><html><body>404</body></html>\n",
          b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", PNG_SIG + b"not really a png\n", b"\xff\xd8\xff\xe0 text\n",
          b"II*\x00\x08\x00\x00\x00", b"BM" + b"\x00" * 40, b"RIFF\x10\x00\x00\x00WEBPVP8 ")


def _text(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    name = f"{stem}{rng.choice(('.png', '.jpg', '.tif', '.webp', '.bmp', '.jpeg', '.PNG'))}"
    _write(root, name, rng.choice(_TEXTS) * rng.choice((1, 3, 50)))
    return Case(name, "text", "fail", None, "text or a bare magic number under an image name")


def _name_bytes(s: str) -> int:
    return len(s.encode("utf-8"))


def _odd_name(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    ext = {".jpg": rng.choice((".jpg", ".JPG", ".jpeg", ".jpe")), ".tif": rng.choice((".tif", ".TIFF")),
           ".png": rng.choice((".png", ".PNG"))}.get(b.ext, b.ext)
    kind = rng.choice(("spaces", "unicode", "dash", "colon", "glob", "long240", "long250", "long255",
                       "long-multibyte", "dots"))
    if kind == "spaces":
        name = f"{stem} with  spaces {ext}"
    elif kind == "unicode":
        name = f"{stem}-ünï cødé 名前 😀{ext}"
    elif kind == "dash":
        name = f"-{stem}{ext}"
    elif kind == "colon":
        name = f"{stem}: error: x{ext}"
    elif kind == "glob":
        name = f"{stem}[*]?{{a,b}}$HOME%s{ext}"
    elif kind == "dots":
        name = f"{stem}...{ext}"
    elif kind == "long-multibyte":
        fill = 255 - _name_bytes(stem + "-" + ext)
        name = f"{stem}-{'é' * (fill // 2)}{ext}"
    else:
        target = int(kind[4:])
        name = f"{stem}-{'x' * (target - _name_bytes(stem + '-' + ext))}{ext}"
    _write(root, name, b.data)
    return Case(name, "odd-name", "ok", b.size, f"{b.name} named {kind} ({_name_bytes(name)} bytes)")


def _symlink(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    kind = rng.choice(("good-relative", "good-absolute", "dangling", "loop", "self", "chain-50"))
    name = f"{stem}{b.ext}"
    link = root / name
    target = root / "targets" / f"{stem}{b.ext}"
    if kind.startswith("good"):
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(b.data)
        link.symlink_to(target if kind == "good-absolute" else os.path.relpath(target, root))
        return Case(name, "symlink", "ok", b.size, f"link to a good {b.name} ({kind})")
    if kind == "dangling":
        link.symlink_to(f"missing-{stem}{b.ext}")
    elif kind == "loop":
        other = root / "targets" / f"{stem}-other{b.ext}"
        other.parent.mkdir(exist_ok=True)
        other.symlink_to(link)
        link.symlink_to(other)
    elif kind == "self":
        link.symlink_to(name)
    else:
        chain = root / "targets" / stem
        chain.mkdir(parents=True)
        (chain / "0").write_bytes(b.data)
        for i in range(1, 51):
            (chain / str(i)).symlink_to(str(i - 1))
        link.symlink_to(chain / "50")
        return Case(name, "symlink", "fail", None, "chain of 50 links (ELOOP) to a good file")
    return Case(name, "symlink", "fail", None, f"{kind} link")


def _fifo(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    if not hasattr(os, "mkfifo"):
        return None
    name = f"{stem}{b.ext}"
    os.mkfifo(root / name)
    return Case(name, "fifo", "fail", None, "named pipe with no writer (must not block)")


def _good(rng: random.Random, root: Path, stem: str, b: Base) -> Case | None:
    name = f"{stem}-{b.name}{b.ext}"
    _write(root, name, b.data)
    return Case(name, "good", "ok", b.size, f"unmodified {b.name}")


MAKERS: dict[str, tuple[Maker, float]] = {  # class -> (maker, share of the cases)
    "good": (_good, 0.12),
    "flip": (_flip, 0.30),
    "trunc": (_trunc, 0.14),
    "huge-header": (_huge, 0.06),
    "tiff-tag": (_tiff_tag, 0.08),
    "exif": (_exif, 0.06),
    "empty": (_empty, 0.02),
    "text": (_text, 0.04),
    "odd-name": (_odd_name, 0.08),
    "symlink": (_symlink, 0.05),
    "fifo": (_fifo, 0.02),
}


# --------------------------------------------------------------------------------------------
# one-off cases: a real deflate bomb, sparse multi-GiB files, the folder tree for --recursive


def deflate_bomb_png(side: int = 16384) -> bytes:
    """A valid gray PNG of side x side zeros: about 260 KB on disk, side**2 bytes decoded."""
    comp = zlib.compressobj(9)
    rows = (b"\x00" * (side + 1)) * 1024
    parts = [comp.compress(rows) for _ in range(side // 1024)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return PNG_SIG + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def _sparse(path: Path, head: bytes) -> bool:
    """A SPARSE_BYTES file starting with ``head`` and then a hole; False where holes are not free."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(SPARSE_BYTES)
    if path.stat().st_blocks * 512 > 64 << 20:
        path.unlink()
        return False
    return True


def special_cases(d: Path, bases: list[Base], next_stem: Callable[[], str]) -> list[Case]:
    """The deflate bomb and the sparse files (each costs the CLI a restart if it is not refused)."""
    cases = []
    name = f"{next_stem()}-bomb.png"
    (d / name).write_bytes(deflate_bomb_png())
    cases.append(Case(name, "bomb:png-deflate", "fail", None, "16384x16384 gray PNG, 260 KB of deflate"))
    png = next(b for b in bases if b.name == "png8")
    for head, what in ((b"", "zeros"), (png.data[:33], "PNG signature + IHDR, then zeros")):
        name = f"{next_stem()}-sparse.png"
        if _sparse(d / name, head):
            cases.append(Case(name, "huge-file", "fail", None, f"{SPARSE_BYTES >> 30} GiB sparse: {what}"))
    return cases


def tree_cases(root: Path, rng: random.Random, bases: list[Base], n: int,
               next_stem: Callable[[], str]) -> list[Case]:
    """A nested folder for ``--recursive``: good and bad images at several depths, plus entries a
    scan must pass over (a text file, a FIFO, a dangling link, a folder link looping to its parent)."""
    tree = root / TREE
    dirs = [tree, tree / "a", tree / "a" / "b c", tree / "a" / "b c" / "ü 名", tree / "d" / "e" / "f" / "g"]
    for p in dirs:
        p.mkdir(parents=True, exist_ok=True)
    (tree / "a" / "loop").symlink_to("..")
    cases: list[Case] = []

    def add(p: Path, cls: str, expect: str, size: tuple[int, int] | None, what: str) -> None:
        cases.append(Case(str(p.relative_to(root)), cls, expect, size, what, recursive=True))

    for i in range(n):
        d = dirs[i % len(dirs)]
        b = rng.choice(bases)
        stem = next_stem()
        kind = ("good", "good", "trunc", "text", "notes", "fifo", "dangling")[i % 7]
        if kind == "good":
            (d / f"{stem}{b.ext}").write_bytes(b.data)
            add(d / f"{stem}{b.ext}", "recursive:good", "ok", b.size, f"{b.name} in {d.name}/")
        elif kind == "trunc":
            (d / f"{stem}{b.ext}").write_bytes(b.data[: len(b.data) // 2])
            add(d / f"{stem}{b.ext}", "recursive:bad", "fail", None, f"{b.name} cut in half")
        elif kind == "text":
            (d / f"{stem}.png").write_bytes(b"not an image\n")
            add(d / f"{stem}.png", "recursive:bad", "fail", None, "text named .png")
        elif kind == "notes":
            (d / f"{stem}.txt").write_bytes(b"notes\n")
            add(d / f"{stem}.txt", "recursive:other", "ignored", None, "a .txt file")
        elif kind == "fifo" and hasattr(os, "mkfifo"):
            os.mkfifo(d / f"{stem}.png")
            add(d / f"{stem}.png", "recursive:other", "skip", None, "FIFO named .png")
        else:
            (d / f"{stem}.jpg").symlink_to(f"missing-{stem}.jpg")
            add(d / f"{stem}.jpg", "recursive:other", "skip", None, "dangling link named .jpg")
    return cases


def generate(root: Path, n: int, seed: int, *, specials: bool = True, tree: int = 14) -> list[Case]:
    """About ``n`` cases under ``root`` (``cases/`` passed by name, ``tree/`` scanned), reproducible
    from ``seed``; every class gets at least one case."""
    rng = random.Random(seed)
    bases = make_bases()
    d = root / "cases"
    d.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 10**7))

    def next_stem() -> str:
        return f"c{next(counter):05d}"

    cases: list[Case] = []
    for maker, share in MAKERS.values():
        want = max(1, round(share * n))
        got = tries = 0
        while got < want and tries < 20 * want:
            tries += 1
            case = maker(rng, d, next_stem(), rng.choice(bases))
            if case is not None:
                case.name = f"cases/{case.name}"
                cases.append(case)
                got += 1
    if specials:
        for case in special_cases(d, bases, next_stem):
            case.name = f"cases/{case.name}"
            cases.append(case)
    if tree:
        cases += tree_cases(root, rng, bases, tree, next_stem)
    add_diagnostics(root, cases)
    return cases
