"""Blur kernels (numpy, float32, sum 1) and the explicit-generator random helpers every degradation uses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")

# ------------------------------------------------------------------------------------------------
# Random helpers
# ------------------------------------------------------------------------------------------------


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """The generator itself, or a fresh one seeded with an integer. ``None`` is an error."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"expected a numpy.random.Generator or an integer seed, got {type(rng).__name__} "
        "(global RNG state is never used, so the generator must be explicit)"
    )


def choose(rng: np.random.Generator, items: Sequence[Any], probs: Sequence[float] | None = None) -> Any:
    """One item of ``items``; ``probs`` are weights (normalised here, as ``random.choices`` does)."""
    if probs is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(probs, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def per_sample(value: Any, n: int, name: str, dtype: type = np.float64) -> np.ndarray:
    """A scalar or a length-``n`` sequence as an ``(n,)`` array."""
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    arr = arr.astype(dtype)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or {n} values (one per sample), got shape {arr.shape}")
    return arr


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


def odd_sizes(size_range: Sequence[int]) -> list[int]:
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
    rng = as_rng(rng)
    if len(kernel_list) != len(kernel_prob):
        raise ValueError(f"kernel_list has {len(kernel_list)} entries but kernel_prob {len(kernel_prob)}")
    size = int(choose(rng, odd_sizes(size_range)))
    if rng.random() < sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, float(rng.uniform(low, math.pi)))
    kind = choose(rng, list(kernel_list), kernel_prob)
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


