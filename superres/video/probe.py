"""Opening a source video and learning what it holds, with a clear error for anything unusable.

A pre-scan reads every packet once (no decoding: about disk speed). It gives the exact frame
count for the progress bar and catches truncated files before any work is done: FFmpeg's
decoders stop quietly at a cut-off end, so the only sign is that the data ends earlier than
the header says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from superres.video.colour import Colour, source_colour
from superres.video.errors import VideoError

# Containers whose header states a duration we can trust to detect truncation.
_DURATION_IN_HEADER = ("matroska", "webm", "mov", "mp4", "m4a", "3gp", "3g2", "mj2")
# AVFieldOrder: 0 unknown, 1 progressive, 2..5 interlaced field orders.
_FIELD_PROGRESSIVE = 1
# How far the data may end before the declared duration before we call the file truncated.
TRUNCATION_SLACK_S = 0.5


@dataclass
class VideoInfo:
    """The facts about a source that planning and decoding need."""

    path: Path
    format: str
    index: int  # video stream index
    codec: str
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction | None  # average rate; None when unknown
    sample_aspect_ratio: Fraction | None
    colour: Colour
    packets: int  # video packets: the frame count for progress
    duration_s: float | None
    interlaced: bool
    streams: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bits(self) -> int:
        from superres.video.colour import pix_fmt_info

        return pix_fmt_info(self.pix_fmt)[0]


def open_input(path: Path) -> Any:
    """``av.open`` with the failure turned into ``VideoError(path, reason)``."""
    if not path.exists():
        raise VideoError(path, "no such file")
    if not path.is_file():
        raise VideoError(path, "not a file")
    if path.stat().st_size == 0:
        raise VideoError(path, "the file is empty")
    try:
        return av.open(str(path), metadata_errors="replace")
    except PermissionError:
        raise VideoError(path, "permission denied") from None
    except av.InvalidDataError:
        raise VideoError(path, "not a readable video: unknown format or corrupt data "
                               "(FFmpeg found no valid container header)") from None
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(path, f"cannot open: {exc}") from None


def _main_video(container: Any, path: Path) -> Any:
    videos = [s for s in container.streams.video
              if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        kinds = ", ".join(f"{s.type} ({_codec_name(s)})" for s in container.streams) or "none"
        raise VideoError(path, f"no video stream (streams: {kinds})")
    return videos[0]


def _codec_name(stream: Any) -> str:
    ctx = stream.codec_context
    if ctx is not None:
        return str(ctx.name)
    codec = getattr(stream, "codec", None)
    return str(codec.name) if codec is not None else "unknown"


def probe(path: Path, *, scan: bool = True) -> VideoInfo:
    """Open, validate and (with ``scan``) pre-scan ``path``; raises VideoError with the reason."""
    container = open_input(path)
    try:
        vs = _main_video(container, path)
        ctx = vs.codec_context
        if ctx is None or not ctx.is_decoder:
            raise VideoError(path, f"unsupported video codec {_codec_name(vs)}: this FFmpeg build cannot "
                                   "decode it")
        if not ctx.width or not ctx.height or ctx.format is None:
            raise VideoError(path, "the video stream has no frame size or pixel format (corrupt header?)")
        pix_fmt = ctx.format.name
        colour, notes = source_colour(ctx, pix_fmt, ctx.height)
        rate = vs.average_rate or vs.guessed_rate
        sar = ctx.sample_aspect_ratio
        info = VideoInfo(
            path=path, format=container.format.name, index=vs.index, codec=_codec_name(vs), width=ctx.width,
            height=ctx.height, pix_fmt=pix_fmt, time_base=vs.time_base or Fraction(1, 90000),
            frame_rate=Fraction(rate) if rate else None,
            sample_aspect_ratio=Fraction(sar) if sar and sar > 0 else None, colour=colour,
            packets=int(vs.frames or 0),
            duration_s=container.duration / av.time_base if container.duration else None,
            interlaced=int(getattr(ctx, "field_order", 0) or 0) > _FIELD_PROGRESSIVE,
            streams=[f"{s.type} #{s.index} ({_codec_name(s)})" for s in container.streams], notes=notes,
        )
        if scan:
            _scan(container, info, vs)
        return info
    finally:
        container.close()


def _scan(container: Any, info: VideoInfo, vs: Any) -> None:
    """Count video packets and check the data reaches the declared end."""
    packets = 0
    declared = vs.frames or 0
    end = float("-inf")
    try:
        for pkt in container.demux():
            if pkt.size == 0:
                continue
            if pkt.stream.index == vs.index:
                packets += 1
            ts = pkt.pts if pkt.pts is not None else pkt.dts
            if ts is not None and pkt.time_base is not None:
                end = max(end, float((ts + (pkt.duration or 0)) * pkt.time_base))
    except av.FFmpegError as exc:
        raise VideoError(info.path, f"corrupt or truncated: reading stopped after {packets} video packets "
                                    f"({exc})") from None
    if packets == 0:
        raise VideoError(info.path, "the video stream holds no frames (empty or truncated file)")
    if declared and packets < declared:
        raise VideoError(info.path, f"truncated: the header lists {declared} video frames, the file holds "
                                    f"{packets}")
    start = container.start_time / av.time_base if container.start_time else 0.0
    if (info.format.split(",")[0] in _DURATION_IN_HEADER or info.format in _DURATION_IN_HEADER) \
            and info.duration_s and end != float("-inf"):
        declared_end = start + info.duration_s
        if end < declared_end - max(TRUNCATION_SLACK_S, 0.02 * info.duration_s):
            raise VideoError(info.path, f"truncated: the header says {declared_end:.2f} s, the data ends at "
                                        f"{end:.2f} s")
    info.packets = packets
