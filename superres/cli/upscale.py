"""``superres upscale``: batch upscaling that survives bad files and interruptions.

Every input is attempted; a file that fails is reported with its path and reason and the
rest still get done. Outputs are written atomically, so a killed run leaves no truncated
image and a re-run with the default ``--skip-existing`` resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superres.engine.devices import PRECISIONS

FORMATS = ("auto", "png", "jpg", "webp", "tiff", "bmp")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "upscale", help="upscale images or folders of images",
        description="Upscale images with a named model or your own weight file. Folders are "
                    "scanned for images (--recursive keeps the sub-folder tree under OUT).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (or a file name when INPUT is a single file)")
    p.add_argument("-m", "--model", default="realesrgan-x4plus", metavar="NAME|PATH",
                   help="zoo model name (see `superres models`) or a .pth/.pt/.safetensors file "
                        "(default: %(default)s)")
    p.add_argument("--model-scale", type=int, default=None, metavar="N",
                   help="the factor of a weight file whose tensors do not record it (SRCNN/FSRCNN "
                        ".pth); wins over an xN in the file name, checked against a recorded factor")
    p.add_argument("-s", "--scale", type=float, default=None,
                   help="output scale, any value (default: the model's own); model pass(es), then "
                        "a high-quality resize")
    p.add_argument("-t", "--tile", type=int, default=None,
                   help="tile size in input pixels; 0 = no tiling (default: from free memory)")
    p.add_argument("--tile-pad", type=int, default=None,
                   help="context pixels around each tile (default: the receptive field where "
                        "finite, else 32)")
    p.add_argument("--batch", type=int, default=1, help="tiles per forward pass (default: 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto = fp32 on CPU, fp16 on GPU (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("-f", "--format", choices=FORMATS, default="auto",
                   help="output format; auto keeps the input's unless alpha or 16-bit needs PNG")
    p.add_argument("-q", "--quality", type=int, default=None,
                   help="JPEG/WebP quality 1-100 (default: 95)")
    p.add_argument("--suffix", default="", help="appended to output file names, e.g. _x4")
    p.add_argument("--alpha", choices=("model", "bicubic"), default="model",
                   help="how the alpha channel is upscaled (default: model)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--skip-existing", dest="overwrite", action="store_false",
                      help="leave outputs that already exist (default; resumes a batch)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true",
                      help="replace outputs that already exist")
    p.set_defaults(func=run, overwrite=False)


@dataclass
class Job:
    src: Path
    rel: Path  # relative path used under the output folder
    error: str | None = None


def collect(inputs: list[str], recursive: bool) -> list[Job]:
    """Files to process, in a stable order; missing paths become failed jobs."""
    from superres.io import SUPPORTED_EXTENSIONS

    jobs: list[Job] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.glob("*")
            for f in sorted(p for p in found if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS):
                jobs.append(Job(f, f.relative_to(path)))
        elif path.is_file():
            jobs.append(Job(path, Path(path.name)))
        else:
            jobs.append(Job(path, Path(path.name), error="no such file or folder"))
    return jobs


def output_path(job: Job, out: Path, single_file: bool, suffix: str, ext: str) -> Path:
    if single_file:
        return out
    return out / job.rel.parent / f"{job.rel.stem}{suffix}{ext}"


@dataclass
class Options:
    out: Path
    single_file: bool
    suffix: str
    requested: str | None  # output format asked for, or None for "auto"
    quality: int | None
    overwrite: bool


def process(job: Job, up: Any, opts: Options, claimed: dict[Path, Path], note: Any,
            on_tile: Any = None) -> bool:
    """Upscale one file; True if written, False if skipped because the output exists.

    Raises ImageError (or anything else) for the caller to report.
    """
    from superres.io import FORMAT_EXTENSIONS, ImageError, output_format_for, read_image, write_image

    if opts.requested is not None:  # output name known before decoding: cheap resume check
        dst = output_path(job, opts.out, opts.single_file, opts.suffix, FORMAT_EXTENSIONS[opts.requested])
        if dst.exists() and not opts.overwrite:
            return False
    img = read_image(job.src)
    h, w = img.pixels.shape[:2]
    size = (round(w * up.scale), round(h * up.scale))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fmt = output_format_for(img.source_format, img.pixels.shape[2] in (2, 4),
                                8 * img.pixels.dtype.itemsize, opts.requested, size=size)
    for w_ in caught:
        note(f"note: {job.src}: {w_.message}")
    dst = output_path(job, opts.out, opts.single_file, opts.suffix, FORMAT_EXTENSIONS[fmt])
    if dst.resolve() == job.src.resolve():
        raise ImageError(job.src, "output would overwrite the input; use another -o or --suffix")
    if dst in claimed and claimed[dst] != job.src:
        raise ImageError(job.src, f"output {dst} is also the output of {claimed[dst]}; "
                                  "use --suffix or --format to tell them apart")
    claimed[dst] = job.src
    if dst.exists() and not opts.overwrite:
        return False
    result = up.engine.upscale_array(img.pixels, up.scale, on_tile=on_tile)
    write_image(dst, result, icc_profile=img.icc_profile, exif=img.exif, quality=opts.quality, format=fmt)
    return True


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from superres.api import Upscaler
    from superres.io import ImageError, format_for_path

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quality is not None and not 1 <= args.quality <= 100:
        print("error: --quality must be between 1 and 100", file=sys.stderr)
        return 2
    if args.scale is not None and args.scale <= 0:
        print("error: --scale must be positive", file=sys.stderr)
        return 2
    jobs = collect(args.inputs, args.recursive)
    if not jobs:
        print(f"error: no images found in {' '.join(args.inputs)}", file=sys.stderr)
        return 1
    out = Path(args.output)
    out_fmt = format_for_path(out)
    single_file = len(jobs) == 1 and Path(args.inputs[0]).is_file() and out_fmt is not None
    requested = None if args.format == "auto" else args.format
    if single_file and requested is None:
        requested = out_fmt
    opts = Options(out, single_file, args.suffix, requested, args.quality, args.overwrite)
    try:
        up = Upscaler(args.scale, model=args.model, device=args.device, precision=args.precision,
                      tile=args.tile, tile_pad=args.tile_pad, batch=args.batch, alpha=args.alpha,
                      model_scale=args.model_scale)
    except Exception as exc:  # unknown name, missing carrier, bad file: one clear line
        print(f"error: cannot load model {args.model}: {exc}", file=sys.stderr)
        return 2
    written = skipped = 0
    failed: list[str] = []
    claimed: dict[Path, Path] = {}
    start = time.perf_counter()
    bar = tqdm(jobs, unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)

    def note(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    tiles: dict[str, Any] = {}

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

    for job in bar:
        bar.set_postfix_str(job.src.name[-30:])
        try:
            if job.error:
                raise ImageError(job.src, job.error)
            if process(job, up, opts, claimed, note, on_tile):
                written += 1
            else:
                skipped += 1
        except ImageError as exc:
            failed.append(str(exc))
            note(f"error: {exc}")
        except Exception as exc:  # keep the batch going; say what broke and where
            failed.append(f"{job.src}: {type(exc).__name__}: {exc}")
            note(f"error: {failed[-1]}")
        finally:
            if "bar" in tiles:
                tiles.pop("bar").close()
    bar.close()
    took = time.perf_counter() - start
    print(f"{written} written, {skipped} skipped (already there), {len(failed)} failed "
          f"in {took:.1f} s -> {out}")
    if skipped and not args.overwrite:
        print("  (existing outputs were kept; use --overwrite to redo them)")
    return 1 if failed else 0
