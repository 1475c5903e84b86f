"""The video pipeline: decode -> upscale -> encode, overlapped, resumable, atomic.

Three stages run at once: a reader thread decodes and converts frames to RGB, the calling
thread runs the model (``superres`` engine, unchanged: tiling, precision and scale are its
business), a writer thread converts back, encodes and writes segments and/or PNG frames. Bounded
queues between them keep memory flat and let the model work while I/O happens (PyAV and PyTorch
release the GIL in their heavy calls). Any stage's exception stops the others and is re-raised
in the caller with the stage named; KeyboardInterrupt does the same.

Output is written in segments (see ``segments``) into a work folder beside the output, then
muxed with the source's audio/subtitles into a temporary file that is renamed at the end.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from superres.engine.protocol import Engine
from superres.io.atomic import TEMP_SUFFIX
from superres.video.colour import Colour, FrameConverter, output_colour
from superres.video.encode import EncoderPlan, container_format, plan_encoder
from superres.video.errors import VideoError, describe, is_disk_full
from superres.video.frames import FrameEntry, Sidecar, frame_name, sidecar_for_plain_folder
from superres.video.mux import AuxPlan, plan_aux_streams, write_output
from superres.video.probe import open_input, probe
from superres.video.segments import Manifest, SegmentInfo, SegmentWriter, settings_key
from superres.video.sources import FrameItem, RunReport, decode_source, png_source

DEFAULT_SEGMENT_SECONDS = 10.0
QUEUE_FRAMES = 4  # frames buffered between stages: enough to hide I/O jitter, little memory
_POLL_S = 0.1


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was interrupted."""


@dataclass
class VideoOptions:
    """What the user asked for (the CLI's flags; also the Python entry point's arguments)."""

    output: Path | None = None
    frames_dir: Path | None = None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    overwrite: bool = False
    scale: float | None = None


