"""``superres video``: upscale a video in one command, audio and timing intact.

Decode, upscale and encode overlap; the output is written in resumable segments and renamed
into place at the end, so an interrupted run leaves no broken file and the same command
resumes it. ``--frames-dir`` exports upscaled PNG frames (with their timing) instead of or as
well as the video, and ``--from-frames`` turns such a folder back into a video.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from superres.cli.options import (
    add_engine_options,
    apply_threads,
    engine_kwargs,
    non_negative_int,
    positive_float,
)

DEFAULT_VIDEO_MODEL = "realesr-animevideov3"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "video", help="upscale a video (audio, subtitles and timing kept)",
        description="Upscale a video with a named model or your own weight file. Audio and subtitle "
                    "streams are copied (re-encoded only when the output container cannot hold them), "
                    "frame count and timestamps are kept exactly. Needs PyAV: pip install 'superres[video]'.",
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="the video to upscale")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output video; the extension picks the container (.mkv, .mp4, .mov, .webm, ...)")
    add_engine_options(p, ("model", "model_scale", "scale"), model=dict(
        default=DEFAULT_VIDEO_MODEL,
        help="zoo model name or a .pth/.pt/.safetensors file (default: %(default)s, made for video and "
             "~30x faster than realesrgan-x4plus)"),
        scale=dict(help="output scale (default: the model's own)"))
    p.add_argument("--codec", default=None,
                   help="h264, h265, av1, vp9, ffv1 or any FFmpeg encoder name (default: h264 via libx264 "
                        "where the container takes it)")
    p.add_argument("--crf", type=non_negative_int, default=None,
                   help="constant-quality level (default: 18 for x264, 20 for x265, 30 for AV1, 31 for VP9); "
                        "0 = lossless for x264/x265")
    p.add_argument("--preset", default=None,
                   help="encoder speed preset (default: medium for x264/x265, 8 for SVT-AV1)")
    p.add_argument("--pix-fmt", default=None,
                   help="output pixel format (default: the source's chroma layout and bit depth, e.g. "
                        "yuv420p10le for 10-bit sources)")
    add_engine_options(
        p, ("batch", "tile", "tile_pad", "device", "precision", "backend", "threads", "compile",
            "cuda_graphs"),
        batch=dict(help="frames per forward pass when a frame fits in one tile (same size: every frame of a "
                        "video), else tiles per pass as in `upscale`; the auto tile size budgets memory "
                        "for N (default: 1)"),
        tile_pad=dict(help="context pixels around each tile"),
        precision=dict(help="auto = fp32 on CPU, fp16 on GPU"))
    p.add_argument("--segment", type=positive_float, default=None, metavar="SECONDS",
                   help="length of the resumable segments (default: 10)")
    p.add_argument("--frames-dir", metavar="DIR",
                   help="also (or, without -o, only) write the upscaled frames as PNGs with a frames.json "
                        "timing sidecar")
    p.add_argument("--from-frames", metavar="DIR",
                   help="assemble a frames folder (from --frames-dir, or any PNG sequence with --fps) "
                        "into -o")
    p.add_argument("--audio-from", metavar="SOURCE",
                   help="with --from-frames: take audio/subtitles from this file (default: the source named "
                        "in frames.json)")
    p.add_argument("--fps", default=None,
                   help="with --from-frames on a folder without frames.json: frame rate (e.g. 30000/1001)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo an existing output (default: keep it); also discards a resumable partial run")
    p.set_defaults(func=run)


def _model_id(model: str) -> dict[str, Any]:
    """What identifies the weights for resume: the name, or the file's size, time and head hash."""
    path = Path(model)
    if path.is_file():
        st = path.stat()
        with open(path, "rb") as f:
            head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
        return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": head}
    return {"name": model}


class _ModelError(Exception):
    """The model could not be loaded (exit code 2, as in ``upscale``)."""


