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
from superres.archs.edsr import MeanShift, Upsampler, detect_rgb_range, detect_tail, upsampler_macs
from superres.archs.spec import ArchSpec


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


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
        self.body = nn.Sequential(_conv(num_feats, num_feats), nn.ReLU(inplace=True),
                                  _conv(num_feats, num_feats), CALayer(num_feats, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feats: int, reduction: int, num_blocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[RCAB(num_feats, reduction) for _ in range(num_blocks)],
                                  _conv(num_feats, num_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(nn.Module):
    """RCAN; the published model is 10 groups x 20 RCABs, 64 features, reduction 16."""

    def __init__(self, num_channels: int = 3, scale: int = 4, num_feats: int = 64, num_groups: int = 10,
                 num_blocks: int = 20, reduction: int = 16, rgb_range: float = 255.0) -> None:
        super().__init__()
        if num_channels != 3:
            raise ValueError("RCAN's mean shift is defined for RGB (num_channels=3) only")
        self.scale = scale
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(rgb_range, -1)
        self.head = nn.Sequential(_conv(num_channels, num_feats))
        groups = [ResidualGroup(num_feats, reduction, num_blocks) for _ in range(num_groups)]
        self.body = nn.Sequential(*groups, _conv(num_feats, num_feats))
        self.tail = nn.Sequential(Upsampler(scale, num_feats), _conv(num_feats, num_channels))
        self.add_mean = MeanShift(rgb_range, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.rgb_range


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
    f, c = num_feats, num_channels
    trunk_convs = num_groups * (2 * num_blocks + 1) + 1  # RCAB convs, group convs, body conv
    macs = 9 * c * f + trunk_convs * 9 * f * f + upsampler_macs(scale, f) + scale * scale * 9 * f * c
    macs += c * c * (1 + scale * scale)  # the two 1x1 mean shifts (LR in, HR out)
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> None:
    return None  # channel attention sees the whole image


def activation_elems_per_pixel(num_channels: int = 3, scale: int = 4, num_feats: int = 64, **_: Any) -> float:
    """Long skip, group input, block input, conv and ReLU outputs; or the upsampler's last conv."""
    f = num_feats
    return float(max(5 * f, f + 2 * f * scale * scale) + 2 * num_channels * scale * scale)


SPECS = (ArchSpec(
    name="rcan", build=RCAN, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel, trunk="body",
),)
