"""NIQE: the shipped pristine model, the GGD/AGGD fits, the features and the score's behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from superres.metrics import niqe, rgb_to_y
from superres.metrics.niqe import (
    MODEL_PATH,
    fit_aggd,
    fit_ggd,
    fit_pristine,
    load_pristine_model,
    niqe_features,
)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def photo(sample_path: Path) -> np.ndarray:
    return _read_rgb(sample_path)  # 200x300 RGB photograph


@pytest.fixture(scope="module")
def clean_score(photo: np.ndarray) -> float:
    return niqe(photo)


# ---- shipped model ----------------------------------------------------------------------


def test_shipped_model_shapes_and_metadata() -> None:
    mu, cov = load_pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))
    assert np.allclose(cov, cov.T, rtol=0, atol=1e-12)
    eig = np.linalg.eigvalsh(cov)
    assert eig.min() > 0, eig.min()
    assert load_pristine_model() is load_pristine_model()  # cached
    with np.load(MODEL_PATH, allow_pickle=False) as d:
        assert int(d["patch_size"]) == 96
        assert float(d["sharpness_threshold"]) == 0.75
        assert int(d["n_images"]) == len(d["images"]) == 200
        assert 0 < int(d["n_patches_kept"]) <= int(d["n_patches_total"])
        assert str(d["superres_version"])
    # Shape parameters of natural images: MSCN roughly Gaussian (~2-3.5), products peaky (< 1.5).
    assert 1.5 < mu[0] < 4 and 1.5 < mu[18] < 4
    assert all(0.3 < mu[k] < 1.5 for k in (2, 6, 10, 14, 20, 24, 28, 32))


def test_model_file_is_small() -> None:
    assert MODEL_PATH.stat().st_size < 64 * 1024


# ---- distribution fits --------------------------------------------------------------------


def _aggd_samples(rng: np.random.Generator, alpha: float, bl: float, br: float, n: int) -> np.ndarray:
    """AGGD draws: |x| = b * G^(1/alpha), G ~ Gamma(1/alpha); left with probability bl / (bl + br)."""
    mag = rng.gamma(1.0 / alpha, 1.0, n) ** (1.0 / alpha)
    left = rng.random(n) < bl / (bl + br)
    return np.where(left, -bl * mag, br * mag)


def test_ggd_fit_recovers_shape() -> None:
    rng = np.random.default_rng(0)
    alpha, var = fit_ggd(rng.normal(0, 3.0, 200_000))
    assert alpha == pytest.approx(2.0, abs=0.05) and var == pytest.approx(9.0, rel=0.02)
    alpha, var = fit_ggd(rng.laplace(0, 1.0, 200_000))
    assert alpha == pytest.approx(1.0, abs=0.05) and var == pytest.approx(2.0, rel=0.03)
    alpha, _ = fit_ggd(_aggd_samples(rng, 0.6, 1.0, 1.0, 200_000))
    assert alpha == pytest.approx(0.6, abs=0.03)


@pytest.mark.parametrize(("alpha", "bl", "br"), [(2.0, 1.0, 1.0), (1.0, 0.5, 1.5), (0.7, 2.0, 1.0)])
def test_aggd_fit_recovers_parameters(alpha: float, bl: float, br: float) -> None:
    rng = np.random.default_rng(1)
    a, mean, fbl, fbr = fit_aggd(_aggd_samples(rng, alpha, bl, br, 300_000))
    assert a == pytest.approx(alpha, rel=0.04)
    assert fbl == pytest.approx(bl, rel=0.03) and fbr == pytest.approx(br, rel=0.03)
    expected_mean = (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha)
    assert mean == pytest.approx(expected_mean, abs=0.03)


def test_aggd_fit_undefined_without_negative_values() -> None:
    assert all(math.isnan(v) for v in fit_aggd(np.abs(np.arange(1.0, 50.0))))


# ---- features -----------------------------------------------------------------------------


def _features_by_definition(plane: np.ndarray) -> np.ndarray:
    """One-patch-at-a-time features, written from the reference code with scalar fits."""
    from superres.metrics import imresize

    r = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(r * r) / (2 * (7 / 6) ** 2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()

    def imfilter(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, cv2.CV_64F, w2, borderType=cv2.BORDER_REPLICATE)

    h, w = plane.shape[0] // 96 * 96, plane.shape[1] // 96 * 96
    im = plane[:h, :w].astype(np.float64)
    per_scale = []
    for scale in (1, 2):
        mu = imfilter(im)
        sigma = np.sqrt(np.abs(imfilter(im * im) - mu * mu))
        mscn = (im - mu) / (sigma + 1)
        p = 96 // scale
        rows = []
        for i in range(0, mscn.shape[0], p):
            for j in range(0, mscn.shape[1], p):
                blk = mscn[i : i + p, j : j + p]
                a, _, bl, br = fit_aggd(blk)
                feat = [a, (bl + br) / 2]
                for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    feat.extend(fit_aggd(blk * np.roll(blk, shift, axis=(0, 1))))
                rows.append(feat)
        per_scale.append(np.array(rows))
        im = imresize(im, 0.5)
    return np.concatenate(per_scale, axis=1)


def test_features_match_per_patch_definition(photo: np.ndarray) -> None:
    plane = rgb_to_y(photo)[:200, :290]
    feats, sharpness = niqe_features(plane)
    assert feats.shape == (6, 36) and sharpness.shape == (6,)
    np.testing.assert_allclose(feats, _features_by_definition(plane), rtol=1e-9, atol=1e-12)


# ---- score --------------------------------------------------------------------------------


def test_niqe_deterministic_and_input_forms(photo: np.ndarray, clean_score: float) -> None:
    assert math.isfinite(clean_score) and clean_score > 0
    assert niqe(photo.copy()) == clean_score
    y = rgb_to_y(photo)
    assert niqe(y) == clean_score  # gray is used as is; RGB goes through the same Y
    assert niqe(y[..., None]) == clean_score
    mu, cov = load_pristine_model()
    assert niqe(photo, model=(mu, cov)) == clean_score
    assert niqe(photo, model=MODEL_PATH) == clean_score
    assert math.isfinite(niqe(photo, y_channel=False))
    assert math.isfinite(niqe(photo, crop_border=4))


def test_niqe_increases_under_blur(photo: np.ndarray, clean_score: float) -> None:
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert niqe(blurred) > 1.5 * clean_score


def test_niqe_increases_under_noise(photo: np.ndarray, clean_score: float) -> None:
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 25, photo.shape), 0, 255).astype(np.uint8)
    assert niqe(noisy) > 1.5 * clean_score


def test_niqe_increases_under_jpeg(photo: np.ndarray, clean_score: float) -> None:
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert ok
    jpeg = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert niqe(jpeg) > 1.5 * clean_score


@pytest.mark.parametrize("shape", [(95, 200), (200, 95, 3), (40, 40)])
def test_too_small_image(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(np.zeros(shape, dtype=np.uint8))


def test_too_small_after_crop_border(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"at least 96x96.*crop_border=60"):
        niqe(photo, crop_border=60)  # 200 - 120 = 80 rows left
    with pytest.raises(ValueError, match="crop_border"):
        niqe(photo, crop_border=-1)


def test_flat_image_has_no_features() -> None:
    with pytest.raises(ValueError, match="no patch"):
        niqe(np.full((96, 96), 128.0))


# ---- fitting ------------------------------------------------------------------------------


def test_fit_pristine_on_three_images(shared_data: Path) -> None:
    paths = sorted((shared_data / "train" / "BSD200").glob("*.jpg"))[:3]
    assert len(paths) == 3
    mu, cov = fit_pristine(_read_rgb(p) for p in paths)
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))
    assert np.allclose(cov, cov.T)


def test_fit_pristine_without_shared_data(photo: np.ndarray) -> None:
    images = [photo, photo[:, ::-1], photo[::-1]]
    mu, cov = fit_pristine(images)
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))
    # A model fitted on the photo itself scores it better than the blurred photo.
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert niqe(photo, model=(mu, cov)) < niqe(blurred, model=(mu, cov))
    with pytest.raises(ValueError, match="at least one image"):
        fit_pristine([])
