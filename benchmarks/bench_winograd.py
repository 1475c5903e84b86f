"""Winograd 3x3 convolution vs the direct convolution (PyTorch/oneDNN) vs the ncnn runtime, on CPU.

Per layer shape of realesr-animevideov3 (SRVGGNetCompact) and realesrgan-x4plus (RRDBNet), and end
to end, all candidates interleaved repeat by repeat in ONE process (the machine may be shared; only
the ratios printed side by side mean anything). ``--clock cpu`` times process CPU seconds instead
of wall seconds: with ``--threads 1`` that is immune to other processes taking the core, which is
what made the numbers in docs/winograd.md reproducible on a busy 2-core machine.

    python benchmarks/bench_winograd.py                       # eager, 2 threads, wall clock
    python benchmarks/bench_winograd.py --compile             # + torch.compile'd Winograd (minutes)
    python benchmarks/bench_winograd.py --threads 1 --clock cpu --compile
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from superres.archs.rrdbnet import ResidualDenseBlock
from superres.engine.winograd import winograd_module
from superres.evaluation.bench import NcnnRunner, test_image
from superres.zoo.loader import load_model

#: (Cin, Cout) of the 3x3 convolutions that dominate each model's FLOPs.
LAYERS = {
    "realesr-animevideov3": [(64, 64), (64, 48)],
    "realesrgan-x4plus": [(64, 32), (96, 32), (128, 32), (160, 32), (192, 64), (64, 64)],
}
#: Input sides per model; x4plus is ~0.6 TFLOP per 128-px tile, so 128 only.
SIZES = {"realesr-animevideov3": (128, 256), "realesrgan-x4plus": (128,)}


def interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Median seconds per candidate; one warm-up each, then the candidates in turn, ``repeat`` rounds."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _line(label: str, secs: dict[str, float], base: str) -> str:
    cols = "  ".join(f"{k} {v * 1e3:8.1f} ms ({v / secs[base]:4.2f}x)" for k, v in secs.items())
    return f"{label:<34} {cols}   [ratio vs {base}]"


def bench_layers(model: str, size: int, repeat: int, clock: Callable[[], float], compiled: bool) -> None:
    for cin, cout in LAYERS[model]:
        torch.manual_seed(0)
        conv = nn.Conv2d(cin, cout, 3, 1, 1).eval()
        x = torch.rand(1, cin, size, size).contiguous(memory_format=torch.channels_last)
        fns: dict[str, Callable[[], object]] = {"direct": lambda conv=conv, x=x: conv(x)}
        for m in (4, 6):
            wino = winograd_module(nn.Sequential(conv), m=m)
            fns[f"F{m}-eager"] = lambda w=wino, x=x: w(x)
            if compiled:
                wc = torch.compile(wino, dynamic=False)
                fns[f"F{m}-compiled"] = lambda w=wc, x=x: w(x)
        with torch.no_grad():
            secs = interleaved(fns, repeat, clock)
        print(_line(f"{model[:12]} {size}px conv {cin}->{cout}", secs, "direct"), flush=True)


def bench_model(model: str, size: int, threads: int, repeat: int, clock: Callable[[], float],
                compiled: bool) -> None:
    net = load_model(model).module.eval().to(memory_format=torch.channels_last)
    rgb = test_image(size)
    x = torch.from_numpy(rgb)[None].contiguous(memory_format=torch.channels_last)
    ncnn = NcnnRunner(model, threads=threads)
    fns: dict[str, Callable[[], object]] = {"ncnn": lambda: ncnn(rgb), "torch-direct": lambda: net(x)}
    candidates = {"F4-all": {"m": 4}, "F6-all": {"m": 6}}
    if any(isinstance(mod, ResidualDenseBlock) for mod in net.modules()):
        # the fast configuration: dense blocks only, plain convs stay direct (F6-all: slow, skipped)
        candidates = {"F4-dense": {"m": 4, "plain_convs": False}, "F4-all": {"m": 4}}
    with torch.no_grad():
        ref = net(x)
        for label, kwargs in candidates.items():
            wino = winograd_module(net, **kwargs)
            diff = (wino(x) - ref).abs().max().item()
            print(f"  {label} max |winograd - direct| on the test image: {diff:.2e}")
            fns[label] = lambda w=wino: w(x)
            if compiled:
                t0 = time.perf_counter()
                wc = torch.compile(wino, dynamic=False)
                wc(x)
                print(f"  {label} torch.compile took {time.perf_counter() - t0:.0f} s (once per input shape)")
                fns[f"{label}-compiled"] = lambda w=wc: w(x)
        secs = interleaved(fns, repeat, clock)
    print(_line(f"{model} {size}px end to end", secs, "ncnn"), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the Winograd modules (slow)")
    ap.add_argument("--models", nargs="+", default=list(LAYERS))
    ap.add_argument("--skip-layers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock, median of {args.repeat}")
    np.random.seed(0)
    for model in args.models:
        if not args.skip_layers:
            for size in SIZES[model]:
                bench_layers(model, size, args.repeat, clock, args.compile)
        for size in SIZES[model]:
            bench_model(model, size, args.threads, args.repeat, clock, args.compile)


if __name__ == "__main__":
    main()
