"""NIQE, the "completely blind" no-reference quality index (Mittal, Soundararajan, Bovik 2013).

A natural-scene-statistics model: the test image's patch features are compared with a
multivariate Gaussian fitted to patches of pristine natural images; lower is better.

Features, as in the authors' reference implementation (``computefeature.m``):

* the image (gray / Y, float on the 0..255 scale) is cropped to a multiple of the patch
  size (96), then two scales: the image and ``imresize(image, 0.5)`` (MATLAB bicubic,
  :func:`superres.metrics.resize.imresize`), patches 96x96 and 48x48 (non-overlapping);
* MSCN coefficients ``(I - mu) / (sigma + 1)``, ``mu``/``sigma`` local mean/deviation
  with the normalised 7x7 Gaussian window (sigma 7/6), replicate borders;
* per patch, 18 features: an AGGD moment-matching fit of the MSCN coefficients gives
  (shape, (left scale + right scale) / 2) -- the paper calls this the GGD shape and
  spread; for a symmetric distribution the two agree -- then for each of the pairwise
  products with the horizontal, vertical, main- and anti-diagonal neighbour (taken
  with a circular shift inside the patch, as the reference code does) an AGGD fit:
  (shape, mean, left scale, right scale);
* 2 scales x 18 = 36 features per patch (scale 1 first).

Shape parameters are found by the reference code's lookup: the grid 0.2:0.001:10, the
entry whose moment ratio is nearest to the sample's. Patches whose fit is undefined
(e.g. a flat patch, all-zero MSCN) give NaN features and are left out (``nanmean`` /
``nancov`` in MATLAB; here whole rows are dropped).

The pristine model is fitted by superres (``benchmarks/fit_niqe.py``, BSD200 training
photographs, Y channel) and shipped as ``metrics/data/niqe_pristine_superres.npz``.
Scores are therefore *not* MATLAB ``niqe`` figures with its built-in model (which was
fitted on other images, on ``rgb2gray``); see docs/metrics.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from superres.metrics.colour import rgb_to_y
from superres.metrics.resize import imresize

PATCH_SIZE = 96
SHARPNESS_THRESHOLD = 0.75
N_FEATURES = 36
MODEL_PATH = Path(__file__).resolve().parent / "data" / "niqe_pristine_superres.npz"

_WIN_RADIUS = 3  # 7x7 window
_WIN_SIGMA = 7 / 6
_C = 1.0
# Neighbour offsets as MATLAB circshift shifts (rows, cols): H, V, D1 (main diagonal), D2.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


# --------------------------------------------------------------------------------------
# Moment-matching fits
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _shape_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid 0.2:0.001:10 and Gamma(1/a), Gamma(2/a), Gamma(3/a), r(a) = G(2/a)^2 / (G(1/a) G(3/a))."""
    alpha = np.round(0.2 + 0.001 * np.arange(9801), 3)
    g1 = np.array([math.gamma(1.0 / a) for a in alpha])
    g2 = np.array([math.gamma(2.0 / a) for a in alpha])
    g3 = np.array([math.gamma(3.0 / a) for a in alpha])
    ratio = g2 * g2 / (g1 * g3)  # E[|x|]^2 / E[x^2] of a GGD; increasing in alpha
    return alpha, g1, g2, g3, ratio


def _nearest_index(values: np.ndarray) -> np.ndarray:
    """Index of the grid ratio nearest to each value (first one on ties, as MATLAB ``min``).

    NaN values give index -1.
    """
    ratio = _shape_table()[4]
    v = np.asarray(values, dtype=np.float64)
    hi = np.clip(np.searchsorted(ratio, v), 1, ratio.size - 1)
    lo = hi - 1
    pick_hi = (v - ratio[hi]) ** 2 < (v - ratio[lo]) ** 2
    idx = np.where(pick_hi, hi, lo)
    return np.where(np.isfinite(v), idx, -1)


