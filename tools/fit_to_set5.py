"""Upper bound for a Y-only architecture: fit a model to Set5 itself and see how high it gets.

Diagnostic only, never for shipping (it trains on the test set):

    python tools/fit_to_set5.py espcn-x3 --steps 100 --out /tmp/espcn-x3-set5.safetensors
    superres eval --data ../shared/data/Set5 -s 3 -m /tmp/espcn-x3-set5.safetensors

Starting from a zoo model (or weight file), full-batch L-BFGS minimises the mean over the five
images of log(MSE on Y, border = scale), i.e. it maximises the mean Set5 Y-PSNR directly. If
even this stays below a target, no training set is likely to reach it with that architecture; if
it goes above, the target is at least representable. The scores it prints are the trainer's
validation, i.e. `superres eval`'s protocol. It made the ESPCN x3 numbers in docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from superres.archs.luma import rgb_to_y, takes_luma
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
    p.add_argument("--steps", type=int, default=100, help="L-BFGS steps (each up to 20 evaluations)")
    p.add_argument("--data", type=Path, default=SET5, help="Set5-style folder (HR/, LR_bicubic/X{s}/)")
    p.add_argument("--out", type=Path, help="write the fitted weights here (safetensors)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    net, s = lm.module.float().train(), lm.scale
    net.requires_grad_(True)  # the loader hands out inference modules
    if not takes_luma(net):
        raise SystemExit(f"{args.model}: not a Y-only (one-channel) model")
    val = ValDataset(ValDataConfig(hr=args.data / "HR", lr=args.data / "LR_bicubic" / f"X{s}"), s)
    pairs = y_pairs(val, s)

    def score() -> float:
        net.eval()
        try:
            return score_pairs(net, val, s, luma=True)["psnr"]
        finally:
            net.train()

    print(f"{args.model}: start {score():.3f} dB", flush=True)
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=20, history_size=50,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sum(torch.log((net(lr) - hr)[..., s:-s, s:-s].pow(2).mean()) for lr, hr in pairs)
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        return loss

    t0 = time.time()
    for step in range(1, args.steps + 1):
        opt.step(closure)  # type: ignore[arg-type]
        if step % 5 == 0 or step == args.steps:
            print(f"step {step}: {score():.3f} dB ({time.time() - t0:.0f} s)", flush=True)
    if args.out:
        meta = {"superres.arch": lm.arch, "superres.kwargs": json.dumps(lm.kwargs),
                "superres.scale": str(s), "superres.weights": "fitted to Set5 (diagnostic)"}
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(args.out), meta)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
