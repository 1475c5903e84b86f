"""Real-CUGAN (bilibili/ailab): UpCunet x2 / x3 / x4, a waifu2x-CUNet descendant for anime.

UNet1 (upscaling) then UNet2 (refinement at the output resolution) with a residual, built
from the CUNet blocks of :mod:`superres.archs.waifu2x`; the x4 net runs both U-Nets with 64
channels, then a 3x3 conv, pixel shuffle x2 and a nearest-x4 copy of the input as residual.
Key names follow upstream ``upcunet_v3.py`` (``unet1.conv1.conv.0``, ``unet2.conv3.seblock.conv1``,
``conv_final``, ...). ``se=False`` is the "nose" (no squeeze-excitation) variant.

The convolutions are unpadded; as upstream (``upcunet_v3.py`` with tiling off, and the
realcugan-ncnn-vulkan wrapper), ``forward`` reflect-pads the input by 18 (x2), 14 (x3) or
19 (x4) pixels per side plus bottom/right up to a multiple of 2 (x2, x4) or 4 (x3), and crops
the output to exactly (sH, sW); so ``module(x)`` maps (N,3,H,W) in [0,1] to (N,3,sH,sW) for any size.

**SE statistics and tiling.** Each SE block scales its channels by a function of the channel
means over the *whole input it is given*. Run tile by tile, every tile uses its own means,
so tiled output differs (slightly, mostly in flat regions) from whole-image output unless one
tile covers the image. Upstream and realcugan-ncnn-vulkan offer a two-pass "syncgap" mode
that first gathers whole-image means; superres runs the plain per-tile network, and
:func:`receptive_radius` is None (no finite context makes tiles exact).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.spec import ArchSpec
from superres.archs.waifu2x import UNet1, UNet2, crop, edge_pad, unet1_macs, unet2_macs

# scale: (reflect pre-padding per side, side multiple), as upstream and realcugan-ncnn-vulkan
PADDING = {2: (18, 2), 3: (14, 4), 4: (19, 2)}


class UpCunet(nn.Module):
    """Real-CUGAN UpCunet2x / 3x / 4x (``scale``), with or without SE blocks (``se``)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, scale: int = 2, se: bool = True) -> None:
        super().__init__()
        if scale not in PADDING:
            raise ValueError(f"Real-CUGAN scale must be 2, 3 or 4, not {scale}")
        if scale == 4 and in_channels != out_channels:
            raise ValueError("the x4 net adds the nearest-upscaled input, so in_channels must equal "
                             "out_channels")
        self.scale = scale
        self.se = se
        mid = 64 if scale == 4 else out_channels
        self.unet1 = UNet1(in_channels, mid, "up3" if scale == 3 else "up2", se=se)
        self.unet2 = UNet2(mid, mid, "conv", se=se)
        if scale == 4:
            self.ps = nn.PixelShuffle(2)
            self.conv_final = nn.Conv2d(64, out_channels * 4, 3, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = self.scale
        pad, multiple = PADDING[s]
        y = edge_pad(x, pad, pad + (-w) % multiple, pad, pad + (-h) % multiple, "reflect")
        y = self.unet1(y)
        y = crop(y, 20) + self.unet2(y)
        if s == 4:
            y = self.ps(crop(self.conv_final(y), 1))
        y = y[..., :h * s, :w * s]
        if s == 4:
            y = y + F.interpolate(x, scale_factor=4, mode="nearest")
        return y


def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """UpCunet kwargs from the ``unet1.*``/``unet2.*`` (+ ``conv_final`` for x4) tensors, else None."""
    if not state_dict or any(not k.startswith(("unet1.", "unet2.", "conv_final.")) for k in state_dict):
        return None
    first = state_dict.get("unet1.conv1.conv.0.weight")
    bottom = state_dict.get("unet1.conv_bottom.weight")
    final = state_dict.get("conv_final.weight")
    if first is None or bottom is None or first.ndim != 4 or bottom.ndim != 4 or bottom.shape[0] != 64:
        return None
    kernel = tuple(bottom.shape[2:])
    if final is not None:
        if kernel != (4, 4) or bottom.shape[1] != 64 or final.ndim != 4 or final.shape[0] % 4:
            return None
        scale, out_ch = 4, int(final.shape[0]) // 4
    elif kernel in ((4, 4), (5, 5)):
        scale, out_ch = (2 if kernel == (4, 4) else 3), int(bottom.shape[1])
    else:
        return None
    return {"in_channels": int(first.shape[1]), "out_channels": out_ch, "scale": scale,
            "se": "unet1.conv2.seblock.conv1.weight" in state_dict}


def mflop_per_input_pixel(in_channels: int = 3, out_channels: int = 3, scale: int = 2, **_: Any) -> float:
    """FLOP (2 x MAC) per LR pixel, in MFLOP: UNet1 at LR, UNet2 at 2x (x2, x4) or 3x (x3)."""
    mid = 64 if scale == 4 else out_channels
    macs = unet1_macs(in_channels, mid, "up3" if scale == 3 else "up2")
    r = 3 if scale == 3 else 2
    macs += r * r * unet2_macs(mid, mid)
    if scale == 4:
        macs += r * r * 9 * 64 * out_channels * 4
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> None:
    """None: the SE means cover the whole tile (see the module docstring)."""
    return None


def activation_elems_per_pixel(scale: int = 2, **_: Any) -> float:
    """Peak live activations per LR pixel: UNet2's first level at 2x (x2, x4) or 3x (x3) resolution."""
    r = 3 if scale == 3 else 2
    return r * r * (64.0 + 32.0 + 64.0 + 64.0) + 3.0 * 64.0


SPECS = (ArchSpec(
    name="realcugan", build=UpCunet, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
),)