def _aggd_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of ``x`` (N, M): shape, mean, left scale, right scale (``estimateaggdparam``)."""
    alpha_grid, g1, g2, g3, _ = _shape_table()
    x = np.asarray(x, dtype=np.float64)
    sq = x * x
    neg, pos = x < 0, x > 0
    n_neg, n_pos = neg.sum(axis=1), pos.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt(np.where(neg, sq, 0.0).sum(axis=1) / n_neg)
        right_std = np.sqrt(np.where(pos, sq, 0.0).sum(axis=1) / n_pos)
        gamma_hat = left_std / right_std
        r_hat = np.abs(x).mean(axis=1) ** 2 / sq.mean(axis=1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    idx = _nearest_index(r_norm)
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    nan = np.full(x.shape[0], np.nan)
    alpha = np.where(ok, alpha_grid[safe], nan)
    scale = np.sqrt(g1[safe] / g3[safe])
    beta_l = np.where(ok, left_std * scale, nan)
    beta_r = np.where(ok, right_std * scale, nan)
    mean = np.where(ok, (beta_r - beta_l) * g2[safe] / g1[safe], nan)
    return alpha, mean, beta_l, beta_r


def fit_aggd(samples: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric GGD moment-matching fit: ``(shape, mean, left scale, right scale)``.

    The density is ``alpha / ((bl + br) G(1/alpha)) exp(-(|x| / b)^alpha)`` with ``b = bl``
    for x < 0 and ``br`` for x > 0; ``mean = (br - bl) G(2/alpha) / G(1/alpha)``. NaN where
    the fit is undefined (no negative or no positive sample).
    """
    flat = np.asarray(samples, dtype=np.float64).reshape(1, -1)
    alpha, mean, beta_l, beta_r = _aggd_rows(flat)
    return float(alpha[0]), float(mean[0]), float(beta_l[0]), float(beta_r[0])


def fit_ggd(samples: np.ndarray) -> tuple[float, float]:
    """Zero-mean GGD moment-matching fit: ``(shape, variance)``.

    Shape from the grid 0.2:0.001:10 by ``E[|x|]^2 / E[x^2]`` (2 for a Gaussian, 1 for a
    Laplacian); variance = ``E[x^2]``.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    var = float(np.mean(x * x))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = float(np.mean(np.abs(x))) ** 2 / var
    idx = int(_nearest_index(np.array([rho]))[0])
    alpha = float(_shape_table()[0][idx]) if idx >= 0 else math.nan
    return alpha, var


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _window_1d() -> np.ndarray:
    """1-D factor of ``fspecial('gaussian', 7, 7/6)`` normalised (the 2-D window is its outer product)."""
    r = np.arange(-_WIN_RADIUS, _WIN_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(r * r) / (2 * _WIN_SIGMA**2))
    return g / g.sum()


def _filter_replicate(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, window, 'replicate')``, separable."""
    g = _window_1d()
    n = g.size
    h, w = x.shape
    p = np.pad(x, _WIN_RADIUS, mode="edge")
    rows = sum(g[k] * p[k : k + h] for k in range(n))
    return sum(g[k] * rows[:, k : k + w] for k in range(n))


