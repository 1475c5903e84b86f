"""``superres export``: a deployable file (ONNX, TorchScript, OpenVINO IR) that is checked after writing.

Exit codes as in the other commands: 2 for what the command line asked that cannot be done (a
bad option, an unknown model or unusable weight file, a missing optional package), 1 when the
work itself failed (the written file does not reproduce PyTorch, or it could not be written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from superres.cli.options import add_engine_options, apply_threads, bounded

# as superres.export.files.FORMATS/PRECISIONS, which imports torch: the parser stays light
FORMATS = ("onnx", "torchscript", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="export a model as ONNX, TorchScript or OpenVINO IR (checked after writing)",
        description="Write a model as a file other runtimes load: dynamic batch/height/width, RGB "
                    "float32 NCHW input in [0,1], metadata inside (model, arch, scale, licence, "
                    "precision). The file is then run with its own runtime on a photo crop and "
                    "compared with PyTorch; past the tolerance the exit code is 1. See docs/export.md.",
    )
    p.add_argument("model", metavar="MODEL", help="zoo model name (see `superres models`) or a weight file")
    p.add_argument("--format", required=True, choices=FORMATS, help="file format")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default), fp16, or int8 (OpenVINO only; accuracy-aware, see --budget-db)")
    p.add_argument("--calib", type=Path, default=None, metavar="DIR",
                   help="int8: calibration images (default: the bundled ones)")
    p.add_argument("--budget-db", type=bounded(float, above=0), default=45.0, metavar="DB",
                   help="int8: least PSNR of the INT8 output vs fp32 (default: %(default)s)")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                   help="output file (default: ./<model>-<precision>.onnx|.pt|.xml; an IR's .bin goes "
                        "beside its .xml)")
    p.add_argument("--tolerance", type=bounded(float, above=0), default=None, metavar="X",
                   help="largest max |diff| vs PyTorch allowed by the check (default: 1e-4 fp32, 1e-2 "
                        "fp16; int8 is held to its PSNR budget)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="do not run the written file (e.g. a large model's fp16 TorchScript, slow on a CPU)")
    add_engine_options(p, ("model_scale", "threads"))
    p.set_defaults(func=run, check=True)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary(md: dict[str, str]) -> list[str]:
    """The metadata an exported file carries, as lines for people."""
    g = md.get
    resize = f" (network x{g('scale')}, then resize by {g('output_resize')})" if g("output_resize") else ""
    opset = f" opset {g('opset')}" if g("opset") else ""
    lines = [f"model {g('model')} ({g('arch')}), x{g('net_scale')}{resize}, {g('format')} {g('precision')}"
             f"{opset}, licence {g('licence')}, superres {g('superres_version')}",
             f"input {g('input')}, sides a multiple of {g('size_multiple')}"
             + (f" and at least {g('min_side')}" if g("min_side") else "") + "; dynamic batch/height/width"]
    if g("int8_psnr_db"):
        kept = len(json.loads(g("int8_fp32_layers") or "[]"))
        lines.append(f"int8: {g('int8_psnr_db')} dB PSNR vs fp32 on held images "
                     f"(budget {g('int8_budget_db')} dB); {g('int8_int8_layers')} layers in int8, "
                     f"{kept} kept in fp32 (names: read_metadata)")
    return lines


def run(args: argparse.Namespace) -> int:
    from superres.export.files import (
        ExportError,
        MissingBackendError,
        check_export,
        default_output,
        export_model,
    )
    from superres.export.metadata import read_metadata
    from superres.zoo.loader import load_model

    apply_threads(args)
    if args.precision == "int8" and args.format != "openvino":
        _err(f"int8 is exported as OpenVINO IR only (--format openvino), not {args.format}")
        return 2
    if args.calib is not None and args.precision != "int8":
        _err("--calib is only used with --precision int8")
        return 2
    if args.calib is not None and not args.calib.is_dir():
        _err(f"--calib {args.calib}: not a folder of images")
        return 2
    try:
        model = load_model(args.model, scale=args.model_scale)
    except Exception as exc:  # unknown name, missing carrier, bad file: one clear line
        _err(f"cannot load model {args.model}: {exc}")
        return 2
    out = args.output if args.output is not None else default_output(model, args.format, args.precision)
    try:
        result = export_model(model, out, fmt=args.format, precision=args.precision, calib=args.calib,
                              budget_db=args.budget_db)
    except MissingBackendError as exc:
        _err(str(exc))
        return 2
    except ExportError as exc:
        _err(str(exc))
        return 2
    except OSError as exc:
        _err(f"cannot write {out}: {exc}")
        return 1
    names = " + ".join(str(f) for f in result.files)
    print(f"wrote {names} ({_size(result.size_bytes)})")
    for line in summary(read_metadata(result.path)):  # what the file says, not what we meant to write
        print(f"  {line}")
    if not args.check:
        print("  check skipped (--no-check)")
        return 0
    try:
        check = check_export(result.path, model, tolerance=args.tolerance)
    except MissingBackendError as exc:
        _err(f"the file was written but cannot be checked here: {exc} (or use --no-check)")
        return 2
    print(f"  check: {check.describe()}")
    if not check.passed:
        for note in check.notes:
            print(f"  note: {note}", file=sys.stderr)
        _err(f"{result.path} does not reproduce PyTorch within the limit (the file is kept for inspection)")
        return 1
    return 0
