"""Small helpers shared by the architecture detectors."""

from __future__ import annotations

import torch


def conv_shape(weight: torch.Tensor) -> tuple[int, int]:
    """(out_channels, in_channels) of a Conv2d weight; raises on a tensor of another rank."""
    if weight.ndim != 4:
        raise ValueError(f"expected a 4-D conv weight, got shape {tuple(weight.shape)}")
    return int(weight.shape[0]), int(weight.shape[1])


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (what `superres models` shows)."""
    return sum(p.numel() for p in module.parameters())
