"""The final file: committed video segments + the source's audio, subtitles and metadata.

Video packets are copied from the segments (no re-encode); audio and subtitle packets are
copied from the source unchanged (same bytes, same timestamps) when the output container
can hold their codec. Audio it cannot hold is re-encoded to the container's usual codec
(AAC for MP4, Opus for WebM, ...) and the user is told; subtitles it cannot hold are dropped,
also said. The file is written under a hidden temporary name and renamed at the very end,
so a killed run never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from superres.io.atomic import atomic_path, stale_temps
from superres.video.encode import EncoderPlan, memory_container
from superres.video.errors import VideoError
from superres.video.segments import read_segment

# Tags that describe the old file's encoding, not its content: the muxer writes fresh ones.
_STALE_TAGS = ("encoder", "duration", "number_of_frames", "number_of_bytes", "bps", "_statistics",
               "major_brand", "minor_version", "compatible_brands", "creation_time_")


def clean_metadata(meta: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if not k.lower().startswith(_STALE_TAGS)}


@dataclass
class AuxPlan:
    """What happens to one non-video stream of the source."""

    index: int
    kind: str  # audio / subtitle / attachment / data
    codec: str
    action: str  # copy / encode / drop
    target: str | None = None  # encoder for "encode"
    reason: str = ""

    def describe(self) -> str:
        what = f"{self.kind} #{self.index} ({self.codec})"
        if self.action == "copy":
            return f"{what}: copied"
        if self.action == "encode":
            return f"{what}: re-encoded to {self.target} ({self.reason})"
        return f"{what}: dropped ({self.reason})"


def plan_aux_streams(source: Path, fmt: str, video_index: int) -> list[AuxPlan]:
    """Decide, for every other stream of ``source``, copy / re-encode / drop in container ``fmt``.

    Each candidate copy is tried for real: added to an in-memory container of the output format
    whose header is then written (muxers check codec and channel layout only there).
    """
    plans: list[AuxPlan] = []
    with av.open(str(source)) as inp:
        for st in inp.streams:
            if st.index == video_index:
                continue
            codec = _codec_name(st)
            if st.type == "video":
                plans.append(AuxPlan(st.index, "video", codec, "drop",
                                     reason="only the main video stream is upscaled"))
                continue
            if st.type not in ("audio", "subtitle"):
                plans.append(AuxPlan(st.index, st.type, codec, "drop",
                                     reason=f"{st.type} streams are not carried over"))
                continue
            why = _try_copy(source, st, fmt)
            if why is None:
                plans.append(AuxPlan(st.index, st.type, codec, "copy"))
                continue
            target = _audio_target(fmt) if st.type == "audio" and st.codec_context is not None else None
            if target is None:
                plans.append(AuxPlan(st.index, st.type, codec, "drop", reason=why))
            else:
                plans.append(AuxPlan(st.index, "audio", codec, "encode", target, why))
    return plans


def _codec_name(st: Any) -> str:
    if st.codec_context is not None:
        return str(st.codec_context.name)
    codec = getattr(st, "codec", None)
    return str(codec.name) if codec is not None else "unknown"


def _try_copy(source: Path, st: Any, fmt: str) -> str | None:
    """None if ``fmt`` takes this stream as it is, else why not.

    Tried with the stream's first real packet and the trailer: the MP4 muxer, for one, checks
    an audio channel layout only when it writes the index at the end.
    """
    probe = memory_container(fmt)
    try:
        ost = probe.add_stream_from_template(st)
        probe.start_encoding()
        with av.open(str(source)) as again:
            for pkt in again.demux(again.streams[st.index]):
                if pkt.size:
                    pkt.stream = ost
                    probe.mux(pkt)
                    break
        probe.close()
        return None
    except (ValueError, av.FFmpegError) as exc:
        text = str(exc)
        if "does not support" in text or "codec not currently supported" in text.lower():
            return f"{fmt} cannot hold {_codec_name(st)}"
        return f"{fmt} refuses it as it is ({text.split('last error log: ')[-1]})"
    finally:
        with contextlib.suppress(ValueError, av.FFmpegError):
            probe.close()


def _audio_target(fmt: str) -> str | None:
    probe = memory_container(fmt)
    try:
        target = probe.default_audio_codec
    finally:
        with contextlib.suppress(ValueError, av.FFmpegError):
            probe.close()
    return None if not target or target == "none" else str(target)


def _key(pkt: Any) -> float:
    ts = pkt.dts if pkt.dts is not None else pkt.pts
    if ts is None or pkt.time_base is None:
        return float("-inf")
    return float(ts * pkt.time_base)


class _Ordered:
    """Wraps an iterator of packets so heapq.merge sees non-decreasing keys even when a stream
    has a missing timestamp (it sorts with the previous packet)."""

    def __init__(self, it: Iterable[Any]) -> None:
        self.it = iter(it)
        self.last = float("-inf")

    def __iter__(self) -> Iterator[tuple[float, Any]]:
        for pkt in self.it:
            k = _key(pkt)
            self.last = max(self.last, k) if k != float("-inf") else self.last
            yield self.last, pkt


def write_output(*, output: Path, fmt: str, plan: EncoderPlan, segments: list[tuple[Path, str]],
                 source: Path | None, video_index: int | None, aux: list[AuxPlan],
                 note: Callable[[str], None]) -> None:
    """Mux segments (path, extradata hex) and the source's kept streams into ``output`` atomically.

    The temporary's name does not end in the output's extension: the container is ``fmt``,
    passed to the muxer explicitly. A temporary left by a killed earlier run is swept first.
    """
    for stale in stale_temps(output):
        stale.unlink(missing_ok=True)
    with atomic_path(output) as tmp:
        _write(tmp, fmt, plan, segments, source, video_index, aux)


def _write(tmp: Path, fmt: str, plan: EncoderPlan, segments: list[tuple[Path, str]], source: Path | None,
           video_index: int | None, aux: list[AuxPlan]) -> None:
    inp = av.open(str(source)) if source is not None else None
    try:
        with av.open(str(tmp), "w", format=fmt) as out:
            if inp is not None:
                out.metadata.update(clean_metadata(dict(inp.metadata)))
            vst = out.add_stream(plan.encoder)
            plan.configure(vst.codec_context)
            vst.time_base = plan.time_base
            if inp is not None and video_index is not None:
                src_v = inp.streams[video_index]
                vst.metadata.update(clean_metadata(dict(src_v.metadata)))
                with contextlib.suppress(AttributeError, ValueError):
                    vst.disposition = src_v.disposition
            mapping: dict[int, tuple[Any, AuxPlan]] = {}
            for a in aux:
                if a.action == "drop" or inp is None:
                    continue
                ist = inp.streams[a.index]
                if a.action == "copy":
                    ost = out.add_stream_from_template(ist)
                else:
                    ost = out.add_stream(a.target, rate=ist.codec_context.sample_rate)
                    ost.codec_context.layout = _named_layout(ist.codec_context)
                ost.metadata.update(clean_metadata(dict(ist.metadata)))
                with contextlib.suppress(AttributeError, ValueError):
                    ost.disposition = ist.disposition
                mapping[a.index] = (ost, a)
            if inp is not None:
                with contextlib.suppress(AttributeError, ValueError, av.FFmpegError):
                    chapters = inp.chapters()
                    if chapters:
                        out.set_chapters(chapters)
            out.start_encoding()
            header = bytes(vst.codec_context.extradata or b"").hex()
            for path, extradata in segments:
                if extradata != header:
                    raise VideoError(path, "this segment was encoded with a different encoder set-up than "
                                           "the output's header; delete the segment folder and run again")
            video = _Ordered(_video_packets(segments, vst, plan.time_base))
            if inp is not None and mapping:
                merged = heapq.merge(video, _Ordered(_aux_packets(inp, mapping)), key=lambda kp: kp[0])
            else:
                merged = iter(video)
            for _, pkt in merged:
                out.mux(pkt)
    finally:
        if inp is not None:
            inp.close()


def _named_layout(ctx: Any) -> Any:
    """The source's channel layout, or the standard one for its channel count when it has no
    channel order (\"2 channels\" from PCM in Matroska): encoders such as AAC refuse those."""
    layout = ctx.layout
    if layout is not None and layout.name.endswith(" channels"):
        standard = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
        return av.AudioLayout(standard.get(ctx.channels, "stereo"))
    return layout


def _video_packets(segments: list[tuple[Path, str]], stream: Any, time_base: Fraction) -> Iterator[Any]:
    last_dts: int | None = None
    for path, _ in segments:
        for raw in read_segment(path):
            pkt = av.Packet(raw.data)
            dts = raw.dts
            # Segments are encoded independently: keep DTS strictly increasing across a join
            # (a fresh encoder's first DTS may reach back before the previous segment's last).
            if dts is not None and last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
                if raw.pts is not None and dts > raw.pts:
                    raise VideoError(path, "segments overlap in time; delete the segment folder and run "
                                           "again")
            last_dts = dts if dts is not None else last_dts
            pkt.pts, pkt.dts, pkt.duration = raw.pts, dts, raw.duration
            pkt.is_keyframe = raw.keyframe
            pkt.time_base = time_base
            pkt.stream = stream
            yield pkt


def _aux_packets(inp: Any, mapping: dict[int, tuple[Any, AuxPlan]]) -> Iterator[Any]:
    streams = [inp.streams[i] for i in mapping]
    for pkt in inp.demux(streams):
        ost, a = mapping[pkt.stream.index]
        if a.action == "copy":
            if pkt.size == 0:
                continue
            pkt.stream = ost
            yield pkt
        else:
            for frame in pkt.decode():
                yield from ost.encode(frame)
            if pkt.size == 0:  # end of this stream: flush the encoder
                yield from ost.encode(None)