def _mscn(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients and the local deviation map ``sigma``."""
    mu = _filter_replicate(img)
    sigma = np.sqrt(np.abs(_filter_replicate(img * img) - mu * mu))
    return (img - mu) / (sigma + _C), sigma


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` blocks (N, size, size), row-major block order."""
    nh, nw = x.shape[0] // size, x.shape[1] // size
    b = x[: nh * size, : nw * size].reshape(nh, size, nw, size)
    return b.transpose(0, 2, 1, 3).reshape(nh * nw, size, size)


def _patch_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """18 features per ``size`` x ``size`` patch of an MSCN map: (N, 18)."""
    blocks = _blocks(mscn, size)
    n = blocks.shape[0]
    alpha, _, beta_l, beta_r = _aggd_rows(blocks.reshape(n, -1))
    cols = [alpha, (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))  # circshift within the patch
        cols.extend(_aggd_rows(pair.reshape(n, -1)))
    return np.stack(cols, axis=1)


def _to_plane(img: np.ndarray, y_channel: bool) -> np.ndarray:
    """HxW float64 plane on the 0..255 scale: Y of RGB (or ``rgb2gray`` with y_channel=False)."""
    x = np.asarray(img)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        return x.astype(np.float64)
    if x.ndim == 3 and x.shape[2] == 3:
        if y_channel:
            return rgb_to_y(x)
        # MATLAB rgb2gray (what MATLAB's niqe does with RGB input).
        r, g, b = (x[..., k].astype(np.float64) for k in range(3))
        return 0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b
    raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {x.shape}")


def _check_size(shape: tuple[int, ...], what: str) -> None:
    if shape[0] < PATCH_SIZE or shape[1] < PATCH_SIZE:
        raise ValueError(
            f"NIQE needs an image of at least {PATCH_SIZE}x{PATCH_SIZE} pixels (one {PATCH_SIZE}x"
            f"{PATCH_SIZE} patch at scale 1, {PATCH_SIZE // 2}x{PATCH_SIZE // 2} at scale 2); "
            f"got {shape[0]}x{shape[1]}{what}"
        )


def niqe_features(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 36) of every 96x96 patch of a gray plane, and each patch's sharpness (N,).

    ``plane``: HxW float on the 0..255 scale, at least 96x96. Sharpness is the patch mean of
    the local deviation map ``sigma`` at scale 1 (the paper's delta(b), ``computemean``).
    """
    x = np.asarray(plane, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an HxW plane, got shape {x.shape}")
    _check_size(x.shape, "")
    x = x[: x.shape[0] // PATCH_SIZE * PATCH_SIZE, : x.shape[1] // PATCH_SIZE * PATCH_SIZE]
    feats = []
    sharpness = np.empty(0)
    for scale in (1, 2):
        mscn, sigma = _mscn(x)
        size = PATCH_SIZE // scale
        feats.append(_patch_features(mscn, size))
        if scale == 1:
            sharpness = _blocks(sigma, size).mean(axis=(1, 2))
            x = imresize(x, 0.5)
    return np.concatenate(feats, axis=1), sharpness


def pristine_patch_features(
    img: np.ndarray, *, y_channel: bool = True, threshold: float = SHARPNESS_THRESHOLD
) -> tuple[np.ndarray, int]:
    """Features of the patches of one pristine image kept for the model, and its patch count.

    Kept: sharpness > ``threshold`` x the image's largest patch sharpness (``estimatemodelparam``).
    """
    feats, sharp = niqe_features(_to_plane(img, y_channel))
    return feats[sharp > threshold * sharp.max()], feats.shape[0]


def feature_mean_cov(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (N - 1) of feature rows (N, 36), rows with NaN left out.

    One row gives a zero covariance. Used for both the pristine and the test image model.
    """
    good = feats[np.all(np.isfinite(feats), axis=1)]
    if good.shape[0] == 0:
        raise ValueError("no patch with finite NIQE features (flat image?)")
    mu = good.mean(axis=0)
    if good.shape[0] == 1:
        return mu, np.zeros((feats.shape[1], feats.shape[1]))
    return mu, np.cov(good, rowvar=False)


def fit_pristine(
    images: Iterable[np.ndarray], *, y_channel: bool = True, threshold: float = SHARPNESS_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Pristine NIQE model ``(mu (36,), cov (36, 36))`` from natural images (RGB or gray, 0..255).

    Patches are selected per image by sharpness (see :func:`pristine_patch_features`).
    """
    kept = [pristine_patch_features(img, y_channel=y_channel, threshold=threshold)[0] for img in images]
    if not kept:
        raise ValueError("fit_pristine needs at least one image")
    return feature_mean_cov(np.concatenate(kept, axis=0))


# --------------------------------------------------------------------------------------
# Model file and score
# --------------------------------------------------------------------------------------


def _read_model(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        mu = np.asarray(data["mu"], dtype=np.float64)
        cov = np.asarray(data["cov"], dtype=np.float64)
    if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
        raise ValueError(f"{path}: expected mu (36,) and cov (36, 36), got {mu.shape} and {cov.shape}")
    return mu, cov


@functools.lru_cache(maxsize=4)
def _load_model_cached(path: str) -> tuple[np.ndarray, np.ndarray]:
    mu, cov = _read_model(Path(path))
    mu.setflags(write=False)
    cov.setflags(write=False)
    return mu, cov


def load_pristine_model(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, cov)`` of a model file (default: the shipped superres model); cached, read-only."""
    return _load_model_cached(str(Path(path).resolve() if path is not None else MODEL_PATH))


def niqe(
    img: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    model: tuple[np.ndarray, np.ndarray] | str | Path | None = None,
) -> float:
    """NIQE of one image (lower = more natural), against the superres pristine model by default.

    ``img``: HxWx3 RGB or HxW / HxWx1 gray, uint8 or float on the 0..255 scale. RGB is
    turned into BT.601 Y (``rgb_to_y``, as the model was fitted); ``y_channel=False`` uses
    MATLAB ``rgb2gray`` instead. Gray is used as is. ``crop_border`` pixels are removed
    from every side first. At least 96x96 pixels must remain; the image is cropped
    (bottom/right) to a multiple of 96. ``model``: ``(mu, cov)`` or an ``.npz`` path with
    ``mu`` and ``cov``.

    Score: ``sqrt((mu_p - mu_t)^T pinv((cov_p + cov_t) / 2) (mu_p - mu_t))`` over all patches.
    """
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    plane = _to_plane(img, y_channel)
    if crop_border:
        plane = plane[crop_border : plane.shape[0] - crop_border, crop_border : plane.shape[1] - crop_border]
    _check_size(plane.shape, f" (image {np.shape(img)[0]}x{np.shape(img)[1]}, crop_border={crop_border})")
    if model is None or isinstance(model, (str, Path)):
        mu_p, cov_p = load_pristine_model(model)
    else:
        mu_p, cov_p = (np.asarray(m, dtype=np.float64) for m in model)
    feats, _ = niqe_features(plane)
    mu_t, cov_t = feature_mean_cov(feats)
    d = mu_p - mu_t
    return float(math.sqrt(max(float(d @ np.linalg.pinv((cov_p + cov_t) / 2) @ d), 0.0)))
