"""superres.train.degradations: kernels, batched ops, the two degraders and the factory."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from superres.metrics import imresize
from superres.train.degradations import (
    BicubicDegradation,
    RealESRGANDegradation,
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    build_degradation,
    gaussian_kernel,
    generalized_gaussian_kernel,
    jpeg,
    pad_kernel,
    plateau_kernel,
    pulse_kernel,
    random_kernel,
    random_resize,
    sample_resize,
    sinc_kernel,
)
from superres.train.degradations import kernels as D


def _batch(seed: int = 0, n: int = 2, h: int = 64, w: int = 64) -> torch.Tensor:
    """A textured RGB batch in [0, 1] (on the 8-bit grid, like decoded images)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    imgs = []
    for _ in range(n):
        base = 0.5 + 0.25 * np.sin(x / rng.uniform(2, 6) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(2, 6))
        tint = 0.1 * np.stack([np.sin(x / 20 + k) for k in range(3)])
        grain = rng.normal(0, 0.03, (1, h, w))  # luminance grain: chroma stays smooth (JPEG 4:2:0)
        img = np.clip(base[None] + tint + grain, 0, 1)
        imgs.append(np.round(img * 255) / 255)
    return torch.from_numpy(np.stack(imgs)).float()


def _gray_batch(seed: int = 0, n: int = 2, h: int = 32, w: int = 32) -> torch.Tensor:
    """Equal channels, values away from 0 and 1."""
    rng = np.random.default_rng(seed)
    g = np.round(rng.uniform(0.3, 0.7, (n, 1, h, w)) * 255) / 255
    return torch.from_numpy(np.repeat(g, 3, axis=1)).float()


# ------------------------------------------------------------------------------------------------
# Kernels
# ------------------------------------------------------------------------------------------------


def test_bessel_j1_matches_power_series() -> None:
    x = np.linspace(0.0, 15.0, 61)
    series = sum(
        (-1) ** m / (math.factorial(m) * math.factorial(m + 1)) * (x / 2) ** (2 * m + 1) for m in range(60)
    )
    np.testing.assert_allclose(D._bessel_j1(x), series, atol=1e-9)
    assert float(D._bessel_j1(np.array(1.0))) == pytest.approx(0.44005058574493355, abs=1e-14)
    assert abs(D._bessel_j1(np.array(3.8317059702075125))) < 1e-13  # first zero


