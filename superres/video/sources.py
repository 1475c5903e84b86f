"""Where the video pipeline's frames come from: a decoded video or a folder of PNG frames.

Each source yields :class:`FrameItem`s in presentation order with their timestamps and segment
number, converting to RGB only the frames the run still needs (a resumed run skips the rest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from superres.video.colour import FrameConverter
from superres.video.errors import VideoError
from superres.video.frames import Sidecar
from superres.video.probe import VideoInfo, open_input


@dataclass
class FrameItem:
    """One frame travelling through the pipeline."""

    index: int  # 0-based position in the source
    pts: int
    duration: int
    segment: int
    rgb: np.ndarray | None = None


@dataclass
class RunReport:
    """What a run did, for the CLI's summary line and for tests."""

    frames: int = 0
    upscaled: int = 0
    resumed_frames: int = 0
    resumed_segments: int = 0
    corrupt_frames: int = 0
    notes: list[str] = field(default_factory=list)
    output: Path | None = None
    frames_dir: Path | None = None
    skipped: bool = False


def segment_of(pts: int, first: int, tb: Fraction, seconds: float) -> int:
    return max(0, math.floor(float((pts - first) * tb) / seconds + 1e-9))


def decode_source(info: VideoInfo, deep: bool, segment_seconds: float, skip: Callable[[FrameItem], bool],
                  report: RunReport) -> Iterator[FrameItem]:
    """Decoded frames as RGB arrays, in presentation order; ``skip`` frames are not converted.

    Timestamps: the frame's pts; missing ones are extrapolated from the previous frame, and a pts
    that does not increase (broken muxing) is nudged forward, because encoders refuse both.
    """
    container = open_input(info.path)
    try:
        vs = container.streams[info.index]
        vs.thread_type = "AUTO"
        conv = FrameConverter(info.colour)
        nominal = 1
        if info.frame_rate:
            nominal = max(1, round(1 / (info.frame_rate * info.time_base)))
        first: int | None = None
        prev: int | None = None
        index = 0
        nudged = 0
        try:
            frames = container.decode(vs)
            for frame in frames:
                pts = frame.pts
                if pts is None:
                    pts = 0 if prev is None else prev + nominal
                if prev is not None and pts <= prev:
                    pts = prev + 1
                    nudged += 1
                if first is None:
                    first = pts
                if frame.is_corrupt:
                    report.corrupt_frames += 1
                item = FrameItem(index, pts, int(frame.duration or 0) or nominal,
                                 segment_of(pts, first, info.time_base, segment_seconds))
                if not skip(item):
                    item.rgb = conv.to_rgb(frame, deep)
                yield item
                prev = pts
                index += 1
        except av.FFmpegError as exc:
            t = float((prev or 0) * info.time_base)
            raise VideoError(info.path, f"corrupt video data after frame {index} ({t:.3f} s): {exc}") \
                from None
        if nudged:
            report.notes.append(f"{nudged} frame(s) had non-increasing timestamps and were moved by one tick")
    finally:
        container.close()


def png_source(folder: Path, side: Sidecar, segment_seconds: float,
               skip: Callable[[FrameItem], bool]) -> Iterator[FrameItem]:
    """Frames of a frames folder, timed by its sidecar."""
    from superres.io import ImageError, read_image

    first = side.frames[0].pts if side.frames else 0
    for i, entry in enumerate(side.frames):
        item = FrameItem(i, entry.pts, entry.duration, segment_of(entry.pts, first, side.time_base,
                                                                    segment_seconds))
        if not skip(item):
            try:
                img = read_image(folder / entry.file)
            except ImageError as exc:
                raise VideoError(exc.path, exc.reason) from None
            px = img.pixels
            if px.shape[2] == 1:
                px = np.repeat(px, 3, axis=2)
            elif px.shape[2] == 4:
                px = px[:, :, :3]
            if px.shape[:2] != (side.height, side.width):
                raise VideoError(folder / entry.file, f"is {px.shape[1]}x{px.shape[0]}, the other frames "
                                                      f"are {side.width}x{side.height}")
            item.rgb = np.ascontiguousarray(px)
        yield item
