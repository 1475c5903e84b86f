"""Speed and memory measurement of superres models, side by side with the ncnn runtime.

Used by ``superres bench``. Each configuration is timed as a median of repeated calls after
a warm-up; peak memory is the process's resident high-water mark, reset before each
configuration (Linux ``/proc/self/clear_refs``), so numbers do not leak between runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superres.engine.protocol import Engine
from superres.io.sample import sample_crop
from superres.zoo import catalogue


@dataclass
class BenchRow:
    """One measured configuration (one runtime, model, size, tile, thread count)."""

    runtime: str  # "superres" | "ncnn"
    model: str
    size: int  # input side (square)
    tile: int  # 0 = whole image
    threads: int
    seconds: float
    ms_per_output_mp: float
    gflops: float
    peak_rss_mb: float | None
    max_abs_diff_vs_superres: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter; False where the OS does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory (VmHWM) of this process in MiB, if the OS reports it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def median_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Warm up once, then the median wall time of ``repeat`` calls, and the last result."""
    out = fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def test_image(size: int) -> np.ndarray:
    """A square crop of the bundled sample photo (repeated past its edge), as CHW float in [0, 1]."""
    return sample_crop(size, size)


def run_config(
    model: str, size: int, tile: int, threads: int, repeat: int, with_ncnn: bool,
    backends: tuple[str, ...] = ("torch",),
) -> list[BenchRow]:
    """superres on each backend (runtime "superres" for torch, "superres-<backend>" for the others),
    and the bare ncnn runtime when asked and available, on one model/size/tile/thread setting."""
    import superres

    torch.set_num_threads(threads)
    info = catalogue.get(model)
    x = test_image(size)
    scale = info.scale
    out_mp = (size * scale) ** 2 / 1e6
    gflop = info.mflop_per_input_pixel * size * size / 1e3
    rows: list[BenchRow] = []
    ref: np.ndarray | None = None
    for backend in backends:
        engine: Engine = superres.load(model, device="cpu", tile=tile, backend=backend, threads=threads)
        reset_peak_rss()
        secs, y = median_seconds(lambda e=engine: e.upscale_rgb(torch.from_numpy(x)), repeat)
        label = "superres" if backend == "torch" else f"superres-{backend}"
        out = y.numpy()
        diff = None if ref is None else float(np.abs(out - ref).max())
        ref = out if ref is None else ref
        rows.append(BenchRow(label, model, size, tile, threads, secs, secs * 1e3 / out_mp, gflop / secs,
                             peak_rss_mb(), diff))
    if with_ncnn and info.output_resize is None:
        from superres.runtimes import BackendUnavailableError
        from superres.runtimes.ncnn import NcnnRunner
        from superres.zoo.loader import load_model

        try:
            runner = NcnnRunner.for_model(load_model(model), device="cpu", threads=threads)
        except (BackendUnavailableError, ValueError) as exc:
            print(f"note: ncnn not measured for {model}: {exc}")
            return rows
        xt = torch.from_numpy(x)[None]
        reset_peak_rss()
        secs_n, yn = median_seconds(lambda: runner.run(xt)[0].numpy(), repeat)
        diff = None if ref is None else float(np.abs(np.clip(yn, 0, 1) - ref).max())
        rows.append(BenchRow("ncnn", model, size, 0, threads, secs_n, secs_n * 1e3 / out_mp, gflop / secs_n,
                             peak_rss_mb(), diff))
    return rows
