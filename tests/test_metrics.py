"""superres.metrics: MATLAB-parity imresize, Y, PSNR/SSIM and the two evaluation protocols."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from superres.metrics import (
    bicubic_baseline,
    evaluate_pair,
    gray_to_y,
    imresize,
    modcrop,
    psnr,
    rgb_to_y,
    round_half_away,
    ssim,
)

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def set5(shared_data: Path) -> dict[str, np.ndarray]:
    return {name: _read_rgb(shared_data / "Set5" / "HR" / f"{name}.png") for name in SET5}


def _lr(shared_data: Path, name: str, s: int) -> np.ndarray:
    return _read_rgb(shared_data / "Set5" / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png")


# ---------------------------------------------------------------- unit properties, no data


def test_round_half_away_from_zero() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994, 2.4999999999999996])
    np.testing.assert_array_equal(round_half_away(x), [1, 2, 3, -1, -2, 0, 2])


def test_imresize_uint8_rounds_half_away_per_pass() -> None:
    # Rows at scale 1 are an exact identity, so the uint8 result is the float result rounded
    # once; x2 cubic weights are dyadic, so many outputs are exact .5 ties.
    a, b = np.meshgrid(np.arange(256), np.arange(0, 256, 5))
    img = np.stack([a.ravel(), b.ravel()], axis=1).astype(np.uint8)
    f = imresize(img.astype(np.float64), output_shape=(img.shape[0], 4))
    u = imresize(img, output_shape=(img.shape[0], 4))
    assert u.dtype == np.uint8
    ties = f - np.floor(f) == 0.5
    assert ties.sum() > 100
    np.testing.assert_array_equal(u, np.clip(np.floor(f + 0.5), 0, 255))
    assert (u != np.clip(np.round(f), 0, 255)).any()  # banker's rounding would differ


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("scale", [2, 3, 4, 0.5, 1 / 3])
def test_imresize_constant_stays_constant(dtype: type, scale: float) -> None:
    img = np.full((13, 17, 3), 137, dtype=dtype)
    out = imresize(img, scale)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, 137, rtol=0, atol=1e-4 if dtype == np.float32 else 1e-9)


def test_imresize_output_shape_is_ceil() -> None:
    img = np.zeros((7, 5), dtype=np.uint8)
    assert imresize(img, 0.5).shape == (4, 3)
    assert imresize(img, 1.5).shape == (11, 8)
    assert imresize(np.zeros((510, 511, 3), np.uint8), 1 / 3).shape == (170, 171, 3)
    assert imresize(img, output_shape=(3, 9)).shape == (3, 9)
    assert imresize(np.zeros((7, 5, 2)), output_shape=(3, 9)).shape == (3, 9, 2)
    assert imresize(np.zeros((4, 4), np.int16), 2).dtype == np.int16
    assert imresize(np.zeros((4, 4), np.float16), 2).dtype == np.float64
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 2, output_shape=(14, 10))


def test_imresize_symmetric_border_and_float_overshoot() -> None:
    # A step edge upscaled by cubic overshoots (float keeps it, uint8 saturates).
    img = np.zeros((8, 8))
    img[:, 4:] = 255
    up = imresize(img, 2)
    assert up.min() < 0 and up.max() > 255
    assert imresize(img.astype(np.uint8), 2).max() == 255
    # Symmetric padding: a constant-gradient border is not pulled towards zero.
    ramp = np.tile(np.arange(8.0), (8, 1))
    assert imresize(ramp, 0.5)[:, 0].min() > 0


def test_modcrop() -> None:
    img = np.zeros((512, 510, 3), np.uint8)
    assert modcrop(img, 3).shape == (510, 510, 3)
    assert modcrop(img, 4).shape == (512, 508, 3)
    assert modcrop(img[..., 0], 1).shape == (512, 510)


def test_rgb_to_y() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    y = rgb_to_y(img)
    np.testing.assert_allclose(y[0, :3], [16.0, 235.0, 16 + 65.481])
    assert y.dtype == np.float64
    y8 = rgb_to_y(img, as_uint8=True)
    assert y8.dtype == np.uint8
    np.testing.assert_array_equal(y8, round_half_away(y))
    np.testing.assert_allclose(gray_to_y(np.array([[0.0, 255.0]])), [[16.0, 235.0]])


def test_psnr_identical_is_inf() -> None:
    img = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert psnr(img, img) == math.inf
    assert psnr(img, img.astype(np.float64), y_channel=False, crop_border=2) == math.inf


def test_psnr_constant_offset_known_mse() -> None:
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + np.uint8(5)
    # RGB channels: MSE = 25.
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    # Y channel: the offset becomes 5 * 219 / 255.
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (5 * 219 / 255) ** 2), abs=1e-9)
    assert psnr(a, b, y_channel=False, max_value=1.0) == pytest.approx(10 * math.log10(1 / 25))


def test_ssim_identical_is_one_and_orders_degradation() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img, img, y_channel=False, crop_border=4) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 255)
    noisier = np.clip(img + rng.normal(0, 40, img.shape), 0, 255)
    assert 1 > ssim(img, noisy) > ssim(img, noisier) > 0


def test_shape_mismatch_and_bad_args_raise() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    for fn in (psnr, ssim):
        with pytest.raises(ValueError, match="shapes differ"):
            fn(a, a[:15])
        with pytest.raises(ValueError):
            fn(a, a, crop_border=8)
        with pytest.raises(ValueError, match="gray_mode"):
            fn(a, a, gray_mode="luma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a[..., 0], a[..., :1])
    with pytest.raises(ValueError, match="11x11"):
        ssim(a[:10, :10], a[:10, :10])


def test_gray_raw_vs_y_modes() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    raw = psnr(a, b)
    assert raw == psnr(a, b, gray_mode="raw") == psnr(a, b, y_channel=False)
    as_y = psnr(a, b, gray_mode="y")
    # Y = 16 + 219/255 * g shrinks every error by 219/255: +1.32 dB.
    assert as_y - raw == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)
    # "y" is what a 3-channel load of the gray image gives (BasicSR/KAIR).
    rgb_a, rgb_b = np.repeat(a[..., None], 3, 2), np.repeat(b[..., None], 3, 2)
    assert as_y == pytest.approx(psnr(rgb_a, rgb_b), abs=1e-9)
    assert ssim(a, b, gray_mode="y") == pytest.approx(ssim(rgb_a, rgb_b), abs=1e-12)
    assert ssim(a, b, gray_mode="y") != ssim(a, b, gray_mode="raw")
    assert psnr(a[..., None], b[..., None], gray_mode="y") == pytest.approx(as_y, abs=1e-12)


def test_evaluate_pair_crops_hr_top_left() -> None:
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    p, s = evaluate_pair(hr[:510, :510], hr, 3)
    assert p == math.inf and s == pytest.approx(1.0)
    with pytest.raises(ValueError):
        evaluate_pair(hr[:507, :507], hr, 3)  # one LR pixel short
    with pytest.raises(ValueError):
        evaluate_pair(hr[:509, :510], hr, 3)  # not a multiple of the scale


# ---------------------------------------------------------------- Set5 parity (shared data)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_imresize_bit_exact_vs_official_lr(shared_data: Path, set5: dict[str, np.ndarray], s: int) -> None:
    for name, hr in set5.items():
        lr = _lr(shared_data, name, s)
        mine = imresize(modcrop(hr, s), 1 / s)
        assert mine.shape == lr.shape, name
        assert np.array_equal(mine, lr), f"{name} x{s}: {(mine != lr).mean():.4%} pixels differ"


@pytest.mark.parametrize(
    ("s", "want_psnr", "want_ssim"), [(2, 33.66, 0.9299), (3, 30.39, 0.8682), (4, 28.42, 0.8104)]
)
def test_bicubic_legacy_protocol_matches_published(
    set5: dict[str, np.ndarray], s: int, want_psnr: float, want_ssim: float
) -> None:
    scores = np.array([bicubic_baseline(hr, s) for hr in set5.values()])
    p, q = scores.mean(axis=0)
    assert round(p, 2) == want_psnr and round(q, 4) == want_ssim, (p, q)


SET5_X4_MODERN = {
    "baby": (31.784, 0.8575),
    "bird": (30.181, 0.8736),
    "butterfly": (22.100, 0.7375),
    "head": (31.613, 0.7546),
    "woman": (26.467, 0.8325),
}


def test_bicubic_modern_protocol_per_image_x4(shared_data: Path, set5: dict[str, np.ndarray]) -> None:
    for name, hr in set5.items():
        up = imresize(_lr(shared_data, name, 4), 4)  # uint8 RGB, rounded per pass
        p, q = evaluate_pair(up, hr, 4)
        assert (round(p, 3), round(q, 4)) == SET5_X4_MODERN[name], (name, p, q)


@pytest.mark.parametrize(
    ("s", "want_psnr", "want_ssim"), [(2, 33.673, 0.9303), (3, 30.403, 0.8689), (4, 28.429, 0.8111)]
)
def test_bicubic_modern_protocol_means(
    shared_data: Path, set5: dict[str, np.ndarray], s: int, want_psnr: float, want_ssim: float
) -> None:
    # x3 checks the top-left HR crop: baby/butterfly/head/woman are not multiples of 3.
    scores = np.array([evaluate_pair(imresize(_lr(shared_data, n, s), s), hr, s) for n, hr in set5.items()])
    p, q = scores.mean(axis=0)
    assert round(p, 3) == want_psnr and round(q, 4) == want_ssim, (p, q)
