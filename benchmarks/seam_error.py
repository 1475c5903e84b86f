"""Seam error of tiled RRDBNet inference against the untiled result, per tile pad.

RRDBNet's receptive field is far larger than any practical pad, so tiling is not exact;
this measures how far from exact it is, to choose and document the default pad.

    python benchmarks/seam_error.py [--model realesrgan-x4plus] [--tile 64] [--pads 10,16,24,32,48]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import superres
from superres.engine.tiling import tiled_forward

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chelsea.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesrgan-x4plus")
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--pads", default="10,16,24,32,48")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    up = superres.load(args.model, device="cpu")
    eng = up.engine
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)[8:200, 40:296]  # 192x256 crop
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255

    def run(tile: int, pad: int) -> torch.Tensor:
        return tiled_forward(eng.runner, x, eng.model.scale, tile=tile, pad=pad).clamp(0, 1)

    t0 = time.perf_counter()
    full = run(max(x.shape[1:]), 0)
    print(f"model {args.model}, input {x.shape[2]}x{x.shape[1]}, tile {args.tile}; "
          f"untiled pass {time.perf_counter() - t0:.1f} s")
    print("| pad | max abs | mean abs | uint8 max | pixels differing (uint8) | PSNR vs untiled |")
    print("|---|---|---|---|---|---|")
    for pad in (int(p) for p in args.pads.split(",")):
        out = run(args.tile, pad)
        diff = (out - full).abs()
        u8 = ((out * 255).round() - (full * 255).round()).abs()
        psnr = 10 * math.log10(1.0 / max(float((diff**2).mean()), 1e-20))
        print(f"| {pad} | {diff.max():.2e} | {diff.mean():.2e} | {u8.max():.0f} | "
              f"{(u8 > 0).float().mean() * 100:.1f} % | {psnr:.1f} dB |", flush=True)


if __name__ == "__main__":
    main()
