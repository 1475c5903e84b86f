"""GPU throughput of superres's TorchRunner: frames per second, TFLOP/s and the share of the card's peak.

Per model at 1280x720 input (realesr-animevideov3 x4 and x2, realesrgan-x4plus, span-x4) and per
configuration (fp16 eager channels_last, fp16 + CUDA graphs, bf16, fp16 batched tiles eager and
with CUDA graphs, fp16 + torch.compile), it prints:

* ``fps``: frames per second on the device (input already there, float32 out on the device; the
  x2 model's bicubic /2 after its x4 net is included), timed between ``torch.cuda.synchronize``
  calls after a warm-up;
* ``e2e``: frames per second through ``TorchRunner.run_many`` (float32 frames in host memory in
  and out, copies overlapped with compute), i.e. what the engine sees;
* ``TFLOP/s`` = catalogue MFLOP per input pixel x input pixels x fps / 1e6, and its share of the
  card's dense fp16 tensor peak (table below, or ``--peak-tflops``);
* ``max|d|``: the largest difference from the fp32 output (TF32 off) on a photo frame.

FLOP are the network's on the frame's pixels: a tiled run's overlap (context) is counted as
overhead, not as work. The card, torch, CUDA and cuDNN versions are printed with the numbers.
With ``trtexec`` on PATH or the ``tensorrt`` module importable, the compact model is also
exported to ONNX (``superres.export.convert.to_onnx_bytes``) and built as an fp16 TensorRT
engine; otherwise that step is skipped with a note. Nothing is installed: torch (and triton for
torch.compile on the GPU) is all it needs.

``--budget-s`` (default 420) bounds the whole run: configurations that would start after it
are reported as skipped, compiles last, so a run ends in under 8 minutes on an H100/H200.
Without a CUDA device the script exits with status 2; ``--smoke`` runs the same code on the CPU
at a tiny size (fp32, graphs skipped) to check the script and its arithmetic: those numbers
are labelled CPU smoke and are no GPU figures.

    python benchmarks/bench_gpu.py --json out/gpu.json
    python benchmarks/bench_gpu.py --smoke --peak-tflops 1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from superres.engine.runners import TorchRunner  # noqa: E402
from superres.engine.tiling import iter_tiles, round_up, tiled_forward  # noqa: E402
from superres.engine.upscaler import UpscaleEngine  # noqa: E402
from superres.export.convert import runner_network, to_onnx_bytes  # noqa: E402
from superres.zoo.loader import LoadedModel, load_model  # noqa: E402

MODELS = ("realesr-animevideov3", "realesr-animevideov3-x2", "realesrgan-x4plus", "span-x4")
# name: (dtype, compile, cuda graphs, tiled); compile runs last (it is the slow one to set up)
CONFIGS: dict[str, tuple[torch.dtype, bool, bool, bool]] = {
    "fp16-eager": (torch.float16, False, False, False),
    "fp16-graphs": (torch.float16, False, True, False),
    "bf16-eager": (torch.bfloat16, False, False, False),
    "fp16-tiles": (torch.float16, False, False, True),
    "fp16-graphs-tiles": (torch.float16, False, True, True),
    "fp16-compile": (torch.float16, True, False, False),
}
# Dense fp16 tensor-core peak (TFLOP/s) by card name, first match wins; None: ask --peak-tflops.
PEAKS: tuple[tuple[str, float | None], ...] = (
    ("H100 NVL", None), ("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0),
    ("L40S", 362.0), ("RTX 4090", 165.2),
)
NO_CUDA_EXIT = 2
SMOKE_SIZE = (16, 12)


@dataclass
class Row:
    """One (model, configuration) measurement; None where not measured."""

    model: str
    scale: float
    width: int
    height: int
    config: str
    dtype: str
    mflop_per_px: float
    fps: float | None = None
    fps_e2e: float | None = None
    tflops: float | None = None
    peak_share: float | None = None
    max_abs_diff: float | None = None
    setup_s: float | None = None
    note: str = ""
    runner: dict[str, Any] = field(default_factory=dict)


def tflops(mflop_per_px: float, pixels: int, fps: float) -> float:
    """MFLOP per input pixel x pixels per frame x frames per second, in TFLOP/s."""
    return mflop_per_px * pixels * fps / 1e6


def peak_for(card: str, override: float | None) -> tuple[float | None, str]:
    """The card's dense fp16 tensor peak and where it came from."""
    if override is not None:
        return override, "--peak-tflops"
    for key, peak in PEAKS:
        if key.lower() in card.lower():
            return peak, (f"table ({key})" if peak else f"unknown for {key}: give --peak-tflops")
    return None, "card not in the table: give --peak-tflops"


