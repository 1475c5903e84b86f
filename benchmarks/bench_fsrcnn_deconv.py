"""FSRCNN's last layer as superres runs it (a sub-pixel conv) against ``nn.ConvTranspose2d``.

Same weights (the shipped Y-only ``fsrcnn-x2/x3/x4``), same input, same process and thread count;
the runs alternate (transposed conv, sub-pixel, transposed conv, ...) and medians are reported,
for the whole network forward (inference) and for one training step of the network (forward +
backward at stage 2's training batch, configs/y-stage/: 32 patches of 32x32 LR pixels). GFLOP/s counts the
work the network needs (``mflop_per_input_pixel``; the sub-pixel form's zero taps are not counted).

    nice -n 19 .venv/bin/python benchmarks/bench_fsrcnn_deconv.py              # ~1 min, 1 thread
    nice -n 19 .venv/bin/python benchmarks/bench_fsrcnn_deconv.py --threads 2 --size 512
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from superres.archs import ARCHS
from superres.archs.fsrcnn import FSRCNN
from superres.zoo.loader import load_model


class TransposedFSRCNN(nn.Module):
    """The same network calling its nn.ConvTranspose2d directly (the peer)."""

    def __init__(self, net: FSRCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.last_part(self.net.mid_part(self.net.first_part(x)))


def infer(m: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    return lambda: m(x)


def step(m: nn.Module, batch: torch.Tensor) -> Callable[[], object]:
    """One training step's forward + backward (no optimiser: it is the same on both sides)."""

    def run() -> None:
        m.zero_grad(set_to_none=True)
        m(batch).square().mean().backward()

    return run


def median_seconds(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Interleaved timing after one warm-up call each."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="LR side of the inference input")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for scale in (2, 3, 4):
        lm = load_model(f"fsrcnn-x{scale}")
        net = lm.module.to(memory_format=torch.channels_last)
        peer = TransposedFSRCNN(net)
        mflop = ARCHS["fsrcnn"].mflop_per_input_pixel(**lm.kwargs)
        x = torch.rand(1, lm.kwargs["num_channels"], args.size, args.size)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            same = float((net(x) - peer(x)).abs().max())
            inf = median_seconds({"conv_transpose": infer(peer, x), "subpixel": infer(net, x)}, args.repeat)
        batch = torch.rand(32, lm.kwargs["num_channels"], 32, 32)
        batch = batch.contiguous(memory_format=torch.channels_last)
        net.train().requires_grad_(True)
        trn = median_seconds({"conv_transpose": step(peer, batch), "subpixel": step(net, batch)}, args.repeat)
        px_inf, px_trn = args.size * args.size, 32 * 32 * 32
        for name in ("conv_transpose", "subpixel"):
            rows.append({
                "scale": scale, "layer": name,
                "inference_ms": round(inf[name] * 1e3, 2),
                "inference_gflops": round(mflop * px_inf / inf[name] / 1e3, 1),
                "train_step_ms": round(trn[name] * 1e3, 2),
                "train_gflops": round(3 * mflop * px_trn / trn[name] / 1e3, 1),  # fwd + 2x bwd
                "max_abs_diff": same,
            })
        print(f"x{scale}: inference {inf['conv_transpose'] / inf['subpixel']:.2f}x faster, "
              f"train step {trn['conv_transpose'] / trn['subpixel']:.2f}x faster "
              f"(max |diff| {same:.1e})")
    info = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads, "size": args.size, "repeat": args.repeat}
    print(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
