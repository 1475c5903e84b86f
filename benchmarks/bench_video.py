"""``superres video``'s pipeline against a naive decode -> upscale -> encode loop, same everything.

Both sides get the same synthetic clip (made here with PyAV: moving pattern, H.264), the same
loaded model object, the same encoder settings (the pipeline's own plan: libx264, CRF 18, preset
medium, yuv420p) and the same thread count, in one process. The naive loop is what a user would
write first: one frame at a time, decode, convert, upscale, convert, encode, mux, in one thread.
The pipeline is ``superres.video.upscale_video`` (what the CLI runs): pre-scan, threads with
bounded queues, segments, final mux and rename. Runs alternate (naive, pipeline, naive, ...);
medians are reported, with the frames per second and the speed ratio.

    nice -n 19 .venv/bin/python benchmarks/bench_video.py                    # ~2 min on 2 cores
    nice -n 19 .venv/bin/python benchmarks/bench_video.py --size 160x90 --frames 48 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

import superres
from superres.video import VideoOptions, upscale_video
from superres.video.colour import FrameConverter, output_colour
from superres.video.encode import container_format, plan_encoder
from superres.video.probe import probe


def make_clip(path: Path, width: int, height: int, frames: int, fps: int = 24) -> Path:
    """A moving pattern (stripes, gradient, a square) as lossless-ish H.264 at ``fps``."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    vs.codec_context.options = {"crf": "12", "preset": "fast"}
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(frames):
        img = np.stack([0.5 + 0.5 * np.sin((x + 2 * i) / 9.0), (y / height + 0.01 * i) % 1.0,
                        0.5 + 0.5 * np.cos((x - y - 3 * i) / 13.0)], axis=2)
        cx, cy = (5 + 3 * i) % (width - 20), (3 + 2 * i) % (height - 20)
        img[cy:cy + 16, cx:cx + 16] = [1.0, 0.9, 0.1]
        f = av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), format="rgb24")
        f.pts = i
        out.mux(vs.encode(f.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)))
    out.mux(vs.encode(None))
    out.close()
    return path


def naive(src: Path, dst: Path, up: Any) -> int:
    """The straightforward single-threaded loop, with the pipeline's own encoder plan."""
    info = probe(src, scan=False)
    colour = output_colour(info.colour)
    fmt = container_format(dst)
    plan, _ = plan_encoder(output=dst, fmt=fmt, codec=None, crf=None, preset=None, pix_fmt=None,
                           src_pix_fmt=info.pix_fmt, src_size=(info.width, info.height), scale=up.scale,
                           time_base=info.time_base, frame_rate=info.frame_rate, colour=colour,
                           sample_aspect_ratio=None)
    conv_in, conv_out = FrameConverter(info.colour), FrameConverter(colour)
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream(plan.encoder)
        plan.configure(vs.codec_context)
        vs.time_base = plan.time_base
        for frame in inp.decode(video=0):
            rgb = up.engine.upscale_array(conv_in.to_rgb(frame, False), up.scale)
            f = conv_out.from_rgb(rgb, plan.pix_fmt)
            f.pts, f.time_base, f.duration = frame.pts, frame.time_base, frame.duration
            out.mux(vs.encode(f))
            n += 1
        out.mux(vs.encode(None))
    return n


def pipeline(src: Path, dst: Path, up: Any) -> int:
    dst.unlink(missing_ok=True)
    report = upscale_video(src, up, VideoOptions(output=dst, overwrite=True), note=lambda _: None)
    return report.frames


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="realesr-animevideov3")
    ap.add_argument("--size", default="160x90", help="input WxH (default: %(default)s, x4 -> 640x360)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    up = superres.load(args.model, device="cpu")
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        d = Path(tmp)
        src = make_clip(d / "clip.mkv", w, h, args.frames)
        # warm-up (oneDNN picks kernels per shape on the first call)
        up.engine.upscale_array(np.zeros((h, w, 3), np.uint8), up.scale)
        times: dict[str, list[float]] = {"naive": [], "pipeline": []}
        for r in range(args.repeat):
            for name, fn in (("naive", naive), ("pipeline", pipeline)):
                dst = d / f"{name}.mkv"
                t0 = time.perf_counter()
                n = fn(src, dst, up)
                dt = time.perf_counter() - t0
                assert n == args.frames == count_frames(dst), (name, n)
                times[name].append(dt)
                print(f"run {r + 1} {name:8s} {dt:7.2f} s  {n / dt:6.2f} frames/s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    fps = {k: args.frames / v for k, v in med.items()}
    load = os.getloadavg()
    print(f"\n{args.model}, {w}x{h} -> {w * 4}x{h * 4}, {args.frames} frames, libx264 crf 18 medium, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} "
          f"(python {platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__})")
    print("| loop | median time | frames/s |\n|---|---:|---:|")
    for k in ("naive", "pipeline"):
        print(f"| {k} | {med[k]:.2f} s | {fps[k]:.2f} |")
    ratio = med["naive"] / med["pipeline"]
    rounds = [a / b for a, b in zip(times["naive"], times["pipeline"], strict=True)]
    print(f"pipeline speed-up: {ratio:.2f}x (median times); per round: "
          + ", ".join(f"{r:.2f}x" for r in rounds))
    if args.json:
        args.json.write_text(json.dumps({"times": times, "median": med, "fps": fps, "ratio": ratio,
                                         "frames": args.frames, "size": [w, h], "model": args.model,
                                         "load": load}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
