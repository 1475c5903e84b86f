"""EDSR (Lim et al., CVPRW 2017) with the key names of the official EDSR-PyTorch code.

``sub_mean`` (1x1 conv, fixed), ``head.0`` conv, ``body.0..N-1`` residual blocks
(``body.i.body.0`` conv, ReLU, ``body.i.body.2`` conv, scaled by ``res_scale``), ``body.N``
conv, a global residual, ``tail.0`` pixel-shuffle upsampler (x2 and x4: one or two
conv(4F) + shuffle(2) stages at ``tail.0.0``/``tail.0.2``; x3: conv(9F) + shuffle(3)),
``tail.1`` conv, ``add_mean``. The official models work on 0..255 images (``rgb_range``
255) with the DIV2K mean; this module takes and returns 0..1 images and scales inside.

RCAN uses the same frame (mean shifts, head, long skip, tail): ``MeanShiftSR`` builds it for
both, around the body each passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names
from superres.archs.spec import ArchSpec

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

EDSR_BASELINE: dict[str, Any] = {"num_feats": 64, "num_blocks": 16, "res_scale": 1.0}
EDSR_FULL: dict[str, Any] = {"num_feats": 256, "num_blocks": 32, "res_scale": 0.1}


def conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    """A size-keeping k x k conv (upstream's ``default_conv``), used by EDSR and RCAN."""
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class MeanShift(nn.Conv2d):
    """Fixed 1x1 conv adding (``sign=1``) or subtracting (``-1``) ``rgb_range * mean``.

    Its weight and bias are parameters with ``requires_grad=False``, as upstream, so they
    appear in the state dict under ``sub_mean.*`` / ``add_mean.*``.
    """

    def __init__(self, rgb_range: float, sign: int, rgb_mean: tuple[float, ...] = DIV2K_MEAN) -> None:
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean))
        self.requires_grad_(False)


