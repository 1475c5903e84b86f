"""Batch jobs: upscale files into a folder, resumable, one clear error per bad file.

What ``superres upscale`` does, as a library call that the CLI, an HTTP service or a cluster
mode can share: collect inputs (folders scanned for images, ``recursive`` keeps the sub-folder
tree), map each to its output path (suffix, format), claim outputs (two inputs may not write
one file, no output may overwrite its input), skip outputs that exist unless ``overwrite``,
and go on past bad files. Outputs are written atomically, so a killed run leaves no truncated
image and the same call again resumes; the temporaries a killed run left beside an output are
removed when this batch comes to that output. Progress is reported through callbacks only.
Decoding the next image and writing the previous one overlap with the model (see :func:`run`).

Outputs are never inputs: a recursive scan leaves out the output folder when it lies inside an
input folder, and files where this run's ``suffix`` would put another input's output are not
inputs either (no ``a_x2_x2.png`` on the next run). Paths are compared after resolving, so one
file spelled two ways (``./a.png``, an absolute path, a symlink) is one file. Light to
import: torch and the image codecs load when a batch runs.
"""

from __future__ import annotations

import errno
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from superres.engine.protocol import Engine
from superres.engine.timing import Profile
from superres.zoo import DEFAULT_MODEL

if TYPE_CHECKING:
    import numpy as np
    import torch

    from superres.io import ImageData
    from superres.zoo.loader import LoadedModel

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
    allow_damaged: bool = False  # decode images whose decoder reported damaged data (with a warning)
    started: float = field(default_factory=time.time)  # temporaries older than this are stale
    # Our temporaries in each output folder, listed once per batch (not once per file: a folder
    # of 100k outputs would make that quadratic), by io.atomic.temp_key of their output.
    temps: dict[Path, dict[str, list[Path]]] = field(default_factory=dict, init=False, repr=False,
                                                     compare=False)


@dataclass
class FileResult:
    """What happened to one input: written, skipped (output already there) or failed (``error``)."""

    src: Path
    status: Status
    dst: Path | None = None
    error: str | None = None
    seconds: float = 0.0  # busy time for this file, all stages (they overlap between files)
    timings: dict[str, float] = field(default_factory=dict)  # read, model, resize, engine, write


@dataclass
class BatchResult:
    """Per-file results in input order, the output location and the wall time of the batch."""

    out: Path
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    profile: Profile | None = None

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


def _same_file(a: str | Path, b: str | Path) -> bool:
    """One file however spelled (relative, absolute, through symlinks; hard links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _scan(root: Path, recursive: bool, skip: str | None) -> list[tuple[Path, str | None]]:
    """Files in ``root`` (and its sub-folders if ``recursive``), sorted, with an error for each
    folder that cannot be listed. Symlinked folders are not descended (as ``Path.rglob``);
    the folder whose real path is ``skip`` (the output folder) is left out."""
    found: list[tuple[Path, str | None]] = []
    todo = [root]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            found.append((folder, f"cannot read folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = folder / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and os.path.realpath(path) != skip:
                        todo.append(path)
                elif path.is_file():
                    found.append((path, None))
            except OSError:  # vanished or unreadable entry: not an input
                continue
    return sorted(found, key=lambda item: item[0])


def _not_a_file(path: Path) -> str:
    """Why an input that is neither a file nor a folder cannot be read (a FIFO is never opened)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"a symbolic link to nothing readable ({exc.strerror or exc})"
        if exc.errno == errno.ENOENT:
            return "no such file or folder"
        return f"cannot read: {exc.strerror or exc}"
    kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind})"


def _own_outputs(jobs: list[Job], out: str | Path, suffix: str) -> set[tuple[str, str]]:
    """(real folder, stem) of every output ``jobs`` would write with ``suffix`` (any extension)."""
    return {(os.path.realpath(Path(out) / j.rel.parent), f"{j.rel.stem}{suffix}")
            for j in jobs if not j.error}


