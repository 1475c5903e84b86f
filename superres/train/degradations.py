"""Synthetic degradations that turn HR training crops into LR inputs.

Two degraders share one interface, ``degrader(hr_batch, rng) -> lr_batch`` on ``(N, 3, H, W)``
float tensors in [0, 1], with ``H`` and ``W`` multiples of ``scale``; the output is exactly
``(N, 3, H / scale, W / scale)``:

* :class:`BicubicDegradation`: the classic benchmark protocol, LR = MATLAB
  ``imresize(uint8 HR, 1/s, 'bicubic')`` as uint8 (bit-exact with :func:`superres.metrics.imresize`);
* :class:`RealESRGANDegradation`: the published two-stage "high-order" Real-ESRGAN model (blur,
  resize, Gaussian/Poisson noise, JPEG, twice, then resize + sinc filter and JPEG in random order),
  with the published defaults, every option overridable (e.g. from a YAML config).

:func:`build_degradation` makes either from a config dict.

The building blocks are public and pure: kernel generators (numpy, float32, sum 1) and batched
ops (torch, run on the tensor's device). **Randomness**: every random choice takes an explicit
``numpy.random.Generator``; nothing reads or advances global RNG state (``random``, ``np.random``,
``torch.manual_seed``). The same generator state therefore gives bit-identical output, in the main
process and in data-loader workers alike. For workers, derive one generator per worker and epoch,
e.g. ``np.random.default_rng([seed, epoch, worker_id])``. Where an integer is accepted instead of a
generator it is used as a seed (``np.random.default_rng(seed)``); ``None`` is refused.

Granularity follows the published GPU implementation: kernels, noise strength, gray-noise flags and
JPEG qualities are drawn per sample; the resize scale and mode, the noise type (Gaussian or
Poisson), whether the second blur happens and the order of the final step are drawn per batch.

Deliberate differences from the published code (none changes the distribution materially):
JPEG is a real libjpeg encode/decode (cv2, integer quality, 4:2:0) instead of the differentiable
DiffJPEG approximation; reflect padding works for any image size (the published ``filter2D`` needs
images larger than the kernel radius); resizes pass an explicit output size to ``F.interpolate``;
sharpening of the GT (USM) is a matter of the loss targets and is not done here.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from superres.io.alpha import from_float, to_float
from superres.metrics.resize import imresize

__all__ = [
    "DEGRADATION_TYPES",
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "BicubicDegradation",
    "Degradation",
    "RealESRGANDegradation",
    "RealESRGANOptions",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "build_degradation",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "jpeg",
    "pad_kernel",
    "plateau_kernel",
    "pulse_kernel",
    "random_kernel",
    "random_resize",
    "sample_resize",
    "sinc_kernel",
]

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")

# ------------------------------------------------------------------------------------------------
# Random helpers
# ------------------------------------------------------------------------------------------------


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """The generator itself, or a fresh one seeded with an integer. ``None`` is an error."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"expected a numpy.random.Generator or an integer seed, got {type(rng).__name__} "
        "(global RNG state is never used, so the generator must be explicit)"
    )


