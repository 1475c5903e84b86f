"""Resumable encoding: the video is encoded in independent segments, each its own file.

Why segments: a multi-hour upscale must survive a crash or Ctrl-C. Every segment starts a fresh
encoder (so it opens with a keyframe and references nothing outside itself: a closed GOP) and is
committed atomically (hidden ``.part`` temporary, fsync, rename, then the manifest). A re-run with the same
settings skips committed segments; the final file is a stream copy of all segments' packets.

Why our own segment files instead of a container: containers rewrite timestamps (Matroska
rounds to milliseconds, MP4/MOV shift a track's start, many formats shift negative DTS). These
files hold each packet's exact pts/dts/duration in the source time base, so concatenation is
exact whatever the time base or frame-rate pattern.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from superres.io.atomic import atomic_write_text, fsync_dir, temp_name

MAGIC = b"SRSEG1\n"
_REC = struct.Struct("<qqqIB")  # pts, dts, duration, size, flags
_NONE = -(1 << 63)  # AV_NOPTS_VALUE
KEYFRAME = 1
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _ts(value: int | None) -> int:
    return _NONE if value is None else int(value)


def _from_ts(value: int) -> int | None:
    return None if value == _NONE else value


def write_json_atomic(path: Path, data: dict[str, Any], compact_key: str | None = None) -> None:
    """Write JSON durably (temporary name, fsync, rename); ``compact_key``'s list: one item a line."""
    lines = []
    for k, v in data.items():
        if k == compact_key and isinstance(v, list):
            body = ",\n  ".join(json.dumps(x) for x in v)
            lines.append(f"{json.dumps(k)}: [\n  {body}\n ]" if v else f"{json.dumps(k)}: []")
        else:
            lines.append(f"{json.dumps(k)}: {json.dumps(v)}")
    text = "{\n " + ",\n ".join(lines) + "\n}\n"
    atomic_write_text(path, text)


@dataclass
class RawPacket:
    """One encoded video packet, timestamps in the segment's time base."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool


class SegmentWriter:
    """Appends packets to a hidden temporary (io.atomic's naming); ``commit`` makes it ``<name>`` durably.

    Streams packet by packet, so it holds the temporary open across calls instead of using
    ``atomic_path``; the commit is the same fsync, rename, fsync of the folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = temp_name(path)
        self._f: BinaryIO | None = open(self.part, "wb")  # noqa: SIM115 - closed in commit/abort
        self._f.write(MAGIC)
        self.packets = 0
        self.bytes = 0
        self._hash = hashlib.sha256()

    def write(self, data: bytes, pts: int | None, dts: int | None, duration: int | None,
              keyframe: bool) -> None:
        assert self._f is not None
        flags = KEYFRAME if keyframe else 0
        self._f.write(_REC.pack(_ts(pts), _ts(dts), int(duration or 0), len(data), flags))
        self._f.write(data)
        self._hash.update(data)
        self.packets += 1
        self.bytes += len(data)

    def commit(self) -> str:
        """Flush to disk and rename into place; returns the packets' SHA-256."""
        assert self._f is not None
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        os.replace(self.part, self.path)
        fsync_dir(self.path.parent)
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Drop the unfinished segment (on error or interrupt)."""
        if self._f is not None:
            with contextlib.suppress(OSError):
                self._f.close()
            self._f = None
        self.part.unlink(missing_ok=True)


def read_segment(path: Path) -> Iterator[RawPacket]:
    """The packets of a committed segment, in decode order."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a superres segment file")
        while True:
            head = f.read(_REC.size)
            if not head:
                return
            if len(head) < _REC.size:
                raise ValueError(f"{path} is cut off")
            pts, dts, duration, size, flags = _REC.unpack(head)
            data = f.read(size)
            if len(data) < size:
                raise ValueError(f"{path} is cut off")
            yield RawPacket(data, _from_ts(pts), _from_ts(dts), duration, bool(flags & KEYFRAME))


@dataclass
class SegmentInfo:
    index: int
    file: str
    frames: int
    first_pts: int
    last_pts: int
    packets: int
    sha256: str
    extradata: str  # hex; every segment must agree with the final stream's header


class Manifest:
    """What is done so far, valid only for one exact set of settings (``key``)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.key = key
        self.segments: dict[int, SegmentInfo] = {}
        self.total_frames: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    @classmethod
    def load_or_new(cls, folder: Path, key: str) -> tuple[Manifest, bool]:
        """The folder's manifest if it was written for ``key`` (True) else a fresh one (False).

        Committed segments whose file is missing or damaged are forgotten (they are redone).
        """
        m = cls(folder, key)
        try:
            data = json.loads(m.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return m, False
        if data.get("version") != MANIFEST_VERSION or data.get("key") != key:
            return m, False
        for raw in data.get("segments", []):
            info = SegmentInfo(**raw)
            f = folder / info.file
            if f.is_file() and _segment_ok(f, info):
                m.segments[info.index] = info
        return m, True

    def add(self, info: SegmentInfo) -> None:
        self.segments[info.index] = info
        self.save()

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "key": self.key,
                "segments": [vars(s) for _, s in sorted(self.segments.items())]}
        write_json_atomic(self.path, data)

    @property
    def done_frames(self) -> int:
        return sum(s.frames for s in self.segments.values())


def _segment_ok(path: Path, info: SegmentInfo) -> bool:
    try:
        h = hashlib.sha256()
        n = 0
        for pkt in read_segment(path):
            h.update(pkt.data)
            n += 1
        return n == info.packets and h.hexdigest() == info.sha256
    except (OSError, ValueError):
        return False


def settings_key(parts: dict[str, Any]) -> str:
    """A short digest of everything that changes the output, to refuse mixing runs."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
