"""Architectures: plain ``nn.Module``s plus one state-dict detector per family.

``ARCHS`` maps a short name to its spec so loaders can build a module from a name and
kwargs (registry entries, configs) or from a state dict alone (user files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from superres.archs import (
    edsr,
    espcn,
    fsrcnn,
    msff,
    rcan,
    realcugan,
    rrdbnet,
    span,
    srcnn,
    srvgg,
    swinir,
    waifu2x,
)


@dataclass(frozen=True)
class ArchSpec:
    """How to build, recognise and cost one architecture family."""

    name: str
    cls: type[nn.Module]
    detect: Callable[[dict[str, torch.Tensor]], dict[str, Any] | None]
    mflop_per_input_pixel: Callable[..., float]
    scale_key: str
    # Smallest radius (input pixels) of context a tile needs for an exact result, or None
    # when the receptive field is too large to be practical (tiles then blend).
    receptive_radius: Callable[..., int | None]
    # Peak live activations (elements) per input pixel, for choosing a tile that fits memory.
    activation_elems_per_pixel: Callable[..., float]


def _srvgg_radius(num_conv: int = 16, **_: Any) -> int:
    return num_conv + 2  # one pixel per 3x3 conv


def _rrdb_radius(num_block: int = 23, scale: int = 4, **_: Any) -> int | None:
    return None  # 15 convs per block in the trunk alone: hundreds of pixels


def _rrdb_elems(num_feat: int = 64, num_grow_ch: int = 32, scale: int = 4, **_: Any) -> float:
    # HR stage: upsampled features, conv output and the next conv's output live at once;
    # trunk: the dense block concat (f + 4g) plus block input/output, at 1/r^2 density.
    r2 = {1: 16, 2: 4, 4: 1}[scale]
    return 3.0 * num_feat * scale * scale + 3.0 * (2 * num_feat + 4 * num_grow_ch) / r2


def _srvgg_elems(num_feat: int = 64, num_out_ch: int = 3, upscale: int = 4, **_: Any) -> float:
    return 3.0 * num_feat + 4.0 * num_out_ch * upscale * upscale


ARCHS: dict[str, ArchSpec] = {
    "rrdbnet": ArchSpec("rrdbnet", rrdbnet.RRDBNet, rrdbnet.detect, rrdbnet.mflop_per_input_pixel,
                        "scale", _rrdb_radius, _rrdb_elems),
    "srvgg": ArchSpec("srvgg", srvgg.SRVGGNetCompact, srvgg.detect, srvgg.mflop_per_input_pixel,
                      "upscale", _srvgg_radius, _srvgg_elems),
    "span": ArchSpec("span", span.SPAN, span.detect, span.mflop_per_input_pixel, "upscale",
                     span.receptive_radius, span.activation_elems_per_pixel),
    "srcnn": ArchSpec("srcnn", srcnn.SRCNN, srcnn.detect, srcnn.mflop_per_input_pixel, "scale",
                      srcnn.receptive_radius, srcnn.activation_elems_per_pixel),
    "fsrcnn": ArchSpec("fsrcnn", fsrcnn.FSRCNN, fsrcnn.detect, fsrcnn.mflop_per_input_pixel, "scale",
                       fsrcnn.receptive_radius, fsrcnn.activation_elems_per_pixel),
    "espcn": ArchSpec("espcn", espcn.ESPCN, espcn.detect, espcn.mflop_per_input_pixel, "scale",
                      espcn.receptive_radius, espcn.activation_elems_per_pixel),
    "edsr": ArchSpec("edsr", edsr.EDSR, edsr.detect, edsr.mflop_per_input_pixel, "scale",
                     edsr.receptive_radius, edsr.activation_elems_per_pixel),
    "rcan": ArchSpec("rcan", rcan.RCAN, rcan.detect, rcan.mflop_per_input_pixel, "scale",
                     rcan.receptive_radius, rcan.activation_elems_per_pixel),
    "swinir": ArchSpec("swinir", swinir.SwinIR, swinir.detect, swinir.mflop_per_input_pixel, "scale",
                       swinir.receptive_radius, swinir.activation_elems_per_pixel),
    "msff": ArchSpec("msff", msff.MSFFNet, msff.detect, msff.mflop_per_input_pixel, "scale",
                     msff.receptive_radius, msff.activation_elems_per_pixel),
    "upconv7": ArchSpec("upconv7", waifu2x.UpConv7, waifu2x.detect, waifu2x.mflop_per_input_pixel, "scale",
                        waifu2x.receptive_radius, waifu2x.activation_elems_per_pixel),
    "cunet": ArchSpec("cunet", waifu2x.CUNet, waifu2x.detect_cunet, waifu2x.cunet_mflop_per_input_pixel,
                      "scale", waifu2x.cunet_receptive_radius, waifu2x.cunet_activation_elems_per_pixel),
    "realcugan": ArchSpec("realcugan", realcugan.UpCunet, realcugan.detect, realcugan.mflop_per_input_pixel,
                          "scale", realcugan.receptive_radius, realcugan.activation_elems_per_pixel),
}


def build(arch: str, **kwargs: Any) -> nn.Module:
    """Construct an architecture by its short name."""
    try:
        spec = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}") from None
    return spec.cls(**kwargs)


def detect_arch(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """First architecture whose detector accepts ``state_dict``: (name, kwargs)."""
    for name, spec in ARCHS.items():
        kwargs = spec.detect(state_dict)
        if kwargs is not None:
            return name, kwargs
    return None
