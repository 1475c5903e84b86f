"""Restoration settings and presets: plain data, importable without torch (the CLI parser uses it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["A_PROMPT", "COLOUR_FIXES", "N_PROMPT", "PRESETS", "RestoreSettings"]

COLOUR_FIXES = ("wavelet", "adain", "none")

# Upstream defaults, verbatim (reference §2.4; "oil painting" really appears twice).
A_PROMPT = (
    "Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, hyper detailed photo - "
    "realistic maximum detail, 32k, Color Grading, ultra HD, extreme meticulous detailing, skin pore "
    "detailing, hyper sharpness, perfect without deformations."
)
N_PROMPT = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG Style, "
    "3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, frames, watermark, "
    "signature, jpeg artifacts, deformed, lowres, over-smooth"
)


@dataclass(frozen=True)
class RestoreSettings:
    """Defaults = upstream CLI (test.py, May 2025)."""

    prompt: str = A_PROMPT
    negative_prompt: str = N_PROMPT
    steps: int = 50
    cfg: float = 4.0  # s_cfg: CFG at sigma -> 0
    cfg_start: float = 1.0  # spt_linear_CFG: CFG at sigma_max
    control_scale: float = 1.0  # s_stage2
    control_scale_start: float | None = None  # set: control scale linear in sigma from this value
    restoration_scale: float = -1.0  # s_stage1 = tau_r; <= 0 off
    s_churn: float = 5.0
    s_noise: float = 1.01
    color_fix: str = "wavelet"
    scale: float = 1.0
    min_size: int = 1024
    tile_vae: bool = False
    vae_encoder_tile: int = 512  # px
    vae_decoder_tile: int = 64  # latent px
    tile_size: int = 0  # px; 0 = sample the whole latent at once
    tile_stride: int = 0  # px; 0 = half the tile
    seed: int = 1234


# Upstream Gradio presets: "Quality" is the load default there, "Fidelity" equals the CLI defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "quality": {"cfg": 7.5, "cfg_start": 4.0, "s_noise": 1.003},
    "fidelity": {"cfg": 4.0, "cfg_start": 1.0, "s_noise": 1.003},
}
