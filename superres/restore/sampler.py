"""SUPIR's restoration-guided EDM sampler, kept apart from the networks it drives.

The sampler only sees a :class:`Denoiser`: a callable that maps a noisy latent and a noise level to
the two x0 predictions (unconditional, conditional) of classifier-free guidance. That keeps the
numerics (schedule, churn, CFG ramp, restoration guidance, Euler step) testable against an
analytic denoiser, and lets tiled sampling reuse the very same step on latent windows.

Formulas (upstream ``RestoreEDMSampler`` and ``LinearCFG``; reference §2):

* sigmas: the 1000-step discrete SDXL schedule (scaled-linear betas), ``n`` of them picked as in
  ``LegacyDDPMDiscretization``, flipped to descending, then 0 appended;
* start: ``x_T = randn * sqrt(1 + sigma_0**2)`` (not ``sigma_0 * randn``);
* churn: ``gamma = min(s_churn / n, sqrt(2) - 1)``, ``sigma_hat = sigma (1 + gamma)``, fresh noise
  ``s_noise * eps * sqrt(sigma_hat**2 - sigma**2)``;
* CFG: ``g(sigma_hat) = (g_start - g_end) * sigma_hat / SIGMA_MAX + g_end``;
* control scale: constant, or ``(sigma / SIGMA_MAX) (start - end) + end``;
* restoration guidance: ``x0 <- x0 - (x0 - z_center) (sigma / SIGMA_MAX) ** tau_r`` while the next
  sigma > 0.05, and only when ``tau_r > 0`` (upstream's default -1 turns it off);
* Euler: ``x <- x + (x - x0) / sigma_hat * (sigma_next - sigma_hat)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SIGMA_MAX",
    "ConstantSchedule",
    "Denoiser",
    "LinearSchedule",
    "RestoreEDMSampler",
    "StepSampler",
    "Window",
    "discrete_sigmas",
    "quantize_sigma",
    "sampling_sigmas",
]

# Upstream hard-codes this literal (sigma_999 of the SDXL schedule, 14.6146...) in both the sampler
# and the guider; the same literal is used here so the schedules match upstream to the digit.
SIGMA_MAX = 14.6146
# Restoration guidance stops once the *next* sigma is at or below this.
GUIDANCE_MIN_NEXT_SIGMA = 0.05

# A latent window (y0, y1, x0, x1) in latent pixels; None means the whole latent.
Window = tuple[int, int, int, int]


def discrete_sigmas(num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """The SDXL training noise levels, ascending (float64: the quantisation below compares them)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()


def sampling_sigmas(steps: int, train_sigmas: Tensor | None = None) -> Tensor:
    """``steps`` + 1 descending sigmas ending in 0, picked like upstream's LegacyDDPMDiscretization."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    table = discrete_sigmas() if train_sigmas is None else train_sigmas
    n = len(table)
    # numpy's own float arithmetic and truncation: a hand-written formula picks different indices
    # for some step counts (99, 185, ...) through rounding at exact integers.
    idx = np.linspace(n - 1, 0, steps, endpoint=False).astype(np.int64)[::-1].copy()
    picked = table[torch.from_numpy(idx)].flip(0)
    return torch.cat([picked, picked.new_zeros(1)])


def quantize_sigma(sigma: float | Tensor, train_sigmas: Tensor) -> tuple[int, float]:
    """Nearest training sigma and its index: the eps network is conditioned on a discrete timestep."""
    s = float(sigma)
    index = int(torch.argmin((train_sigmas - s).abs()))
    return index, float(train_sigmas[index])


@dataclass(frozen=True)
class ConstantSchedule:
    """A guidance weight that does not depend on the noise level."""

    value: float

    def __call__(self, sigma: float) -> float:
        return self.value


@dataclass(frozen=True)
class LinearSchedule:
    """Linear in sigma: ``start`` at SIGMA_MAX, ``end`` at sigma 0 (upstream LinearCFG and control)."""

    start: float
    end: float

    def __call__(self, sigma: float) -> float:
        return (self.start - self.end) * sigma / SIGMA_MAX + self.end


Schedule = ConstantSchedule | LinearSchedule


class Denoiser(Protocol):
    """x0 predictions for CFG: ``(uncond, cond)``, each shaped like ``x``.

    ``window`` says which latent window ``x`` is (for tiled sampling: crop the control latent to
    it); ``None`` means the whole latent.
    """

    def __call__(
        self, x: Tensor, sigma: float, control_scale: float, window: Window | None
    ) -> tuple[Tensor, Tensor]: ...


StepCallback = Callable[[int, Tensor, Tensor], None]  # (step index, x after the step, guided x0)


class StepSampler:
    """The sampling loop, written once for the whole-latent and the tiled sampler: every step gets
    its churn noise for the whole latent (one draw from ``generator``), then runs :meth:`step`."""

    steps: int

    def churn_noise(self, i: int, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
        raise NotImplementedError

    def step(self, i: int, x: Tensor, denoise: Denoiser, z_center: Tensor | None, noise: Tensor | None
             ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def sample(
        self,
        denoise: Denoiser,
        x: Tensor,
        z_center: Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Run all steps from ``x`` (usually :meth:`RestoreEDMSampler.initial_noise`) down to sigma 0."""
        for i in range(self.steps):
            noise = self.churn_noise(i, x, generator)
            x, x0 = self.step(i, x, denoise, z_center, noise)
            if callback is not None:
                callback(i, x, x0)
        return x