def collect(inputs: Sequence[str | Path], recursive: bool = False, *, out: str | Path | None = None,
            suffix: str = "") -> list[Job]:
    """Files to process, in a stable order; folders give their images (non-images are left out),
    missing paths and unreadable folders become failed jobs.

    With ``out`` (the output folder), outputs are kept out of the inputs: a recursive scan skips
    ``out`` when it is inside an input folder, and a file found in a folder whose name is another
    found file's output name under ``suffix`` is left out. A file named twice (however spelled)
    is one job.
    """
    from superres.io import SUPPORTED_EXTENSIONS

    skip = os.path.realpath(out) if out is not None else None
    jobs: list[Job] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = [Job(f, f.relative_to(path), error)
                     for f, error in _scan(path, recursive, skip)
                     if error or f.suffix.lower() in SUPPORTED_EXTENSIONS]
            if out is not None and suffix:
                ours = _own_outputs(found, out, suffix)
                found = [j for j in found
                         if j.error or (os.path.realpath(j.src.parent), j.src.stem) not in ours]
            jobs.extend(found)
        elif path.is_file():
            jobs.append(Job(path, Path(path.name)))
        else:
            jobs.append(Job(path, Path(path.name), error=_not_a_file(path)))
    seen: set[tuple[str, Path]] = set()
    unique: list[Job] = []
    for job in jobs:
        key = (str(job.src) if job.error else os.path.realpath(job.src), job.rel)
        if key not in seen:
            seen.add(key)
            unique.append(job)
    return unique


def check_output(inputs: Sequence[str | Path], out: str | Path) -> None:
    """Raise ValueError when ``out`` is one of the input files (``upscale a.png -o a.png``)."""
    for raw in inputs:
        if Path(raw).is_file() and _same_file(raw, out):
            raise ValueError(f"the output {out} is the input {raw} itself; name another output file, "
                             "or a folder")


def check_scale(scale: float) -> float:
    """``scale`` as a float if it is finite and > 0, else ValueError (0 is not "the default")."""
    value = float(scale)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"scale must be a finite number > 0, not {scale}")
    return value


def output_path(job: Job, out: Path, single_file: bool, suffix: str, ext: str) -> Path:
    """``out`` itself for a single file named as such, else the input's tree under ``out``."""
    if single_file:
        return out
    return out / job.rel.parent / f"{job.rel.stem}{suffix}{ext}"


def plan(inputs: Sequence[str | Path], jobs: list[Job], out: str | Path, *, format: str = "auto",
         suffix: str = "", quality: int | None = None, overwrite: bool = False,
         allow_damaged: bool = False) -> Options:
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
    return Options(out, single_file, suffix, requested, quality, overwrite, allow_damaged)


def _write_error(job: Job, dst: Path, exc: OSError) -> Exception:
    """An output-side OS error as the input's error line, naming the output too."""
    from superres.io import ImageWriteError

    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        size = len(dst.name.encode("utf-8", "surrogateescape"))
        reason += f" ({size} bytes; use a shorter --suffix or name)"
    return ImageWriteError(job.src, f"cannot write {dst}: {reason}")


def _exists(job: Job, dst: Path) -> bool:
    try:
        return dst.exists()
    except OSError as exc:  # e.g. a name over the file system's limit
        raise _write_error(job, dst, exc) from exc


def _sweep(dst: Path, opts: Options) -> None:
    """Remove what a killed run left beside ``dst``: only our own temporaries of that very name
    (``.<name>.<8 hex>.part``, see superres.io.atomic) and only ones older than this run."""
    from superres.io.atomic import temp_key, temps_in

    folder = dst.parent
    if folder not in opts.temps:
        opts.temps[folder] = temps_in(folder)
    for tmp in opts.temps[folder].pop(temp_key(dst), []):
        try:
            if tmp.stat().st_mtime < opts.started:
                tmp.unlink()
        except OSError:
            pass


