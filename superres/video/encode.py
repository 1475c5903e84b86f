"""Choosing and configuring the video encoder: codec, quality, pixel format, container.

Everything here is decided before the first frame is decoded, and checked by writing the
output's header into memory, so a codec the container cannot hold, a missing encoder or a
bad preset is an error in the first second, not after an hour of upscaling.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.codec import Codec

from superres.video.colour import SPC_RGB, Colour, pix_fmt_info
from superres.video.errors import VideoError

# Friendly codec names -> FFmpeg software encoders, best first. Any FFmpeg encoder name works too.
CODEC_ALIASES: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "libopenh264"),
    "avc": ("libx264", "libopenh264"),
    "h265": ("libx265",),
    "hevc": ("libx265",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
    "vp9": ("libvpx-vp9",),
    "ffv1": ("ffv1",),
    "mpeg4": ("mpeg4",),
}
# Tried in order when --codec is not given; the first one the container takes wins.
DEFAULT_CODECS = ("h264", "h265", "av1", "vp9", "mpeg4")
# (default CRF, default preset) of encoders that have a constant-quality mode. The CRFs are a
# notch better than the encoders' own defaults (x264 23, x265 28): upscaled detail is the point.
QUALITY: dict[str, tuple[int, str | None]] = {
    "libx264": (18, "medium"),
    "libx264rgb": (18, "medium"),
    "libx265": (20, "medium"),
    "libsvtav1": (30, "8"),
    "libaom-av1": (30, None),
    "libvpx-vp9": (31, None),
}
# Container for an output extension where several formats claim it (FFmpeg's own preference).
EXTENSION_FORMATS = {
    ".mkv": "matroska", ".mka": "matroska", ".webm": "webm", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov",
    ".avi": "avi", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".nut": "nut", ".flv": "flv",
    ".mxf": "mxf", ".ogv": "ogg", ".3gp": "3gp",
}


def container_format(path: Path) -> str:
    """FFmpeg muxer name for an output file name, from its extension."""
    ext = path.suffix.lower()
    if not ext:
        raise VideoError(path, "the output needs a file extension that names a container, e.g. .mkv or .mp4")
    name = EXTENSION_FORMATS.get(ext)
    if name is None:
        for cand in sorted(av.formats_available):
            try:
                fmt = av.format.ContainerFormat(cand, "w")
            except (ValueError, av.FFmpegError):
                continue
            if ext[1:] in fmt.extensions and not int(fmt.flags) & av.format.Flags.no_file.value:
                name = cand
                break
    if name is None:
        raise VideoError(path, f"unsupported container {ext!r}: no FFmpeg muxer writes it "
                               "(use .mkv, .mp4, .mov or .webm)")
    return name


def memory_container(fmt: str) -> Any:
    """An output container of this format writing into memory (for trying things out)."""
    return av.open(io.BytesIO(), "w", format=fmt)


def needs_global_header(fmt: str) -> bool:
    return bool(int(av.format.ContainerFormat(fmt, "w").flags) & av.format.Flags.global_header.value)


def encoder_exists(name: str) -> bool:
    try:
        return Codec(name, "w").type == "video"
    except (ValueError, av.FFmpegError):
        return False


def encoders_for(codec: str) -> tuple[str, ...]:
    """Candidate encoders for a --codec value (alias or FFmpeg encoder name)."""
    return CODEC_ALIASES.get(codec.lower(), (codec,))


@dataclass
class EncoderPlan:
    """Everything needed to open identical encoders for every segment and for the final mux."""

    encoder: str
    pix_fmt: str
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    colour: Colour
    sample_aspect_ratio: Fraction | None
    global_header: bool
    options: dict[str, str] = field(default_factory=dict)
    crf: int | None = None
    preset: str | None = None

    @property
    def deep(self) -> bool:
        """True when the output stores more than 8 bits per sample (feed it 16-bit RGB)."""
        return pix_fmt_info(self.pix_fmt)[0] > 8

    def configure(self, ctx: Any) -> None:
        """Apply this plan to an unopened encoder context (standalone or a stream's)."""
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = self.time_base
        if self.frame_rate:
            ctx.framerate = self.frame_rate
        if self.sample_aspect_ratio:
            ctx.sample_aspect_ratio = self.sample_aspect_ratio
        rgb_out = pix_fmt_info(self.pix_fmt)[2]
        ctx.color_range = 2 if rgb_out else self.colour.range
        ctx.colorspace = SPC_RGB if rgb_out else self.colour.matrix
        ctx.color_primaries = self.colour.primaries
        ctx.color_trc = self.colour.trc
        if self.global_header:
            ctx.flags |= av.codec.context.Flags.global_header
        # Frame durations travel to the packets, so the last frame keeps its length in the file.
        ctx.flags |= av.codec.context.Flags.frame_duration
        if self.encoder == "libvpx-vp9":
            ctx.bit_rate = 0  # constant quality needs a zero target bitrate
        ctx.options = dict(self.options)

    def open_context(self) -> Any:
        """A standalone opened encoder (one per segment)."""
        quiet_encoder(self.encoder)
        ctx = av.CodecContext.create(self.encoder, "w")
        self.configure(ctx)
        ctx.open()
        return ctx

    def describe(self) -> str:
        q = f" crf {self.crf}" if self.crf is not None else ""
        p = f" preset {self.preset}" if self.preset else ""
        return f"{self.encoder} {self.pix_fmt}{q}{p} {self.width}x{self.height}"

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "pix_fmt": self.pix_fmt, "width": self.width, "height": self.height,
                "time_base": str(self.time_base), "frame_rate": str(self.frame_rate),
                "colour": self.colour.to_dict(), "sar": str(self.sample_aspect_ratio),
                "global_header": self.global_header, "options": self.options}


