"""Every runner against the ncnn runtime: same weights, same input, same threads, one process.

Issue 18, item 6. For each model and input side, every runner that can be built runs the same
(1,3,side,side) crop of the sample photo: PyTorch, torch-winograd (RRDBNet), OpenVINO fp32, ONNX Runtime fp32,
OpenVINO INT8 (the accuracy-aware IR of ``superres.export.int8.int8_model_path``), the ncnn runner of
``superres.runtimes`` and, as the reference, the ncnn runtime itself on the carrier's own
``.param/.bin`` (``superres.runtimes.ncnn.NcnnRunner``, fp32 options). After one warm-up call
each, the runners are timed in interleaved rounds (one call each per round, so a burst of load
hits all of them alike); reported per runner: the median time, the median of the per-round
ratios to the ncnn reference (lower is faster), GFLOP/s (the catalogue's MFLOP per input pixel)
and how far the output is from PyTorch's (max |diff|, and PSNR of the clipped outputs).

Every runner is built by ``superres.runtimes.make_runner``, exactly as ``--backend`` builds it. A
runner that cannot be built (its package not installed, a backend that does not run this model)
is skipped with a printed note, so the script runs on any install.

    python benchmarks/bench_runtimes.py                  # both models, 128 and 512 px, 5 rounds
    python benchmarks/bench_runtimes.py --quick          # 2 rounds
    python benchmarks/bench_runtimes.py --models realesr-animevideov3 --sizes 128 --json out/rt.json

On a shared machine the absolute times move with the load; the ratios, taken side by side, are
the result.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from superres.evaluation.bench import test_image  # noqa: E402
from superres.runtimes import make_runner  # noqa: E402
from superres.runtimes.ncnn import NcnnRunner  # noqa: E402
from superres.zoo.loader import LoadedModel, load_model  # noqa: E402

Run = Callable[[torch.Tensor], torch.Tensor]
REFERENCE = "ncnn runtime (reference)"


def _runtimes_runner(model: LoadedModel, backend: str, precision: str, threads: int) -> Run:
    """The superres runner of ``backend`` (superres.runtimes.make_runner), as the engine would get it."""
    runner = make_runner(model, backend, device="cpu", precision=precision, threads=threads)
    return runner.run


def _ncnn_reference(model: LoadedModel, threads: int) -> Run:
    net = NcnnRunner.for_model(model, device="cpu", threads=threads)
    return net.run


def runners(model: LoadedModel, threads: int, only: set[str] | None) -> dict[str, Run]:
    """Every runner that can be built, by label; a note for each one that cannot."""
    makers: dict[str, Callable[[], Run]] = {
        REFERENCE: lambda: _ncnn_reference(model, threads),
        "torch fp32": lambda: _runtimes_runner(model, "torch", "fp32", threads),
        "torch-winograd fp32": lambda: _runtimes_runner(model, "torch-winograd", "fp32", threads),
        "openvino fp32": lambda: _runtimes_runner(model, "openvino", "fp32", threads),
        "onnxruntime fp32": lambda: _runtimes_runner(model, "onnxruntime", "fp32", threads),
        "openvino int8": lambda: _runtimes_runner(model, "openvino", "int8", threads),
        "ncnn (superres.runtimes)": lambda: _runtimes_runner(model, "ncnn", "fp32", threads),
    }
    built: dict[str, Run] = {}
    for label, make in makers.items():
        if only and label != REFERENCE and not any(o in label for o in only):
            continue
        try:
            t0 = time.perf_counter()
            built[label] = make()
            print(f"  {label}: ready in {time.perf_counter() - t0:.1f} s", flush=True)
        except Exception as exc:  # not installed, not written yet, no carrier files: skip, say why
            why = str(exc).splitlines()[0] if str(exc) else ""
            print(f"  {label}: skipped ({type(exc).__name__}: {why})", flush=True)
    return built


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def bench(model_name: str, side: int, threads: int, rounds: int,
          only: set[str] | None) -> list[dict[str, Any]]:
    model = load_model(model_name)
    mflop = float(model.spec.mflop_per_input_pixel(**model.kwargs))
    x = torch.from_numpy(test_image(side))[None]
    print(f"{model_name} at {side}x{side}, {threads} threads, {rounds} rounds:", flush=True)
    built = runners(model, threads, only)
    outs = {label: run(x).numpy() for label, run in built.items()}  # warm-up, and the outputs
    times: dict[str, list[float]] = {label: [] for label in built}
    for r in range(rounds):
        order = list(built) if r % 2 == 0 else list(reversed(built))  # no runner always first
        for label in order:
            t0 = time.perf_counter()
            built[label](x)
            times[label].append(time.perf_counter() - t0)
    ref_torch = outs.get("torch fp32")
    rows = []
    for label, ts in times.items():
        row: dict[str, Any] = {"model": model_name, "size": side, "threads": threads, "runner": label,
                               "seconds": statistics.median(ts), "times": ts,
                               "gflops": mflop * side * side / 1e3 / statistics.median(ts)}
        if REFERENCE in times:
            row["ratio_vs_ncnn"] = statistics.median(t / n for t, n in zip(ts, times[REFERENCE], strict=True))
        if ref_torch is not None and outs[label].shape == ref_torch.shape:
            row["max_abs_diff_vs_torch"] = float(np.abs(outs[label] - ref_torch).max())
            row["psnr_vs_torch_db"] = psnr(outs[label], ref_torch)
        rows.append(row)
        ratio = f"{row['ratio_vs_ncnn']:.2f}x ncnn" if "ratio_vs_ncnn" in row else "no ncnn"
        diff = (f", max|diff| {row['max_abs_diff_vs_torch']:.2e}, {row['psnr_vs_torch_db']:.1f} dB vs torch"
                if "max_abs_diff_vs_torch" in row else "")
        print(f"    {label:26s} {row['seconds'] * 1e3:9.1f} ms  {ratio}  {row['gflops']:6.1f} GFLOP/s{diff}",
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3")
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds after the warm-up")
    ap.add_argument("--quick", action="store_true", help="2 rounds")
    ap.add_argument("--only", default=None, help="comma-separated runner label parts, e.g. openvino,torch")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for name in args.models.split(","):
        for side in (int(s) for s in args.sizes.split(",")):
            rows.extend(bench(name, side, args.threads, rounds, only))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