class _Stages:
    """Threads, bounded queues and one shared failure slot."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: tuple[str, BaseException] | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def fail(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            if self.error is None and not isinstance(exc, _Stopped):
                self.error = (stage, exc)
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def start(self, name: str, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to the caller thread
                self.fail(name, exc)

        t = threading.Thread(target=run, name=f"superres-{name}", daemon=True)
        self.threads.append(t)
        t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def raise_error(self) -> None:
        if self.error is None:
            return
        stage, exc = self.error
        if isinstance(exc, (VideoError, KeyboardInterrupt)) or is_disk_full(exc):
            raise exc
        raise RuntimeError(f"{stage} failed: {describe(exc)}") from exc


_END = object()


# ------------------------------------------------------------------------------ writer


class _Writer:
    """Writes upscaled frames: encoded segments (video output) and/or PNGs (frames folder)."""

    def __init__(self, plan: EncoderPlan | None, manifest: Manifest | None, work: Path | None,
                 frames_dir: Path | None, on_frame: Callable[[], None]) -> None:
        self.plan = plan
        self.manifest = manifest
        self.work = work
        self.frames_dir = frames_dir
        self.on_frame = on_frame
        self.conv = FrameConverter(plan.colour) if plan is not None else None
        self.ctx: Any = None
        self.seg: SegmentWriter | None = None
        self.seg_index = -1
        self.seg_frames = 0
        self.seg_first = 0
        self.seg_last = 0

    def frame(self, item: FrameItem) -> None:
        assert item.rgb is not None
        if self.frames_dir is not None:
            from superres.io import ImageError, write_image

            try:
                write_image(self.frames_dir / frame_name(item.index), item.rgb, format="png")
            except ImageError as exc:
                if exc.__cause__ is not None and is_disk_full(exc.__cause__):
                    raise exc.__cause__ from None
                raise VideoError(exc.path, exc.reason) from None
        # A segment committed earlier is never re-encoded (its frames may come through again only
        # to redo PNGs deleted from a frames folder).
        if self.plan is not None and (self.manifest is None or item.segment not in self.manifest.segments):
            self._encode(item)
        self.on_frame()

    def _encode(self, item: FrameItem) -> None:
        assert self.plan is not None and self.conv is not None and self.work is not None
        if item.segment != self.seg_index:
            self.close_segment()
            self.ctx = self.plan.open_context()
            self.seg = SegmentWriter(self.work / f"seg{item.segment:06d}.bin")
            self.seg_index, self.seg_frames, self.seg_first = item.segment, 0, item.pts
        rgb = item.rgb
        assert rgb is not None
        if rgb.shape[0] != self.plan.height or rgb.shape[1] != self.plan.width:
            rgb = rgb[: self.plan.height, : self.plan.width]  # even sides for chroma subsampling
        frame = self.conv.from_rgb(rgb, self.plan.pix_fmt)
        frame.pts = item.pts
        frame.duration = item.duration
        frame.time_base = self.plan.time_base
        self._write(self.ctx.encode(frame))
        self.seg_frames += 1
        self.seg_last = item.pts

    def _write(self, packets: list[Any]) -> None:
        assert self.seg is not None
        for p in packets:
            self.seg.write(bytes(p), p.pts, p.dts, p.duration, p.is_keyframe)

    def close_segment(self) -> None:
        """Flush the encoder, commit the segment file, then record it in the manifest."""
        if self.seg is None:
            return
        assert self.manifest is not None
        self._write(self.ctx.encode(None))
        extradata = bytes(self.ctx.extradata or b"").hex()
        digest = self.seg.commit()
        self.manifest.add(SegmentInfo(self.seg_index, self.seg.path.name, self.seg_frames, self.seg_first,
                                      self.seg_last, self.seg.packets, digest, extradata))
        self.seg, self.ctx = None, None

    def abort(self) -> None:
        if self.seg is not None:
            self.seg.abort()
            self.seg, self.ctx = None, None


# ------------------------------------------------------------------------------ the run


def run_pipeline(items: Iterator[FrameItem], upscale: Callable[[list[np.ndarray]], list[np.ndarray]] | None,
                 writer: _Writer, stages: _Stages, frames_per_pass: int = 1) -> tuple[int, list[int]]:
    """Drive reader thread -> ``upscale`` (this thread) -> writer thread; (frames seen, segments seen).

    ``upscale`` takes up to ``frames_per_pass`` frames at once (one forward pass for all of them
    where the engine can: same size, one tile each); frames keep their order.
    """
    per_pass = max(1, frames_per_pass)
    q_in: queue.Queue[Any] = queue.Queue(maxsize=max(QUEUE_FRAMES, 2 * per_pass))
    q_out: queue.Queue[Any] = queue.Queue(maxsize=max(QUEUE_FRAMES, 2 * per_pass))
    seen: dict[str, Any] = {"frames": 0, "segments": []}

    def read() -> None:
        for item in items:
            seen["frames"] += 1
            if not seen["segments"] or seen["segments"][-1] != item.segment:
                seen["segments"].append(item.segment)
            if item.rgb is not None:
                stages.put(q_in, item)
        stages.put(q_in, _END)

    def write() -> None:
        try:
            while True:
                item = stages.get(q_out)
                if item is _END:
                    break
                writer.frame(item)
            writer.close_segment()
        except BaseException:
            writer.abort()
            raise

    stages.start("decoding", read)
    stages.start("encoding", write)
    try:
        ended = False
        while not ended:
            batch: list[FrameItem] = []
            while len(batch) < per_pass:
                item = stages.get(q_in)
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            if batch and upscale is not None:
                for item, out in zip(batch, upscale([b.rgb for b in batch]), strict=True):
                    item.rgb = out
            for item in batch:
                stages.put(q_out, item)
        stages.put(q_out, _END)
    except _Stopped:
        pass
    except BaseException as exc:
        stages.fail("upscaling", exc)
    finally:
        if stages.error is not None:
            stages.stop.set()
        stages.join()
    stages.raise_error()
    return seen["frames"], seen["segments"]


def _work_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.superres-work")


def _clean_stale(work: Path) -> None:
    for p in work.glob(f"*{TEMP_SUFFIX}"):
        p.unlink(missing_ok=True)


def _file_id(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class _Target:
    """Planned output: the encoder, the container, the other streams, the folders."""

    plan: EncoderPlan | None
    fmt: str | None
    aux: list[AuxPlan]
    work: Path | None


def _plan_target(opts: VideoOptions, *, src_pix_fmt: str, size: tuple[int, int], scale: float,
                 time_base: Fraction, frame_rate: Fraction | None, colour: Colour, sar: Fraction | None,
                 audio_source: Path | None, video_index: int | None, report: RunReport) -> _Target:
    if opts.output is None:
        return _Target(None, None, [], None)
    fmt = container_format(opts.output)
    plan, notes = plan_encoder(output=opts.output, fmt=fmt, codec=opts.codec, crf=opts.crf,
                               preset=opts.preset, pix_fmt=opts.pix_fmt, src_pix_fmt=src_pix_fmt,
                               src_size=size, scale=scale,
                               time_base=time_base, frame_rate=frame_rate, colour=colour,
                               sample_aspect_ratio=sar)
    report.notes += notes
    aux: list[AuxPlan] = []
    if audio_source is not None:
        aux = plan_aux_streams(audio_source, fmt, video_index if video_index is not None else -1)
        if video_index is None:  # audio from another file: its video streams are not ours
            aux = [a for a in aux if a.kind != "video"]
        report.notes += [a.describe() for a in aux if a.action != "copy"]
    return _Target(plan, fmt, aux, _work_dir(opts.output))


def _check_output(opts: VideoOptions, source: Path | None) -> bool:
    """False when the output exists and must be kept; errors for outputs that cannot be right."""
    if opts.segment_seconds <= 0:
        raise VideoError(opts.output or Path("."), f"--segment must be positive, not {opts.segment_seconds}")
    if opts.output is None:
        return True
    out = opts.output
    if source is not None and out.exists() and out.resolve() == source.resolve():
        raise VideoError(out, "the output would overwrite the input; choose another -o")
    if out.is_dir():
        raise VideoError(out, "is a folder; -o takes a video file name such as out.mkv")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    return opts.overwrite or not out.exists()


def upscale_video(source: Path, up: Engine | Callable[[], Engine], opts: VideoOptions, *,
                  model_id: dict[str, Any] | None = None,
                  progress: Callable[[int, int], Any] | None = None,
                  note: Callable[[str], None] = print) -> RunReport:
    """Upscale ``source`` with ``up`` into ``opts.output`` and/or ``opts.frames_dir``.

    ``up`` is an engine (``superres.Upscaler`` or ``UpscaleEngine``) or a function returning one:
    then the model is loaded only once the source has been checked, so a bad file fails in a
    moment. ``model_id`` identifies the weights for resuming (default: the model's name).
    """
    report = RunReport(output=opts.output, frames_dir=opts.frames_dir)
    info = probe(source)
    report.notes += info.notes
    if not _check_output(opts, source):
        report.skipped = True
        return report
    engine = up if isinstance(up, Engine) else up()
    model_id = model_id or {"name": engine.model.name}
    scale = float(opts.scale or engine.scale)
    deep_src = info.bits > 8
    colour_out = output_colour(info.colour)
    target = _plan_target(opts, src_pix_fmt=info.pix_fmt, size=(info.width, info.height), scale=scale,
                          time_base=info.time_base, frame_rate=info.frame_rate, colour=colour_out,
                          sar=info.sample_aspect_ratio, audio_source=source, video_index=info.index,
                          report=report)
    if info.interlaced:
        report.notes.append("the source is interlaced; frames are upscaled as they are (deinterlace first "
                            "for clean motion)")
    deep = deep_src or (target.plan is not None and target.plan.deep)
    key = settings_key({"source": _file_id(source), "model": model_id, "scale": scale,
                        "plan": target.plan.to_dict() if target.plan else None,
                        "segment": opts.segment_seconds, "deep": deep, "format": target.fmt})
    out_w, out_h = (target.plan.width, target.plan.height) if target.plan else (
        max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    side = Sidecar(key=key, complete=False, source=str(source.resolve()), time_base=info.time_base,
                   frame_rate=info.frame_rate, width=out_w, height=out_h, source_pix_fmt=info.pix_fmt,
                   colour=colour_out, sample_aspect_ratio=info.sample_aspect_ratio,
                   model=str(model_id.get("name")), scale=scale)

    def upscale(frames: list[np.ndarray]) -> list[np.ndarray]:
        return engine.upscale_arrays(frames, scale)

    def source_items(skip: Callable[[FrameItem], bool]) -> Iterator[FrameItem]:
        return decode_source(info, deep, opts.segment_seconds, skip, report)

    for n in report.notes:
        note(f"note: {source}: {n}")
    report.notes.clear()
    return _execute(report, target, opts, side, source_items, upscale, info.packets, source, info.index,
                    progress, note, frames_per_pass=engine.frames_per_pass)


def assemble_frames(folder: Path, opts: VideoOptions, *, audio_from: Path | None = None,
                    fps: Fraction | None = None, progress: Callable[[int, int], Any] | None = None,
                    note: Callable[[str], None] = print) -> RunReport:
    """Encode a frames folder (ours, with ``frames.json``, or any PNG sequence with ``fps``) to a video."""
    report = RunReport(output=opts.output)
    if not folder.is_dir():
        raise VideoError(folder, "no such folder")
    try:
        side = Sidecar.load(folder)
    except FileNotFoundError:
        if fps is None:
            raise VideoError(folder, "no frames.json in this folder: give --fps to assemble plain PNG "
                                     "frames") from None
        side = sidecar_for_plain_folder(folder, fps)
    if not side.complete:
        raise VideoError(folder / "frames.json", "the frame export did not finish; run it again to "
                                                 "complete it")
    if not side.frames:
        raise VideoError(folder, "the frames folder lists no frames")
    assert opts.output is not None
    source: Path | None = audio_from
    if source is None and side.source:
        source = Path(side.source)
        if not source.is_file():
            report.notes.append(f"the source {source} is gone; the video has no audio (use --audio-from)")
            source = None
    video_index: int | None = None
    if source is not None:
        with contextlib.closing(open_input(source)):
            pass
    if not _check_output(opts, None):
        report.skipped = True
        return report
    target = _plan_target(opts, src_pix_fmt=side.source_pix_fmt, size=(side.width, side.height), scale=1.0,
                          time_base=side.time_base, frame_rate=side.frame_rate, colour=side.colour,
                          sar=side.sample_aspect_ratio, audio_source=source, video_index=video_index,
                          report=report)
    assert target.plan is not None
    key = settings_key({"frames": [_file_id(folder / f.file) for f in side.frames[:1]], "n": len(side.frames),
                        "sidecar": side.key, "plan": target.plan.to_dict(), "segment": opts.segment_seconds,
                        "format": target.fmt})

    def items(skip: Callable[[FrameItem], bool]) -> Iterator[FrameItem]:
        return png_source(folder, side, opts.segment_seconds, skip)

    for n in report.notes:
        note(f"note: {folder}: {n}")
    report.notes.clear()
    opts_no_frames = VideoOptions(**{**vars(opts), "frames_dir": None})
    side.key = key
    return _execute(report, target, opts_no_frames, side, items, None, len(side.frames), source, None,
                    progress, note)


def _execute(report: RunReport, target: _Target, opts: VideoOptions, side: Sidecar,
             make_items: Callable[[Callable[[FrameItem], bool]], Iterator[FrameItem]],
             upscale: Callable[[list[np.ndarray]], list[np.ndarray]] | None, total: int,
             source: Path | None, video_index: int | None, progress: Callable[[int, int], Any] | None,
             note: Callable[[str], None], frames_per_pass: int = 1) -> RunReport:
    manifest: Manifest | None = None
    work = target.work
    frames_dir = opts.frames_dir
    done_frames: set[int] = set()
    if work is not None:
        if opts.overwrite and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        _clean_stale(work)
        manifest, resumed = Manifest.load_or_new(work, side.key)
        if not resumed and any(work.iterdir()):
            note(f"note: {work}: left by a run with other settings; starting over")
            for p in work.iterdir():
                if p.is_file():
                    p.unlink()
        report.resumed_segments = len(manifest.segments)
        report.resumed_frames = manifest.done_frames
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
        try:
            old = Sidecar.load(frames_dir)
            if old.key != side.key and not opts.overwrite:
                raise VideoError(frames_dir, "holds frames made with other settings or from another source; "
                                             "use --overwrite or another folder")
        except FileNotFoundError:
            pass
        side.complete = False
        side.frames = []
        side.save(frames_dir)
        if opts.overwrite:
            for p in frames_dir.glob("frame_*.png"):
                p.unlink()
        else:
            done_frames = {int(p.stem.split("_")[1]) - 1 for p in frames_dir.glob("frame_*.png")
                           if p.stem.split("_")[1].isdigit()}

    def skip(item: FrameItem) -> bool:
        seg_done = manifest is not None and item.segment in manifest.segments
        png_done = frames_dir is None or item.index in done_frames
        if frames_dir is not None and manifest is None:
            return png_done
        return seg_done and png_done

    if frames_dir is not None and manifest is None:
        report.resumed_frames = len(done_frames)
    if report.resumed_frames:
        note(f"resuming: {report.resumed_frames} frame(s) already done"
             + (f" in {report.resumed_segments} segment(s)" if manifest is not None else ""))
    counter = {"n": report.resumed_frames}

    def on_frame() -> None:
        counter["n"] += 1
        if progress is not None:
            progress(counter["n"], total)

    if progress is not None:
        progress(counter["n"], total)
    entries: list[FrameEntry] = []

    def recorded(items: Iterator[FrameItem]) -> Iterator[FrameItem]:
        for item in items:
            entries.append(FrameEntry(frame_name(item.index), item.pts, item.duration))
            yield item

    writer = _Writer(target.plan, manifest, work, frames_dir, on_frame)
    stages = _Stages()
    try:
        frames, segments = run_pipeline(recorded(make_items(skip)), upscale, writer, stages,
                                          frames_per_pass=frames_per_pass)
        report.frames = frames
        report.upscaled = counter["n"] - report.resumed_frames
        if frames_dir is not None:
            side.frames = entries
            side.complete = True
            side.save(frames_dir)
        if target.plan is not None and opts.output is not None:
            assert manifest is not None and work is not None and target.fmt is not None
            missing = [s for s in segments if s not in manifest.segments]
            if missing:
                raise VideoError(work, f"segments {missing[:5]} were not written; run again")
            count = sum(manifest.segments[s].frames for s in segments)
            if count != frames:
                raise VideoError(work, f"segments hold {count} frames, the source {frames}; delete this "
                                       "folder and run again")
            write_output(output=opts.output, fmt=target.fmt, plan=target.plan,
                         segments=[(work / manifest.segments[s].file, manifest.segments[s].extradata)
                                   for s in segments],
                         source=source, video_index=video_index, aux=target.aux, note=note)
            shutil.rmtree(work, ignore_errors=True)
    except OSError as exc:
        if is_disk_full(exc):
            kept = ""
            if manifest is not None and manifest.segments:
                kept = f"; {len(manifest.segments)} finished segment(s) kept in {work} to resume"
            elif work is not None:
                shutil.rmtree(work, ignore_errors=True)
            where = opts.output or frames_dir or Path(".")
            raise VideoError(where, f"disk full (no space left on device); partial files removed{kept}") \
                from None
        raise
    if report.corrupt_frames:
        report.notes.append(f"{report.corrupt_frames} frame(s) were decoded with errors (concealed by "
                            "FFmpeg)")
    for n in report.notes:
        note(f"note: {n}")
    return report