def _quality_options(encoder: str, crf: int | None, preset: str | None,
                     notes: list[str]) -> tuple[dict[str, str], int | None, str | None]:
    opts: dict[str, str] = {}
    default_crf, default_preset = QUALITY.get(encoder, (None, None))
    if encoder not in QUALITY:
        if crf is not None or preset is not None:
            notes.append(f"{encoder} has no CRF/preset setting; --crf/--preset ignored")
        return opts, None, None
    crf = default_crf if crf is None else crf
    if default_preset is None and preset is not None:
        notes.append(f"{encoder} has no preset setting; --preset ignored")
        preset = None
    preset = default_preset if preset is None else preset
    opts["crf"] = str(crf)
    if preset is not None:
        opts["preset"] = str(preset)
    if encoder == "libx265":
        opts["x265-params"] = "log-level=error"
    return opts, crf, preset


def choose_pix_fmt(encoder: str, src_pix_fmt: str, requested: str | None,
                   notes: list[str], where: Path) -> str:
    """The requested pixel format, else the source's chroma layout and depth as far as the encoder goes."""
    supported = [f.name for f in (Codec(encoder, "w").video_formats or [])]
    if requested:
        try:
            av.VideoFormat(requested)
        except (ValueError, av.FFmpegError):
            raise VideoError(where, f"unknown pixel format {requested!r}") from None
        if supported and requested not in supported:
            raise VideoError(where, f"{encoder} cannot encode {requested}; it takes {', '.join(supported)}")
        return requested
    bits, layout, rgb_like = pix_fmt_info(src_pix_fmt)
    depth = 8 if bits <= 8 else 10 if bits <= 10 else 12
    if rgb_like:
        layout = "420"  # RGB/gray sources become ordinary, widely playable video
    wanted = []
    for d in dict.fromkeys((depth, min(depth, 10), 8)):
        for lay in dict.fromkeys((layout, "420")):
            wanted.append(f"yuv{lay}p" + ("" if d == 8 else f"{d}le"))
    if depth > 8:
        wanted += ["rgb48le", "rgb48be", "gbrp16le", "gbrp10le"]
    wanted += ["rgb24", "bgr24", "bgr0"]
    for cand in wanted:
        if not supported or cand in supported:
            if cand != wanted[0]:
                notes.append(f"{encoder} cannot store {wanted[0]} (the source's layout and depth); "
                             f"using {cand}")
            return cand
    notes.append(f"{encoder} takes none of the usual pixel formats; using {supported[0]}")
    return supported[0]


