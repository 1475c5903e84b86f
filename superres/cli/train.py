"""``superres train CONFIG.yaml``: train, fine-tune or distil a model from a YAML config.

Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m superres train CONFIG.yaml``
(``data.train.batch_size`` is the global batch). See docs/training.md.

Exit codes: 0 done; 2 config problem (one ``error:`` line naming the key), or an existing run
in the output folder without ``--resume``; 130 interrupted (a checkpoint is saved when possible).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from superres.cli.options import positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train, fine-tune or distil a model from a YAML config",
        description="Train a super-resolution model from a YAML config (see docs/training.md and "
                    "configs/). Writes checkpoint.pt, best.safetensors, last.safetensors, log.jsonl "
                    "and loss/val plots into the config's output folder.",
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="training config")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT/checkpoint.pt exactly where it stopped")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="override train.iterations (also the length of a cosine schedule)")
    p.add_argument("--check", action="store_true", help="only validate the config, then exit")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from superres.train.config import ConfigError, load_config

    overrides = {"train.iterations": args.iterations} if args.iterations is not None else None
    try:
        cfg = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: ok ({cfg.model.arch or cfg.model.pretrained}, x{cfg.scale}, "
              f"{cfg.train.iterations} iterations, output {cfg.output})")
        return 0

    import torch

    from superres.train.trainer import Trainer, TrainError

    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = None
    try:
        trainer = Trainer(cfg, device=args.device, resume=args.resume)
        result = trainer.run()
    except (ConfigError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if trainer is not None:
            trainer.close()
    best = result["best"]
    if trainer.dist.main:
        score = ""
        if best.get("psnr") is not None:
            score = (f"; best PSNR {best['psnr']:.3f} dB / SSIM {best['ssim']:.4f} "
                     f"at iteration {best['iteration']}")
        print(f"done: {result['iteration']} iterations{score}; weights in {result['output']}")
    return 0
