"""Batch jobs: upscale files into a folder, resumable, one clear error per bad file.

What ``superres upscale`` does, as a library call that the CLI, an HTTP service or a cluster
mode can share: collect inputs (folders scanned for images, ``recursive`` keeps the sub-folder
tree), map each to its output path (suffix, format), claim outputs (two inputs may not write
one file, no output may overwrite its input), skip outputs that exist unless ``overwrite``,
and go on past bad files. Outputs are written atomically, so a killed run leaves no truncated
image and the same call again resumes. Progress is reported through callbacks only.

Light to import: torch and the image codecs load when a batch runs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from superres.engine.protocol import Engine

if TYPE_CHECKING:
    import torch

    from superres.zoo.loader import LoadedModel

DEFAULT_MODEL = "realesrgan-x4plus"
FORMATS = ("auto", "png", "jpg", "webp", "tiff", "bmp")
Status = Literal["written", "skipped", "failed"]


@dataclass
class Job:
    """One input file and the path its output takes under the output folder."""

    src: Path
    rel: Path  # relative path used under the output folder
    error: str | None = None  # set when the input cannot even be looked at (missing path)


@dataclass
class Options:
    """Where and how outputs are written (see :func:`plan`)."""

    out: Path
    single_file: bool  # ``out`` is the output file itself, not a folder
    suffix: str
    requested: str | None  # output format asked for, or None for "auto"
    quality: int | None
    overwrite: bool


@dataclass
class FileResult:
    """What happened to one input: written, skipped (output already there) or failed (``error``)."""

    src: Path
    status: Status
    dst: Path | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class BatchResult:
    """Per-file results in input order, the output location and the wall time of the batch."""

    out: Path
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def _count(self, status: Status) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def written(self) -> int:
        return self._count("written")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def errors(self) -> list[str]:
        """One line per failed file: its path and the reason."""
        return [f.error or str(f.src) for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return self.failed == 0


def collect(inputs: Sequence[str | Path], recursive: bool = False) -> list[Job]:
    """Files to process, in a stable order; folders give their images (non-images are left out),
    missing paths become failed jobs."""
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
    """``out`` itself for a single file named as such, else the input's tree under ``out``."""
    if single_file:
        return out
    return out / job.rel.parent / f"{job.rel.stem}{suffix}{ext}"


def plan(inputs: Sequence[str | Path], jobs: list[Job], out: str | Path, *, format: str = "auto",
         suffix: str = "", quality: int | None = None, overwrite: bool = False) -> Options:
    """Options for ``jobs``: ``out`` names the output file when the only input is a file and
    ``out`` has an image extension (its format then wins over "auto"), else a folder."""
    from superres.io import format_for_path

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError("quality must be between 1 and 100")
    out = Path(out)
    out_fmt = format_for_path(out)
    single_file = len(jobs) == 1 and Path(inputs[0]).is_file() and out_fmt is not None
    requested = None if format == "auto" else format
    if single_file and requested is None:
        requested = out_fmt
    return Options(out, single_file, suffix, requested, quality, overwrite)


def process(job: Job, engine: Engine, scale: float, opts: Options, claimed: dict[Path, Path],
            note: Callable[[str], None], on_tile: Callable[[int, int], None] | None = None
            ) -> tuple[Path, bool]:
    """Upscale one file; (output path, True if written / False if skipped because it exists).

    Raises ImageError (or anything else) for the caller to report.
    """
    from superres.io import FORMAT_EXTENSIONS, ImageError, output_format_for, read_image, write_image

    if job.error:
        raise ImageError(job.src, job.error)
    if opts.requested is not None:  # output name known before decoding: cheap resume check
        dst = output_path(job, opts.out, opts.single_file, opts.suffix, FORMAT_EXTENSIONS[opts.requested])
        if dst.exists() and not opts.overwrite:
            return dst, False
    img = read_image(job.src)
    h, w = img.pixels.shape[:2]
    size = (round(w * scale), round(h * scale))
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
        return dst, False
    result = engine.upscale_array(img.pixels, scale, on_tile=on_tile)
    write_image(dst, result, icc_profile=img.icc_profile, exif=img.exif, quality=opts.quality, format=fmt)
    return dst, True


def run(jobs: list[Job], engine: Engine, opts: Options, *, scale: float | None = None,
        note: Callable[[str], None] | None = None,
        on_start: Callable[[Job], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        on_tile: Callable[[int, int], None] | None = None) -> BatchResult:
    """Every job attempted in order; a failure is recorded with its reason and the rest go on.

    ``note`` gets remarks (e.g. an output format changed to keep alpha), ``on_start`` each job
    before it runs, ``on_file`` each result (after the file, also when it failed), ``on_tile``
    the engine's tile progress of the current image.
    """
    from superres.io import ImageError

    say = note or (lambda _msg: None)
    target = float(scale or engine.scale)
    result = BatchResult(opts.out)
    claimed: dict[Path, Path] = {}
    start = time.perf_counter()
    for job in jobs:
        if on_start is not None:
            on_start(job)
        t0 = time.perf_counter()
        try:
            dst, written = process(job, engine, target, opts, claimed, say, on_tile)
            res = FileResult(job.src, "written" if written else "skipped", dst)
        except ImageError as exc:
            res = FileResult(job.src, "failed", error=str(exc))
        except Exception as exc:  # keep the batch going; say what broke and where
            res = FileResult(job.src, "failed", error=f"{job.src}: {type(exc).__name__}: {exc}")
        res.seconds = time.perf_counter() - t0
        result.files.append(res)
        if on_file is not None:
            on_file(res)
    result.seconds = time.perf_counter() - start
    return result


def upscale_files(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    model: str | Path | LoadedModel | Engine = DEFAULT_MODEL,
    scale: float | None = None,
    recursive: bool = False,
    suffix: str = "",
    format: str = "auto",
    quality: int | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = "auto",
    precision: str = "auto",
    tile: int | None = None,
    tile_pad: int | None = None,
    batch: int = 1,
    alpha: str = "model",
    model_scale: int | None = None,
    note: Callable[[str], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Upscale image files and folders of images into ``out_dir``; see the module docstring.

    ``model`` is a zoo name, a weight file, a loaded model, or a ready engine (an ``Upscaler``
    or ``UpscaleEngine``: then the engine options below are its own and are not used).
    ``out_dir`` may name the output file when ``inputs`` is one file. ``scale`` defaults to
    the engine's. Existing outputs are kept (``skipped``) unless ``overwrite``. Nothing is
    loaded when there is nothing to do.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if scale is not None and scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    jobs = collect(inputs, recursive)
    opts = plan(inputs, jobs, out_dir, format=format, suffix=suffix, quality=quality, overwrite=overwrite)
    if not jobs:
        return BatchResult(opts.out)
    if isinstance(model, Engine):
        engine = model
    else:
        from superres.api import Upscaler

        engine = Upscaler(scale, model=model, device=device, precision=precision, tile=tile,
                          tile_pad=tile_pad, batch=batch, alpha=alpha, model_scale=model_scale)
    return run(jobs, engine, opts, scale=scale, note=note, on_start=on_start, on_file=on_file,
               on_tile=on_tile)
