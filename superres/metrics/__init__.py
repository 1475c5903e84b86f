"""Benchmark metrics with MATLAB parity: bicubic ``imresize``, BT.601 Y, PSNR, SSIM.

Pure numpy functions. ``bicubic_baseline`` reproduces the published (legacy SRCNN/VDSR)
Bicubic rows; ``evaluate_pair`` is the protocol for model outputs. See ``protocol``.
"""

from __future__ import annotations

from superres.metrics.colour import gray_to_y, rgb_to_y
from superres.metrics.protocol import bicubic_baseline, crop_hr_to, evaluate_pair
from superres.metrics.psnr_ssim import GrayMode, psnr, ssim
from superres.metrics.resize import imresize, modcrop, round_half_away

__all__ = [
    "GrayMode",
    "bicubic_baseline",
    "crop_hr_to",
    "evaluate_pair",
    "gray_to_y",
    "imresize",
    "modcrop",
    "psnr",
    "rgb_to_y",
    "round_half_away",
    "ssim",
]
