"""Benchmark evaluation: run models on a data set and score them under the modern protocol.

No printing here; ``superres eval`` (``superres.cli.eval``) and ``superres.evaluation.report``
present the results. The data set (``discover``, ``load_sample``) is found and read by
:mod:`superres.evaluation.dataset`.

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

from superres.evaluation.dataset import Dataset, EvalError, Sample, load_sample
from superres.metrics.protocol import crop_hr_to, evaluate_pair
from superres.metrics.psnr_ssim import GrayMode, psnr, ssim
from superres.metrics.resize import imresize

PROTOCOL = "Y channel BT.601, border = scale, MATLAB bicubic LR"
RGB_PROTOCOL = "RGB (3 channels), border = scale, MATLAB bicubic LR (as BasicSR's ModelZoo tables)"
BICUBIC = "bicubic"

ModelFn = Callable[[np.ndarray], np.ndarray]


class MetricUnavailable(RuntimeError):
    """An optional metric (NIQE, LPIPS) cannot be computed here: module or weights missing."""


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
    backend: str = "torch",
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
            up: Engine = Upscaler(model=spec, device=device, precision=precision, tile=tile,
                                  backend=backend)
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
        if backend != "torch":
            what += f" on {getattr(up, 'backend', backend)}"
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