def photo_frame(width: int, height: int) -> torch.Tensor:
    """(3,H,W) float32 in [0,1]: the bundled sample photo tiled to size (a texture if absent)."""
    import cv2

    bgr = cv2.imread(str(REPO / "examples" / "chelsea.png"))
    if bgr is None:
        yy, xx = np.mgrid[0:64, 0:64]
        rgb = (127 + 120 * np.sin(np.stack([xx / 7, yy / 5, (xx + yy) / 11], -1))).astype(np.uint8)
    else:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    reps = (height // rgb.shape[0] + 1, width // rgb.shape[1] + 1, 1)
    rgb = np.tile(rgb, reps)[:height, :width]
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255


def fresh(model: LoadedModel) -> LoadedModel:
    """A copy with its own module: a runner moves its module to its device and dtype in place."""
    return dataclasses.replace(model, module=copy.deepcopy(model.module))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, seconds: float, min_reps: int = 2) -> float:
    """Calls per second of ``fn`` after it ran once: a short synced probe sets the count, then
    that many calls run back to back between two synchronisations."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    probe = max(time.perf_counter() - t0, 1e-6)
    reps = max(min_reps, int(seconds / probe))
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return reps / (time.perf_counter() - t0)


class Bench:
    """Settings, the device, the results and the time budget of one run."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args = args
        self.device = device
        self.smoke = args.smoke
        self.t0 = time.perf_counter()
        self.rows: list[Row] = []
        self.peak: float | None = None

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def frame_forward(self, runner: TorchRunner, model: LoadedModel,
                      tiled: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        """(1,3,H,W) on the device -> the model's output on the device, whole or tile by tile."""
        def resize(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
            if not model.output_resize:
                return y
            factor = model.scale * model.output_resize
            size = (round(h * factor), round(w * factor))
            return F.interpolate(y, size=size, mode="bicubic", align_corners=False)

        if not tiled:
            return lambda x: resize(runner.forward_device(x), x.shape[-2], x.shape[-1])
        tile, pad, m, s = self.tiling(model)

        def tiles(x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            spans = list(iter_tiles(h, w, tile, pad, m))
            out = None
            for i in range(0, len(spans), self.args.tile_batch):
                group = spans[i:i + self.args.tile_batch]
                y = runner.forward_device(torch.cat([x[..., r.win0:r.win1, c.win0:c.win1] for r, c in group]))
                if out is None:
                    out = y.new_empty((1, y.shape[1], h * s, w * s))
                for (r, c), yi in zip(group, y, strict=True):
                    r0, c0 = (r.core0 - r.win0) * s, (c.core0 - c.win0) * s
                    out[0, :, r.core0 * s:r.core1 * s, c.core0 * s:c.core1 * s] = yi[
                        :, r0:r0 + (r.core1 - r.core0) * s, c0:c0 + (c.core1 - c.core0) * s]
            assert out is not None
            return resize(out, h, w)
        return tiles

    def tiling(self, model: LoadedModel) -> tuple[int, int, int, int]:
        """(tile, pad, size multiple, net scale): the engine's context for the model."""
        m = model.size_multiple
        tile = round_up(self.args.tile if not self.smoke else 8, m)
        pad = UpscaleEngine(model, runner=TorchRunner(torch.nn.Identity(), torch.device("cpu"))).pad
        return tile, pad, m, model.scale

    def run_config(self, name: str, pristine: LoadedModel, frame: torch.Tensor,
                   ref: torch.Tensor | None) -> Row:
        dtype, compile_, graphs, tiled = CONFIGS[name]
        if self.smoke:
            dtype = torch.float32  # half precision on a CPU is a slow reference path, not the GPU one
        h, w = frame.shape[-2:]
        mflop = pristine.spec.mflop_per_input_pixel(**pristine.kwargs)
        row = Row(pristine.name, pristine.net_scale, w, h, name, str(dtype).removeprefix("torch."), mflop)
        if self.smoke:
            row.note = "CPU smoke, fp32 (not a GPU figure)"
        if graphs and self.device.type != "cuda":
            row.note = "skipped: CUDA graphs need CUDA"
            return row
        if compile_ and self.smoke and not self.args.smoke_compile:
            row.note = "skipped: compile on CPU is slow (--smoke-compile runs it)"
            return row
        # a compile needs time left: three times the reserve for the heavy nets (x4plus: 23 RRDBs)
        reserve = self.args.compile_reserve_s * (3 if mflop > 10 else 1) if compile_ else 0.0
        if self.left() < reserve + 5:
            row.note = f"skipped: time budget ({self.args.budget_s:.0f} s) spent"
            return row
        model = fresh(pristine)
        runner = None
        try:
            runner = TorchRunner(runner_network(model), self.device, dtype, channels_last=True,
                                 compile=compile_, cuda_graphs=graphs, compile_mode=self.args.compile_mode)
            forward = self.frame_forward(runner, model, tiled)
            x = frame[None].to(self.device)
            t0 = time.perf_counter()
            y = forward(x)  # compiles / captures / autotunes
            sync(self.device)
            row.setup_s = time.perf_counter() - t0
            if ref is not None:
                row.max_abs_diff = float((y.float() - ref).abs().max())
            del y
            for _ in range(2):
                forward(x)
            row.fps = measure(lambda: forward(x), self.device, self.args.seconds)
            row.fps_e2e = self.e2e(runner, model, frame, tiled)
        except Exception as exc:  # out of memory or a failure of this configuration: report, go on
            row.note = f"failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
        if runner is not None:
            row.runner = runner.describe()
            for what, error in (("compile", runner.compile_error), ("CUDA graphs", runner.graph_error)):
                if error:  # the runner fell back: these are not that configuration's figures
                    row.note = f"{what} FAILED, ran without: {error[:160]}"
        if row.fps is not None:
            row.tflops = tflops(mflop, w * h, row.fps)
            row.peak_share = row.tflops / self.peak if self.peak else None
        return row

    def e2e(self, runner: TorchRunner, model: LoadedModel, frame: torch.Tensor, tiled: bool) -> float:
        """Frames per second with host float32 frames in and out (the engine's view)."""
        frames = self.args.e2e_frames
        if tiled:
            tile, pad, m, s = self.tiling(model)

            def go() -> None:
                for _ in range(frames):
                    tiled_forward(runner, frame, s, tile=tile, pad=pad, batch=self.args.tile_batch,
                                  multiple=m)
        else:
            def go() -> None:
                for _ in runner.run_many(frame[None] for _ in range(frames)):
                    pass
        go()
        return frames * measure(go, self.device, self.args.seconds, min_reps=1)

    def reference(self, pristine: LoadedModel, frame: torch.Tensor) -> torch.Tensor | None:
        """The fp32 output (TF32 off), to check the fast paths' numbers; None if it does not fit."""
        model = fresh(pristine)
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            runner = TorchRunner(runner_network(model), self.device, torch.float32)
            return self.frame_forward(runner, model, tiled=False)(frame[None].to(self.device)).float()
        except torch.OutOfMemoryError:
            return None
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def tensorrt_check(bench: Bench, model: LoadedModel, frame: torch.Tensor) -> dict[str, Any]:
    """ONNX export -> fp16 TensorRT engine -> fps, with trtexec or the tensorrt module; else a note."""
    h, w = frame.shape[-2:]
    trtexec = shutil.which("trtexec")
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
    if bench.device.type != "cuda" or (trtexec is None and trt is None):
        return {"model": model.name, "note": "skipped: neither trtexec on PATH nor the tensorrt module"
                + ("" if bench.device.type == "cuda" else " (and no CUDA)")}
    if bench.left() < 60:
        return {"model": model.name, "note": "skipped: time budget spent"}
    onnx = to_onnx_bytes(model)
    shape = f"input:1x3x{h}x{w}"
    if trtexec is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{model.name}.onnx"
            path.write_bytes(onnx)
            cmd = [trtexec, f"--onnx={path}", "--fp16", f"--minShapes={shape}", f"--optShapes={shape}",
                   f"--maxShapes={shape}", "--duration=5", f"--saveEngine={Path(tmp) / 'model.plan'}"]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30, bench.left() - 10))
            except subprocess.TimeoutExpired:
                return {"model": model.name, "tool": "trtexec", "note": "timed out"}
        found = re.search(r"Throughput:\s*([\d.]+)\s*qps", res.stdout)
        fps = float(found.group(1)) if found and res.returncode == 0 else None
        return {"model": model.name, "tool": "trtexec", "returncode": res.returncode, "fps": fps,
                "note": "" if fps else res.stdout[-400:] + res.stderr[-400:]}
    return _tensorrt_python(trt, bench, model, onnx, frame)


def _tensorrt_python(trt: Any, bench: Bench, model: LoadedModel, onnx: bytes,
                     frame: torch.Tensor) -> dict[str, Any]:
    """Build and time an fp16 engine with the tensorrt module (TensorRT 8.5+ API)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        return {"model": model.name, "tool": "tensorrt", "note": f"ONNX rejected: {errors[:400]}"}
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    shape = (1, 3, *frame.shape[-2:])
    profile = builder.create_optimization_profile()
    profile.set_shape("input", shape, shape, shape)
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        return {"model": model.name, "tool": "tensorrt", "note": "engine build failed"}
    build_s = time.perf_counter() - t0
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    ctx = engine.create_execution_context()
    ctx.set_input_shape("input", shape)
    x = frame[None].to(bench.device).contiguous()
    y = torch.empty(tuple(ctx.get_tensor_shape("output")), device=bench.device, dtype=torch.float32)
    ctx.set_tensor_address("input", x.data_ptr())
    ctx.set_tensor_address("output", y.data_ptr())

    def go() -> None:
        ctx.execute_async_v3(torch.cuda.current_stream(bench.device).cuda_stream)

    go()
    fps = measure(go, bench.device, bench.args.seconds)
    with torch.inference_mode():
        ref = copy.deepcopy(runner_network(model)).to(bench.device)(x)
    return {"model": model.name, "tool": f"tensorrt {trt.__version__}", "fps": fps, "build_s": build_s,
            "max_abs_diff_vs_torch_fp32": float((y - ref).abs().max())}


def versions(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version(), "python": platform.python_version()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    info["card"] = (torch.cuda.get_device_name(device) if device.type == "cuda"
                    else f"CPU ({platform.processor() or platform.machine()}), smoke run")
    return info


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or a dash as wide as the column."""
    width = re.match(r"\d*", spec).group()  # type: ignore[union-attr]
    return "-".rjust(int(width or 0)) if value is None else format(value, spec)


def print_row(r: Row) -> None:
    share = None if r.peak_share is None else 100 * r.peak_share
    print(f"{r.model:<24} x{r.scale:<3g} {r.width}x{r.height:<5} {r.config:<17} {r.dtype:<8} "
          f"{fmt(r.fps, '9.2f')} {fmt(r.fps_e2e, '9.2f')} {fmt(r.tflops, '9.3f')} {fmt(share, '7.2f')} "
          f"{fmt(r.max_abs_diff, '9.2e')} {fmt(r.setup_s, '7.1f')}  {r.note}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated catalogue names")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"any of {','.join(CONFIGS)}")
    p.add_argument("--size", default="1280x720", help="input WxH (default 1280x720)")
    p.add_argument("--seconds", type=float, default=1.5, help="timed seconds per figure")
    p.add_argument("--e2e-frames", type=int, default=8, help="frames per end-to-end pipeline run")
    p.add_argument("--tile", type=int, default=512, help="core tile side of the tiled configuration")
    p.add_argument("--tile-batch", type=int, default=8, help="tiles per batch in the tiled configuration")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs", help="torch.compile mode")
    p.add_argument("--budget-s", type=float, default=420.0, help="no configuration starts after this")
    p.add_argument("--compile-reserve-s", type=float, default=90.0,
                   help="a compile starts only with this much budget left (3x for nets over 10 MFLOP/px)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense fp16 tensor peak")
    p.add_argument("--no-trt", action="store_true", help="skip the ONNX -> TensorRT check")
    p.add_argument("--trt-models", default="realesr-animevideov3", help="models for the TensorRT check")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny size: checks the script, no GPU figures")
    p.add_argument("--smoke-compile", action="store_true", help="with --smoke, also run torch.compile")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(f"bench_gpu.py: no CUDA device (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda}); this benchmark needs an NVIDIA GPU. Use --smoke for a CPU check "
              "of the script.", file=sys.stderr)
        return NO_CUDA_EXIT
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        print(f"bench_gpu.py: unknown configuration(s) {unknown}; choose from {list(CONFIGS)}",
              file=sys.stderr)
        return 1
    w, h = SMOKE_SIZE if args.smoke else tuple(int(v) for v in args.size.lower().split("x"))
    bench = Bench(args, device)
    info = versions(device)
    bench.peak, peak_src = peak_for(info["card"], args.peak_tflops)
    print(f"card: {info['card']}; dense fp16 tensor peak: {fmt(bench.peak, 'g')} TFLOP/s ({peak_src})")
    print(f"torch {info['torch']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}, triton {info['triton']}, "
          f"Python {info['python']}")
    if args.smoke:
        print(f"CPU SMOKE RUN at {w}x{h}: checks the script and its arithmetic; these are not GPU figures")
    print(f"{'model':<24} {'scale':<4} {'input':<10} {'config':<17} {'dtype':<8} {'fps':>9} {'e2e fps':>9} "
          f"{'TFLOP/s':>9} {'%peak':>7} {'max|d|':>9} {'setup_s':>7}")
    frame = photo_frame(w, h)
    configs = args.configs.split(",")
    loaded: dict[str, tuple[LoadedModel, torch.Tensor | None]] = {}
    for name in args.models.split(","):
        try:
            model = load_model(name)
        except Exception as exc:  # a missing weight carrier: say so and go on with the others
            print(f"{name}: not loaded ({type(exc).__name__}: {exc})", flush=True)
            continue
        loaded[name] = (model, bench.reference(model, frame))
    # every model's quick configurations first, the compiles last, lightest network first
    by_cost = sorted(loaded.values(), key=lambda mr: mr[0].spec.mflop_per_input_pixel(**mr[0].kwargs))
    runs = [(c, mr) for c in configs if not CONFIGS[c][1] for mr in loaded.values()]
    runs += [(c, mr) for c in configs if CONFIGS[c][1] for mr in by_cost]
    for config, (model, ref) in runs:
        row = bench.run_config(config, model, frame, ref)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the runner, its graphs and compiled code are gone
        bench.rows.append(row)
        print_row(row)
    trt_rows = []
    if not args.no_trt:
        for name in args.trt_models.split(","):
            if name in loaded:
                trt_rows.append(tensorrt_check(bench, loaded[name][0], frame))
                print(f"tensorrt {name}: {trt_rows[-1]}", flush=True)
    elapsed = time.perf_counter() - bench.t0
    print(f"done in {elapsed:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {**info, "smoke": args.smoke, "peak_tflops": bench.peak, "peak_source": peak_src,
               "width": w, "height": h, "seconds": elapsed, "rows": [asdict(r) for r in bench.rows],
               "tensorrt": trt_rows}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
