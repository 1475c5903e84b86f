"""Models superres trained itself, shipped inside the package (``superres/zoo/weights/``).

FSRCNN and ESPCN at x2/x3/x4, trained from scratch on the classic "291" set (T91 + BSD200)
with the configs in ``configs/`` (``superres train configs/<name>.yaml``). They are tiny
(25-37 k parameters, 100-150 KB), so they ship as ``.safetensors`` and need no carrier wheel.
Each file's tensor hash is recorded here and checked at load. Their Set5 scores (Y-PSNR,
border = scale, ``superres eval``) are in docs/benchmarks.md; the training curves in
docs/training.md.
"""

from __future__ import annotations

from superres.zoo.carriers import SUPERRES_BUNDLED
from superres.zoo.registry import ModelInfo, register

LICENCE = "MIT (same as superres)"
_NOTE = ("Trained by superres from scratch on T91 + BSD200 (the '291' set) with the config named in "
         "the description; the weights are part of superres and share its MIT licence.")

# The published FSRCNN Set5 Y-PSNR (Dong et al., ECCV 2016) these models are measured against.
PUBLISHED_FSRCNN_SET5 = {2: 37.05, 3: 33.18, 4: 30.72}

# name, arch, kwargs (as recorded in the file's header), scale, tensors_sha256 of the shipped file;
# lines printed by tools/ship_trained.py
_TRAINED: list[tuple[str, str, dict[str, int], int, str]] = [
    ("fsrcnn-x2", "fsrcnn", {"num_channels": 3, "d": 56, "s": 12, "m": 4, "scale": 2}, 2,
     "4efbe678016dd41416820ae068a4c6a80bb201804722394ec943130b0a699716"),
    ("fsrcnn-x3", "fsrcnn", {"num_channels": 3, "d": 56, "s": 12, "m": 4, "scale": 3}, 3,
     "7dc01c91edf9d58d34a8f52f1045e8caa160befe519942b18f77e38309b66a11"),
    ("fsrcnn-x4", "fsrcnn", {"num_channels": 3, "d": 56, "s": 12, "m": 4, "scale": 4}, 4,
     "a0a550b81123d6bd1c2fe326c900bb46fbdaa4f839e490a5084289d5516233c2"),
    ("espcn-x2", "espcn", {"num_channels": 3, "n1": 64, "n2": 32, "scale": 2}, 2,
     "2aadcc085d010710780716138562ffa110c26d1c29c9eb95f9c474b6c6a227bd"),
    ("espcn-x3", "espcn", {"num_channels": 3, "n1": 64, "n2": 32, "scale": 3}, 3,
     "bd6be2c35b4572287bf3ef1e2bf29137ceb10b5e458501979c81a378a084cdff"),
    ("espcn-x4", "espcn", {"num_channels": 3, "n1": 64, "n2": 32, "scale": 4}, 4,
     "e3f939731ce532fa635eae343bf15b0e59ae520fb689d2575f78dd6163ed09b1"),
]

# Set5 Y-PSNR / SSIM (border = scale, official LR images) measured (to 0.001 dB / 1e-4) with
# `superres eval --data ../shared/data/Set5 --scale S --model NAME`; a test re-measures them.
SET5: dict[str, tuple[float, float]] = {
    "fsrcnn-x2": (35.221, 0.9439), "fsrcnn-x3": (31.455, 0.8846), "fsrcnn-x4": (29.565, 0.8342),
    "espcn-x2": (35.576, 0.9474), "espcn-x3": (31.956, 0.8960), "espcn-x4": (29.469, 0.8310),
}

_ARCH_TITLE = {"fsrcnn": "FSRCNN(56, 12, 4)", "espcn": "ESPCN(64, 32)"}

for _name, _arch, _kwargs, _scale, _sha in _TRAINED:
    _psnr, _ssim = SET5[_name]
    register(ModelInfo(
        _name, _arch, _kwargs, _scale, LICENCE, "classic (bicubic-degraded)",
        f"{_ARCH_TITLE[_arch]} x{_scale}, RGB, trained by superres on 291 images "
        f"(configs/{_arch}_x{_scale}_291.yaml); Set5 Y-PSNR {_psnr:.2f} dB "
        f"(published FSRCNN: {PUBLISHED_FSRCNN_SET5[_scale]:.2f}).",
        SUPERRES_BUNDLED, "", f"{_name}.safetensors", _NOTE, bundled_sha256=_sha,
    ))
