"""MSFFNet: superres's own multi-scale feature fusion network (x2, x4 and x8 from one model).

Design (not a published architecture):

- ``head``: 3x3 conv to ``num_feat`` features.
- ``blocks.i`` (``num_blocks`` of them), each with a long residual:
  - ``fuse``: two branches on the same input, a 3x3 conv (``conv3``) and a dilated 3x3 conv
    (``convd``, dilation 2: a 5x5 field for the cost of a 3x3), each + LeakyReLU; a
    squeeze-excitation gate (global average of their sum, 1x1 down by ``reduction``, ReLU,
    1x1 up to two logits per channel, softmax over the two branches) picks a per-channel
    mix of the two (selective-kernel style);
  - ``rdb``: a residual dense block, ``rdb_convs`` densely connected 3x3 convs adding
    ``growth`` channels each, fused back by a 1x1 conv (``lff``) onto its input.
- ``trunk``: 3x3 conv, plus the head's output (global feature residual).
- ``ups.k``: progressive x2 stages, conv to 4 ``num_feat`` + pixel shuffle(2) + LeakyReLU.
- ``recons.k``: one 3x3 reconstruction conv per stage, added to a bicubic upscale of the
  input, so stage k gives the x2^(k+1) image.

``forward(x, scale)`` runs only the stages that ``scale`` needs (2 -> 1, 4 -> 2, 8 -> 3) and
only the last one's reconstruction conv; ``scale`` defaults to the largest the model was built
for (its ``scale`` kwarg, what the engine uses). The SE gate pools over the whole input, so
tiles are blended rather than exact (``receptive_radius`` is None).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names
from superres.archs.spec import ArchSpec, num_channels_is_one


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


class BranchFusion(nn.Module):
    """3x3 and dilated 3x3 branches mixed per channel by a softmax gate (two weights summing to 1)."""

    def __init__(self, num_feat: int, reduction: int) -> None:
        super().__init__()
        hidden = num_feat // reduction
        self.conv3 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.convd = nn.Conv2d(num_feat, num_feat, 3, padding=2, dilation=2)
        self.gate = nn.Sequential(nn.Conv2d(num_feat, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, 2 * num_feat, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = _lrelu(self.conv3(x))
        b = _lrelu(self.convd(x))
        logits = self.gate((a + b).mean((2, 3), keepdim=True))
        wa, wb = logits.unflatten(1, (2, -1)).softmax(1).unbind(1)
        return a * wa + b * wb


class DenseBlock(nn.Module):
    """``n`` densely connected 3x3 convs (``convs.j``), 1x1 local fusion (``lff``), residual."""

    def __init__(self, num_feat: int, growth: int, n: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(num_feat + j * growth, growth, 3, padding=1) for j in range(n))
        self.lff = nn.Conv2d(num_feat + n * growth, num_feat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(_lrelu(conv(torch.cat(feats, 1))))
        return x + self.lff(torch.cat(feats, 1))


class MSFFBlock(nn.Module):
    def __init__(self, num_feat: int, growth: int, rdb_convs: int, reduction: int) -> None:
        super().__init__()
        self.fuse = BranchFusion(num_feat, reduction)
        self.rdb = DenseBlock(num_feat, growth, rdb_convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rdb(self.fuse(x))


class MSFFNet(nn.Module):
    """Multi-scale feature fusion SR network; ``scale`` (2, 4 or 8) is the largest it can output.

    Defaults: 32 features, 6 blocks, growth 16, 4 dense convs, gate reduction 4, x8:
    452,281 parameters, small enough to train on a CPU.
    """

    def __init__(self, num_channels: int = 3, scale: int = 8, num_feat: int = 32, num_blocks: int = 6,
                 growth: int = 16, rdb_convs: int = 4, reduction: int = 4) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"MSFFNet is built for a largest scale of 2, 4 or 8, not {scale}")
        if num_feat % reduction:
            raise ValueError(f"num_feat ({num_feat}) must be divisible by reduction ({reduction})")
        self.scale = scale
        self.num_channels = num_channels
        stages = int(math.log2(scale))
        self.head = nn.Conv2d(num_channels, num_feat, 3, padding=1)
        self.blocks = nn.Sequential(*[MSFFBlock(num_feat, growth, rdb_convs, reduction)
                                      for _ in range(num_blocks)])
        self.trunk = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.ups = nn.ModuleList(nn.Conv2d(num_feat, 4 * num_feat, 3, padding=1) for _ in range(stages))
        self.recons = nn.ModuleList(nn.Conv2d(num_feat, num_channels, 3, padding=1) for _ in range(stages))

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        scale = self.scale if scale is None else scale
        if scale not in (2, 4, 8) or scale > self.scale:
            raise ValueError(f"this MSFFNet outputs x2..x{self.scale} in powers of 2, not x{scale}")
        feat = self.head(x)
        feat = feat + self.trunk(self.blocks(feat))
        stages = int(math.log2(scale))
        for k in range(stages):
            feat = _lrelu(F.pixel_shuffle(self.ups[k](feat), 2))
        base = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        return self.recons[stages - 1](feat) + base


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """MSFFNet kwargs (largest scale from the number of ``ups`` stages), else None."""
    if top_level_names(state_dict) != {"head", "blocks", "trunk", "ups", "recons"}:
        return None
    f, c = conv_shape(state_dict["head.weight"])
    blocks = numbered(state_dict, "blocks.", ".fuse.convd.weight")
    convs = numbered(state_dict, "blocks.0.rdb.convs.", ".weight")
    ups = numbered(state_dict, "ups.", ".weight")
    recons = numbered(state_dict, "recons.", ".weight")
    if not blocks or blocks != list(range(len(blocks))) or not convs or convs != list(range(len(convs))):
        return None
    if ups != recons or ups not in ([0], [0, 1], [0, 1, 2]):
        return None
    growth = conv_shape(state_dict["blocks.0.rdb.convs.0.weight"])[0]
    hidden = conv_shape(state_dict["blocks.0.fuse.gate.0.weight"])[0]
    if hidden < 1 or f % hidden:
        return None
    return {"num_channels": c, "scale": 2 ** len(ups), "num_feat": f, "num_blocks": len(blocks),
            "growth": growth, "rdb_convs": len(convs), "reduction": f // hidden}


def mflop_per_input_pixel(num_channels: int = 3, scale: int = 8, num_feat: int = 32, num_blocks: int = 6,
                          growth: int = 16, rdb_convs: int = 4, run_scale: int | None = None,
                          **_: Any) -> float:
    """Conv FLOP (2 x MAC) per input pixel, in MFLOP, of ``forward(x, run_scale)``.

    ``run_scale`` defaults to ``scale`` (the plain ``forward(x)``). Exact for the convolutions;
    the gates' 1x1 convs run once per image on pooled vectors and are not counted, nor is the
    bicubic skip.
    """
    f, g, c = num_feat, growth, num_channels
    s = scale if run_scale is None else run_scale
    dense = sum(9 * (f + j * g) * g for j in range(rdb_convs)) + (f + rdb_convs * g) * f
    block = 2 * 9 * f * f + dense
    macs = 9 * c * f + num_blocks * block + 9 * f * f
    macs += sum(4**k * 9 * f * 4 * f for k in range(int(math.log2(s))))
    macs += s * s * 9 * f * c
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> None:
    return None  # the branch gates pool over the whole input


def activation_elems_per_pixel(num_channels: int = 3, scale: int = 8, num_feat: int = 32, growth: int = 16,
                               rdb_convs: int = 4, **_: Any) -> float:
    """Trunk: head output, block input, both branches, the dense concat and a conv output;
    last stage: its conv output and shuffled copy, the bicubic base and the reconstruction."""
    f = num_feat
    trunk = 4 * f + 2 * (f + rdb_convs * growth)
    s2 = scale * scale
    return float(max(trunk, f + 2 * f * s2 + 2 * num_channels * s2))


SPECS = (ArchSpec(
    name="msff", build=MSFFNet, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
    luma_only=num_channels_is_one(3),
),)
