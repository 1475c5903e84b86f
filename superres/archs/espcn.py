"""ESPCN (Shi et al., CVPR 2016): convs at LR and a sub-pixel (pixel shuffle) output layer.

conv 5x5 (64) + tanh, conv 3x3 (32) + tanh, conv 3x3 to ``c * s^2`` channels, pixel shuffle.
Key names follow the common PyTorch layout (``first_part.0``, ``first_part.2``,
``last_part.0``). The scale is visible in the last conv's output channels.

``blocks > 0`` is *not* the published network: that many residual blocks (conv 3x3 + tanh + conv
3x3 at ``n2`` features, added to their input) between the second layer and the output conv, each
widening the receptive field by 4 LR pixels. Their last conv starts at zero, so a deeper network
seeded with published weights (the trainer's ``model.init``) computes the same function at step 0:
the diagnostic in docs/training.md that asks whether depth is what the published one lacks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from superres.archs.common import conv_shape, tolerant, top_level_names
from superres.archs.spec import ArchSpec, LumaLayers, num_channels_is_one


class ESPCN(nn.Module):
    """The published ESPCN (Y channel: ``num_channels=1``); ``n1``/``n2`` are the feature widths."""

    def __init__(self, num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                 blocks: int = 0) -> None:
        super().__init__()
        self.scale = scale
        self.num_channels = num_channels
        self.first_part = nn.Sequential(
            nn.Conv2d(num_channels, n1, 5, padding=2), nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1), nn.Tanh(),
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(n2, n2, 3, padding=1), nn.Tanh(), nn.Conv2d(n2, n2, 3, padding=1))
            for _ in range(blocks)
        )
        for block in self.blocks:
            nn.init.zeros_(block[2].weight)
            nn.init.zeros_(block[2].bias)
        self.last_part = nn.Sequential(
            nn.Conv2d(n2, num_channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.first_part(x)
        for block in self.blocks:
            f = f + block(f)
        return self.last_part(f)


_KEYS = {f"{p}.{s}" for p in ("first_part.0", "first_part.2", "last_part.0") for s in ("weight", "bias")}


def _block_keys(n: int) -> set[str]:
    return {f"blocks.{i}.{j}.{s}" for i in range(n) for j in (0, 2) for s in ("weight", "bias")}


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """ESPCN kwargs if ``state_dict`` has exactly its three convs (and any residual blocks), else None."""
    blocks = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    if set(state_dict) != _KEYS | _block_keys(blocks) \
            or top_level_names(state_dict) - {"blocks"} != {"first_part", "last_part"}:
        return None
    w1, w2, w3 = (state_dict[k] for k in ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight"))
    n1, c = conv_shape(w1)
    n2, n1b = conv_shape(w2)
    last_out, n2b = conv_shape(w3)
    if (n1b, n2b) != (n1, n2) or (w1.shape[2], w2.shape[2], w3.shape[2]) != (5, 3, 3):
        return None
    for i in range(blocks):
        for j in (0, 2):
            w = state_dict[f"blocks.{i}.{j}.weight"]
            if w.ndim != 4 or tuple(w.shape) != (n2, n2, 3, 3):
                return None
    scale = math.isqrt(last_out // c) if last_out % c == 0 else 0
    if scale < 1 or scale * scale * c != last_out:
        return None
    return {"num_channels": c, "scale": scale, "n1": n1, "n2": n2, "blocks": blocks}


def mflop_per_input_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                          blocks: int = 0, **_: Any) -> float:
    """Exact conv FLOP (2 x MAC) per input pixel, in MFLOP (all convs run at LR)."""
    c = num_channels
    return 2 * (25 * c * n1 + 9 * n1 * n2 + blocks * 2 * 9 * n2 * n2 + 9 * n2 * c * scale * scale) / 1e6


def receptive_radius(blocks: int = 0, **_: Any) -> int:
    return 2 + 1 + 2 * blocks + 1


def activation_elems_per_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                               blocks: int = 0, **_: Any) -> float:
    return float(n1 + n2 + 2 * blocks * n2 + 2 * num_channels * scale * scale)


SPECS = (ArchSpec(
    name="espcn", build=ESPCN, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
    luma_only=num_channels_is_one(1), luma_layers=LumaLayers("first_part.0", "last_part.0", "shuffle"),
),)
