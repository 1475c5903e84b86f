"""Whole evaluation protocols on top of the pure metrics.

Two protocols are in use, and they differ by ~0.01 dB / ~0.0007 SSIM on Set5 bicubic:

* **legacy** (``bicubic_baseline``): the SRCNN/VDSR MATLAB scripts that produced the
  Bicubic rows every later paper copies (RCAN/EDSR tables). Works on the uint8 Y plane
  only, never quantises the LR, rounds the SR. Use it only to reproduce those rows.
* **modern** (``evaluate_pair``): a model's uint8 RGB output against the HR, float Y,
  border = scale (BasicSR/KAIR/SwinIR style). Use it for every model result.
"""

from __future__ import annotations

import numpy as np

from superres.metrics.colour import rgb_to_y
from superres.metrics.psnr_ssim import GrayMode, psnr, ssim
from superres.metrics.resize import imresize, modcrop, round_half_away


def bicubic_baseline(hr_rgb_uint8: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of MATLAB bicubic down+up under the **legacy** SRCNN/VDSR protocol.

    Steps: modcrop HR to a multiple of ``scale``; Y = ``rgb2ycbcr`` on uint8 (so Y is
    uint8); LR = ``imresize(Y/255, 1/s)`` in double (not quantised); up =
    ``imresize(LR, s)`` in double; SR = uint8(up*255) (round half away, saturate); PSNR
    and SSIM on Y with ``scale`` pixels cropped from each border. Averaged over Set5 this
    reproduces every published digit: x2 33.66/0.9299, x3 30.39/0.8682, x4 28.42/0.8104.
    A 1-channel HR is used as its raw gray plane (the legacy scripts skip ``rgb2ycbcr``).
    """
    hr = modcrop(np.asarray(hr_rgb_uint8), scale)
    if hr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 HR image, got {hr.dtype}")
    if hr.ndim == 3 and hr.shape[2] == 3:
        gt = rgb_to_y(hr, as_uint8=True)
    elif hr.ndim == 2 or (hr.ndim == 3 and hr.shape[2] == 1):
        gt = hr.reshape(hr.shape[:2])
    else:
        raise ValueError(f"expected an HxWx3 RGB or gray image, got shape {hr.shape}")
    lr = imresize(gt.astype(np.float64) / 255.0, 1 / scale)
    up = imresize(lr, output_shape=gt.shape)
    sr = np.clip(round_half_away(up * 255.0), 0, 255).astype(np.uint8)
    return (
        psnr(sr, gt, crop_border=scale, y_channel=False),
        ssim(sr, gt, crop_border=scale, y_channel=False),
    )


def crop_hr_to(hr: np.ndarray, sr_shape: tuple[int, ...], scale: int) -> np.ndarray:
    """HR cropped top-left to the SR size (= scale x LR size); rejects impossible sizes."""
    h, w = sr_shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"SR size {h}x{w} is not a multiple of the scale {scale}")
    if h > hr.shape[0] or w > hr.shape[1] or hr.shape[0] - h >= scale or hr.shape[1] - w >= scale:
        raise ValueError(
            f"SR size {h}x{w} does not match HR {hr.shape[0]}x{hr.shape[1]} at x{scale} "
            f"(expected {hr.shape[0] // scale * scale}x{hr.shape[1] // scale * scale})"
        )
    return hr[:h, :w]


def evaluate_pair(
    sr_rgb_uint8: np.ndarray,
    hr_rgb_uint8: np.ndarray,
    scale: int,
    *,
    gray_mode: GrayMode = "raw",
) -> tuple[float, float]:
    """(PSNR, SSIM) of a model output under the **modern** protocol.

    HR is cropped top-left to the SR size (``scale`` x LR size; e.g. baby x3: 510x510 of
    512x512), then float BT.601 Y of both uint8 RGB images, ``scale`` pixels cropped from
    each border. Bicubic (``imresize(LR_png, s)`` on uint8 RGB) on Set5 gives
    x2 33.673/0.9303, x3 30.403/0.8689, x4 28.429/0.8111 here.
    """
    sr, hr = np.asarray(sr_rgb_uint8), np.asarray(hr_rgb_uint8)
    hr = crop_hr_to(hr, sr.shape, scale)
    return (
        psnr(sr, hr, crop_border=scale, y_channel=True, gray_mode=gray_mode),
        ssim(sr, hr, crop_border=scale, y_channel=True, gray_mode=gray_mode),
    )
