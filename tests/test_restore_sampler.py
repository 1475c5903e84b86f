"""The restoration sampler against an analytic denoiser: Gaussian data, whose exact x0 predictor is known.

For x0 ~ N(mu, s^2) and x = x0 + sigma * n, E[x0 | x] = mu + s^2 / (s^2 + sigma^2) (x - mu), and the
probability-flow ODE carries x_T at sigma_T to mu + (x_T - mu) * s / sqrt(s^2 + sigma_T^2) at sigma 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from superres.restore.sampler import (
    SIGMA_MAX,
    ConstantSchedule,
    LinearSchedule,
    RestoreEDMSampler,
    discrete_sigmas,
    quantize_sigma,
    sampling_sigmas,
)

MU, S = 0.7, 1.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """Exact Gaussian denoiser that records what the sampler asked it."""

    def __init__(self, uncond_shift: float = 0.0) -> None:
        self.calls: list[tuple[torch.Tensor, float, float, torch.Tensor, torch.Tensor]] = []
        self.uncond_shift = uncond_shift

    def __call__(self, x, sigma, control_scale, window):
        cond = MU + S**2 / (S**2 + sigma**2) * (x - MU)
        uncond = cond + self.uncond_shift
        self.calls.append((x.clone(), sigma, control_scale, uncond, cond))
        return uncond, cond


def _run(sampler: RestoreEDMSampler, den: Recorder, n: int = 64, z_center=None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_t = sampler.initial_noise((1, 1, n, n), generator=g, dtype=torch.float64)
    steps: list[torch.Tensor] = []
    out = sampler.sample(
        den, x_t.clone(), z_center=z_center, generator=g, callback=lambda i, x, x0: steps.append(x.clone())
    )
    return x_t, out, steps


def _implied_x0(sampler: RestoreEDMSampler, den: Recorder, steps: list[torch.Tensor], i: int) -> torch.Tensor:
    """Invert the Euler update: the x0 the sampler actually used at step i."""
    x_in, sigma_hat = den.calls[i][0], den.calls[i][1]
    sigma_next = float(sampler.sigmas[i + 1])
    return x_in - (steps[i] - x_in) * sigma_hat / (sigma_next - sigma_hat)


def test_sigmas_are_the_sdxl_discrete_schedule():
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)
    table = np.sqrt((1 - ac) / ac)
    np.testing.assert_allclose(discrete_sigmas().numpy(), table, rtol=1e-12)
    assert abs(table[-1] - SIGMA_MAX) < 1e-4
    s = sampling_sigmas(50).numpy()
    idx = np.linspace(999, 0, 50, endpoint=False).astype(int)[::-1]
    np.testing.assert_allclose(s[:-1], np.flip(table[idx]), rtol=1e-13)
    assert s[-1] == 0 and len(s) == 51 and np.all(np.diff(s) < 0)
    assert quantize_sigma(s[3] * 1.0001, discrete_sigmas())[1] == pytest.approx(s[3])


def test_initial_noise_is_scaled_by_sqrt_one_plus_sigma0_squared():
    sampler = RestoreEDMSampler(steps=10)
    x = sampler.initial_noise((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    ref = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(x, ref * math.sqrt(1 + float(sampler.sigmas[0]) ** 2))


def test_churn_zero_lands_on_the_exact_ode_answer_and_converges():
    errors = []
    for steps in (50, 100, 200, 400):
        sampler = RestoreEDMSampler(steps=steps, s_churn=0.0)
        x_t, out, _ = _run(sampler, Recorder())
        sigma0 = float(sampler.sigmas[0])
        exact = MU + (x_t - MU) * S / math.sqrt(S**2 + sigma0**2)
        errors.append(float((out - exact).abs().max()))
    # Euler is first order: each doubling of the steps about halves the error, towards 0.
    assert all(b < 0.6 * a for a, b in itertools.pairwise(errors)), errors
    assert errors[0] < 0.15 and errors[-1] < 0.02, errors


@pytest.mark.parametrize("s_churn", [0.0, 5.0])
def test_point_mass_data_is_hit_exactly(s_churn):
    """With s = 0 the exact denoiser is the constant mu; the last step (to sigma 0) returns it."""
    sampler = RestoreEDMSampler(steps=10, s_churn=s_churn)
    x = sampler.initial_noise((1, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sampler.sample(
        lambda x, s, c, w: (torch.full_like(x, MU),) * 2, x, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(out, torch.full_like(out, MU), rtol=0, atol=1e-12)


def test_churn_adds_exactly_s_noise_times_the_documented_amount():
    sampler = RestoreEDMSampler(steps=8, s_churn=5.0, s_noise=1.003)
    den = Recorder()
    x_t, _, steps = _run(sampler, den, n=8, seed=7)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(sampler.initial_noise((1, 1, 8, 8), generator=g, dtype=torch.float64), x_t)
    gamma = min(5.0 / 8, 2**0.5 - 1)
    prev = x_t
    for i in range(sampler.steps):
        sigma = float(sampler.sigmas[i])
        sigma_hat = sigma * (1 + gamma)
        eps = torch.randn((1, 1, 8, 8), generator=g, dtype=torch.float64)
        expected = prev + eps * 1.003 * math.sqrt(sigma_hat**2 - sigma**2)
        torch.testing.assert_close(den.calls[i][0], expected, rtol=1e-12, atol=1e-12)
        prev = steps[i]


@pytest.mark.parametrize("tau", [4.0, 1.5])
def test_restoration_guidance_moves_x0_by_exactly_the_formula(tau):
    sampler = RestoreEDMSampler(steps=12, s_churn=5.0, restoration_scale=tau)
    z = torch.full((1, 1, 16, 16), -2.0, dtype=torch.float64)
    den = Recorder()
    _, _, steps = _run(sampler, den, n=16, z_center=z)
    guided_steps = 0
    for i in range(sampler.steps):
        sigma, sigma_next = float(sampler.sigmas[i]), float(sampler.sigmas[i + 1])
        raw = den.calls[i][4]
        expected = raw - (raw - z) * (sigma / SIGMA_MAX) ** tau if sigma_next > 0.05 else raw
        torch.testing.assert_close(_implied_x0(sampler, den, steps, i), expected, rtol=1e-9, atol=1e-9)
        guided_steps += sigma_next > 0.05
    assert 0 < guided_steps < sampler.steps  # both regimes were exercised


def test_restoration_guidance_off_for_negative_tau():
    sampler = RestoreEDMSampler(steps=8, restoration_scale=-1.0)
    den = Recorder()
    _, _, steps = _run(sampler, den, n=8, z_center=torch.full((1, 1, 8, 8), 5.0, dtype=torch.float64))
    for i in range(sampler.steps):
        torch.testing.assert_close(_implied_x0(sampler, den, steps, i), den.calls[i][4], rtol=1e-9, atol=1e-9)


def test_cfg_schedule_values_and_use_at_sigma_hat():
    cfg = LinearSchedule(start=1.0, end=4.0)  # upstream CLI: --cfg-start 1, --cfg 4
    assert cfg(SIGMA_MAX) == pytest.approx(1.0)
    assert cfg(0.0) == pytest.approx(4.0)
    assert cfg(SIGMA_MAX / 2) == pytest.approx(2.5)
    assert LinearSchedule(start=4.0, end=7.5)(SIGMA_MAX / 4) == pytest.approx(7.5 - 3.5 / 4)

    sampler = RestoreEDMSampler(steps=6, cfg=cfg, s_churn=5.0)
    den = Recorder(uncond_shift=0.3)
    _, _, steps = _run(sampler, den, n=8)
    gamma = min(5.0 / 6, 2**0.5 - 1)
    for i in range(sampler.steps):
        _, sigma_hat, _, u, c = den.calls[i]
        assert sigma_hat == pytest.approx(float(sampler.sigmas[i]) * (1 + gamma))
        g = (1.0 - 4.0) * sigma_hat / SIGMA_MAX + 4.0
        torch.testing.assert_close(_implied_x0(sampler, den, steps, i), u + g * (c - u), rtol=1e-9, atol=1e-9)


def test_control_scale_schedules_are_evaluated_at_sigma():
    den = Recorder()
    _run(RestoreEDMSampler(steps=5, control=ConstantSchedule(0.93)), den, n=4)
    assert [c[2] for c in den.calls] == [0.93] * 5

    sampler = RestoreEDMSampler(steps=5, control=LinearSchedule(start=0.0, end=1.0))
    den = Recorder()
    _run(sampler, den, n=4)
    for i, call in enumerate(den.calls):
        sigma = float(sampler.sigmas[i])
        assert call[2] == pytest.approx((sigma / SIGMA_MAX) * (0.0 - 1.0) + 1.0)
    assert den.calls[0][2] == pytest.approx(0.0, abs=1e-5)
