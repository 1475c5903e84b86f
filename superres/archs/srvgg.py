"""SRVGGNetCompact (Real-ESRGAN's "compact" model, e.g. realesr-animevideov3).

A plain VGG-style stack at input resolution, a pixel shuffle, and a nearest-upsampled
copy of the input added as a global residual. Key names follow Real-ESRGAN's
``srvgg_arch.py`` (``body.{i}``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape
from superres.archs.spec import ArchSpec


class SRVGGNetCompact(nn.Module):
    """conv + act, ``num_conv`` x (conv + act), conv to ``out*s^2``, pixel shuffle, + nearest(x)."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"unknown act_type {act_type!r}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale
        self.scale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _act(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _act(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.num_in_ch != self.num_out_ch:
            base = base.mean(1, keepdim=True).expand_as(out) if self.num_in_ch > 1 else base.expand_as(out)
        return out + base


def _act(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


_BODY = re.compile(r"^body\.(\d+)\.weight$")


def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """Return SRVGGNetCompact kwargs if ``state_dict`` has its layout, else None.

    The activation type is only visible for PReLU (it has weights); weight-free activations
    are assumed to be PReLU's usual replacement in Real-ESRGAN files, ``prelu`` otherwise.
    """
    idx = sorted(int(m.group(1)) for k in state_dict if (m := _BODY.match(k)))
    if not idx or idx[0] != 0 or any(k.startswith(("conv_first", "model.")) for k in state_dict):
        return None
    convs = [i for i in idx if state_dict[f"body.{i}.weight"].ndim == 4]
    prelus = [i for i in idx if state_dict[f"body.{i}.weight"].ndim == 1]
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs) - 1, 2)):
        return None
    num_feat, num_in_ch = conv_shape(state_dict["body.0.weight"])
    last_out = conv_shape(state_dict[f"body.{convs[-1]}.weight"])[0]
    act_type = "prelu" if prelus else "leakyrelu"
    for out_ch in (3, 1, num_in_ch):
        s = math.isqrt(last_out // out_ch) if last_out % out_ch == 0 else 0
        if s * s * out_ch == last_out and s >= 1:
            return {
                "num_in_ch": num_in_ch,
                "num_out_ch": out_ch,
                "num_feat": num_feat,
                "num_conv": len(convs) - 2,
                "upscale": s,
                "act_type": act_type,
            }
    return None


def mflop_per_input_pixel(num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                          num_conv: int = 16, upscale: int = 4, **_: Any) -> float:
    """Exact FLOP (2 x MAC) per input pixel of the convolutions, in MFLOP."""
    macs = 9 * num_in_ch * num_feat + num_conv * 9 * num_feat * num_feat
    macs += 9 * num_feat * num_out_ch * upscale * upscale
    return 2 * macs / 1e6


def receptive_radius(num_conv: int = 16, **_: Any) -> int:
    """One pixel per 3x3 conv."""
    return num_conv + 2


def activation_elems_per_pixel(num_feat: int = 64, num_out_ch: int = 3, upscale: int = 4, **_: Any) -> float:
    """The features, the next conv's output and the last conv's output + its shuffled copy."""
    return 3.0 * num_feat + 4.0 * num_out_ch * upscale * upscale


SPECS = (
    ArchSpec(
        name="srvgg", build=SRVGGNetCompact, detect=detect, scale_key="upscale",
        mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
        activation_elems_per_pixel=activation_elems_per_pixel, trunk="body",
    ),
)
