"""Benchmark evaluation: find HR/LR pairs, run models, score them under the modern protocol.

No printing here; ``superres eval`` (``superres.cli.eval``) and ``superres.metrics.report``
present the results.

* **Data** (``discover``): a folder of HR images (the LR is made on the fly with the exact
  MATLAB ``imresize(modcrop(HR, s), 1/s)`` on uint8), a Set5-style folder with ``HR/`` and
  ``LR_bicubic/X{s}/`` (LR named ``<stem>x{s}.png`` or ``<stem>.png``), or explicit HR and LR
  folders.
* **Methods**: callables uint8 LR -> uint8 SR (HxWx3 RGB, or HxW for a gray data set).
  ``bicubic_method`` is MATLAB ``imresize`` x s of the uint8 LR (rounded after each pass);
  ``load_methods`` wraps zoo names / weight files (torch is imported only there).
* **Scores** (``iter_evaluate`` / ``evaluate``): ``evaluate_pair`` (float BT.601 Y, border =
  scale, HR cropped top-left to s x LR size), optionally RGB PSNR/SSIM, NIQE and LPIPS.
  Images are processed one at a time; each ``ImageOutcome`` carries that image's SR outputs
  for a report writer, and nothing of it is kept afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superres.metrics.protocol import crop_hr_to, evaluate_pair
from superres.metrics.psnr_ssim import GrayMode, psnr, ssim
from superres.metrics.resize import imresize, modcrop

PROTOCOL = "Y channel BT.601, border = scale, MATLAB bicubic LR"
RGB_PROTOCOL = "RGB (3 channels), border = scale, MATLAB bicubic LR (as BasicSR's ModelZoo tables)"
BICUBIC = "bicubic"

# Folder names tried inside --data DIR (first match wins); {s} is the scale.
HR_DIRS = ("HR", "GTmod12", "GT")
LR_DIRS = ("LR_bicubic/X{s}", "LR_bicubic/x{s}", "LRbicx{s}", "LR/X{s}", "LR/x{s}", "LR_bicubic")
_SSIM_MIN = 11

ModelFn = Callable[[np.ndarray], np.ndarray]


class EvalError(Exception):
    """A data set or model problem; the message names the file (or folder) and the reason."""


class MetricUnavailable(RuntimeError):
    """An optional metric (NIQE, LPIPS) cannot be computed here: module or weights missing."""


# ------------------------------------------------------------------------------ data set


@dataclass(frozen=True)
class ImagePair:
    """One benchmark image: its HR file and, when the data set has one, its LR file."""

    name: str
    hr_path: Path
    lr_path: Path | None  # None: made from the HR with MATLAB bicubic


@dataclass
class Dataset:
    name: str
    root: Path
    hr_dir: Path
    lr_dir: Path | None
    scale: int
    pairs: list[ImagePair]
    notes: list[str] = field(default_factory=list)

    @property
    def lr_source(self) -> str:
        """``given`` (LR files), ``generated`` (MATLAB bicubic from HR) or ``mixed``."""
        given = sum(p.lr_path is not None for p in self.pairs)
        if given == len(self.pairs):
            return "given"
        return "generated" if given == 0 else "mixed"


def _images_in(folder: Path) -> list[Path]:
    from superres.io import SUPPORTED_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                  and not p.name.startswith("."))


def _lr_index(folder: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for p in _images_in(folder):
        index.setdefault(p.stem, p)
    return index


def _lr_candidates(stem: str, scale: int) -> tuple[str, ...]:
    return (f"{stem}x{scale}", f"{stem}X{scale}", f"{stem}_x{scale}", f"{stem}_X{scale}", stem)


def _first_dir(root: Path, names: Sequence[str], scale: int) -> Path | None:
    for name in names:
        cand = root / name.format(s=scale)
        if cand.is_dir():
            return cand
    return None


def discover(
    scale: int,
    *,
    data: str | Path | None = None,
    hr: str | Path | None = None,
    lr: str | Path | None = None,
) -> Dataset:
    """The image pairs of a data set, in file-name order.

    ``data``: a folder with ``HR/`` (or ``GTmod12/``, ``GT/``) and optionally
    ``LR_bicubic/X{s}/`` (or ``LRbicx{s}/``, ``LR/X{s}/``), else a folder of HR images.
    ``hr`` (+ optional ``lr``): explicit folders. ``lr`` may also override the LR folder of
    ``data``. Without an LR folder every LR is generated from the HR. Raises ``EvalError``.
    """
    if not isinstance(scale, int) or scale < 1:
        raise EvalError(f"--scale must be a positive integer, got {scale!r}")
    if (data is None) == (hr is None):
        raise EvalError("give either --data DIR or --hr DIR (with optional --lr DIR)")
    notes: list[str] = []
    if data is not None:
        root = Path(data)
        if not root.is_dir():
            raise EvalError(f"{root}: no such folder")
        hr_dir = _first_dir(root, HR_DIRS, scale)
        if hr_dir is None:  # a plain folder of HR images
            hr_dir, lr_dir = root, None
        else:
            lr_dir = _first_dir(root, LR_DIRS, scale)
            if lr_dir is not None and lr_dir.name == "LR_bicubic" and any(
                (lr_dir / d).is_dir() for d in (f"X{k}" for k in (2, 3, 4, 8))
            ):
                lr_dir = None  # LR_bicubic/ holds other scales only
            if lr_dir is None:
                notes.append(f"no LR folder for x{scale} under {root}: LR made from HR with "
                             f"MATLAB bicubic imresize(modcrop(HR, {scale}), 1/{scale})")
    else:
        assert hr is not None
        hr_dir, root = Path(hr), Path(hr)
        if not hr_dir.is_dir():
            raise EvalError(f"{hr_dir}: no such folder (--hr)")
        lr_dir = None
    name = root.resolve().name
    if name in HR_DIRS and root.resolve().parent.name:  # .../Set5/HR -> "Set5"
        name = root.resolve().parent.name
    if lr is not None:
        lr_dir = Path(lr)
        if not lr_dir.is_dir():
            raise EvalError(f"{lr_dir}: no such folder (--lr)")

    hr_files = _images_in(hr_dir)
    if not hr_files:
        hint = "" if data is None else f" (expected image files, or HR/ and LR_bicubic/X{scale}/)"
        raise EvalError(f"{hr_dir}: no images found{hint}")
    pairs: list[ImagePair] = []
    if lr_dir is None:
        pairs = [ImagePair(p.stem, p, None) for p in hr_files]
    else:
        index = _lr_index(lr_dir)
        if not index:
            raise EvalError(f"{lr_dir}: no LR images found")
        used: set[str] = set()
        for p in hr_files:
            cands = _lr_candidates(p.stem, scale)
            match = next((index[c] for c in cands if c in index), None)
            if match is None:
                raise EvalError(f"{p}: no LR image in {lr_dir} (looked for {cands[0]}.* and {p.stem}.*)")
            used.add(match.stem)
            pairs.append(ImagePair(p.stem, p, match))
        extra = sorted(set(index) - used)
        if extra:
            notes.append(f"{len(extra)} LR image(s) in {lr_dir} without an HR image ignored "
                         f"(e.g. {index[extra[0]].name})")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise EvalError(f"{hr_dir}: two HR images named {dup!r} (different extensions)")
    return Dataset(name, root, hr_dir, lr_dir, scale, pairs, notes)


# ------------------------------------------------------------------------------ images


@dataclass
class Sample:
    """Decoded pair: uint8 HR (full size) and uint8 LR, both HxWx3 RGB or both HxW gray."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    lr_generated: bool
    notes: list[str] = field(default_factory=list)

    @property
    def is_gray(self) -> bool:
        return self.hr.ndim == 2