def pixel_cost(scale: float) -> float:
    """Bytes of memory one input pixel costs the upscale, for the reader's pixel budget.

    The whole-image float32 RGB input and output (12 bytes a pixel each, the output ``scale**2``
    times larger) dominate; tiles are bounded separately. At x4 this is 204 bytes, matching the
    ~200 bytes per input pixel measured for the whole path (issue 17). Past x8 the engine's output
    limit (2^28 pixels, checked before allocating) bounds the output instead, and a file that only
    fails that limit gets the output-limit message rather than a tiny input budget.
    """
    s = min(scale, 8.0)
    return 12.0 * (1.0 + s * s)


def _read(job: Job, scale: float, opts: Options, note: Callable[[str], None]) -> ImageData:
    """The input decoded within this upscale's memory budget; decoder remarks become warnings."""
    from superres.io import ImageDamagedError, ImageReadError, read_image
    from superres.io.limits import Limits

    try:
        img = read_image(job.src, limits=Limits(pixel_cost=pixel_cost(scale)),
                         allow_damaged=opts.allow_damaged, emit_warnings=False)
    except ImageDamagedError as exc:
        reason = exc.reason.replace("pass allow_damaged=True to accept it",
                                    "--allow-damaged (allow_damaged=True) accepts it")
        raise ImageReadError(job.src, reason) from None
    for message in img.warnings:
        note(f"warning: {job.src}: {message}")
    return img


def _check_not_input(job: Job, dst: Path) -> None:
    from superres.io import ImageError

    if _same_file(dst, job.src):
        raise ImageError(job.src, "output would overwrite the input; use another -o or --suffix")


@dataclass
class Prepared:
    """An input decoded, its output named and claimed (``img`` None: the output is kept)."""

    job: Job
    dst: Path
    fmt: str | None = None
    img: ImageData | None = None


def prepare(job: Job, scale: float, opts: Options, claimed: dict[str, Path],
            note: Callable[[str], None]) -> Prepared:
    """Everything before the model: resume check, decode, output name and format, claim, sweep.

    ``claimed`` maps the real path of each output so far to its input. Raises ImageError (or
    anything else) for the caller to report; its message names the input file.
    """
    from superres.io import FORMAT_EXTENSIONS, ImageError, output_format_for

    if job.error:
        raise ImageError(job.src, job.error)
    if opts.requested is not None:  # output name known before decoding: cheap resume check
        dst = output_path(job, opts.out, opts.single_file, opts.suffix, FORMAT_EXTENSIONS[opts.requested])
        _check_not_input(job, dst)
        if not opts.overwrite and _exists(job, dst):
            _sweep(dst, opts)
            return Prepared(job, dst)
    img = _read(job, scale, opts, note)
    h, w = img.pixels.shape[:2]
    size = (round(w * scale), round(h * scale))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fmt = output_format_for(img.source_format, img.pixels.shape[2] in (2, 4),
                                8 * img.pixels.dtype.itemsize, opts.requested, size=size)
    for w_ in caught:
        note(f"note: {job.src}: {w_.message}")
    dst = output_path(job, opts.out, opts.single_file, opts.suffix, FORMAT_EXTENSIONS[fmt])
    _check_not_input(job, dst)
    key = os.path.realpath(dst)
    if key in claimed and not _same_file(claimed[key], job.src):
        raise ImageError(job.src, f"output {dst} is also the output of {claimed[key]}; "
                                  "use --suffix or --format to tell them apart")
    claimed[key] = job.src
    _sweep(dst, opts)
    if not opts.overwrite and _exists(job, dst):
        return Prepared(job, dst)
    return Prepared(job, dst, fmt, img)


