"""ESPCN (Shi et al., CVPR 2016): convs at LR and a sub-pixel (pixel shuffle) output layer.

conv 5x5 (64) + tanh, conv 3x3 (32) + tanh, conv 3x3 to ``c * s^2`` channels, pixel shuffle.
Key names follow the common PyTorch layout (``first_part.0``, ``first_part.2``,
``last_part.0``). The scale is visible in the last conv's output channels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from superres.archs.common import conv_shape, tolerant, top_level_names


class ESPCN(nn.Module):
    """The published ESPCN (Y channel: ``num_channels=1``); ``n1``/``n2`` are the feature widths."""

    def __init__(self, num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.num_channels = num_channels
        self.first_part = nn.Sequential(
            nn.Conv2d(num_channels, n1, 5, padding=2), nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1), nn.Tanh(),
        )
        self.last_part = nn.Sequential(
            nn.Conv2d(n2, num_channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.first_part(x))


_KEYS = {f"{p}.{s}" for p in ("first_part.0", "first_part.2", "last_part.0") for s in ("weight", "bias")}


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """ESPCN kwargs if ``state_dict`` has exactly its three convs, else None."""
    if set(state_dict) != _KEYS or top_level_names(state_dict) != {"first_part", "last_part"}:
        return None
    w1, w2, w3 = (state_dict[k] for k in ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight"))
    n1, c = conv_shape(w1)
    n2, n1b = conv_shape(w2)
    last_out, n2b = conv_shape(w3)
    if (n1b, n2b) != (n1, n2) or (w1.shape[2], w2.shape[2], w3.shape[2]) != (5, 3, 3):
        return None
    scale = math.isqrt(last_out // c) if last_out % c == 0 else 0
    if scale < 1 or scale * scale * c != last_out:
        return None
    return {"num_channels": c, "scale": scale, "n1": n1, "n2": n2}


def mflop_per_input_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                          **_: Any) -> float:
    """Exact conv FLOP (2 x MAC) per input pixel, in MFLOP (all convs run at LR)."""
    c = num_channels
    return 2 * (25 * c * n1 + 9 * n1 * n2 + 9 * n2 * c * scale * scale) / 1e6


def receptive_radius(**_: Any) -> int:
    return 2 + 1 + 1


def activation_elems_per_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                               **_: Any) -> float:
    return float(n1 + n2 + 2 * num_channels * scale * scale)