def _as_uint8(pixels: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """uint8 HxWx3 RGB or HxW gray; alpha dropped, 16-bit / float reduced, with a note."""
    x = pixels
    if x.ndim == 3 and x.shape[2] == 4:
        notes.append(f"{path}: alpha channel ignored (colour is evaluated)")
        x = x[:, :, :3]
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.dtype == np.uint16:
        notes.append(f"{path}: 16-bit image reduced to 8 bits for the metrics")
        x = np.clip(np.floor(x.astype(np.float64) / 257.0 + 0.5), 0, 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        notes.append(f"{path}: float image converted to 8 bits for the metrics")
        x = np.clip(np.floor(np.nan_to_num(x.astype(np.float64)) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


def _read(path: Path) -> tuple[np.ndarray, list[str]]:
    from superres.io import ImageError, read_image

    notes: list[str] = []
    try:
        img = read_image(path)
    except ImageError as exc:
        raise EvalError(str(exc)) from None
    except Exception as exc:  # anything a decoder may throw: name the file
        raise EvalError(f"{path}: cannot read image: {type(exc).__name__}: {exc}") from None
    return _as_uint8(img.pixels, path, notes), notes


def _match_layout(lr: np.ndarray, gray: bool) -> np.ndarray:
    """LR in the HR's layout (gray HR -> gray LR; RGB HR -> RGB LR)."""
    if gray and lr.ndim == 3:
        if np.array_equal(lr[..., 0], lr[..., 1]) and np.array_equal(lr[..., 0], lr[..., 2]):
            return np.ascontiguousarray(lr[..., 0])
        y = lr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    if not gray and lr.ndim == 2:
        return np.repeat(lr[:, :, None], 3, axis=2)
    return lr


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR: MATLAB ``imresize(modcrop(HR, s), 1/s, 'bicubic')`` on uint8."""
    return imresize(modcrop(np.asarray(hr), scale), 1.0 / scale)


def load_sample(pair: ImagePair, scale: int) -> Sample:
    """Read (or make) one pair and check that the sizes fit; raises ``EvalError``."""
    hr, notes = _read(pair.hr_path)
    h, w = hr.shape[:2]
    mh, mw = h - h % scale, w - w % scale
    if mh - 2 * scale < _SSIM_MIN or mw - 2 * scale < _SSIM_MIN:
        raise EvalError(f"{pair.hr_path}: {w}x{h} is too small for x{scale} (SSIM needs "
                        f"{_SSIM_MIN}x{_SSIM_MIN} px after cropping {scale} px borders)")
    if pair.lr_path is None:
        return Sample(pair.name, hr, make_lr(hr, scale), True, notes)
    lr, lr_notes = _read(pair.lr_path)
    lr = _match_layout(lr, hr.ndim == 2)
    lh, lw = lr.shape[:2]
    try:
        crop_hr_to(hr, (lh * scale, lw * scale), scale)
    except ValueError:
        raise EvalError(
            f"{pair.lr_path}: LR {lw}x{lh} does not match HR {pair.hr_path.name} {w}x{h} at x{scale} "
            f"(expected LR {w // scale}x{h // scale})"
        ) from None
    return Sample(pair.name, hr, lr, False, notes + lr_notes)


def check_dataset(dataset: Dataset) -> list[str]:
    """Read every pair once (fail fast, before any model runs); returns the notes."""
    notes: list[str] = []
    for pair in dataset.pairs:
        notes.extend(load_sample(pair, dataset.scale).notes)
    return notes


# ------------------------------------------------------------------------------ methods


@dataclass
class Method:
    """Something that turns a uint8 LR into a uint8 SR at the evaluated scale."""

    label: str
    fn: ModelFn
    source: str  # "MATLAB bicubic", a zoo name or a weight file
    is_baseline: bool = False
    native_scale: float | None = None


def bicubic_method(scale: int) -> Method:
    """The built-in baseline: MATLAB ``imresize(LR, s, 'bicubic')`` of the uint8 LR."""

    def fn(lr: np.ndarray) -> np.ndarray:
        return imresize(lr, float(scale))

    return Method(BICUBIC, fn, "MATLAB imresize bicubic (uint8, rounded per pass)", True, float(scale))


def load_methods(
    specs: Sequence[str],
    scale: int,
    *,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | None = None,
) -> tuple[list[Method], list[str]]:
    """Load zoo names / weight files as methods (labels made unique); also returns notes.

    Raises ``EvalError`` naming the model that cannot be loaded.
    """
    from superres.api import Upscaler
    from superres.engine.protocol import Engine

    methods: list[Method] = []
    notes: list[str] = []
    labels: set[str] = {BICUBIC}
    for spec in specs:
        try:
            up: Engine = Upscaler(model=spec, device=device, precision=precision, tile=tile)
        except Exception as exc:
            raise EvalError(f"cannot load model {spec}: {exc}") from None
        label = Path(spec).stem if Path(spec).is_file() else up.model.name
        base, k = label, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.add(label)
        native = up.model.net_scale
        if not math.isclose(native, scale):
            notes.append(f"{label} is a x{native:g} model; evaluated at x{scale} with "
                         f"{up.passes_for(scale)} pass(es) and a bicubic resize")

        def fn(lr: np.ndarray, _up: Engine = up) -> np.ndarray:
            return _up.upscale_array(lr, float(scale))

        fn(np.zeros((16, 16, 3), np.uint8))  # warm-up: the first image's time is not start-up cost

        what = f"weight file {spec}" if Path(spec).is_file() else f"zoo model {up.model.name}"
        methods.append(Method(label, fn, f"{what} ({up.model.arch}, x{native:g})", False, native))
    return methods, notes


# ------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class EvalOptions:
    scale: int
    gray_mode: GrayMode = "raw"
    rgb: bool = False
    niqe: bool = False
    lpips: bool = False
    lpips_net: str = "alex"


@dataclass
class Score:
    """The metrics of one model on one image (None: not asked for)."""

    image: str
    model: str
    psnr: float
    ssim: float
    psnr_rgb: float | None = None
    ssim_rgb: float | None = None
    niqe: float | None = None
    lpips: float | None = None
    seconds: float = 0.0


METRICS = ("psnr", "ssim", "psnr_rgb", "ssim_rgb", "niqe", "lpips", "seconds")


def _rgb3(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, :, None], 3, axis=2) if x.ndim == 2 else x


class ExtraMetrics:
    """NIQE / LPIPS, imported lazily; a missing module or missing weights -> ``MetricUnavailable``."""

    def __init__(self, options: EvalOptions) -> None:
        self.options = options
        self.notes: list[str] = []
        self._niqe: Callable[..., float] | None = None
        self._lpips: Callable[..., float] | None = None
        self._lpips_model: Any = None
        self._missing: tuple[type[BaseException], ...] = (FileNotFoundError, ImportError)
        if options.niqe:
            try:
                from superres.metrics.niqe import niqe
            except ImportError as exc:
                raise MetricUnavailable(f"NIQE is not available: {exc}") from None
            self._niqe = niqe
        if options.lpips:
            try:
                from superres.metrics import lpips as lp
            except ImportError as exc:
                raise MetricUnavailable(f"LPIPS is not available: {exc}") from None
            self._missing = (*self._missing, *(getattr(lp, n) for n in ("LPIPSWeightsMissing",
                                                                          "LPIPSWeightsError")
                                                 if isinstance(getattr(lp, n, None), type)))
            try:
                self._lpips_model = lp.LPIPS(net=options.lpips_net)
            except self._missing as exc:
                raise MetricUnavailable(f"LPIPS ({options.lpips_net}) is not available: {exc}") from None
            self._lpips = lp.lpips_distance

    def niqe(self, name: str, sr: np.ndarray) -> float | None:
        """NIQE of an SR output (gray passed as gray); None, with a note, if it is too small."""
        if self._niqe is None:
            return None
        try:
            return float(self._niqe(sr, crop_border=self.options.scale))
        except (FileNotFoundError, ImportError) as exc:
            raise MetricUnavailable(f"NIQE is not available: {exc}") from None
        except ValueError as exc:
            self.notes.append(f"{name}: NIQE skipped: {exc}")
            return None

    def lpips(self, sr: np.ndarray, hr: np.ndarray) -> float | None:
        if self._lpips is None:
            return None
        try:
            return float(self._lpips(_rgb3(sr), _rgb3(hr), self._lpips_model))
        except self._missing as exc:
            raise MetricUnavailable(f"LPIPS ({self.options.lpips_net}) is not available: {exc}") from None


def score_pair(sample: Sample, model: str, sr: np.ndarray, options: EvalOptions,
               extra: ExtraMetrics | None = None, seconds: float = 0.0) -> Score:
    """All asked-for metrics of one SR output against its HR."""
    s = options.scale
    p, q = evaluate_pair(sr, sample.hr, s, gray_mode=options.gray_mode)
    score = Score(sample.name, model, p, q, seconds=seconds)
    hr = crop_hr_to(sample.hr, sr.shape, s)
    if options.rgb:
        score.psnr_rgb = psnr(sr, hr, crop_border=s, y_channel=False)
        score.ssim_rgb = ssim(sr, hr, crop_border=s, y_channel=False)
    if extra is not None:
        score.niqe = extra.niqe(sample.name, sr)
        score.lpips = extra.lpips(sr, hr)
    return score


@dataclass
class ImageOutcome:
    """One image, all methods: the pair, each method's SR output and its scores.

    Handed to the caller (e.g. a report writer) and then dropped: SR images of a whole data
    set are never held at once.
    """

    sample: Sample
    outputs: dict[str, np.ndarray]
    scores: list[Score]


def _run_method(method: Method, sample: Sample, scale: int) -> tuple[np.ndarray, float]:
    lr = sample.lr
    t0 = time.perf_counter()
    try:
        sr = method.fn(lr)
    except Exception as exc:
        raise EvalError(f"{sample.name}: {method.label} failed: {type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - t0
    sr = np.asarray(sr)
    want = (lr.shape[0] * scale, lr.shape[1] * scale)
    if sr.ndim == 3 and sr.shape[2] == 1:
        sr = sr[:, :, 0]
    if sr.shape[:2] != want or sr.ndim != lr.ndim or sr.dtype != np.uint8:
        raise EvalError(f"{sample.name}: {method.label} returned {sr.dtype} {sr.shape}, expected uint8 "
                        f"{(*want, *lr.shape[2:])}")
    return sr, took


def iter_evaluate(
    dataset: Dataset,
    methods: Sequence[Method],
    options: EvalOptions,
    extra: ExtraMetrics | None = None,
) -> Iterator[ImageOutcome]:
    """Per image (in data set order): run every method and score it. Raises ``EvalError``."""
    if options.scale != dataset.scale:
        raise EvalError(f"options are for x{options.scale}, data set for x{dataset.scale}")
    for pair in dataset.pairs:
        sample = load_sample(pair, options.scale)
        outputs: dict[str, np.ndarray] = {}
        scores: list[Score] = []
        for method in methods:
            sr, took = _run_method(method, sample, options.scale)
            outputs[method.label] = sr
            scores.append(score_pair(sample, method.label, sr, options, extra, took))
        yield ImageOutcome(sample, outputs, scores)


# ------------------------------------------------------------------------------ results


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return float(np.mean(vals))


@dataclass
class EvalResult:
    """Per-image scores of every method, plus what is needed to describe the protocol."""

    dataset: str
    data_root: str
    scale: int
    options: EvalOptions
    methods: list[str]  # labels in evaluation order (the baseline first when present)
    sources: dict[str, str]  # label -> what it is (zoo name, file, MATLAB bicubic)
    lr_source: str  # given / generated / mixed
    rows: list[Score] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str | None = None

    @property
    def baseline(self) -> str | None:
        return BICUBIC if BICUBIC in self.methods else None

    @property
    def images(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.setdefault(r.image, None)
        return list(seen)

    def score(self, image: str, model: str) -> Score:
        for r in self.rows:
            if r.image == image and r.model == model:
                return r
        raise KeyError((image, model))

    def rows_of(self, model: str) -> list[Score]:
        return [r for r in self.rows if r.model == model]

    def metrics(self) -> list[str]:
        """The metric columns present in this run (``psnr``, ``ssim`` always)."""
        out = ["psnr", "ssim"]
        if self.options.rgb:
            out += ["psnr_rgb", "ssim_rgb"]
        if self.options.niqe:
            out.append("niqe")
        if self.options.lpips:
            out.append("lpips")
        return out

    def means(self) -> dict[str, dict[str, float | None]]:
        """model -> metric -> mean over images (PSNR: mean of per-image dB, as papers do)."""
        return {m: {k: _mean([getattr(r, k) for r in self.rows_of(m)]) for k in METRICS}
                for m in self.methods}

    def protocol(self) -> dict[str, Any]:
        s = self.scale
        lr = {
            "given": "LR images from the data set (Set5/Set14 LR_bicubic are bit-exact MATLAB bicubic)",
            "generated": f"LR made from HR: MATLAB imresize(modcrop(HR, {s}), 1/{s}, 'bicubic') on uint8 RGB",
            "mixed": "LR from the data set where present, else MATLAB bicubic from HR",
        }[self.lr_source]
        gray = ("gray images compared as raw 0..255 values (legacy MATLAB convention)"
                if self.options.gray_mode == "raw" else
                "gray images as R=G=B, Y = 16 + 219/255 g (BasicSR/KAIR convention)")
        out: dict[str, Any] = {
            "summary": PROTOCOL.replace("border = scale", f"border = {s}"),
            "y": "Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on uint8 RGB, float64 (MATLAB rgb2ycbcr)",
            "border": s,
            "hr_crop": f"HR cropped top-left to {s} x LR size",
            "lr": lr,
            "lr_source": self.lr_source,
            "bicubic": f"baseline = MATLAB imresize(LR, {s}, 'bicubic') of the uint8 LR, rounded per pass",
            "psnr": "10 log10(255^2 / MSE), mean of per-image values",
            "ssim": "Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K = (0.01, 0.03), L = 255, 'valid'",
            "gray_mode": self.options.gray_mode,
            "gray": gray,
        }
        if self.options.rgb:
            out["rgb"] = RGB_PROTOCOL.replace("border = scale", f"border = {s}")
        if self.options.niqe:
            out["niqe"] = f"NIQE of the SR output (no reference), border {s} cropped; lower is better"
        if self.options.lpips:
            out["lpips"] = (f"LPIPS ({self.options.lpips_net}) SR vs HR (cropped to the SR size, "
                            "no border crop); lower is better")
        return out


def evaluate(
    dataset: Dataset,
    methods: Sequence[Method],
    options: EvalOptions,
    *,
    extra: ExtraMetrics | None = None,
    on_image: Callable[[ImageOutcome], None] | None = None,
    command: str | None = None,
) -> EvalResult:
    """Run ``iter_evaluate`` to the end and collect the scores (``on_image`` sees each image)."""
    result = EvalResult(
        dataset.name, str(dataset.root), options.scale, options, [m.label for m in methods],
        {m.label: m.source for m in methods}, dataset.lr_source, notes=list(dataset.notes),
        command=command,
    )
    if (options.niqe or options.lpips) and extra is None:
        extra = ExtraMetrics(options)
    for outcome in iter_evaluate(dataset, methods, options, extra):
        result.rows.extend(outcome.scores)
        result.notes.extend(outcome.sample.notes)
        if on_image is not None:
            on_image(outcome)
    if extra is not None:
        result.notes.extend(extra.notes)
    return result
