"""Small helpers shared by the architecture detectors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def conv_shape(weight: torch.Tensor) -> tuple[int, int]:
    """(out_channels, in_channels) of a Conv2d weight; raises on a tensor of another rank."""
    if weight.ndim != 4:
        raise ValueError(f"expected a 4-D conv weight, got shape {tuple(weight.shape)}")
    return int(weight.shape[0]), int(weight.shape[1])


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (what `superres models` shows)."""
    return sum(p.numel() for p in module.parameters())


def top_level_names(state_dict: dict[str, torch.Tensor]) -> set[str]:
    """First component of every key (``"body.0.weight"`` -> ``"body"``)."""
    return {k.split(".", 1)[0] for k in state_dict}


def numbered(state_dict: dict[str, torch.Tensor], prefix: str, suffix: str) -> list[int]:
    """Sorted ``i`` for which ``f"{prefix}{i}{suffix}"`` is a key (``prefix="body.", suffix=".weight"``)."""
    out = []
    for k in state_dict:
        if k.startswith(prefix) and k.endswith(suffix) and len(k) > len(prefix) + len(suffix):
            mid = k[len(prefix):len(k) - len(suffix)]
            if mid.isdigit():
                out.append(int(mid))
    return sorted(out)


def tolerant(detect: Callable[[dict[str, torch.Tensor]], dict[str, Any] | None]
             ) -> Callable[[dict[str, torch.Tensor]], dict[str, Any] | None]:
    """Make a detector answer None instead of raising on malformed or foreign tensors.

    ``detect_arch`` asks every detector about every file, so a detector that raises on a
    shape it did not expect would break loading of other architectures' files.
    """

    @functools.wraps(detect)
    def wrapper(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        try:
            return detect(state_dict)
        except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError, AttributeError):
            return None

    return wrapper
