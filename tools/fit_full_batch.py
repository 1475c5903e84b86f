"""Full-batch L-BFGS for a Y-only model: how far can its weights go, on Set5 or on the training set?

Diagnostics only, never for shipping. Two uses, both scored on Set5 by `superres eval`'s protocol:

* **Upper bound** (default): fit to Set5 itself (trains on the test set). The objective is the mean
  over the images of log(MSE on Y, border = scale), i.e. the mean Set5 Y-PSNR itself. If even this
  stays below a target, no training set is likely to reach it with that architecture; if it goes
  above, the target is at least representable::

      python tools/fit_full_batch.py espcn-x3 --steps 100 --out /tmp/espcn-x3-set5.safetensors
      superres eval --data ../shared/data/Set5 -s 3 -m /tmp/espcn-x3-set5.safetensors

* **Is the optimiser the limit?** (``--fit DIR``, repeatable): minimise the training loss, the MSE on
  Y over every pixel of these HR folders' whole images (LR made with MATLAB-exact bicubic, as the
  trainer's ``whole_image`` bicubic makes it), with no patches, no minibatch noise and no EMA. If the
  training PSNR barely moves from a shipped network's, that network already sits at an optimum of
  its training loss, and more steps of any optimiser on these images will not lift it::

      python tools/fit_full_batch.py espcn-x3 --fit ../shared/data/train/T91 \\
          --fit ../shared/data/train/BSD200 --steps 5 --max-iter 10

It made the ESPCN x3 numbers in docs/training.md ("Why ESPCN stops short").
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from superres.archs.luma import rgb_to_y
from superres.train.config import ValDataConfig
from superres.train.data import ValDataset, to_tensor
from superres.train.trainer import score_pairs
from superres.zoo.loader import load_model

SET5 = Path(__file__).resolve().parents[2] / "shared" / "data" / "Set5"


def y_pairs(val: ValDataset, scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR Y, HR Y) per image, (1,1,h,w) float32 in [0,1], the HR cropped to LR size x scale."""
    pairs = []
    for _name, lr_u8, hr_u8 in val:
        lr, hr = to_tensor(lr_u8)[None].double(), to_tensor(hr_u8)[None].double()
        hr = hr[..., : lr.shape[-2] * scale, : lr.shape[-1] * scale]
        pairs.append((rgb_to_y(lr).float(), rgb_to_y(hr).float()))
    return pairs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="zoo name or weight file of a Y-only model (espcn-x3, fsrcnn-x2, ...)")
    p.add_argument("--steps", type=int, default=100, help="L-BFGS steps")
    p.add_argument("--max-iter", type=int, default=20, help="loss evaluations per L-BFGS step, at most")
    p.add_argument("--data", type=Path, default=SET5, help="Set5-style folder (HR/, LR_bicubic/X{s}/)")
    p.add_argument("--fit", type=Path, action="append", default=[],
                   help="fit to this HR folder's images instead of --data (repeatable)")
    p.add_argument("--out", type=Path, help="write the fitted weights here (safetensors)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    net, s = lm.module.float().train(), lm.scale
    net.requires_grad_(True)  # the loader hands out inference modules
    if not lm.luma_only:
        raise SystemExit(f"{args.model}: not a Y-only (one-channel) model")
    val = ValDataset(ValDataConfig(hr=args.data / "HR", lr=args.data / "LR_bicubic" / f"X{s}"), s)
    if args.fit:
        pairs = [pair for d in args.fit for pair in y_pairs(ValDataset(ValDataConfig(hr=d), s), s)]
        pixels = sum(hr.numel() for _, hr in pairs)
        print(f"fitting {len(pairs)} images, {pixels} HR pixels", flush=True)
    else:
        pairs, pixels = y_pairs(val, s), 0

    def score() -> float:
        net.eval()
        try:
            return score_pairs(net, val, s, luma=True)["psnr"]
        finally:
            net.train()

    def closure() -> torch.Tensor:
        """The loss and its gradient, one image at a time (the 291 images would not fit at once)."""
        opt.zero_grad()
        total = 0.0
        for lr, hr in pairs:
            err = net(lr) - hr
            # --fit: the training loss, MSE over every pixel of every image; else the mean Set5
            # log-MSE (border = scale), i.e. the eval's mean PSNR
            loss = err.pow(2).sum() / pixels if args.fit else torch.log(err[..., s:-s, s:-s].pow(2).mean())
            loss.backward()
            total += float(loss.detach())
        return torch.tensor(total)

    def fit_psnr() -> str:
        if not args.fit:
            return ""
        with torch.no_grad():
            mse = sum(float((net(lr) - hr).pow(2).sum()) for lr, hr in pairs) / pixels
        return f", training images {10 * math.log10(1 / mse):.4f} dB (pooled MSE)"

    print(f"{args.model}: start {score():.3f} dB{fit_psnr()}", flush=True)
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=args.max_iter, history_size=50,
                            line_search_fn="strong_wolfe")
    t0 = time.time()
    for step in range(1, args.steps + 1):
        opt.step(closure)  # type: ignore[arg-type]
        if step % 5 == 0 or step == args.steps or args.fit:
            print(f"step {step}: {score():.3f} dB{fit_psnr()} ({time.time() - t0:.0f} s)", flush=True)
    if args.out:
        what = f"fitted to {', '.join(map(str, args.fit))}" if args.fit else "fitted to Set5"
        meta = {"superres.arch": lm.arch, "superres.kwargs": json.dumps(lm.kwargs),
                "superres.scale": str(s), "superres.weights": f"{what} (diagnostic)"}
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(args.out), meta)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
