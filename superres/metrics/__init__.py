"""Benchmark metrics with MATLAB parity: bicubic ``imresize``, BT.601 Y, PSNR, SSIM.

Pure numpy functions. ``bicubic_baseline`` reproduces the published (legacy SRCNN/VDSR)
Bicubic rows; ``evaluate_pair`` is the protocol for model outputs. See ``protocol``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superres.metrics.colour import gray_to_y, rgb_to_y
from superres.metrics.niqe import niqe
from superres.metrics.protocol import bicubic_baseline, crop_hr_to, evaluate_pair
from superres.metrics.psnr_ssim import GrayMode, psnr, ssim
from superres.metrics.resize import imresize, modcrop, round_half_away

if TYPE_CHECKING:  # LPIPS needs torch: imported on first use, so `import superres.metrics` stays light
    from superres.metrics.lpips import LPIPS as LPIPS
    from superres.metrics.lpips import LPIPSWeightsMissing as LPIPSWeightsMissing

__all__ = [
    "GrayMode",
    "bicubic_baseline",
    "crop_hr_to",
    "evaluate_pair",
    "gray_to_y",
    "imresize",
    "modcrop",
    "niqe",
    "psnr",
    "rgb_to_y",
    "round_half_away",
    "ssim",
]


def __getattr__(name: str) -> Any:
    if name in ("LPIPS", "LPIPSWeightsMissing"):
        from superres.metrics import lpips

        return getattr(lpips, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
