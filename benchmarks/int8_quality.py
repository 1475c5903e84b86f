"""INT8 quality and speed: accuracy-aware OpenVINO INT8 vs fp32 and vs the ncnn runtime.

For realesrgan-x4plus, realesr-animevideov3 and span-x4 (alias of span-x4-ch48) this builds (or
loads from the cache) the INT8 IR of :func:`superres.export.int8.int8_model_path` and prints:
  - the quantisation report (PSNR vs fp32 on the held-out crops, layers kept in fp32),
  - a fresh PSNR of INT8 vs fp32 (OpenVINO, same IR before quantisation) on the Set5 x4 LR
    images, which neither calibration nor the layer choice ever saw,
  - the time relative to the ncnn runtime (fp32, its own .param/.bin) on the same 128x128 input,
    2 threads each, runs interleaved in this one process, median of several,
  - span-x4 on Set5 x4: Y-PSNR/SSIM of fp32 (PyTorch) and INT8 (OpenVINO runner) and the change.

Usage: python benchmarks/int8_quality.py [--data /work/shared/data/Set5] [--repeat 7] [--models ...]
Ratios only: the machine may be shared, absolute times mean little. Cold cache: about 10-15 min
on 2 cores (x4plus dominates).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superres.evaluation.bench import test_image
from superres.export.convert import to_openvino
from superres.export.int8 import compile_cpu, int8_model_path, psnr, read_int8_report
from superres.runtimes.ncnn import NcnnRunner
from superres.zoo.loader import LoadedModel, load_model

MODELS = ("realesrgan-x4plus", "realesr-animevideov3", "span-x4")
THREADS = 2


class OpenVinoRunner:
    """A compiled OpenVINO model as an engine runner (benchmark-local; the real one is in runtimes)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.compiled(x.float().numpy())[0]).copy())


def set5_lr(data: Path) -> list[tuple[str, np.ndarray]]:
    """The Set5 x4 LR images as NCHW float32 in [0, 1]."""
    import cv2

    out = []
    for p in sorted((data / "LR_bicubic" / "X4").glob("*.png")):
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        out.append((p.stem, np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]))
    return out


def fit(x: np.ndarray, multiple: int) -> np.ndarray:
    h, w = x.shape[2] - x.shape[2] % multiple, x.shape[3] - x.shape[3] % multiple
    return x[:, :, :h, :w]


def speed(name: str, int8: Any, fp32: Any, repeat: int) -> tuple[float, float, float]:
    """(ncnn seconds, INT8/ncnn, OpenVINO fp32/ncnn) on 128x128, interleaved, medians."""
    chw = test_image(128)
    net = NcnnRunner.for_model(load_model(name), device="cpu", threads=THREADS)
    nc = net.run_chw
    x = chw[None]
    for _ in range(2):
        nc(chw), int8(x), fp32(x)
    tn, tq, tf = [], [], []
    for _ in range(repeat):
        for fn, arg, acc in ((nc, chw, tn), (int8, x, tq), (fp32, x, tf)):
            t0 = time.perf_counter()
            fn(arg)
            acc.append(time.perf_counter() - t0)
    n = statistics.median(tn)
    return n, statistics.median(tq) / n, statistics.median(tf) / n


def set5_scores(model: LoadedModel, int8: Any, data: Path) -> tuple[float, float, float, float]:
    """Set5 x4 Y-PSNR/SSIM of fp32 (PyTorch engine) and INT8 (OpenVINO runner in the same engine)."""
    from superres.engine.upscaler import UpscaleEngine
    from superres.evaluation.dataset import discover
    from superres.evaluation.evaluate import EvalOptions, Method, evaluate

    fp = UpscaleEngine(model, device="cpu", precision="fp32")
    q = UpscaleEngine(model, runner=OpenVinoRunner(int8))
    methods = [Method("fp32", lambda lr: fp.upscale_array(lr, 4.0), "torch fp32"),
               Method("int8", lambda lr: q.upscale_array(lr, 4.0), "openvino int8")]
    result = evaluate(discover(4, data=data), methods, EvalOptions(scale=4))
    mean = {m: (statistics.mean(r.psnr for r in result.rows if r.model == m),
                statistics.mean(r.ssim for r in result.rows if r.model == m)) for m in ("fp32", "int8")}
    return (*mean["fp32"], *mean["int8"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/Set5"))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--budget", type=float, default=45.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    lr = set5_lr(args.data) if args.data.is_dir() else []
    rows = []
    for spec in args.models:
        model = load_model(spec)
        t0 = time.perf_counter()
        xml = int8_model_path(model, budget_db=args.budget)
        built = time.perf_counter() - t0
        rep = read_int8_report(xml)
        import openvino as ov

        int8 = compile_cpu(ov.Core().read_model(str(xml)), threads=THREADS)
        fp32 = compile_cpu(to_openvino(model), threads=THREADS, f32=True)
        print(f"\n== {model.name}: INT8 IR {xml} ({built:.0f} s to build or load)")
        print(f"  report: {rep.psnr_db:.2f} dB vs fp32 on {rep.held_images} held crops "
              f"(budget {rep.budget_db:g}, plain PTQ {rep.plain_psnr_db:.2f} dB); "
              f"{rep.int8_layers} convs INT8, {len(rep.fp32_layers)} kept fp32, {rep.rounds} rounds, "
              f"{rep.seconds:.0f} s")
        for layer in rep.fp32_layers:
            print(f"    fp32: {layer}")
        set5 = None
        if lr:
            xs = [fit(x, model.size_multiple) for _, x in lr]
            outs = [(np.asarray(int8(x)[0]), np.asarray(fp32(x)[0])) for x in xs]
            set5 = psnr(np.concatenate([a.ravel() for a, _ in outs]),
                        np.concatenate([b.ravel() for _, b in outs]))
            per = ", ".join(f"{n} {psnr(a, b):.2f}" for (n, _), (a, b) in zip(lr, outs, strict=True))
            print(f"  INT8 vs fp32 on Set5 x4 LR (held, never calibrated on): {set5:.2f} dB ({per})")
        n, rq, rf = speed(model.name, int8, fp32, args.repeat)
        print(f"  128x128, {THREADS} threads: ncnn fp32 {n * 1000:.0f} ms; time ratio INT8/ncnn {rq:.3f} "
              f"({1 / rq:.2f}x faster), OpenVINO fp32/ncnn {rf:.3f}")
        row = [model.name, f"{rep.psnr_db:.2f}", f"{set5:.2f}" if set5 else "-", f"{rq:.3f}", f"{rf:.3f}",
               str(len(rep.fp32_layers))]
        if model.arch == "span" and lr:
            p0, s0, p1, s1 = set5_scores(model, int8, args.data)
            print(f"  Set5 x4 Y: fp32 {p0:.4f} dB / {s0:.4f}, INT8 {p1:.4f} dB / {s1:.4f}, "
                  f"change {p1 - p0:+.4f} dB / {s1 - s0:+.4f}")
            row.append(f"{p1 - p0:+.4f}")
        rows.append(row)
    print("\n| model | INT8 vs fp32, held crops (dB) | INT8 vs fp32, Set5 LR (dB) | INT8/ncnn time | "
          "OV fp32/ncnn time | convs kept fp32 | Set5 Y-PSNR change |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r + ["-"] * (7 - len(r))) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
