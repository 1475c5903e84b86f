"""Frames folders: upscaled frames as numbered PNGs plus a JSON sidecar that keeps the timing.

The classic recipe (frames out, upscale, frames in) loses timing for variable-frame-rate video
and the audio unless someone remembers them. The sidecar ``frames.json`` records every frame's
pts and duration in the source time base, the frame rate, colour description and source file,
so ``superres video --from-frames DIR`` restores the exact timing and takes the audio from the
source. PNGs are lossless and keep 16 bits for 10/12-bit sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from superres.video.colour import RANGE_LIMITED, SPC_BT709, UNSPECIFIED, Colour
from superres.video.errors import VideoError
from superres.video.segments import write_json_atomic

SIDECAR = "frames.json"
SIDECAR_VERSION = 1


def frame_name(index: int) -> str:
    """1-based, zero-padded: sorts by name and matches ffmpeg's ``frame_%06d.png``."""
    return f"frame_{index + 1:06d}.png"


@dataclass
class FrameEntry:
    file: str
    pts: int
    duration: int


@dataclass
class Sidecar:
    """Contents of ``frames.json``."""

    key: str
    complete: bool
    source: str | None
    time_base: Fraction
    frame_rate: Fraction | None
    width: int
    height: int
    source_pix_fmt: str
    colour: Colour
    sample_aspect_ratio: Fraction | None
    frames: list[FrameEntry] = field(default_factory=list)
    model: str | None = None
    scale: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SIDECAR_VERSION, "key": self.key, "complete": self.complete, "source": self.source,
            "time_base": str(self.time_base), "frame_rate": str(self.frame_rate) if self.frame_rate else None,
            "width": self.width, "height": self.height, "source_pix_fmt": self.source_pix_fmt,
            "colour": self.colour.to_dict(),
            "sample_aspect_ratio": str(self.sample_aspect_ratio) if self.sample_aspect_ratio else None,
            "model": self.model, "scale": self.scale,
            "frames": [[f.file, f.pts, f.duration] for f in self.frames],
        }

    def save(self, folder: Path) -> None:
        write_json_atomic(folder / SIDECAR, self.to_json(), compact_key="frames")

    @classmethod
    def load(cls, folder: Path) -> Sidecar:
        path = folder / SIDECAR
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("version") != SIDECAR_VERSION:
                raise ValueError(f"version {d.get('version')} (expected {SIDECAR_VERSION})")
            return cls(
                key=d["key"], complete=bool(d["complete"]), source=d.get("source"),
                time_base=Fraction(d["time_base"]),
                frame_rate=Fraction(d["frame_rate"]) if d.get("frame_rate") else None,
                width=int(d["width"]), height=int(d["height"]), source_pix_fmt=d["source_pix_fmt"],
                colour=Colour.from_dict(d["colour"]),
                sample_aspect_ratio=Fraction(d["sample_aspect_ratio"]) if d.get("sample_aspect_ratio")
                else None,
                frames=[FrameEntry(str(f), int(p), int(du)) for f, p, du in d["frames"]],
                model=d.get("model"), scale=d.get("scale"),
            )
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VideoError(path, f"unreadable frames sidecar: {exc}") from None


def sidecar_for_plain_folder(folder: Path, fps: Fraction) -> Sidecar:
    """A sidecar for a folder of PNGs made elsewhere: name order, constant ``fps``, BT.709 video."""
    files = sorted(p.name for p in folder.glob("*.png"))
    if not files:
        raise VideoError(folder, "no .png frames in this folder")
    from superres.io import read_image

    first = read_image(folder / files[0])
    tb = Fraction(1, 1) / fps
    # Express pts in a time base of 1/fps: frame i at pts i.
    return Sidecar(
        key="", complete=True, source=None, time_base=tb, frame_rate=fps, width=first.width,
        height=first.height, source_pix_fmt="rgb48le" if first.bit_depth > 8 else "rgb24",
        colour=Colour(RANGE_LIMITED, SPC_BT709, UNSPECIFIED, UNSPECIFIED), sample_aspect_ratio=None,
        frames=[FrameEntry(f, i, 1) for i, f in enumerate(files)],
    )