def upscale_one(item: Prepared, engine: Engine, scale: float,
                on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The model step; the engine's refusals (output too large, NaN samples) name the input."""
    from superres.io import ImageError

    try:
        return engine.upscale_array(item.img.pixels, scale, on_tile=on_tile)  # type: ignore[union-attr]
    except ValueError as exc:
        raise ImageError(item.job.src, str(exc)) from exc


def write_one(item: Prepared, pixels: np.ndarray, opts: Options) -> None:
    """Encode, write atomically; output-side errors become the input's error, naming both."""
    from superres.io import ImageError, ImageWriteError, write_image

    img = item.img
    try:
        write_image(item.dst, pixels, icc_profile=img and img.icc_profile, exif=img and img.exif,
                    quality=opts.quality, format=item.fmt)
    except ImageError as exc:
        if exc.path == item.job.src:
            raise
        raise ImageWriteError(item.job.src, f"cannot write {item.dst}: {exc.reason}") from exc
    except OSError as exc:
        raise _write_error(item.job, item.dst, exc) from exc


def _failed(src: Path, exc: Exception) -> str:
    """The error line of a failed file: ImageErrors name the file already; others get it."""
    from superres.io import ImageError

    return str(exc) if isinstance(exc, ImageError) else f"{src}: {type(exc).__name__}: {exc}"


class _Later:
    """A call made when its result is first asked for: the serial batch's future (so the order
    is exactly read, model, write per file, as before the overlap)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._call: tuple[Callable[..., Any], tuple[Any, ...]] | None = (fn, args)
        self._value: Any = None

    def done(self) -> bool:
        return self._call is None

    def result(self) -> Any:
        if self._call is not None:
            fn, args = self._call
            self._call = None
            self._value = fn(*args)
        return self._value


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, list[str]]:
    """(result or Exception, seconds, notes): the caller's thread reports them, in order."""
    notes: list[str] = []
    t0 = time.perf_counter()
    try:
        out = fn(*args, notes.append) if fn is prepare else fn(*args)
    except Exception as exc:
        out = exc
    return out, time.perf_counter() - t0, notes


def _outside_capture(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """``fn`` called with the decoders' fd-2 capture lock held (io.capture.DECODE_LOCK)."""
    if fn is None:
        return None
    from superres.io.capture import DECODE_LOCK

    def call(*args: Any) -> Any:
        with DECODE_LOCK:
            return fn(*args)

    return call


def run(jobs: list[Job], engine: Engine, opts: Options, *, scale: float | None = None,
        note: Callable[[str], None] | None = None,
        on_start: Callable[[Job], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        overlap: bool = True) -> BatchResult:
    """Every job attempted in order; a failure is recorded with its reason and the rest go on.

    ``note`` gets remarks (e.g. an output format changed to keep alpha), ``on_start`` each job
    before it runs, ``on_file`` each result (after the file, also when it failed), ``on_tile``
    the engine's tile progress of the current image; all are called in this thread, in order.

    With ``overlap`` (the default) a reader thread decodes the next image and a writer thread
    encodes the previous one while the model runs (at most one image ahead and one behind, so
    memory stays bounded); the outputs are the same as without. ``result.profile`` says where
    the time went.
    """
    from concurrent.futures import ThreadPoolExecutor

    from superres.engine import timing

    if overlap:  # the reader thread points fd 2 elsewhere while it decodes: callbacks that
        # print (the CLI's error lines) wait for that, or their lines would land in the capture
        note, on_start, on_file, on_tile = (_outside_capture(f) for f in (note, on_start, on_file, on_tile))
    say = note or (lambda _msg: None)
    target = float(engine.scale) if scale is None else check_scale(scale)
    result = BatchResult(opts.out)
    prof = result.profile = Profile(overlapped=overlap)
    claimed: dict[str, Path] = {}
    start = time.perf_counter()
    pools = [ThreadPoolExecutor(1, thread_name_prefix=f"superres-{n}") for n in ("read", "write")] \
        if overlap else []
    reader, writer = (p.submit for p in pools) if overlap else (lambda fn, *a: _Later(fn, a),) * 2
    behind: tuple[FileResult, Any] | None = None  # the file being written, its future

    def finish_write() -> None:
        nonlocal behind
        if behind is None:
            return
        res, fut = behind
        behind = None
        t0 = time.perf_counter()
        err, seconds, _ = fut.result()
        prof.write_wait += time.perf_counter() - t0
        prof.write += seconds
        res.seconds += seconds
        res.timings["write"] = seconds
        if isinstance(err, Exception):
            res.status, res.dst, res.error = "failed", None, _failed(res.src, err)
        report(res)

    def report(res: FileResult) -> None:
        result.files.append(res)
        if on_file is not None:
            on_file(res)

    try:
        ahead = reader(_timed, prepare, jobs[0], target, opts, claimed) if jobs else None
        for i, job in enumerate(jobs):
            if on_start is not None:
                on_start(job)
            assert ahead is not None
            t0 = time.perf_counter()
            item, seconds, notes = ahead.result()
            prof.read_wait += time.perf_counter() - t0
            prof.read += seconds
            ahead = (reader(_timed, prepare, jobs[i + 1], target, opts, claimed)
                     if i + 1 < len(jobs) else None)
            for msg in notes:
                say(msg)
            if behind is not None and behind[1].done():  # report a finished write early
                finish_write()
            if isinstance(item, Exception) or item.img is None:
                finish_write()
                res = (FileResult(job.src, "failed", error=_failed(job.src, item))
                       if isinstance(item, Exception) else FileResult(job.src, "skipped", item.dst))
                res.seconds = seconds
                report(res)
                continue
            times: dict[str, float] = {}
            error: Exception | None = None
            t0 = time.perf_counter()
            try:
                with timing.collect(times):
                    pixels = upscale_one(item, engine, target, on_tile)
            except Exception as exc:
                pixels, error = None, exc
            busy = time.perf_counter() - t0
            prof.add_engine(times, busy)
            res = FileResult(job.src, "written", item.dst, seconds=seconds + busy,
                             timings={"read": seconds, **times, "engine": busy})
            finish_write()  # at most one image behind
            if error is not None:
                res.status, res.dst, res.error = "failed", None, _failed(job.src, error)
                report(res)
                continue
            behind = (res, writer(_timed, write_one, item, pixels, opts))
            del pixels, item
            if not overlap:
                finish_write()
        finish_write()
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)  # a write under way completes
    result.seconds = prof.total = time.perf_counter() - start
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
    allow_damaged: bool = False,
    device: str | torch.device | None = "auto",
    precision: str = "auto",
    tile: int | None = None,
    tile_pad: int | None = None,
    batch: int = 1,
    alpha: str = "model",
    model_scale: int | None = None,
    backend: str = "torch",
    note: Callable[[str], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Upscale image files and folders of images into ``out_dir``; see the module docstring.

    ``model`` is a zoo name, a weight file, a loaded model, or a ready engine (an ``Upscaler``
    or ``UpscaleEngine``: then the engine options below are its own and are not used).
    ``out_dir`` may name the output file when ``inputs`` is one file. ``scale`` defaults to
    the engine's (else finite and > 0). Existing outputs are kept (``skipped``) unless
    ``overwrite``. An input whose decoder reports damaged data fails unless ``allow_damaged``
    (then it is upscaled with a warning). Nothing is loaded when there is nothing to do.
    ValueError when ``out_dir`` is one of the input files.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if scale is not None:
        check_scale(scale)
    check_output(inputs, out_dir)
    jobs = collect(inputs, recursive, out=out_dir, suffix=suffix)
    opts = plan(inputs, jobs, out_dir, format=format, suffix=suffix, quality=quality, overwrite=overwrite,
                allow_damaged=allow_damaged)
    if not jobs:
        return BatchResult(opts.out)
    if isinstance(model, Engine):
        engine = model
    else:
        from superres.api import Upscaler

        engine = Upscaler(scale, model=model, device=device, precision=precision, tile=tile,
                          tile_pad=tile_pad, batch=batch, alpha=alpha, model_scale=model_scale,
                          backend=backend)
    return run(jobs, engine, opts, scale=scale, note=note, on_start=on_start, on_file=on_file,
               on_tile=on_tile)