def _quiet_ffmpeg() -> None:
    """FFmpeg's own log lines would tear the progress bar; keep only the last error, which PyAV
    appends to the exception it raises, so our one-line errors carry FFmpeg's reason."""
    import logging

    import av.logging

    av.logging.set_level(av.logging.ERROR)
    lib = logging.getLogger("libav")
    lib.addHandler(logging.NullHandler())
    lib.propagate = False


def _fail(msg: str, code: int = 1) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    try:
        import av  # noqa: F401
    except ImportError:
        return _fail("superres video needs PyAV: pip install 'superres[video]'", 2)
    from tqdm import tqdm

    from superres.video import VideoError, VideoOptions

    _quiet_ffmpeg()
    from superres.video.pipeline import DEFAULT_SEGMENT_SECONDS, assemble_frames, upscale_video

    if (args.input is None) == (args.from_frames is None):
        return _fail("give either INPUT or --from-frames DIR", 2)
    if args.output is None and (args.from_frames is not None or args.frames_dir is None):
        return _fail("-o OUTPUT is required (or --frames-dir DIR to write frames only)", 2)
    if args.scale is not None and args.scale <= 0:
        return _fail("--scale must be positive", 2)
    if args.from_frames is None and (args.audio_from or args.fps):
        return _fail("--audio-from and --fps go with --from-frames", 2)
    fps = None
    if args.fps is not None:
        try:
            fps = Fraction(args.fps)
            if fps <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            return _fail(f"--fps must be a positive number or fraction, not {args.fps!r}", 2)
    opts = VideoOptions(
        output=Path(args.output) if args.output else None,
        frames_dir=Path(args.frames_dir) if args.frames_dir else None,
        codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt,
        segment_seconds=args.segment if args.segment is not None else DEFAULT_SEGMENT_SECONDS,
        overwrite=args.overwrite, scale=args.scale,
    )
    bar: dict[str, Any] = {}

    def note(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        b = bar.get("bar")
        if b is None:
            b = bar["bar"] = tqdm(total=total or None, initial=done, unit="frame", file=sys.stderr,
                                  disable=None, dynamic_ncols=True, smoothing=0.1)
        b.update(done - b.n)

    start = time.perf_counter()
    try:
        if args.from_frames is not None:
            report = assemble_frames(Path(args.from_frames), opts,
                                     audio_from=Path(args.audio_from) if args.audio_from else None, fps=fps,
                                     progress=progress, note=note)
        else:
            from superres.api import Upscaler
            from superres.engine.protocol import Engine

            apply_threads(args)

            def load() -> Engine:
                try:
                    return Upscaler(args.scale, model=args.model, **engine_kwargs(args))
                except Exception as exc:  # unknown name, missing carrier, bad file: one clear line
                    raise _ModelError(f"cannot load model {args.model}: {exc}") from exc

            model_id = {**_model_id(args.model), "tile": args.tile, "pad": args.tile_pad,
                        "precision": args.precision, "device": args.device,
                        # another backend's output differs in the last bits: not resumed into torch's
                        **({"backend": args.backend} if args.backend != "torch" else {})}
            report = upscale_video(Path(args.input), load, opts, model_id=model_id, progress=progress,
                                   note=note)
    except _ModelError as exc:
        return _fail(str(exc), 2)
    except VideoError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        if "bar" in bar:
            bar.pop("bar").close()
        print("interrupted; run the same command again to resume from the last finished segment",
              file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an FFmpeg surprise: still one line naming the file
        where = args.input or args.from_frames
        return _fail(f"{where}: {type(exc).__name__}: {exc}")
    finally:
        if "bar" in bar:
            bar["bar"].close()
    took = time.perf_counter() - start
    if report.skipped:
        print(f"{opts.output} exists; kept it (use --overwrite to redo it)")
        return 0
    done = [str(p) for p in (report.output, report.frames_dir) if p is not None]
    resumed = f", {report.resumed_frames} resumed" if report.resumed_frames else ""
    rate = report.upscaled / took if took > 0 else 0.0
    print(f"{report.frames} frames ({report.upscaled} processed{resumed}) in {took:.1f} s "
          f"({rate:.2f} frames/s) -> {', '.join(done)}")
    return 0
