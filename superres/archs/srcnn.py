"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convolutions on a bicubic upscale.

The published network works on an image already bicubic-upscaled to the target size. Every
model in superres maps LR -> HR, so this module does the bicubic x ``scale`` upscaling
itself (``F.interpolate(mode="bicubic", align_corners=False)``) and then applies the
9-5-5 (64, 32 filters) convolutions with "same" padding. Key names are ``conv1``..``conv3``,
the layout of the common PyTorch re-implementations, so their ``.pth`` files load.

The scale factor is **not** part of the weights (the convolutions are the same shape at x2,
x3 and x4): ``detect`` reports it as ``None`` and the loader fills it in from the caller's
``scale=`` or the file name (``srcnn_x3.pth``); see :mod:`superres.zoo.loader`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape, tolerant
from superres.archs.spec import ArchSpec, LumaLayers, num_channels_is_one


class SRCNN(nn.Module):
    """Bicubic x ``scale``, then conv ``f1`` (``n1``) + ReLU, conv ``f2`` (``n2``) + ReLU, conv ``f3``.

    ``scale`` is the factor of the built-in bicubic upscaling (the weights do not record it);
    ``num_channels`` is 1 for the published Y-channel models, 3 for RGB.
    """

    def __init__(self, num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                 f1: int = 9, f2: int = 5, f3: int = 5) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be >= 1, not {scale}")
        self.scale = scale
        self.num_channels = num_channels
        self.conv1 = nn.Conv2d(num_channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, num_channels, f3, padding=f3 // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(self.conv2(x), inplace=True)
        return self.conv3(x)


_KEYS = {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """SRCNN kwargs if ``state_dict`` is exactly ``conv1``..``conv3`` (weights and biases).

    The scale is not recorded in SRCNN weights, so it comes back as ``"scale": None``: a
    marker that the caller must supply it (``superres.zoo.loader`` takes it from its
    ``scale=`` argument or an ``x3``/``3x`` token in the file name, and refuses to guess).
    """
    if set(state_dict) != _KEYS:
        return None
    w1, w2, w3 = (state_dict[f"conv{i}.weight"] for i in (1, 2, 3))
    n1, c = conv_shape(w1)
    n2, n1b = conv_shape(w2)
    c_out, n2b = conv_shape(w3)
    if (n1b, n2b, c_out) != (n1, n2, c) or any(w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0
                                               for w in (w1, w2, w3)):
        return None
    return {"num_channels": c, "scale": None, "n1": n1, "n2": n2,
            "f1": int(w1.shape[2]), "f2": int(w2.shape[2]), "f3": int(w3.shape[2])}


def mflop_per_input_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                          f1: int = 9, f2: int = 5, f3: int = 5, **_: Any) -> float:
    """Exact conv FLOP (2 x MAC) per *input* pixel, in MFLOP; the convs run on s^2 pixels.

    The bicubic upscaling (16 multiply-adds per output pixel and channel) is not counted.
    """
    c = num_channels
    macs = f1 * f1 * c * n1 + f2 * f2 * n1 * n2 + f3 * f3 * n2 * c
    return 2 * macs * scale * scale / 1e6


def receptive_radius(scale: int = 3, f1: int = 9, f2: int = 5, f3: int = 5, **_: Any) -> int:
    """Input pixels of context for an exact tile: the convs' HR radius / s, plus bicubic's 2."""
    hr = f1 // 2 + f2 // 2 + f3 // 2
    return math.ceil(hr / scale) + 2


def activation_elems_per_pixel(num_channels: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
                               **_: Any) -> float:
    """Upscaled input + conv1 output + conv2 output live at once, on s^2 pixels."""
    return float((num_channels + n1 + n2) * scale * scale + num_channels)


SPECS = (ArchSpec(
    name="srcnn", build=SRCNN, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
    luma_only=num_channels_is_one(1), luma_layers=LumaLayers("conv1", "conv3", "conv"),
),)
