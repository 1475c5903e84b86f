"""Models superres trained itself, shipped inside the package (``superres/zoo/weights/``).

FSRCNN and ESPCN at x2/x3/x4, trained on the classic "291" set (T91 + BSD200) with the configs in
``configs/`` (``superres train configs/<name>.yaml``): an RGB stage from scratch
(``configs/rgb-stage/``), then converted to Y-only networks, as in the papers, and trained on Y. The
engine feeds them the ``rgb2ycbcr`` Y and upscales the chroma bicubically. They are tiny
(12-25 k parameters, 50-100 KB), so they ship as ``.safetensors`` and need no carrier wheel.
Each file's tensor hash is recorded here and checked at load. Their Set5 scores (Y-PSNR,
border = scale, ``superres eval``) are in docs/benchmarks.md; the training curves in
docs/training.md.
"""

from __future__ import annotations

from superres.zoo.carriers import SUPERRES_BUNDLED
from superres.zoo.registry import ModelInfo, register

LICENCE = "MIT (same as superres)"
_NOTE = ("Trained by superres on T91 + BSD200 (the '291' set) with the config named in the description "
         "(RGB stage, then Y only); the weights are part of superres and share its MIT licence.")

# The published FSRCNN Set5 Y-PSNR (Dong et al., ECCV 2016) these models are measured against.
PUBLISHED_FSRCNN_SET5 = {2: 37.05, 3: 33.18, 4: 30.72}

# name, arch, kwargs (as recorded in the file's header), scale, tensors_sha256 of the shipped file;
# lines printed by tools/ship_trained.py
_TRAINED: list[tuple[str, str, dict[str, int], int, str]] = [
    ("fsrcnn-x2", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 2}, 2,
     "1f124e2b4d19d37684492dc96fa8c3e5b62cf2a9b5c182fcd24e13aa66cd968c"),
    ("fsrcnn-x3", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 3}, 3,
     "c0d7d29651da657f2cb85f8a43ed7f5d2c8c87f8a10cd89d9f793b609c7b9ad7"),
    ("fsrcnn-x4", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 4}, 4,
     "e9a49751ec4f3a55dd9523e5ef82c152dddc8fc13dbbb49d8a77c3a8b32b5ea5"),
    ("espcn-x2", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 2}, 2,
     "2e2cad1c31b060340dd0ef3b52308437e98fbf3c4b5f6460f736107ed2ab46ac"),
    ("espcn-x3", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 3}, 3,
     "23b633b893245f0ece4effaaf781d2790af4faf6293d0e7521c2ba706a9ebee7"),
    ("espcn-x4", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 4}, 4,
     "3536803b151a2d1dd9cad39f2f333eb37a453882e6ebf496befb8a560affe4ac"),
]

# Set5 Y-PSNR / SSIM (border = scale, official LR images) measured (to 0.001 dB / 1e-4) with
# `superres eval --data ../shared/data/Set5 --scale S --model NAME`; a test re-measures them.
SET5: dict[str, tuple[float, float]] = {
    "fsrcnn-x2": (35.952, 0.9495), "fsrcnn-x3": (32.040, 0.8966), "fsrcnn-x4": (30.056, 0.8501),
    "espcn-x2": (36.207, 0.9518), "espcn-x3": (32.295, 0.9020), "espcn-x4": (30.087, 0.8500),
}

_ARCH_TITLE = {"fsrcnn": "FSRCNN(56, 12, 4)", "espcn": "ESPCN(64, 32)"}

for _name, _arch, _kwargs, _scale, _sha in _TRAINED:
    _psnr, _ssim = SET5[_name]
    register(ModelInfo(
        _name, _arch, _kwargs, _scale, LICENCE, "classic (bicubic-degraded)",
        f"{_ARCH_TITLE[_arch]} x{_scale}, Y only (chroma bicubic), trained by superres on 291 images "
        f"(configs/{_arch}_x{_scale}_291.yaml); Set5 Y-PSNR {_psnr:.2f} dB "
        f"(published FSRCNN: {PUBLISHED_FSRCNN_SET5[_scale]:.2f}).",
        SUPERRES_BUNDLED, "", f"{_name}.safetensors", _NOTE, bundled_sha256=_sha,
    ))
