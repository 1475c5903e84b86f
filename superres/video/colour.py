"""Colour handling between video frames (YUV, any depth) and the RGB arrays the engine takes.

Why this module exists: a model works on R'G'B' samples, while video is stored as Y'CbCr with
a matrix (BT.601/709/2020), a range (limited 16-235 or full 0-255) and a bit depth. Converting
with the wrong matrix or range shifts colours and lifts blacks. So we decode with the source's
own matrix and range, hand the engine 8-bit RGB (uint8) or 16-bit RGB (uint16, for 10/12-bit
sources), and convert back with the same matrix and range. Transfer curve and primaries are not
converted (the model does not care; re-encoding keeps the same values), only carried as tags.

Unspecified matrix: players guess by frame size (BT.709 from 720 lines up, BT.601 below), and
the upscaled output would be guessed differently from its source. We decode with the guess for
the *source* size and tag the output explicitly with that matrix, so both look the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from av import VideoFormat, VideoFrame
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

# AVColorSpace values (libavutil/pixfmt.h), the numbers containers and frames carry.
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED, SPC_FCC, SPC_BT470BG, SPC_SMPTE170M = 0, 1, 2, 4, 5, 6
SPC_SMPTE240M, SPC_BT2020_NCL, SPC_BT2020_CL = 7, 9, 10
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
UNSPECIFIED = 2  # AVCOL_PRI_UNSPECIFIED and AVCOL_TRC_UNSPECIFIED

# Matrices swscale can convert with. BT.2020 constant luminance is approximated by the
# non-constant one (swscale has no CL path; the difference is in saturated colours only).
_SWS_MATRIX = {
    SPC_BT709: Colorspace.ITU709,
    SPC_FCC: Colorspace.FCC,
    SPC_BT470BG: Colorspace.ITU601,
    SPC_SMPTE170M: Colorspace.ITU601,
    SPC_SMPTE240M: Colorspace.SMPTE240M,
    SPC_BT2020_NCL: Colorspace.BT2020,
    SPC_BT2020_CL: Colorspace.BT2020,
}
MATRIX_NAMES = {SPC_RGB: "rgb", SPC_BT709: "bt709", SPC_UNSPECIFIED: "unspecified", SPC_FCC: "fcc",
                SPC_BT470BG: "bt470bg", SPC_SMPTE170M: "smpte170m", SPC_SMPTE240M: "smpte240m",
                SPC_BT2020_NCL: "bt2020nc", SPC_BT2020_CL: "bt2020c"}
# Chroma filtering and rounding as a careful ffmpeg command line would ask for.
SWS_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class Colour:
    """How samples relate to colours: AVColorRange, AVColorSpace, AVColorPrimaries, AVColorTransfer."""

    range: int
    matrix: int
    primaries: int = UNSPECIFIED
    trc: int = UNSPECIFIED

    @property
    def sws_matrix(self) -> Colorspace:
        return _SWS_MATRIX.get(self.matrix, Colorspace.ITU709)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Colour:
        return cls(int(d["range"]), int(d["matrix"]), int(d["primaries"]), int(d["trc"]))

    def describe(self) -> str:
        rng = {RANGE_LIMITED: "limited", RANGE_FULL: "full"}.get(self.range, "unspecified")
        return f"{MATRIX_NAMES.get(self.matrix, str(self.matrix))}/{rng} range"


def pix_fmt_info(name: str) -> tuple[int, str, bool]:
    """(bits per sample, chroma layout "420"/"422"/"444"/"440"/"411"/"410", is RGB or gray)."""
    fmt = VideoFormat(name, 16, 16)
    comps = fmt.components
    bits = max(c.bits for c in comps)
    if fmt.is_rgb or len(comps) < 3 or name.startswith(("gray", "ya", "pal")):
        return bits, "444", True
    cw, ch = comps[1].width, comps[1].height
    layout = {(16, 16): "444", (8, 16): "422", (8, 8): "420", (16, 8): "440", (4, 16): "411",
              (4, 4): "410"}.get((cw, ch), "420")
    return bits, layout, False


def source_colour(ctx: Any, pix_fmt: str, height: int) -> tuple[Colour, list[str]]:
    """The colour description to decode a stream with, unspecified values resolved; plus notes."""
    notes: list[str] = []
    _, _, rgb_like = pix_fmt_info(pix_fmt)
    rng = int(ctx.color_range or 0)
    if pix_fmt.startswith("yuvj"):
        rng = RANGE_FULL  # the deprecated "JPEG" formats mean full range whatever the tag says
    elif rng not in (RANGE_LIMITED, RANGE_FULL):
        rng = RANGE_FULL if rgb_like else RANGE_LIMITED
    matrix = int(ctx.colorspace if ctx.colorspace is not None else SPC_UNSPECIFIED)
    if rgb_like:
        matrix = SPC_RGB
    elif matrix not in _SWS_MATRIX:
        guess = SPC_BT709 if height >= 720 else SPC_SMPTE170M
        if matrix != SPC_UNSPECIFIED:
            notes.append(f"colour matrix {MATRIX_NAMES.get(matrix, matrix)} cannot be converted; "
                         f"treated as {MATRIX_NAMES[guess]}")
        matrix = guess
    primaries, trc = int(ctx.color_primaries or UNSPECIFIED), int(ctx.color_trc or UNSPECIFIED)
    return Colour(rng, matrix, primaries, trc), notes


def output_colour(src: Colour) -> Colour:
    """What the upscaled video is encoded and tagged with: the source's, with RGB sources as BT.709 video."""
    if src.matrix == SPC_RGB:
        return Colour(RANGE_LIMITED, SPC_BT709, src.primaries, src.trc)
    return src


class FrameConverter:
    """Video frame <-> HxWx3 RGB array (uint8, or uint16 for deep sources), one per thread.

    Each instance owns its swscale context (it is reused for every frame and is not thread-safe).
    """

    def __init__(self, colour: Colour) -> None:
        self.colour = colour
        self._sws = VideoReformatter()

    def to_rgb(self, frame: VideoFrame, deep: bool) -> np.ndarray:
        """Decoded frame -> RGB array; ``deep`` gives uint16 (all 16 bits used) instead of uint8."""
        rgb = self._sws.reformat(
            frame, format="rgb48le" if deep else "rgb24", src_colorspace=self.colour.sws_matrix,
            dst_colorspace=self.colour.sws_matrix, src_color_range=self.colour.range,
            dst_color_range=ColorRange.JPEG, interpolation=SWS_FLAGS,
        )
        return np.ascontiguousarray(rgb.to_ndarray())

    def from_rgb(self, rgb: np.ndarray, pix_fmt: str) -> VideoFrame:
        """RGB array (uint8 or uint16) -> frame in ``pix_fmt`` with the colour tags set."""
        src = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le" if rgb.dtype == np.uint16
                                      else "rgb24")
        c = self.colour
        out = self._sws.reformat(
            src, format=pix_fmt, src_colorspace=c.sws_matrix, dst_colorspace=c.sws_matrix,
            src_color_range=ColorRange.JPEG, dst_color_range=c.range, interpolation=SWS_FLAGS,
        )
        if not pix_fmt_info(pix_fmt)[2]:
            out.colorspace = c.matrix
            out.color_range = c.range
        out.color_primaries = c.primaries
        out.color_trc = c.trc
        return out