def _choice(rng: np.random.Generator, items: Sequence[Any], probs: Sequence[float] | None = None) -> Any:
    """One item of ``items``; ``probs`` are weights (normalised here, as ``random.choices`` does)."""
    if probs is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(probs, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _per_sample(value: Any, n: int, name: str, dtype: type = np.float64) -> np.ndarray:
    """A scalar or a length-``n`` sequence as an ``(n,)`` array."""
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    arr = arr.astype(dtype)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or {n} values (one per sample), got shape {arr.shape}")
    return arr


def _check_batch(img: torch.Tensor, *, rgb: bool = False) -> None:
    if not isinstance(img, torch.Tensor) or img.ndim != 4 or not img.is_floating_point():
        desc = f"{type(img).__name__} {tuple(img.shape)}" if hasattr(img, "shape") else type(img).__name__
        raise ValueError(f"expected an (N, C, H, W) float tensor, got {desc}")
    if rgb and img.shape[1] != 3:
        raise ValueError(f"expected 3 (RGB) channels, got {img.shape[1]}")


# ------------------------------------------------------------------------------------------------
# Kernels (numpy, float32, normalised to sum 1)
# ------------------------------------------------------------------------------------------------


def _check_size(size: int) -> int:
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    return int(size)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the centre: ``x`` along columns (width), ``y`` along rows (height)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    x, y = np.meshgrid(ax, ax)
    return x, y


def _mahalanobis2(size: int, sigma_x: float, sigma_y: float | None, rotation: float) -> np.ndarray:
    """``[x y] C^-1 [x y]^T`` on the grid, ``C = R diag(sx^2, sy^2) R^T`` with ``R`` a rotation by
    ``rotation`` radians (so ``sigma_x`` is the spread along the direction ``rotation``)."""
    size = _check_size(size)
    sy = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sy <= 0:
        raise ValueError(f"sigmas must be positive, got {sigma_x}, {sy}")
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x**2, sy**2]) @ rot.T)
    x, y = _grid(size)
    return inv[0, 0] * x * x + (inv[0, 1] + inv[1, 0]) * x * y + inv[1, 1] * y * y


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0
) -> np.ndarray:
    """Bivariate Gaussian ``exp(-q / 2)``; isotropic when ``sigma_y`` is None (rotation then moot)."""
    return _normalised(np.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, rotation)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Generalised Gaussian ``exp(-q^beta / 2)``: beta < 1 heavier tails, > 1 flatter top; 1 = Gaussian."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return _normalised(np.exp(-0.5 * np.power(_mahalanobis2(size, sigma_x, sigma_y, rotation), beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Plateau-shaped ``1 / (1 + q^beta)``: flat top, polynomial tails."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return _normalised(1.0 / (np.power(_mahalanobis2(size, sigma_x, sigma_y, rotation), beta) + 1.0))


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1 (no scipy here).

    Bessel's integral ``J1(x) = 1/(2 pi) int_0^{2 pi} cos(t - x sin t) dt`` over a full period, by
    the trapezoid rule: for a periodic analytic integrand its error is the aliased term ~J_M(x),
    below 1e-15 once the node count M exceeds |x| by a few dozen.
    """
    x = np.asarray(x, dtype=np.float64)
    nodes = int(np.abs(x).max(initial=0.0)) + 64
    t = 2 * np.pi * np.arange(nodes) / nodes
    flat = x.reshape(-1, 1)
    return np.cos(t - flat * np.sin(t)).mean(axis=1).reshape(x.shape)


def sinc_kernel(size: int, cutoff: float, pad_to: int | None = None) -> np.ndarray:
    """2-D sinc: the ideal circular low-pass with cutoff ``cutoff`` (radians per sample, 0..pi),
    truncated to ``size`` x ``size``: ``w J1(w r) / (2 pi r)``, ``w^2 / (4 pi)`` at the centre.
    Models ringing and overshoot artifacts. ``pad_to`` zero-pads to a larger odd size.
    """
    size = _check_size(size)
    if not 0 < cutoff <= math.pi:
        raise ValueError(f"cutoff must be in (0, pi], got {cutoff}")
    x, y = _grid(size)
    r = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * _bessel_j1(cutoff * r) / (2 * np.pi * r)
    kernel[size // 2, size // 2] = cutoff**2 / (4 * np.pi)
    kernel = _normalised(kernel)
    return kernel if pad_to is None else pad_kernel(kernel, pad_to)


def pulse_kernel(size: int = 1) -> np.ndarray:
    """The identity kernel (1 at the centre)."""
    kernel = np.zeros((_check_size(size),) * 2, dtype=np.float32)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a square odd kernel to ``size`` x ``size`` (same centre; the filter is unchanged)."""
    size = _check_size(size)
    k = kernel.shape[-1]
    if kernel.ndim != 2 or kernel.shape[0] != k or k % 2 == 0:
        raise ValueError(f"expected a square odd kernel, got shape {kernel.shape}")
    if size < k:
        raise ValueError(f"cannot pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return np.pad(kernel, p).astype(np.float32, copy=False)


def _odd_sizes(size_range: Sequence[int]) -> list[int]:
    lo, hi = (int(v) for v in size_range)
    sizes = [s for s in range(lo, hi + 1) if s % 2 == 1]
    if not sizes:
        raise ValueError(f"size_range {tuple(size_range)} contains no odd size")
    return sizes


def _random_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """The published rule: half of the draws below 1, half above, when the range straddles 1."""
    lo, hi = float(beta_range[0]), float(beta_range[1])
    if lo < 1 < hi:
        return float(rng.uniform(lo, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, hi))
    return float(rng.uniform(lo, hi))


def random_kernel(
    rng: np.random.Generator | int,
    kernel_list: Sequence[str] = KERNEL_TYPES,
    kernel_prob: Sequence[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sigma_range: Sequence[float] = (0.2, 3.0),
    betag_range: Sequence[float] = (0.5, 4.0),
    betap_range: Sequence[float] = (1.0, 2.0),
    sinc_prob: float = 0.1,
    size_range: Sequence[int] = (7, 21),
) -> np.ndarray:
    """One random blur kernel as in Real-ESRGAN's first stage (defaults) or second stage.

    Size: uniform over the odd sizes in ``size_range``. With probability ``sinc_prob`` a sinc kernel
    (cutoff uniform in [pi/3, pi] for sizes < 13, [pi/5, pi] otherwise); else a kernel type drawn
    from ``kernel_list`` with weights ``kernel_prob``: sigmas uniform in ``sigma_range`` (equal for
    ``*iso``), rotation uniform in [-pi, pi] for ``*aniso``, beta from ``betag_range`` /
    ``betap_range`` (half below 1, half above). Returns the unpadded ``size`` x ``size`` kernel.
    """
    rng = _as_rng(rng)
    if len(kernel_list) != len(kernel_prob):
        raise ValueError(f"kernel_list has {len(kernel_list)} entries but kernel_prob {len(kernel_prob)}")
    size = int(_choice(rng, _odd_sizes(size_range)))
    if rng.random() < sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, float(rng.uniform(low, math.pi)))
    kind = _choice(rng, list(kernel_list), kernel_prob)
    if kind not in KERNEL_TYPES:
        raise ValueError(f"unknown kernel type {kind!r}; valid: {', '.join(KERNEL_TYPES)}")
    family, _, shape = kind.rpartition("_")
    sigma_x = float(rng.uniform(*sigma_range))
    if shape == "iso":
        sigma_y, rotation = sigma_x, 0.0
    else:
        sigma_y, rotation = float(rng.uniform(*sigma_range)), float(rng.uniform(-math.pi, math.pi))
    if family == "generalized":
        return generalized_gaussian_kernel(size, sigma_x, sigma_y, rotation, _random_beta(rng, betag_range))
    if family == "plateau":
        return plateau_kernel(size, sigma_x, sigma_y, rotation, _random_beta(rng, betap_range))
    return gaussian_kernel(size, sigma_x, sigma_y, rotation)


# ------------------------------------------------------------------------------------------------
# Batched ops on (N, C, H, W) float tensors in [0, 1]
# ------------------------------------------------------------------------------------------------


def _reflect_index(n: int, pad: int) -> torch.Tensor:
    """Indices of a reflect-padded axis (edge pixel not repeated), valid for any ``pad``."""
    idx = np.arange(-pad, n + pad)
    if n == 1:
        return torch.zeros(idx.size, dtype=torch.long)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return torch.from_numpy(np.where(idx >= n, period - idx, idx))


def _kernel_stack(kernel: Any, n: int) -> torch.Tensor:
    """``(n, k, k)`` float tensor from one kernel, a stack, or a list of odd square kernels of any
    sizes (zero-padded to the largest)."""
    if isinstance(kernel, (np.ndarray, torch.Tensor)) and kernel.ndim in (2, 3):
        stack = torch.as_tensor(np.asarray(kernel) if isinstance(kernel, np.ndarray) else kernel)
        if stack.ndim == 2:
            stack = stack.expand(n, *stack.shape)
    else:
        kernels = [np.asarray(k.detach().cpu() if isinstance(k, torch.Tensor) else k) for k in kernel]
        if not kernels or any(k.ndim != 2 for k in kernels):
            raise ValueError("expected a kernel, a stack of kernels or a list of 2-D kernels")
        size = max(k.shape[-1] for k in kernels)
        stack = torch.from_numpy(np.stack([pad_kernel(k, size) for k in kernels]))
    if stack.shape[0] != n or stack.shape[1] != stack.shape[2] or stack.shape[1] % 2 == 0:
        raise ValueError(f"expected one square odd kernel or {n} of them, got shape {tuple(stack.shape)}")
    return stack


def blur(img: torch.Tensor, kernel: Any, *, clamp: bool = True) -> torch.Tensor:
    """Convolve each sample with its own kernel (all channels alike), reflect padding, same size.

    ``kernel``: one ``(k, k)`` kernel for the whole batch, an ``(N, k, k)`` stack, or a list of N
    square odd kernels of possibly different sizes. ``clamp`` clips to [0, 1] (sinc kernels have
    negative lobes and overshoot; non-negative kernels keep the range anyway).
    """
    _check_batch(img)
    n, c, h, w = img.shape
    stack = _kernel_stack(kernel, n).to(device=img.device, dtype=img.dtype)
    pad = stack.shape[-1] // 2
    rows = _reflect_index(h, pad).to(img.device)
    cols = _reflect_index(w, pad).to(img.device)
    padded = img[:, :, rows][:, :, :, cols].reshape(1, n * c, h + 2 * pad, w + 2 * pad)
    # conv2d correlates; flip for a true convolution (a no-op for the point-symmetric kernels here).
    weight = stack.flip(-2, -1).repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)
    return out.clamp(0.0, 1.0) if clamp else out


