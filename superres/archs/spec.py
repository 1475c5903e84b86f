"""``ArchSpec``: everything the rest of superres may know about one architecture family.

Each family module (``rrdbnet.py``, ``span.py``, ...) states its own facts in a ``SPECS``
tuple, so adding a family touches one module; loaders, the engine and the trainer read the
spec (with the model's kwargs) instead of guessing capabilities from module attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn


class LumaLayers(NamedTuple):
    """Where a Y-capable family keeps its colour channels, for the RGB -> Y weight conversion.

    ``kind`` says how the output layer holds them: ``"conv"`` (Conv2d weight (C, in, k, k)),
    ``"deconv"`` (ConvTranspose2d weight (in, C, k, k)) or ``"shuffle"`` (a Conv2d feeding
    PixelShuffle, channels grouped as (C, s*s)).
    """

    first: str  # the input convolution
    last: str  # the output layer
    kind: str


def one(**_: Any) -> int:
    """Default ``size_multiple``: any input size works."""
    return 1


def never(**_: Any) -> bool:
    """Default ``luma_only``: the network takes RGB."""
    return False


def num_channels_is_one(default: int) -> Callable[..., bool]:
    """``luma_only`` of families with a ``num_channels`` kwarg (``default`` when it is not given)."""

    def luma_only(num_channels: int = default, **_: Any) -> bool:
        return num_channels == 1

    return luma_only


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """How to build, recognise and cost one architecture family, and what it can do."""

    name: str
    # The nn.Module class (or a factory) taking the family's kwargs.
    build: Callable[..., nn.Module]
    # Constructor kwargs if a state dict is this family (a None value: not recorded), else None.
    detect: Callable[[dict[str, torch.Tensor]], dict[str, Any] | None]
    # The kwarg holding the upscaling factor ("scale" or "upscale").
    scale_key: str
    mflop_per_input_pixel: Callable[..., float]
    # Smallest radius (input pixels) of context a tile needs for an exact result, or None
    # when the receptive field is too large to be practical (tiles then blend).
    receptive_radius: Callable[..., int | None]
    # Peak live activations (elements) per input pixel, for choosing a tile that fits memory.
    activation_elems_per_pixel: Callable[..., float]
    # Input sides must be multiples of this (pixel-unshuffle front ends).
    size_multiple: Callable[..., int] = one
    # True when the network takes the rgb2ycbcr Y only (the engine converts colour around it).
    luma_only: Callable[..., bool] = never
    # Attribute holding the nn.Sequential / nn.ModuleList trunk (gradient checkpointing), if any.
    trunk: str | None = None
    # Layers the RGB -> Y weight conversion rewrites; None: no conversion for this family.
    luma_layers: LumaLayers | None = None