class Upsampler(nn.Sequential):
    """conv(F -> 4F) + PixelShuffle(2) per factor 2 (x2, x4, x8), or conv(F -> 9F) + shuffle(3)."""

    def __init__(self, scale: int, num_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0 and scale >= 2:
            for _ in range(int(math.log2(scale))):
                layers += [conv(num_feats, 4 * num_feats), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv(num_feats, 9 * num_feats), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale must be 2, 3, 4 or 8, not {scale}")
        super().__init__(*layers)


def upsampler_macs(scale: int, num_feats: int) -> float:
    """Conv multiply-adds of :class:`Upsampler` per LR pixel (stage k runs on 4^k pixels)."""
    if scale == 3:
        return 9.0 * num_feats * 9 * num_feats
    stages = int(math.log2(scale))
    return sum(4**k * 9.0 * num_feats * 4 * num_feats for k in range(stages))


def frame_macs(num_channels: int, scale: int, num_feats: int) -> float:
    """Conv multiply-adds per LR pixel of :class:`MeanShiftSR` outside its body: head conv,
    upsampler, tail conv (at HR) and the two 1x1 mean shifts (LR in, HR out)."""
    f, c = num_feats, num_channels
    return 9 * c * f + upsampler_macs(scale, f) + scale * scale * 9 * f * c + c * c * (1 + scale * scale)


def peak_activation_elems(trunk_maps: int, num_channels: int, scale: int, num_feats: int) -> float:
    """Peak live elements per LR pixel of :class:`MeanShiftSR`: ``trunk_maps`` F-channel maps in
    the body, or the head output (kept for the long skip) with the last upsampling conv's output
    and its shuffled copy; plus the two HR images of the tail."""
    f = num_feats
    return float(max(trunk_maps * f, f + 2 * f * scale * scale) + 2 * num_channels * scale * scale)


def detect_tail(state_dict: dict[str, torch.Tensor], num_feats: int) -> int | None:
    """Scale of a ``tail.0`` :class:`Upsampler` (None if it is not one)."""
    convs = numbered(state_dict, "tail.0.", ".weight")
    if not convs or convs != list(range(0, 2 * len(convs), 2)):
        return None
    outs = {conv_shape(state_dict[f"tail.0.{i}.weight"])[0] for i in convs}
    if outs == {4 * num_feats}:
        return 2 ** len(convs)
    if outs == {9 * num_feats} and len(convs) == 1:
        return 3
    return None


def detect_rgb_range(state_dict: dict[str, torch.Tensor]) -> float:
    """255 for the official 0..255 models (``sub_mean.bias`` ~ -114), 1 for 0..1 retrains."""
    return 255.0 if float(state_dict["sub_mean.bias"].abs().max()) > 1.5 else 1.0


class ResBlock(nn.Module):
    """conv, ReLU, conv (keys ``body.0``, ``body.2``), times ``res_scale``, plus the input."""

    def __init__(self, num_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(num_feats, num_feats), nn.ReLU(inplace=True),
                                  conv(num_feats, num_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return res + x


class MeanShiftSR(nn.Module):
    """EDSR's and RCAN's frame: 0..1 input scaled to ``rgb_range``, ``sub_mean``, ``head`` conv,
    ``body`` (``num_blocks`` modules made by ``block``, then a conv) with the long skip, ``tail``
    (upsampler, conv), ``add_mean``; modules are built in upstream's order (same init RNG use)."""

    def __init__(self, block: Callable[[], nn.Module], num_blocks: int, num_channels: int, scale: int,
                 num_feats: int, rgb_range: float) -> None:
        super().__init__()
        if num_channels != 3:
            raise ValueError(f"{type(self).__name__}'s mean shift is defined for RGB (num_channels=3) only")
        self.scale = scale
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(rgb_range, -1)
        self.head = nn.Sequential(conv(num_channels, num_feats))
        self.body = nn.Sequential(*[block() for _ in range(num_blocks)], conv(num_feats, num_feats))
        self.tail = nn.Sequential(Upsampler(scale, num_feats), conv(num_feats, num_channels))
        self.add_mean = MeanShift(rgb_range, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.rgb_range


class EDSR(MeanShiftSR):
    """EDSR: baseline (``**EDSR_BASELINE``: 16 x 64, res_scale 1) or full (``**EDSR_FULL``: 32 x 256, 0.1).

    ``num_channels`` must be 3 (the mean shift is RGB); ``rgb_range`` is the pixel range the
    weights were trained on (255 for the official models); inputs and outputs are 0..1.
    """

    def __init__(self, num_channels: int = 3, scale: int = 4, num_feats: int = 64, num_blocks: int = 16,
                 res_scale: float = 1.0, rgb_range: float = 255.0) -> None:
        super().__init__(lambda: ResBlock(num_feats, res_scale), num_blocks, num_channels, scale, num_feats,
                         rgb_range)


_EDSR_TOP = {"sub_mean", "add_mean", "head", "body", "tail"}


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """EDSR kwargs from an EDSR-PyTorch state dict, else None.

    Requires the plain residual blocks (``body.i.body.{0,2}.weight``, no channel attention,
    which would be RCAN). ``res_scale`` is not in the weights: it is set to 0.1 for wide
    models (``num_feats > 64``, like the published 256-wide EDSR) and 1 otherwise, the
    published pairing; pass explicit kwargs for a model trained otherwise.
    """
    if top_level_names(state_dict) != _EDSR_TOP or any("conv_du" in k for k in state_dict):
        return None
    blocks = numbered(state_dict, "body.", ".body.0.weight")
    if not blocks or blocks != list(range(len(blocks))):
        return None
    n = len(blocks)
    if f"body.{n}.weight" not in state_dict or "body.0.body.2.weight" not in state_dict:
        return None
    f, c = conv_shape(state_dict["head.0.weight"])
    scale = detect_tail(state_dict, f)
    if scale is None or c != 3 or conv_shape(state_dict["tail.1.weight"]) != (c, f):
        return None
    return {"num_channels": c, "scale": scale, "num_feats": f, "num_blocks": n,
            "res_scale": 0.1 if f > 64 else 1.0, "rgb_range": detect_rgb_range(state_dict)}


def mflop_per_input_pixel(num_channels: int = 3, scale: int = 4, num_feats: int = 64, num_blocks: int = 16,
                          **_: Any) -> float:
    """Exact conv FLOP (2 x MAC) per input pixel, in MFLOP (mean-shift 1x1 convs included)."""
    macs = (2 * num_blocks + 1) * 9 * num_feats * num_feats + frame_macs(num_channels, scale, num_feats)
    return 2 * macs / 1e6


def receptive_radius(num_blocks: int = 16, **_: Any) -> int:
    """head (1) + 2 per block + body conv (1) at LR; the tail convs add under 2 LR pixels."""
    return 2 * num_blocks + 4


def activation_elems_per_pixel(num_channels: int = 3, scale: int = 4, num_feats: int = 64, **_: Any) -> float:
    """Trunk: head output (kept for the residual), block input, conv and ReLU outputs; tail:
    the last upsampling conv's output and its shuffled copy."""
    return peak_activation_elems(4, num_channels, scale, num_feats)


SPECS = (ArchSpec(
    name="edsr", build=EDSR, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel, trunk="body",
),)