_LUMA = (0.299, 0.587, 0.114)


def add_gaussian_noise(
    img: torch.Tensor,
    sigma: float | Sequence[float] | np.ndarray,
    gray: bool | Sequence[bool] | np.ndarray,
    rng: np.random.Generator | int,
    *,
    clip: bool = True,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (in [0, 1] units: pass 10/255
    for "sigma 10"), per sample or for all. Where ``gray`` is true the same noise plane is added to
    all three channels (luminance noise), else each channel gets its own (colour noise)."""
    _check_batch(img, rgb=True)
    rng = _as_rng(rng)
    n, c, h, w = img.shape
    sigmas = _per_sample(sigma, n, "sigma")
    grays = _per_sample(gray, n, "gray", bool)
    if (sigmas < 0).any():
        raise ValueError(f"sigma must be >= 0, got {sigmas}")
    planes = []
    for s, g in zip(sigmas, grays, strict=True):
        noise = rng.standard_normal((1 if g else c, h, w), dtype=np.float32) * np.float32(s)
        planes.append(np.broadcast_to(noise, (c, h, w)))
    out = img + torch.from_numpy(np.stack(planes)).to(device=img.device, dtype=img.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def add_poisson_noise(
    img: torch.Tensor,
    scale: float | Sequence[float] | np.ndarray,
    gray: bool | Sequence[bool] | np.ndarray,
    rng: np.random.Generator | int,
    *,
    clip: bool = True,
) -> torch.Tensor:
    """Add signal-dependent (shot) noise, as the published model does: quantise the image to 8
    bits, count its distinct levels ``v`` (rounded up to a power of two), draw ``Poisson(x * v) / v``
    and add ``scale`` times the difference to ``x``. Where ``gray`` is true the noise is computed on
    the luminance (BT.601 weights) and added to all three channels alike. ``scale`` 0 is identity."""
    _check_batch(img, rgb=True)
    rng = _as_rng(rng)
    n, c, h, w = img.shape
    scales = _per_sample(scale, n, "scale")
    grays = _per_sample(gray, n, "gray", bool)
    if (scales < 0).any():
        raise ValueError(f"scale must be >= 0, got {scales}")
    src = img.detach().cpu().to(torch.float64).numpy()
    planes = []
    for i in range(n):
        x = np.tensordot(np.asarray(_LUMA), src[i], axes=1)[None] if grays[i] else src[i]
        x = np.clip(np.rint(x * 255.0), 0, 255) / 255.0
        levels = max(len(np.unique(x)), 1)
        levels = 2 ** math.ceil(math.log2(levels))
        noise = (rng.poisson(x * levels) / levels - x) * scales[i]
        planes.append(np.broadcast_to(noise, (c, h, w)))
    out = img + torch.from_numpy(np.stack(planes)).to(device=img.device, dtype=img.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def jpeg(img: torch.Tensor, quality: float | Sequence[float] | np.ndarray) -> torch.Tensor:
    """Real JPEG round trip per sample (cv2/libjpeg, 4:2:0), ``quality`` 1..100 (rounded to an
    integer), one for all or one per sample. Input is clipped to [0, 1] and rounded to 8 bits first;
    the output is a multiple of 1/255. Not differentiable (this is data preparation)."""
    _check_batch(img)
    n, c, _, _ = img.shape
    if c not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {c}")
    qualities = np.rint(_per_sample(quality, n, "quality")).astype(int)
    if ((qualities < 1) | (qualities > 100)).any():
        raise ValueError(f"JPEG quality must be within 1..100, got {qualities}")
    u8 = (img.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(u8)
    for i in range(n):
        pixels = u8[i, :, :, ::-1] if c == 3 else u8[i, :, :, 0]  # cv2 wants BGR
        params = [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])]
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(pixels), params)
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a JPEG")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if c == 3 else cv2.IMREAD_GRAYSCALE)
        out[i] = dec[:, :, ::-1] if c == 3 else dec[:, :, None]
    res = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=img.device, dtype=img.dtype)
    return res / 255.0


def random_resize(
    img: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    mode: str = "bilinear",
    clamp: bool = True,
) -> torch.Tensor:
    """The resize step of the random pipeline; deterministic given its arguments (the pipeline draws
    ``scale`` and ``mode`` with :func:`sample_resize`).

    Give ``scale`` (output ``max(1, int(H * scale))`` x ``max(1, int(W * scale))``) or ``size``
    ``(H, W)``. ``mode``: ``area`` (box average; nearest-like when enlarging), ``bilinear`` or
    ``bicubic`` (``align_corners=False``, no antialiasing, as in ``F.interpolate``). ``clamp`` clips
    to [0, 1] (bicubic overshoots).
    """
    _check_batch(img)
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; valid: {', '.join(RESIZE_MODES)}")
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    h, w = img.shape[-2:]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        size = (max(1, int(h * scale)), max(1, int(w * scale)))
    assert size is not None
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"size must be positive, got {size}")
    if size == (h, w):
        out = img
    elif mode == "area":
        out = F.interpolate(img, size=size, mode="area")
    else:
        out = F.interpolate(img, size=size, mode=mode, align_corners=False)
    return out.clamp(0.0, 1.0) if clamp else out


def sample_resize(
    rng: np.random.Generator | int,
    resize_prob: Sequence[float] = (0.2, 0.7, 0.1),
    resize_range: Sequence[float] = (0.15, 1.5),
    modes: Sequence[str] = RESIZE_MODES,
) -> tuple[float, str]:
    """Draw ``(scale, mode)``: up / down / keep with weights ``resize_prob``; up uniform in
    ``[1, resize_range[1]]``, down uniform in ``[resize_range[0], 1]``; mode uniform over ``modes``."""
    rng = _as_rng(rng)
    kind = _choice(rng, ("up", "down", "keep"), resize_prob)
    if kind == "up":
        scale = float(rng.uniform(1.0, resize_range[1]))
    elif kind == "down":
        scale = float(rng.uniform(resize_range[0], 1.0))
    else:
        scale = 1.0
    return scale, str(_choice(rng, list(modes)))


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
        _check_batch(hr, rgb=True)
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
    resize_modes: tuple[str, ...] = RESIZE_MODES

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
        bad_modes = [m for m in self.resize_modes if m not in RESIZE_MODES]
        if not self.resize_modes or bad_modes:
            raise ValueError(f"resize_modes: got {self.resize_modes}; valid: {RESIZE_MODES}")


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
            return add_gaussian_noise(out, sigma, gray, rng)
        scale = rng.uniform(*getattr(o, "poisson_scale_range" + suffix), size=n)
        gray = rng.random(n) < getattr(o, "gray_noise_prob" + suffix)
        return add_poisson_noise(out, scale, gray, rng)

    def _jpeg(self, out: torch.Tensor, rng: np.random.Generator, suffix: str) -> torch.Tensor:
        quality = rng.uniform(*getattr(self.options, "jpeg_range" + suffix), size=out.shape[0])
        return jpeg(out.clamp(0.0, 1.0), quality)

    def _final_sinc(self, rng: np.random.Generator, n: int) -> list[np.ndarray]:
        sizes = _odd_sizes(self.options.kernel_size_range)
        kernels = []
        for _ in range(n):
            if rng.random() < self.options.final_sinc_prob:
                size = int(_choice(rng, sizes))
                kernels.append(sinc_kernel(size, float(rng.uniform(math.pi / 3, math.pi))))
            else:
                kernels.append(pulse_kernel(1))
        return kernels

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        lr_h, lr_w = self._lr_size(hr)
        rng = _as_rng(rng)  # None is refused there, with a clear message
        o = self.options
        n = hr.shape[0]
        hr = hr.detach()

        # Stage 1
        out = blur(hr, self._kernels(rng, n, ""), clamp=False)
        scale, mode = sample_resize(rng, o.resize_prob, o.resize_range, o.resize_modes)
        out = random_resize(out, scale, mode=mode, clamp=False)
        out = self._noise(out, rng, "")
        out = self._jpeg(out, rng, "")

        # Stage 2
        if rng.random() < o.second_blur_prob:
            out = blur(out, self._kernels(rng, n, "2"), clamp=False)
        scale, mode = sample_resize(rng, o.resize_prob2, o.resize_range2, o.resize_modes)
        size = (max(1, int(lr_h * scale)), max(1, int(lr_w * scale)))
        out = random_resize(out, size=size, mode=mode, clamp=False)
        out = self._noise(out, rng, "2")

        # Final step: [resize + sinc] and JPEG, in random order
        sinc = self._final_sinc(rng, n)
        sinc_first = rng.random() < 0.5
        mode = str(_choice(rng, list(o.resize_modes)))
        if not sinc_first:
            out = self._jpeg(out, rng, "2")
        out = random_resize(out, size=(lr_h, lr_w), mode=mode, clamp=False)
        if any(k.shape[0] > 1 for k in sinc):
            out = blur(out, sinc, clamp=False)
        if sinc_first:
            out = self._jpeg(out, rng, "2")
        return (out.clamp(0.0, 1.0) * 255.0).round() / 255.0


# ------------------------------------------------------------------------------------------------
# Factory
# ------------------------------------------------------------------------------------------------

DEGRADATION_TYPES = ("bicubic", "realesrgan")


def build_degradation(cfg: Mapping[str, Any], *, scale: int | None = None) -> Degradation:
    """A degrader from a config dict: ``{"type": "bicubic"}`` or ``{"type": "realesrgan", **options}``
    (options: :class:`RealESRGANOptions`, e.g. ``data.train.degradation`` of a training YAML).

    The scale comes from ``scale=`` (the experiment's top-level scale) or a ``scale`` key in ``cfg``;
    both given and different -> ValueError; neither -> 4. Unknown type or option -> ValueError
    listing the valid ones.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"degradation config must be a mapping, got {type(cfg).__name__}")
    options = dict(cfg)
    kind = options.pop("type", None)
    cfg_scale = options.pop("scale", None)
    if scale is not None and cfg_scale is not None and cfg_scale != scale:
        raise ValueError(f"degradation scale {cfg_scale!r} differs from the model scale {scale!r}")
    final_scale = scale if scale is not None else cfg_scale if cfg_scale is not None else 4
    if kind == "bicubic":
        whole = options.pop("whole_image", False)
        if not isinstance(whole, bool):
            raise ValueError(f"whole_image: expected true or false, got {whole!r}")
        if options:
            raise ValueError(
                f"unknown bicubic degradation option(s) {', '.join(map(repr, sorted(options)))}; "
                "valid: type, scale, whole_image"
            )
        return BicubicDegradation(final_scale)
    if kind == "realesrgan":
        return RealESRGANDegradation(final_scale, **options)
    raise ValueError(f"unknown degradation type {kind!r}; valid: {', '.join(DEGRADATION_TYPES)}")