def output_size(width: int, height: int, scale: float, pix_fmt: str, notes: list[str]) -> tuple[int, int]:
    """round(W*S) x round(H*S), cropped by one pixel where chroma subsampling needs even sides."""
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    _, layout, rgb_like = pix_fmt_info(pix_fmt)
    ew = not rgb_like and layout in ("420", "422", "411", "410")
    eh = not rgb_like and layout in ("420", "440", "410")
    cw, ch = w - (w % 2 if ew else 0), h - (h % 2 if eh else 0)
    if (cw, ch) != (w, h):
        notes.append(f"{pix_fmt} needs even sides: the {w}x{h} output is cropped to {cw}x{ch}")
    return cw, ch


def plan_encoder(*, output: Path, fmt: str, codec: str | None, crf: int | None, preset: str | None,
                 pix_fmt: str | None, src_pix_fmt: str, src_size: tuple[int, int], scale: float,
                 time_base: Fraction, frame_rate: Fraction | None, colour: Colour,
                 sample_aspect_ratio: Fraction | None) -> tuple[EncoderPlan, list[str]]:
    """Pick and validate the encoder for ``output``; returns the plan and notes for the user."""
    notes: list[str] = []
    if crf is not None and crf < 0:
        raise VideoError(output, f"--crf must be 0 or more, not {crf}")
    if codec:
        candidates = [e for e in encoders_for(codec) if encoder_exists(e)]
        if not candidates:
            have = sorted(c for c in av.codecs_available if encoder_exists(c) and c.startswith("lib"))
            raise VideoError(output, f"no encoder for codec {codec!r} in this FFmpeg build (PyAV "
                                     f"{av.__version__}); software encoders available: {', '.join(have)}")
        if candidates[0] != encoders_for(codec)[0]:
            notes.append(f"{encoders_for(codec)[0]} is missing from this FFmpeg build; using {candidates[0]}")
        choices = candidates[:1]
    else:
        choices = [e for c in DEFAULT_CODECS for e in encoders_for(c) if encoder_exists(e)]
        if not choices:
            raise VideoError(output, "this FFmpeg build has none of the usual video encoders")
    errors = []
    for encoder in choices:
        enc_notes: list[str] = []
        pf = choose_pix_fmt(encoder, src_pix_fmt, pix_fmt, enc_notes, output)
        w, h = output_size(src_size[0], src_size[1], scale, pf, enc_notes)
        opts, q, p = _quality_options(encoder, crf, preset, enc_notes)
        plan = EncoderPlan(encoder, pf, w, h, time_base, frame_rate, colour, sample_aspect_ratio,
                           needs_global_header(fmt), opts, q, p)
        problem = try_header(plan, fmt)
        if problem is None:
            if not codec and encoder != choices[0]:
                notes.append(f"{fmt} cannot hold {choices[0]}; using {encoder}")
            return plan, notes + enc_notes
        errors.append(f"{encoder}: {problem}")
        if codec or "does not support" not in problem:
            break  # only a container that refuses the codec makes us try the next one
    if all("does not support" in e for e in errors):
        raise VideoError(output, f"cannot encode video for this container ({fmt}): " + "; ".join(errors))
    raise VideoError(output, "cannot encode video: " + "; ".join(errors))


def quiet_encoder(encoder: str) -> None:
    """SVT-AV1 prints a banner per encoder (so per segment) straight to stderr; its own
    environment switch turns that down to errors unless the user set it."""
    if encoder == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")


def try_header(plan: EncoderPlan, fmt: str) -> str | None:
    """Open the encoder and write the container header in memory; the reason if that fails."""
    quiet_encoder(plan.encoder)
    out = memory_container(fmt)
    try:
        stream = out.add_stream(plan.encoder)
        plan.configure(stream.codec_context)
        stream.time_base = plan.time_base
        out.start_encoding()
        return None
    except (ValueError, av.FFmpegError) as exc:
        text = str(exc)
        if "avcodec_open2" in text:  # FFmpeg's own wording quotes a dict; say it plainly
            text = f"the encoder refused its settings {plan.options}: {text.split('last error log: ')[-1]}"
        return text
    finally:
        with contextlib.suppress(ValueError, av.FFmpegError):
            out.close()
