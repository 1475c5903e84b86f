"""Batched degradation ops on (N, C, H, W) float tensors: blur, noise, JPEG, resize.

They run on the tensor's device; every random draw takes an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from superres.train.degradations.kernels import as_rng, choose, pad_kernel, per_sample

RESIZE_MODES = ("area", "bilinear", "bicubic")


def check_batch(img: torch.Tensor, *, rgb: bool = False) -> None:
    if not isinstance(img, torch.Tensor) or img.ndim != 4 or not img.is_floating_point():
        desc = f"{type(img).__name__} {tuple(img.shape)}" if hasattr(img, "shape") else type(img).__name__
        raise ValueError(f"expected an (N, C, H, W) float tensor, got {desc}")
    if rgb and img.shape[1] != 3:
        raise ValueError(f"expected 3 (RGB) channels, got {img.shape[1]}")


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
    check_batch(img)
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


def _noise_amounts(
    img: torch.Tensor, amount: Any, name: str, gray: Any, rng: np.random.Generator | int
) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """The noise functions' checked arguments: per-sample amounts (>= 0), gray flags, generator."""
    check_batch(img, rgb=True)
    rng = as_rng(rng)
    n = img.shape[0]
    amounts = per_sample(amount, n, name)
    grays = per_sample(gray, n, "gray", bool)
    if (amounts < 0).any():
        raise ValueError(f"{name} must be >= 0, got {amounts}")
    return amounts, grays, rng


def _add_planes(img: torch.Tensor, planes: list[np.ndarray], clip: bool) -> torch.Tensor:
    """``img`` plus one (C, H, W) noise array per sample, clipped to [0, 1] if ``clip``."""
    out = img + torch.from_numpy(np.stack(planes)).to(device=img.device, dtype=img.dtype)
    return out.clamp(0.0, 1.0) if clip else out


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
    sigmas, grays, rng = _noise_amounts(img, sigma, "sigma", gray, rng)
    _, c, h, w = img.shape
    planes = []
    for s, g in zip(sigmas, grays, strict=True):
        noise = rng.standard_normal((1 if g else c, h, w), dtype=np.float32) * np.float32(s)
        planes.append(np.broadcast_to(noise, (c, h, w)))
    return _add_planes(img, planes, clip)


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
    scales, grays, rng = _noise_amounts(img, scale, "scale", gray, rng)
    n, c, h, w = img.shape
    src = img.detach().cpu().to(torch.float64).numpy()
    planes = []
    for i in range(n):
        x = np.tensordot(np.asarray(_LUMA), src[i], axes=1)[None] if grays[i] else src[i]
        x = np.clip(np.rint(x * 255.0), 0, 255) / 255.0
        levels = max(len(np.unique(x)), 1)
        levels = 2 ** math.ceil(math.log2(levels))
        noise = (rng.poisson(x * levels) / levels - x) * scales[i]
        planes.append(np.broadcast_to(noise, (c, h, w)))
    return _add_planes(img, planes, clip)


def jpeg(img: torch.Tensor, quality: float | Sequence[float] | np.ndarray) -> torch.Tensor:
    """Real JPEG round trip per sample (cv2/libjpeg, 4:2:0), ``quality`` 1..100 (rounded to an
    integer), one for all or one per sample. Input is clipped to [0, 1] and rounded to 8 bits first;
    the output is a multiple of 1/255. Not differentiable (this is data preparation)."""
    check_batch(img)
    n, c, _, _ = img.shape
    if c not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {c}")
    qualities = np.rint(per_sample(quality, n, "quality")).astype(int)
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
    check_batch(img)
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
    rng = as_rng(rng)
    kind = choose(rng, ("up", "down", "keep"), resize_prob)
    if kind == "up":
        scale = float(rng.uniform(1.0, resize_range[1]))
    elif kind == "down":
        scale = float(rng.uniform(resize_range[0], 1.0))
    else:
        scale = 1.0
    return scale, str(choose(rng, list(modes)))


