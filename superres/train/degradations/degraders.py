"""The degraders: the benchmark bicubic protocol and the two-stage Real-ESRGAN model."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from superres.io.alpha import from_float, to_float
from superres.metrics.resize import imresize
from superres.train.degradations import ops
from superres.train.degradations.kernels import (
    KERNEL_TYPES,
    as_rng,
    choose,
    odd_sizes,
    pulse_kernel,
    random_kernel,
    sinc_kernel,
)

# ------------------------------------------------------------------------------------------------
# Degraders
# ------------------------------------------------------------------------------------------------


class Degradation(abc.ABC):
    """``degrader(hr_batch, rng) -> lr_batch``: ``(N, 3, H, W)`` -> ``(N, 3, H/scale, W/scale)``."""

    scale: int

    def __init__(self, scale: int) -> None:
        if isinstance(scale, bool) or int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        self.scale = int(scale)

    def _lr_size(self, hr: torch.Tensor) -> tuple[int, int]:
        ops.check_batch(hr, rgb=True)
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {self.scale} (crop it first)")
        return h // self.scale, w // self.scale

    @abc.abstractmethod
    def __call__(self, hr: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        """Degrade a batch of HR crops in [0, 1]."""


class BicubicDegradation(Degradation):
    """The standard benchmark protocol: ``LR = imresize(uint8 HR, 1/scale, 'bicubic')`` as uint8.

    Each HR sample is first rounded to uint8 (``from_float``: clip, round half to even), resized
    with the MATLAB-exact :func:`superres.metrics.imresize` (which rounds between its two passes,
    as MATLAB does for uint8), and the uint8 result is returned as float ``/ 255`` -- exactly the
    pixels of the benchmark ``LR_bicubic`` images, so a model trained on it sees the test-time input
    distribution. Deterministic: ``rng`` is accepted for the common interface and ignored.
    Runs in numpy on the CPU (the result is moved back to the input's device).

    With ``whole_image: true`` in the config the training data set instead resizes each whole
    (scale-cropped) image once and cuts aligned LR/HR patches, as the benchmark LR images are
    made: no patch-border effect, and no resize per step.
    """

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        lr_h, lr_w = self._lr_size(hr)
        pixels = hr.detach().cpu().to(torch.float32).permute(0, 2, 3, 1).numpy()
        lrs = [to_float(imresize(from_float(p, np.uint8), output_shape=(lr_h, lr_w)))[0] for p in pixels]
        out = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).contiguous()
        return out.to(device=hr.device, dtype=hr.dtype)

    def __repr__(self) -> str:
        return f"BicubicDegradation(scale={self.scale})"


@dataclasses.dataclass(frozen=True)
class RealESRGANOptions:
    """Options of :class:`RealESRGANDegradation`, named as in the published training configs.

    Defaults are the published ``train_realesrgan_x4plus`` values. Noise sigmas are in 8-bit units
    (``noise_range`` [1, 30] means sigma 1/255 .. 30/255). Suffix ``2`` = second stage.
    """

    # Blur kernels, first stage
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    # Blur kernels, second stage
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    sinc_prob2: float = 0.1
    # Kernel sizes (odd sizes in this range, both stages and the final sinc)
    kernel_size_range: tuple[int, int] = (7, 21)
    # First stage
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # Second stage
    second_blur_prob: float = 0.8
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # Final step
    final_sinc_prob: float = 0.8
    resize_modes: tuple[str, ...] = ops.RESIZE_MODES

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> RealESRGANOptions:
        """Defaults overridden by ``options`` (YAML lists welcome); unknown or invalid -> ValueError."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"unknown Real-ESRGAN degradation option(s) {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(cls.names())}"
            )
        values = {name: _coerce(name, value) for name, value in options.items()}
        opts = cls(**values)
        opts.validate()
        return opts

    def validate(self) -> None:
        """Raise ValueError naming the first option that is out of its domain."""
        for sfx in ("", "2"):
            names, probs = getattr(self, "kernel_list" + sfx), getattr(self, "kernel_prob" + sfx)
            bad = [k for k in names if k not in KERNEL_TYPES]
            if bad:
                raise ValueError(f"kernel_list{sfx}: unknown kernel type(s) {bad}; valid: {KERNEL_TYPES}")
            if not names or len(names) != len(probs):
                raise ValueError(f"kernel_list{sfx} and kernel_prob{sfx} need the same non-zero length")
            _check_weights("kernel_prob" + sfx, probs)
            _check_weights("resize_prob" + sfx, getattr(self, "resize_prob" + sfx), length=3)
            for name in ("blur_sigma", "betag_range", "betap_range", "resize_range"):
                _check_range(name + sfx, getattr(self, name + sfx), low=0.0, strict=True)
            for name in ("noise_range", "poisson_scale_range"):
                _check_range(name + sfx, getattr(self, name + sfx), low=0.0)
            _check_range("jpeg_range" + sfx, getattr(self, "jpeg_range" + sfx), low=1.0, high=100.0)
        for name in ("sinc_prob", "sinc_prob2", "gaussian_noise_prob", "gaussian_noise_prob2",
                     "gray_noise_prob", "gray_noise_prob2", "second_blur_prob", "final_sinc_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        lo, hi = self.kernel_size_range
        if lo < 1 or hi < lo or not any(s % 2 for s in range(lo, hi + 1)):
            raise ValueError(f"kernel_size_range must contain an odd size >= 1, got {self.kernel_size_range}")
        bad_modes = [m for m in self.resize_modes if m not in ops.RESIZE_MODES]
        if not self.resize_modes or bad_modes:
            raise ValueError(f"resize_modes: got {self.resize_modes}; valid: {ops.RESIZE_MODES}")


_INT_OPTIONS = {"kernel_size_range"}
_STR_OPTIONS = {"kernel_list", "kernel_list2", "resize_modes"}


def _coerce(name: str, value: Any) -> Any:
    """YAML/JSON values to the dataclass field types (lists -> tuples), with a clear error."""
    default = getattr(RealESRGANOptions, name)
    try:
        if isinstance(default, tuple):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise TypeError
            if name in _STR_OPTIONS:
                return tuple(str(v) for v in value)
            items = tuple((int if name in _INT_OPTIONS else float)(v) for v in value)
            if name not in ("kernel_prob", "kernel_prob2") and len(items) != len(default):
                raise TypeError
            return items
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        want = f"a list of {len(default)} values" if isinstance(default, tuple) else "a number"
        raise ValueError(f"option {name!r}: expected {want}, got {value!r}") from None


def _check_range(
    name: str, rng: Sequence[float], *, low: float, high: float | None = None, strict: bool = False
) -> None:
    lo, hi = rng
    below = lo <= low if strict else lo < low
    if below or hi < lo or (high is not None and hi > high):
        bound = f"({low}" if strict else f"[{low}"
        bound += f", {high}]" if high is not None else ", inf)"
        raise ValueError(f"{name} must be [low, high] with low <= high within {bound}, got {list(rng)}")


def _check_weights(name: str, weights: Sequence[float], length: int | None = None) -> None:
    if length is not None and len(weights) != length:
        raise ValueError(f"{name} needs {length} weights, got {len(weights)}")
    if any(p < 0 for p in weights) or sum(weights) <= 0:
        raise ValueError(f"{name} must be non-negative weights with a positive sum, got {list(weights)}")


class RealESRGANDegradation(Degradation):
    """The published Real-ESRGAN "high-order" degradation, batched, reproducible from a generator.

    Per call (``s`` = scale, ``H x W`` the HR size):

    1. blur (a :func:`random_kernel` per sample) -> resize (up/down/keep, random mode, per batch) ->
       Gaussian (sigma per sample, gray per sample) or Poisson noise (per batch choice) -> clip ->
       JPEG (quality per sample);
    2. blur with probability ``second_blur_prob`` -> resize to ``(H/s, W/s) * scale2`` -> noise ->
       clip -> JPEG;
    3. with probability 1/2: resize to ``(H/s, W/s)`` + sinc filter, then clip + JPEG; else clip +
       JPEG, then resize + sinc. The sinc filter (per sample) is a real one with probability
       ``final_sinc_prob`` (cutoff uniform in [pi/3, pi]), the identity otherwise;
    4. clip and round to multiples of 1/255.

    Options: see :class:`RealESRGANOptions`; pass them as keywords (unknown -> ValueError).
    """

    def __init__(self, scale: int = 4, **options: Any) -> None:
        super().__init__(scale)
        self.options = RealESRGANOptions.from_mapping(options)

    def __repr__(self) -> str:
        default = RealESRGANOptions()
        changed = {
            k: v for k, v in dataclasses.asdict(self.options).items() if v != getattr(default, k)
        }
        extra = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"RealESRGANDegradation(scale={self.scale}{extra})"

    def _kernels(self, rng: np.random.Generator, n: int, suffix: str) -> list[np.ndarray]:
        o = self.options
        return [
            random_kernel(
                rng,
                getattr(o, "kernel_list" + suffix),
                getattr(o, "kernel_prob" + suffix),
                getattr(o, "blur_sigma" + suffix),
                getattr(o, "betag_range" + suffix),
                getattr(o, "betap_range" + suffix),
                getattr(o, "sinc_prob" + suffix),
                o.kernel_size_range,
            )
            for _ in range(n)
        ]

    def _noise(self, out: torch.Tensor, rng: np.random.Generator, suffix: str) -> torch.Tensor:
        o = self.options
        n = out.shape[0]
        if rng.random() < getattr(o, "gaussian_noise_prob" + suffix):
            sigma = rng.uniform(*getattr(o, "noise_range" + suffix), size=n) / 255.0
            gray = rng.random(n) < getattr(o, "gray_noise_prob" + suffix)
            return ops.add_gaussian_noise(out, sigma, gray, rng)
        scale = rng.uniform(*getattr(o, "poisson_scale_range" + suffix), size=n)
        gray = rng.random(n) < getattr(o, "gray_noise_prob" + suffix)
        return ops.add_poisson_noise(out, scale, gray, rng)

    def _jpeg(self, out: torch.Tensor, rng: np.random.Generator, suffix: str) -> torch.Tensor:
        quality = rng.uniform(*getattr(self.options, "jpeg_range" + suffix), size=out.shape[0])
        return ops.jpeg(out.clamp(0.0, 1.0), quality)

    def _final_sinc(self, rng: np.random.Generator, n: int) -> list[np.ndarray]:
        sizes = odd_sizes(self.options.kernel_size_range)
        kernels = []
        for _ in range(n):
            if rng.random() < self.options.final_sinc_prob:
                size = int(choose(rng, sizes))
                kernels.append(sinc_kernel(size, float(rng.uniform(math.pi / 3, math.pi))))
            else:
                kernels.append(pulse_kernel(1))
        return kernels

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        lr_h, lr_w = self._lr_size(hr)
        rng = as_rng(rng)  # None is refused there, with a clear message
        o = self.options
        n = hr.shape[0]
        hr = hr.detach()

        # Stage 1
        out = ops.blur(hr, self._kernels(rng, n, ""), clamp=False)
        scale, mode = ops.sample_resize(rng, o.resize_prob, o.resize_range, o.resize_modes)
        out = ops.random_resize(out, scale, mode=mode, clamp=False)
        out = self._noise(out, rng, "")
        out = self._jpeg(out, rng, "")

        # Stage 2
        if rng.random() < o.second_blur_prob:
            out = ops.blur(out, self._kernels(rng, n, "2"), clamp=False)
        scale, mode = ops.sample_resize(rng, o.resize_prob2, o.resize_range2, o.resize_modes)
        size = (max(1, int(lr_h * scale)), max(1, int(lr_w * scale)))
        out = ops.random_resize(out, size=size, mode=mode, clamp=False)
        out = self._noise(out, rng, "2")

        # Final step: [resize + sinc] and JPEG, in random order
        sinc = self._final_sinc(rng, n)
        sinc_first = rng.random() < 0.5
        mode = str(choose(rng, list(o.resize_modes)))
        if not sinc_first:
            out = self._jpeg(out, rng, "2")
        out = ops.random_resize(out, size=(lr_h, lr_w), mode=mode, clamp=False)
        if any(k.shape[0] > 1 for k in sinc):
            out = ops.blur(out, sinc, clamp=False)
        if sinc_first:
            out = self._jpeg(out, rng, "2")
        return (out.clamp(0.0, 1.0) * 255.0).round() / 255.0


