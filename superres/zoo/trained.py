"""Models superres trained itself, shipped inside the package (``superres/zoo/weights/``).

FSRCNN and ESPCN at x2/x3/x4, trained on the classic "291" set (T91 + BSD200) with the configs in
``configs/`` (``superres train configs/<name>.yaml``): an RGB stage from scratch
(``configs/rgb-stage/``), then converted to Y-only networks, as in the papers, and trained on Y in
two stages for FSRCNN (``configs/y-stage/``, then the configs in ``configs/`` themselves) and three
for ESPCN (``configs/s3-stage/`` in between). The
engine feeds them the ``rgb2ycbcr`` Y and upscales the chroma bicubically. They are tiny
(12-25 k parameters, 50-100 KB), so they ship as ``.safetensors`` and need no carrier wheel.
Each file's tensor hash is recorded here and checked at load. Their Set5 scores (Y-PSNR,
border = scale, ``superres eval``) are in docs/benchmarks.md; the training curves in
docs/training.md.
"""

from __future__ import annotations

from superres.weights.carriers import SUPERRES_BUNDLED
from superres.zoo.info import ModelInfo

LICENCE = "MIT (same as superres)"
_NOTE = ("Trained by superres on T91 + BSD200 (the '291' set) with the config named in the description "
         "(an RGB stage, then Y-only stages); the weights are part of superres and share its MIT "
         "licence.")

# The published FSRCNN Set5 Y-PSNR (Dong et al., ECCV 2016) these models are measured against.
PUBLISHED_FSRCNN_SET5 = {2: 37.05, 3: 33.18, 4: 30.72}

# name, arch, kwargs (as recorded in the file's header), tensors_sha256 of the shipped file;
# lines printed by tools/ship_trained.py
_TRAINED: list[tuple[str, str, dict[str, int], str]] = [
    ("fsrcnn-x2", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 2},
     "85b6946f5996685a397f761c8e49760a4ad968cf938d66d8196578555e367150"),
    ("fsrcnn-x3", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 3},
     "bade819989c6a55db024a645baf42981c82ced394e3ddf4ef6417b1b74bcff49"),
    ("fsrcnn-x4", "fsrcnn", {"num_channels": 1, "d": 56, "s": 12, "m": 4, "scale": 4},
     "7a771321ccb2a1ccb1636f1ff5c62a8aa8ba90a9087e3a1a3113aee61156a137"),
    ("espcn-x2", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 2},
     "8dd7e8b1db415c4660f72ed1a70a6ebe7bb220230758e768e1f4f534e3c67f4f"),
    ("espcn-x3", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 3},
     "329d34e4c0e949b04c643641e3b212c46178844d7520b2365cfdc84a4a75b4a7"),
    ("espcn-x4", "espcn", {"num_channels": 1, "n1": 64, "n2": 32, "scale": 4},
     "e8c3da25f92c6f00b6dee6e6823f55f482818e92de71565975093a66ba936baa"),
]

# Set5 Y-PSNR / SSIM (border = scale, official LR images) measured (to 0.001 dB / 1e-4) with
# `superres eval --data ../shared/data/Set5 --scale S --model NAME`; a test re-measures them.
SET5: dict[str, tuple[float, float]] = {
    "fsrcnn-x2": (36.869, 0.9556), "fsrcnn-x3": (32.891, 0.9115), "fsrcnn-x4": (30.644, 0.8674),
    "espcn-x2": (36.470, 0.9533), "espcn-x3": (32.455, 0.9042), "espcn-x4": (30.261, 0.8550),
}

_ARCH_TITLE = {"fsrcnn": "FSRCNN(56, 12, 4)", "espcn": "ESPCN(64, 32)"}


def _description(name: str, arch: str, scale: int) -> str:
    return (f"{_ARCH_TITLE[arch]} x{scale}, Y only (chroma bicubic), trained by superres on 291 images "
            f"(configs/{arch}_x{scale}_291.yaml); Set5 Y-PSNR {SET5[name][0]:.2f} dB "
            f"(published FSRCNN: {PUBLISHED_FSRCNN_SET5[scale]:.2f}).")


MODELS: tuple[ModelInfo, ...] = tuple(
    ModelInfo(
        name=name, arch=arch, kwargs=kwargs, licence=LICENCE, purpose="classic (bicubic-degraded)",
        description=_description(name, arch, kwargs["scale"]),
        carrier=SUPERRES_BUNDLED, param_file="", bin_file=f"{name}.safetensors", licence_note=_NOTE,
        bundled_sha256=sha,
    )
    for name, arch, kwargs, sha in _TRAINED
)