@dataclass
class RestoreEDMSampler(StepSampler):
    """Euler EDM sampler with churn, linear CFG, control-scale schedule and restoration guidance."""

    steps: int = 50
    cfg: Schedule = LinearSchedule(start=1.0, end=4.0)
    control: Schedule = ConstantSchedule(1.0)
    restoration_scale: float = -1.0  # tau_r; <= 0 disables restoration guidance (upstream default)
    s_churn: float = 5.0
    s_noise: float = 1.01
    s_tmin: float = 0.0
    s_tmax: float = math.inf

    def __post_init__(self) -> None:
        self.sigmas = sampling_sigmas(self.steps)

    # -- pieces, public so that tiled sampling and tests use exactly the same arithmetic --

    def gamma(self, sigma: float) -> float:
        if self.s_tmin <= sigma <= self.s_tmax:
            return min(self.s_churn / self.steps, 2**0.5 - 1)
        return 0.0

    def initial_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Pure noise at sigma_0, scaled by ``sqrt(1 + sigma_0**2)`` as upstream."""
        noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return noise * math.sqrt(1.0 + float(self.sigmas[0]) ** 2)

    def guide(self, x0: Tensor, z_center: Tensor | None, sigma: float, sigma_next: float) -> Tensor:
        """Restoration guidance: pull x0 toward the LQ latent by ``(sigma / SIGMA_MAX) ** tau_r``."""
        if z_center is None or self.restoration_scale <= 0 or sigma_next <= GUIDANCE_MIN_NEXT_SIGMA:
            return x0
        k = (sigma / SIGMA_MAX) ** self.restoration_scale
        return x0 - (x0 - z_center) * k

    def step(
        self,
        i: int,
        x: Tensor,
        denoise: Denoiser,
        z_center: Tensor | None,
        noise: Tensor | None,
        window: Window | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One step on ``x`` (a whole latent or a window of it); returns (new x, guided x0).

        ``noise`` is the churn noise for this step (shaped like ``x``); it is ignored when gamma is 0.
        """
        sigma, sigma_next = float(self.sigmas[i]), float(self.sigmas[i + 1])
        gamma = self.gamma(sigma)
        sigma_hat = sigma * (1.0 + gamma)
        if gamma > 0:
            if noise is None:
                raise ValueError("churn is on (s_churn > 0) but no noise was given")
            x = x + noise * self.s_noise * math.sqrt(sigma_hat**2 - sigma**2)
        x0_u, x0_c = denoise(x, sigma_hat, self.control(sigma), window)
        g = self.cfg(sigma_hat)
        x0 = x0_u + g * (x0_c - x0_u)
        x0 = self.guide(x0, z_center, sigma, sigma_next)
        d = (x - x0) / sigma_hat
        return x + d * (sigma_next - sigma_hat), x0

    def churn_noise(self, i: int, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
        """Fresh noise shaped like ``x`` for step ``i``, or None when that step has no churn."""
        if self.gamma(float(self.sigmas[i])) == 0:
            return None
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
