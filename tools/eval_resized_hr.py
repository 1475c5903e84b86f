"""Score a Y-only model on Set5 the way many PyTorch re-implementations do, to compare their numbers.

Diagnostics only. A common recipe (e.g. the prepare/train scripts of yjn870/ESPCN-pytorch, whose
README reports ESPCN x3 at 32.88 dB on Set5) makes the test pairs with Pillow: the HR image is
*resized* (bicubic) to the nearest smaller multiple of the scale instead of cropped, the LR is a
Pillow bicubic downscale of that, and the Y-PSNR is taken over the whole image (no border cut), on
float Y. Resizing a 256 px image to 255 px resamples every pixel: the "ground truth" becomes a
slightly blurred image that is easier to predict, so the PSNR rises although no network changed.

This tool prints both variants per image and their mean::

    python tools/eval_resized_hr.py espcn-x3

"HR cropped" is the same recipe with the HR cropped instead: it differs from ``superres eval`` (the
standard protocol) only in Pillow's LR and the uncut border, and lands within 0.1 dB of it.
At x2 and x4 every Set5 side is already a multiple of the scale, so both variants agree. It made
the comparison in docs/training.md ("Why ESPCN stops short").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from superres.metrics import psnr, rgb_to_y
from superres.train.data import images_in
from superres.zoo.loader import load_model

SET5_HR = Path(__file__).resolve().parents[2] / "shared" / "data" / "Set5" / "HR"


def luma(rgb: Image.Image) -> np.ndarray:
    """Float Y in [0, 1] (16/255..235/255) of an 8-bit RGB image, not rounded (MATLAB rgb2ycbcr)."""
    return rgb_to_y(np.asarray(rgb)) / 255.0


def pair(path: Path, scale: int, resize_hr: bool) -> tuple[np.ndarray, np.ndarray]:
    """(LR Y, HR Y) of one image by the Pillow recipe; HR resized or cropped to a scale multiple."""
    hr = Image.open(path).convert("RGB")
    w, h = hr.width // scale * scale, hr.height // scale * scale
    hr = hr.resize((w, h), resample=Image.Resampling.BICUBIC) if resize_hr else hr.crop((0, 0, w, h))
    lr = hr.resize((w // scale, h // scale), resample=Image.Resampling.BICUBIC)
    return luma(lr), luma(hr)


def whole_image_psnr(net: torch.nn.Module, lr: np.ndarray, hr: np.ndarray) -> float:
    """Whole-image PSNR of the network's clamped float output against the HR Y."""
    with torch.no_grad():
        out = net(torch.from_numpy(lr).float()[None, None]).clamp(0.0, 1.0)[0, 0].double().numpy()
    return psnr(out, hr, max_value=1.0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="zoo name or weight file of a Y-only model (espcn-x3, fsrcnn-x3, ...)")
    p.add_argument("--hr", type=Path, default=SET5_HR, help="folder of HR test images")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lm = load_model(args.model)
    if not lm.luma_only:
        raise SystemExit(f"{args.model}: not a Y-only (one-channel) model")
    net, s = lm.module.float().eval(), int(lm.scale)
    files = images_in(args.hr)
    if not files:
        raise SystemExit(f"{args.hr}: no images")
    print("image        HR resized  HR cropped")
    rows = []
    for f in files:
        row = [whole_image_psnr(net, *pair(f, s, resize_hr)) for resize_hr in (True, False)]
        rows.append(row)
        print(f"{f.stem:<12} {row[0]:10.3f}  {row[1]:10.3f}")
    mean = np.mean(rows, axis=0)
    print(f"{'mean':<12} {mean[0]:10.3f}  {mean[1]:10.3f}")


if __name__ == "__main__":
    main()
