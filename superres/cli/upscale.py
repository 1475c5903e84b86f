"""``superres upscale``: batch upscaling that survives bad files and interruptions.

Every input is attempted; a file that fails is reported with its path and reason and the
rest still get done. Outputs are written atomically, so a killed run leaves no truncated
image and a re-run with the default ``--skip-existing`` resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from superres.batch import FORMATS
from superres.cli.options import add_engine_options, apply_threads, bounded, engine_kwargs


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "upscale", help="upscale images or folders of images",
        description="Upscale images with a named model or your own weight file. Folders are "
                    "scanned for images (--recursive keeps the sub-folder tree under OUT).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (or a file name when INPUT is a single file)")
    add_engine_options(p)
    p.add_argument("-f", "--format", choices=FORMATS, default="auto",
                   help="output format; auto keeps the input's unless alpha or 16-bit needs PNG")
    p.add_argument("-q", "--quality", type=bounded(int, 1, 100), default=None,
                   help="JPEG/WebP quality 1-100 (default: 95)")
    p.add_argument("--suffix", default="", help="appended to output file names, e.g. _x4")
    p.add_argument("--alpha", choices=("model", "bicubic"), default="model",
                   help="how the alpha channel is upscaled (default: model)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--allow-damaged", action="store_true",
                   help="upscale images whose decoder reported damaged data (corrupt JPEG scans, PNG "
                        "checksum errors, broken TIFF strips) with a warning, instead of failing them")
    p.add_argument("--profile", action="store_true",
                   help="print where the time went at the end (read, model, resize, write, other)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--skip-existing", dest="overwrite", action="store_false",
                      help="leave outputs that already exist (default; resumes a batch)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true",
                      help="replace outputs that already exist")
    p.set_defaults(func=run, overwrite=False)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from superres import batch
    from superres.api import Upscaler

    apply_threads(args)
    # numbers were checked by the parser (exit 2); what is left is where the outputs go
    try:
        batch.check_output(args.inputs, args.output)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    jobs = batch.collect(args.inputs, args.recursive, out=args.output, suffix=args.suffix)
    if not jobs:
        print(f"error: no images found in {' '.join(args.inputs)}", file=sys.stderr)
        return 1
    opts = batch.plan(args.inputs, jobs, args.output, format=args.format, suffix=args.suffix,
                      quality=args.quality, overwrite=args.overwrite, allow_damaged=args.allow_damaged)
    try:
        up = Upscaler(args.scale, model=args.model, alpha=args.alpha, **engine_kwargs(args))
    except Exception as exc:  # unknown name, missing carrier, bad file: one clear line
        print(f"error: cannot load model {args.model}: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(jobs), unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)
    tiles: dict[str, Any] = {}

    def note(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    def on_start(job: batch.Job) -> None:
        bar.set_postfix_str(job.src.name[-30:])

    def on_file(res: batch.FileResult) -> None:
        if res.error is not None:
            note(f"error: {res.error}")
        if "bar" in tiles:
            tiles.pop("bar").close()
        bar.update(1)

    def on_tile(done: int, total: int) -> None:
        """A second bar for images that take several tile batches (big images)."""
        if total < 2:
            return
        tb = tiles.get("bar")
        if tb is None or tb.total != total or done < tb.n:
            if tb is not None:
                tb.close()
            tb = tiles["bar"] = tqdm(total=total, unit="tile", file=sys.stderr, disable=None,
                                     leave=False, position=1, dynamic_ncols=True)
        tb.update(done - tb.n)

    try:
        result = batch.run(jobs, up, opts, note=note, on_start=on_start, on_file=on_file, on_tile=on_tile)
    finally:
        if "bar" in tiles:
            tiles.pop("bar").close()
    bar.close()
    print(f"{result.written} written, {result.skipped} skipped (already there), {result.failed} failed "
          f"in {result.seconds:.1f} s -> {opts.out}")
    if result.skipped and not args.overwrite:
        print("  (existing outputs were kept; use --overwrite to redo them)")
    if args.profile and result.profile is not None:
        print(result.profile.summary())
    return 1 if result.failed else 0