KERNELS = {
    "iso": lambda k: gaussian_kernel(k, 2.0),
    "aniso": lambda k: gaussian_kernel(k, 2.5, 1.0, 0.6),
    "generalized_iso": lambda k: generalized_gaussian_kernel(k, 2.0, beta=0.7),
    "generalized_aniso": lambda k: generalized_gaussian_kernel(k, 2.5, 1.2, -1.0, beta=3.0),
    "plateau_iso": lambda k: plateau_kernel(k, 1.5, beta=1.5),
    "plateau_aniso": lambda k: plateau_kernel(k, 2.5, 1.0, 2.0, beta=1.2),
    "sinc": lambda k: sinc_kernel(k, math.pi / 3),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("size", [7, 13, 21])
def test_kernel_sum_size_symmetry(name: str, size: int) -> None:
    k = KERNELS[name](size)
    assert k.dtype == np.float32 and k.shape == (size, size)
    assert float(k.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    assert k[size // 2, size // 2] == k.max()  # peak at the centre
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)  # point symmetry: every kernel
    if name == "sinc" or name.endswith("_iso") or name == "iso":  # rotational symmetry
        np.testing.assert_allclose(k, k.T, atol=1e-7)
        np.testing.assert_allclose(k, k[::-1], atol=1e-7)
        np.testing.assert_allclose(k, k[:, ::-1], atol=1e-7)
    if name != "sinc":
        assert (k >= 0).all()


def test_gaussian_matches_closed_form() -> None:
    size, sx, sy, theta = 15, 2.0, 1.0, 0.4
    ax = np.arange(size) - size // 2
    x, y = np.meshgrid(ax, ax)  # x along columns
    u = math.cos(theta) * x + math.sin(theta) * y  # coordinates in the rotated frame
    v = -math.sin(theta) * x + math.cos(theta) * y
    ref = np.exp(-(u**2) / (2 * sx**2) - v**2 / (2 * sy**2))
    np.testing.assert_allclose(gaussian_kernel(size, sx, sy, theta), ref / ref.sum(), atol=1e-7)
    iso = np.exp(-(x**2 + y**2) / (2 * 1.3**2))
    np.testing.assert_allclose(gaussian_kernel(size, 1.3), iso / iso.sum(), atol=1e-7)


def test_anisotropic_orientation_and_beta_one() -> None:
    k0 = gaussian_kernel(21, 3.0, 1.0, 0.0)
    var_x = (k0.sum(axis=0) * (np.arange(21) - 10) ** 2).sum()  # spread along columns (width)
    var_y = (k0.sum(axis=1) * (np.arange(21) - 10) ** 2).sum()
    assert var_x > 4 * var_y
    np.testing.assert_allclose(gaussian_kernel(21, 3.0, 1.0, math.pi / 2), k0.T, atol=1e-7)
    np.testing.assert_allclose(generalized_gaussian_kernel(13, 2.0, 1.5, 0.3, beta=1.0),
                               gaussian_kernel(13, 2.0, 1.5, 0.3), atol=1e-7)


def test_sinc_frequency_response_is_low_pass() -> None:
    cutoff = math.pi / 2
    k = sinc_kernel(21, cutoff).astype(np.float64)
    spectrum = np.abs(np.fft.fft2(k, s=(256, 256)))
    f = np.fft.fftfreq(256) * 2 * np.pi  # radians per sample
    omega = np.hypot(*np.meshgrid(f, f))
    assert spectrum[0, 0] == pytest.approx(1.0, abs=1e-5)
    passband = spectrum[omega < 0.8 * cutoff]  # a truncated sinc ripples (Gibbs), hence the margins
    assert passband.min() > 0.8 and passband.max() < 1.2 and abs(passband.mean() - 1) < 0.1
    assert spectrum[omega > 1.5 * cutoff].max() < 0.1
    assert spectrum[omega > 1.5 * cutoff].mean() < 0.02
    assert (k < 0).any()  # ringing lobes


def test_pad_and_pulse() -> None:
    k = gaussian_kernel(7, 1.0)
    p = pad_kernel(k, 21)
    assert p.shape == (21, 21) and p[7:14, 7:14].tolist() == k.tolist() and p.sum() == pytest.approx(1)
    assert sinc_kernel(9, 1.0, pad_to=21).shape == (21, 21)
    assert pulse_kernel(5).sum() == 1 and pulse_kernel(5)[2, 2] == 1
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(8, 1.0)
    with pytest.raises(ValueError):
        pad_kernel(k, 5)


def test_random_kernel_properties_and_seeding() -> None:
    sizes = set()
    for seed in range(40):
        k = random_kernel(np.random.default_rng(seed))
        assert k.dtype == np.float32 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert 7 <= k.shape[0] <= 21
        assert float(k.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
        np.testing.assert_array_equal(k, random_kernel(np.random.default_rng(seed)))
        sizes.add(k.shape[0])
    assert len(sizes) >= 5
    one, two = random_kernel(np.random.default_rng(1)), random_kernel(np.random.default_rng(2))
    assert not np.array_equal(one, two)
    sinc = random_kernel(np.random.default_rng(3), sinc_prob=1.0)
    assert (sinc < 0).any()
    iso = random_kernel(np.random.default_rng(4), kernel_list=["iso"], kernel_prob=[1.0], sinc_prob=0.0)
    np.testing.assert_allclose(iso, iso.T, atol=1e-7)
    fixed = random_kernel(5, size_range=(11, 11))  # an int seed works too
    assert fixed.shape == (11, 11)
    with pytest.raises(ValueError, match="unknown kernel type"):
        random_kernel(np.random.default_rng(0), kernel_list=["box"], kernel_prob=[1.0], sinc_prob=0.0)
    with pytest.raises(TypeError, match="Generator"):
        random_kernel(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Ops
# ------------------------------------------------------------------------------------------------


def test_blur_shape_range_identity_and_reference() -> None:
    img = _batch()
    assert torch.equal(blur(img, pulse_kernel(7)), img)
    k = gaussian_kernel(9, 1.5)
    out = blur(img, k)
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1
    ref = cv2.filter2D(img[0, 1].numpy(), -1, k, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(out[0, 1].numpy(), ref, atol=1e-5)
    # per-sample kernels of different sizes
    mixed = blur(img, [pulse_kernel(1), k])
    assert torch.equal(mixed[0], img[0])
    torch.testing.assert_close(mixed[1], out[1], atol=1e-6, rtol=0)
    sinc = blur(img, sinc_kernel(21, 1.0))
    assert sinc.min() >= 0 and sinc.max() <= 1
    # images smaller than the kernel radius still work (reflection repeats)
    tiny = blur(img[:, :, :5, :4], gaussian_kernel(21, 3.0))
    assert tiny.shape == (2, 3, 5, 4) and torch.isfinite(tiny).all()
    const = torch.full((1, 3, 8, 8), 0.25)
    torch.testing.assert_close(blur(const, random_kernel(np.random.default_rng(0))), const)


@pytest.mark.parametrize("op", [add_gaussian_noise, add_poisson_noise])
def test_noise_zero_is_identity_and_seeding(op) -> None:
    img = _batch()
    assert torch.equal(op(img, 0.0, False, np.random.default_rng(0)), img)
    assert torch.equal(op(img, [0.0, 0.0], [True, False], np.random.default_rng(0)), img)
    strength = 0.05 if op is add_gaussian_noise else 1.0
    a = op(img, strength, [False, True], np.random.default_rng(7))
    b = op(img, strength, [False, True], np.random.default_rng(7))
    c = op(img, strength, [False, True], np.random.default_rng(8))
    assert a.shape == img.shape and a.dtype == img.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, img)


@pytest.mark.parametrize("op", [add_gaussian_noise, add_poisson_noise])
def test_gray_noise_is_equal_in_all_channels(op) -> None:
    img = _gray_batch()
    strength = 0.05 if op is add_gaussian_noise else 2.0
    out = op(img, strength, [True, False], np.random.default_rng(1))
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 0], out[0, 2])
    assert not torch.equal(out[0], img[0])
    assert not torch.equal(out[1, 0], out[1, 1])  # colour noise differs between channels


def test_gaussian_noise_strength() -> None:
    img = torch.full((2, 3, 64, 64), 0.5)
    out = add_gaussian_noise(img, [0.02, 0.06], False, np.random.default_rng(0))
    assert (out[0] - 0.5).std().item() == pytest.approx(0.02, rel=0.05)
    assert (out[1] - 0.5).std().item() == pytest.approx(0.06, rel=0.05)
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(img, [0.1, 0.1, 0.1], False, np.random.default_rng(0))


def test_jpeg_quality() -> None:
    img = _batch()
    hi, lo = jpeg(img, 100), jpeg(img, 10)
    for out in (hi, lo):
        assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1
        torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)
    err_hi = (hi - img).abs().mean().item()
    err_lo = (lo - img).abs().mean().item()
    assert err_hi < 1.5 / 255
    assert err_lo > 4 * err_hi and err_lo > 3 / 255
    per_sample = jpeg(img, [100, 10])
    assert torch.equal(per_sample[0], hi[0]) and torch.equal(per_sample[1], lo[1])
    assert torch.equal(jpeg(img, 50), jpeg(img, 50))
    with pytest.raises(ValueError, match="quality"):
        jpeg(img, 0)


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_shape_and_range(mode: str) -> None:
    img = _batch()
    assert random_resize(img, 0.5, mode=mode).shape == (2, 3, 32, 32)
    assert random_resize(img, 1.37, mode=mode).shape == (2, 3, 87, 87)
    out = random_resize(img, size=(20, 30), mode=mode)
    assert out.shape == (2, 3, 20, 30) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(random_resize(img, 1.0, mode=mode), img)
    assert random_resize(img, 0.001, mode=mode).shape == (2, 3, 1, 1)
    with pytest.raises(ValueError, match="mode"):
        random_resize(img, 0.5, mode="nearest")


def test_sample_resize_seeding() -> None:
    draws = [sample_resize(np.random.default_rng(s)) for s in range(50)]
    assert draws == [sample_resize(np.random.default_rng(s)) for s in range(50)]
    assert {m for _, m in draws} == {"area", "bilinear", "bicubic"}
    assert all(0.15 <= s <= 1.5 for s, _ in draws) and any(s > 1 for s, _ in draws)
    assert any(s < 1 for s, _ in draws) and any(s == 1 for s, _ in draws)


# ------------------------------------------------------------------------------------------------
# Degraders
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_degradation_is_matlab_imresize_on_uint8(scale: int) -> None:
    rng = np.random.default_rng(scale)
    u8 = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    u8[1] = (_batch(1, 1, 48, 48)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    hr = torch.from_numpy(u8 / np.float32(255)).permute(0, 3, 1, 2).float()
    lr = BicubicDegradation(scale)(hr)
    assert lr.shape == (2, 3, 48 // scale, 48 // scale) and lr.dtype == torch.float32
    for i in range(2):
        expected = imresize(u8[i], 1 / scale)
        assert expected.dtype == np.uint8
        got = lr[i].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(got, expected / np.float32(255))
    # HR off the 8-bit grid is rounded to uint8 first, like the benchmark LR images
    assert torch.equal(BicubicDegradation(scale)(hr + 0.3 / 255, np.random.default_rng(0)), lr)


def test_bicubic_rejects_sizes_not_divisible() -> None:
    with pytest.raises(ValueError, match="multiple"):
        BicubicDegradation(3)(_batch(h=64, w=64))
    with pytest.raises(ValueError, match="scale"):
        BicubicDegradation(0)


PIPELINE_VARIANTS = [
    {},
    {"gaussian_noise_prob": 0.0, "gaussian_noise_prob2": 0.0, "gray_noise_prob": 1.0},  # Poisson, gray
    {"second_blur_prob": 0.0, "final_sinc_prob": 0.0, "resize_prob": [1, 0, 0]},
    {"sinc_prob": 1.0, "sinc_prob2": 1.0, "final_sinc_prob": 1.0, "resize_prob2": [0, 1, 0],
     "resize_modes": ["bicubic"]},
]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_realesrgan_shape_range_and_seeding(scale: int) -> None:
    hr = _batch(h=48, w=48)
    deg = RealESRGANDegradation(scale)
    for seed in (0, 1):
        a = deg(hr, np.random.default_rng(seed))
        assert a.shape == (2, 3, 48 // scale, 48 // scale) and a.dtype == hr.dtype
        assert a.min() >= 0 and a.max() <= 1
        torch.testing.assert_close(a * 255, (a * 255).round(), atol=1e-4, rtol=0)
        assert torch.equal(a, deg(hr, np.random.default_rng(seed)))
        assert torch.equal(a, deg(hr, seed))  # an int seed is the same as default_rng(seed)
    assert not torch.equal(deg(hr, np.random.default_rng(0)), deg(hr, np.random.default_rng(1)))


@pytest.mark.parametrize("variant", range(len(PIPELINE_VARIANTS)))
def test_realesrgan_variants_are_reproducible(variant: int) -> None:
    hr = _batch(seed=3)
    before = hr.clone()
    deg = RealESRGANDegradation(4, **PIPELINE_VARIANTS[variant])
    outs = [deg(hr, np.random.default_rng(s)) for s in (11, 11, 12)]
    assert outs[0].shape == (2, 3, 16, 16)
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert torch.equal(hr, before)  # input untouched
    bicubic = BicubicDegradation(4)(hr)
    assert not torch.equal(outs[0], bicubic)


def test_realesrgan_needs_an_explicit_generator() -> None:
    with pytest.raises(TypeError, match="Generator"):
        RealESRGANDegradation(2)(_batch())


def test_realesrgan_options_and_errors() -> None:
    deg = RealESRGANDegradation(2, blur_sigma=[0.5, 1.0], jpeg_range=[60, 90])
    assert deg.options.blur_sigma == (0.5, 1.0) and deg.options.jpeg_range == (60.0, 90.0)
    assert deg.options.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # published default
    assert "blur_sigma=(0.5, 1.0)" in repr(deg)
    with pytest.raises(ValueError, match=r"'blur_sigmaa'.*valid: .*blur_sigma"):
        RealESRGANDegradation(2, blur_sigmaa=[0.5, 1.0])
    with pytest.raises(ValueError, match="jpeg_range"):
        RealESRGANDegradation(2, jpeg_range=[0, 120])
    with pytest.raises(ValueError, match="noise_range"):
        RealESRGANDegradation(2, noise_range=5)
    with pytest.raises(ValueError, match="kernel_list"):
        RealESRGANDegradation(2, kernel_list=["iso", "box"], kernel_prob=[0.5, 0.5])
    with pytest.raises(ValueError, match="gray_noise_prob"):
        RealESRGANDegradation(2, gray_noise_prob=1.5)


def test_build_degradation() -> None:
    bic = build_degradation({"type": "bicubic"}, scale=3)
    assert isinstance(bic, BicubicDegradation) and bic.scale == 3
    assert build_degradation({"type": "bicubic"}).scale == 4
    real = build_degradation({"type": "realesrgan", "scale": 2, "second_blur_prob": 0.5})
    assert isinstance(real, RealESRGANDegradation) and real.scale == 2
    assert real.options.second_blur_prob == 0.5
    with pytest.raises(ValueError, match=r"unknown degradation type 'bilinear'; valid: bicubic, realesrgan"):
        build_degradation({"type": "bilinear"})
    with pytest.raises(ValueError, match="valid: bicubic, realesrgan"):
        build_degradation({})
    with pytest.raises(ValueError, match=r"'sigma'.*valid: type, scale"):
        build_degradation({"type": "bicubic", "sigma": 1})
    with pytest.raises(ValueError, match=r"'jpeg_quality'.*valid: .*jpeg_range"):
        build_degradation({"type": "realesrgan", "jpeg_quality": 50})
    with pytest.raises(ValueError, match="differs"):
        build_degradation({"type": "bicubic", "scale": 2}, scale=4)
