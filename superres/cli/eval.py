"""``superres eval``: PSNR/SSIM (+ NIQE/LPIPS) of models and bicubic on a benchmark data set.

The protocol is the modern one of SR papers and BasicSR/KAIR: float BT.601 Y, ``scale``
pixels cropped from each border, HR cropped top-left to ``scale`` x LR size, LR from the
data set's ``LR_bicubic/X{s}`` or made with MATLAB-exact bicubic. Scores go to the terminal,
and on request to CSV, JSON and an offline HTML/Markdown report with crops and charts.

Exit codes: 0 done; 1 data problem (missing folder, no images, unreadable image, HR/LR size
mismatch); 2 usage, model or optional-metric problem.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from superres.cli.options import add_engine_options, apply_threads, positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="score models and bicubic on a benchmark data set (PSNR/SSIM, report)",
        description="Evaluate models on HR/LR image pairs under the SR-paper protocol (Y channel "
                    "BT.601, border = scale, MATLAB bicubic LR). --data takes a folder of HR images "
                    "(LR made with MATLAB-exact bicubic) or a Set5-style folder with HR/ and "
                    "LR_bicubic/X{s}/.",
    )
    add_engine_options(p, ("model",), model=dict(
        action="append", default=[], help="zoo model name or weight file; repeat to compare several"))
    p.add_argument("--baseline", choices=("bicubic", "none"), default="bicubic",
                   help="built-in reference method (default: %(default)s)")
    p.add_argument("--no-baseline", dest="baseline", action="store_const", const="none",
                   help="same as --baseline none")
    p.add_argument("--data", metavar="DIR", help="data set folder: HR images, or HR/ + LR_bicubic/X{s}/")
    p.add_argument("--hr", metavar="DIR", help="folder of HR images (instead of --data)")
    p.add_argument("--lr", metavar="DIR", help="folder of LR images matching --hr (or overriding --data's)")
    p.add_argument("-s", "--scale", type=positive_int, required=True, help="integer scale: 2, 3, 4, 8, ...")
    p.add_argument("--csv", metavar="PATH", help="write per-image rows and means as CSV")
    p.add_argument("--json", metavar="PATH", help="write per-image rows, means and protocol as JSON")
    p.add_argument("--report", metavar="DIR",
                   help="write index.html + report.md with crops and SVG charts to DIR")
    p.add_argument("--crop-size", type=positive_int, default=96,
                   help="side of the report crops in HR pixels (default: %(default)s)")
    p.add_argument("--rgb", action="store_true",
                   help="also PSNR/SSIM on RGB (3 channels, border = scale, as BasicSR's ModelZoo)")
    p.add_argument("--gray-mode", choices=("raw", "y"), default="raw",
                   help="gray images: raw 0..255 values (legacy MATLAB tables) or BT.601 Y of R=G=B "
                        "(BasicSR/KAIR) (default: %(default)s)")
    p.add_argument("--niqe", action="store_true", help="also NIQE of each output (no reference)")
    p.add_argument("--lpips", action="store_true", help="also LPIPS against the HR (needs its weights)")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex",
                   help="LPIPS backbone (default: %(default)s)")
    add_engine_options(p, ("device", "precision", "backend", "tile", "threads"), precision=dict(
        default="fp32",
        help="model precision; fp32 (TF32 off) keeps scores reproducible (default: %(default)s)"))
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The run as a canonical ``superres eval`` command (recorded in CSV/JSON/report)."""
    parts = ["superres", "eval"]
    for flag in ("data", "hr", "lr"):
        if getattr(args, flag):
            parts += [f"--{flag}", str(getattr(args, flag))]
    parts += ["--scale", str(args.scale)]
    for m in args.model:
        parts += ["--model", m]
    if args.baseline == "none":
        parts.append("--no-baseline")
    for flag, on in (("--rgb", args.rgb), ("--niqe", args.niqe), ("--lpips", args.lpips)):
        if on:
            parts.append(flag)
    if args.lpips and args.lpips_net != "alex":
        parts += ["--lpips-net", args.lpips_net]
    if args.gray_mode != "raw":
        parts += ["--gray-mode", args.gray_mode]
    if getattr(args, "backend", "torch") != "torch":
        parts += ["--backend", args.backend]
    for flag in ("csv", "json", "report"):
        if getattr(args, flag):
            parts += [f"--{flag}", str(getattr(args, flag))]
    return shlex.join(parts)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from superres.evaluation.dataset import EvalError, check_dataset, discover
    from superres.evaluation.evaluate import (
        EvalOptions,
        ExtraMetrics,
        MetricUnavailable,
        bicubic_method,
        evaluate,
        load_methods,
    )
    from superres.evaluation.report import ReportWriter
    from superres.evaluation.tables import format_table, write_csv, write_json

    if args.scale < 1:
        _err("--scale must be a positive integer")
        return 2
    if args.data and args.hr:
        _err("give either --data or --hr, not both")
        return 2
    if not args.data and not args.hr:
        _err("give the data set: --data DIR (or --hr DIR [--lr DIR])")
        return 2
    if not args.model and args.baseline == "none":
        _err("nothing to evaluate: give --model or keep the bicubic baseline")
        return 2
    if args.crop_size < 8:
        _err("--crop-size must be at least 8")
        return 2

    def note(msg: str) -> None:
        tqdm.write(f"note: {msg}", file=sys.stderr)

    try:
        dataset = discover(args.scale, data=args.data, hr=args.hr, lr=args.lr)
        notes = check_dataset(dataset)  # read everything once: fail before any model runs
    except EvalError as exc:
        _err(str(exc))
        return 1
    for n in dataset.notes + notes:
        note(n)

    options = EvalOptions(args.scale, gray_mode=args.gray_mode, rgb=args.rgb, niqe=args.niqe,
                          lpips=args.lpips, lpips_net=args.lpips_net)
    try:
        extra = ExtraMetrics(options) if (args.niqe or args.lpips) else None
    except MetricUnavailable as exc:
        _err(str(exc))
        return 2

    if args.model:
        import torch

        apply_threads(args)
        if args.precision == "fp32":  # true fp32 on GPUs too: TF32 convs would move scores by ~1e-3 dB
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    methods = [bicubic_method(args.scale)] if args.baseline == "bicubic" else []
    if args.model:
        try:
            loaded, load_notes = load_methods(args.model, args.scale, device=args.device,
                                              precision=args.precision, tile=args.tile,
                                              backend=args.backend)
        except EvalError as exc:
            _err(str(exc))
            return 2
        methods += loaded
        for n in load_notes:
            note(n)

    writer = ReportWriter(args.report, args.scale, [m.label for m in methods], crop=args.crop_size) \
        if args.report else None
    bar = tqdm(total=len(dataset.pairs), unit="img", file=sys.stderr, disable=None, dynamic_ncols=True,
               desc=f"{dataset.name} x{args.scale}")

    def on_image(outcome: Any) -> None:
        if writer is not None:
            writer.add(outcome)
        bar.set_postfix_str(outcome.sample.name[-24:])
        bar.update(1)

    try:
        result = evaluate(dataset, methods, options, extra=extra, on_image=on_image,
                          command=command_line(args))
    except MetricUnavailable as exc:
        bar.close()
        _err(str(exc))
        return 2
    except EvalError as exc:
        bar.close()
        _err(str(exc))
        return 1
    bar.close()
    for n in result.notes[len(dataset.notes):]:
        if n not in notes:
            note(n)

    print(format_table(result))
    written = []
    try:
        if args.csv:
            written.append(write_csv(result, args.csv))
        if args.json:
            written.append(write_json(result, args.json))
        if writer is not None:
            written.append(writer.finish(result))
    except OSError as exc:
        _err(f"cannot write results: {exc}")
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0

