"""``superres restore``: SUPIR diffusion restoration (SDXL + SUPIR adaptor) from local files.

Defaults are upstream's CLI (test.py, May 2025); ``--preset quality`` gives the Gradio "Quality"
settings. Nothing is downloaded: both checkpoints and the CLIP tokenizer files are the user's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from superres.cli.options import non_negative_int, positive_float, positive_int
from superres.restore.settings import COLOUR_FIXES


def add_parser(sub: Any) -> None:
    from superres.restore.settings import PRESETS, RestoreSettings

    d = RestoreSettings()
    p = sub.add_parser(
        "restore",
        help="diffusion restoration with SDXL + SUPIR (needs superres[restore] and your weights)",
        description="Restore degraded photos with SUPIR: SDXL guided by the SUPIR adaptor. Needs an SDXL "
        "base "
        "single file and a SUPIR checkpoint (non-commercial licence); see docs/restore.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output folder (or a file name when INPUT is a single file)",
    )
    p.add_argument(
        "--sdxl",
        required=True,
        metavar="SDXL.safetensors",
        help="SDXL base single-file checkpoint (e.g. sd_xl_base_1.0_0.9vae.safetensors)",
    )
    p.add_argument(
        "--supir",
        required=True,
        metavar="SUPIR.ckpt",
        help="SUPIR-v0Q.ckpt / SUPIR-v0F.ckpt (or a .safetensors copy)",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="folder with CLIP's vocab.json + merges.txt (default: $SUPERRES_CLIP_TOKENIZER)",
    )
    p.add_argument("--prompt", default=d.prompt, help="positive prompt (default: upstream's quality prompt)")
    p.add_argument(
        "--negative-prompt", default=d.negative_prompt, help="negative prompt (default: upstream's)"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="quality: cfg 7.5 from 4.0, s_noise 1.003; fidelity: cfg 4.0 from 1.0, s_noise 1.003; "
        "explicit flags win",
    )
    p.add_argument("--steps", type=positive_int, default=None, help=f"sampling steps (default: {d.steps})")
    p.add_argument(
        "--cfg", type=float, default=None, help=f"CFG scale at the end of sampling (default: {d.cfg})"
    )
    p.add_argument(
        "--cfg-start",
        type=float,
        default=None,
        help=f"CFG scale at the start, linear in sigma (default: {d.cfg_start})",
    )
    p.add_argument(
        "--control-scale",
        type=float,
        default=None,
        help=f"adaptor strength (s_stage2; default: {d.control_scale})",
    )
    p.add_argument(
        "--control-scale-start",
        type=float,
        default=None,
        help="make the adaptor strength linear in sigma, from this value at the start (default: off)",
    )
    p.add_argument(
        "--restoration-scale",
        type=float,
        default=None,
        help=f"restoration guidance tau_r (s_stage1); <= 0 off (default: {d.restoration_scale})",
    )
    p.add_argument("--s-churn", type=float, default=None, help=f"EDM churn (default: {d.s_churn})")
    p.add_argument(
        "--s-noise", type=float, default=None, help=f"EDM churn noise scale (default: {d.s_noise})"
    )
    p.add_argument("--color-fix", choices=COLOUR_FIXES, default=None, help=f"(default: {d.color_fix})")
    p.add_argument("--scale", type=positive_float, default=None, help=f"output scale (default: {d.scale:g})")
    p.add_argument(
        "--min-size",
        type=non_negative_int,
        default=None,
        help=f"diffusion runs with the short side at least this (default: {d.min_size})",
    )
    p.add_argument("--tile-vae", action="store_true", help="tiled VAE (seamless; saves memory)")
    p.add_argument(
        "--tile-size",
        type=positive_int,
        default=None,
        help="tiled sampling with tiles of this many pixels, e.g. 1024 (default: off)",
    )
    p.add_argument(
        "--tile-stride", type=positive_int, default=None, help="tile stride in pixels (default: half a tile)"
    )
    p.add_argument("--seed", type=int, default=None, help=f"(default: {d.seed})")
    p.add_argument(
        "--dtype",
        choices=("auto", "fp16", "bf16", "fp32"),
        default="auto",
        help="diffusion dtype; auto = fp16 on GPU, fp32 on CPU (the VAE is bf16/fp32, never fp16)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--offload",
        action="store_true",
        help="keep networks in CPU memory, each on the GPU only while it runs",
    )
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    """RestoreSettings: upstream defaults, then the preset, then explicit flags."""
    from dataclasses import replace

    from superres.restore.settings import PRESETS, RestoreSettings

    s = RestoreSettings()
    if args.preset:
        s = replace(s, **PRESETS[args.preset])
    explicit = {
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "steps": args.steps,
        "cfg": args.cfg,
        "cfg_start": args.cfg_start,
        "control_scale": args.control_scale,
        "control_scale_start": args.control_scale_start,
        "restoration_scale": args.restoration_scale,
        "s_churn": args.s_churn,
        "s_noise": args.s_noise,
        "color_fix": args.color_fix,
        "scale": args.scale,
        "min_size": args.min_size,
        "tile_size": args.tile_size,
        "tile_stride": args.tile_stride,
        "seed": args.seed,
    }
    s = replace(s, **{k: v for k, v in explicit.items() if v is not None})
    return replace(s, tile_vae=bool(args.tile_vae))


def run(args: argparse.Namespace) -> int:
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print(
            "error: superres restore needs the restore extra: pip install 'superres[restore]'",
            file=sys.stderr,
        )
        return 2
    from superres.io import ImageError, read_image, write_image
    from superres.restore import load_supir
    from superres.restore.convert import CheckpointError
    from superres.restore.pipeline import RestoreMemoryError

    settings = settings_from_args(args)
    inputs = [Path(p) for p in args.inputs]
    out = Path(args.output)
    single = len(inputs) == 1 and out.suffix != ""
    try:
        pipe = load_supir(
            args.sdxl,
            args.supir,
            args.tokenizer,
            device=args.device,
            dtype=None if args.dtype == "auto" else args.dtype,
            offload=args.offload,
        )
    except (CheckpointError, FileNotFoundError, ValueError) as exc:  # ValueError: --device not here
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not pipe.models.report.clean:
        print(f"warning: checkpoint mismatch: {pipe.models.report.summary()}", file=sys.stderr)
    failed = 0
    for src in inputs:
        dst = out if single else out / f"{src.stem}.png"
        try:
            img = read_image(src)
            pixels = (
                img.pixels[..., :3] if img.pixels.shape[2] >= 3 else img.pixels[..., :1].repeat(3, axis=2)
            )
            result = pipe.restore(pixels, settings)
            depth = 65535 if pixels.dtype.itemsize == 2 else 255
            arr = (result * depth + 0.5).astype("uint16" if depth == 65535 else "uint8")
            write_image(dst, arr, icc_profile=img.icc_profile)
            print(f"{src} -> {dst}")
        except RestoreMemoryError as exc:
            print(f"error: {src}: {exc}", file=sys.stderr)
            failed += 1
        except (ImageError, ValueError, OSError) as exc:
            print(f"error: {src}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
