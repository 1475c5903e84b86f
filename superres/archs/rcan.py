"""RCAN (Zhang et al., ECCV 2018) with the key names of the official code.

Residual-in-residual: ``body.0..G-1`` residual groups, each of ``B`` residual channel
attention blocks (RCAB: ``body.g.body.b.body.0`` conv, ReLU, ``.body.2`` conv,
``.body.3`` channel attention with ``conv_du.0``/``conv_du.2`` 1x1 convs) and a closing conv
``body.g.body.B``; then ``body.G`` conv and the long skip. Head, tail and mean shifts are
EDSR's (:mod:`superres.archs.edsr`): 0..255 weights, 0..1 inputs and outputs.

Channel attention pools over the whole image, so a tiled result is not exactly the
whole-image result (``receptive_radius`` is None); tiles are blended instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names
from superres.archs.edsr import (
    MeanShiftSR,
    conv,
    detect_rgb_range,
    detect_tail,
    frame_macs,
    peak_activation_elems,
)
from superres.archs.spec import ArchSpec


class CALayer(nn.Module):
    """Squeeze-excitation: global average, 1x1 conv down by ``reduction``, ReLU, 1x1 up, sigmoid."""

    def __init__(self, num_feats: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(num_feats, num_feats // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(num_feats // reduction, num_feats, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, num_feats: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(num_feats, num_feats), nn.ReLU(inplace=True),
                                  conv(num_feats, num_feats), CALayer(num_feats, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feats: int, reduction: int, num_blocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[RCAB(num_feats, reduction) for _ in range(num_blocks)],
                                  conv(num_feats, num_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(MeanShiftSR):
    """RCAN; the published model is 10 groups x 20 RCABs, 64 features, reduction 16."""

    def __init__(self, num_channels: int = 3, scale: int = 4, num_feats: int = 64, num_groups: int = 10,
                 num_blocks: int = 20, reduction: int = 16, rgb_range: float = 255.0) -> None:
        super().__init__(lambda: ResidualGroup(num_feats, reduction, num_blocks), num_groups, num_channels,
                         scale, num_feats, rgb_range)


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """RCAN kwargs from an official-layout state dict, else None."""
    if top_level_names(state_dict) != {"sub_mean", "add_mean", "head", "body", "tail"}:
        return None
    groups = numbered(state_dict, "body.", ".body.0.body.3.conv_du.0.weight")
    if not groups or groups != list(range(len(groups))):
        return None
    g = len(groups)
    blocks = numbered(state_dict, "body.0.body.", ".body.3.conv_du.0.weight")
    if blocks != list(range(len(blocks))):
        return None
    b = len(blocks)
    if f"body.{g}.weight" not in state_dict or f"body.0.body.{b}.weight" not in state_dict:
        return None
    f, c = conv_shape(state_dict["head.0.weight"])
    squeezed = conv_shape(state_dict["body.0.body.0.body.3.conv_du.0.weight"])[0]
    if squeezed < 1 or f % squeezed:
        return None
    scale = detect_tail(state_dict, f)
    if scale is None or c != 3:
        return None
    return {"num_channels": c, "scale": scale, "num_feats": f, "num_groups": g, "num_blocks": b,
            "reduction": f // squeezed, "rgb_range": detect_rgb_range(state_dict)}


def mflop_per_input_pixel(num_channels: int = 3, scale: int = 4, num_feats: int = 64, num_groups: int = 10,
                          num_blocks: int = 20, **_: Any) -> float:
    """Conv FLOP (2 x MAC) per input pixel, in MFLOP, for a large image.

    Exact for the convolutions; the channel attention's 1x1 convs run once per image on the
    pooled vector (a constant, not per pixel) and are left out; the mean shifts are included.
    """
    trunk_convs = num_groups * (2 * num_blocks + 1) + 1  # RCAB convs, group convs, body conv
    macs = trunk_convs * 9 * num_feats * num_feats + frame_macs(num_channels, scale, num_feats)
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> None:
    return None  # channel attention sees the whole image


def activation_elems_per_pixel(num_channels: int = 3, scale: int = 4, num_feats: int = 64, **_: Any) -> float:
    """Long skip, group input, block input, conv and ReLU outputs; or the upsampler's last conv."""
    return peak_activation_elems(5, num_channels, scale, num_feats)


SPECS = (ArchSpec(
    name="rcan", build=RCAN, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel, trunk="body",
),)
