"""RRDBNet (ESRGAN / Real-ESRGAN generator) with BasicSR state-dict key names.

Key names follow ``basicsr/archs/rrdbnet_arch.py`` so that community ``.pth`` files load
unchanged. The x1/x2 variants pixel-unshuffle the input first (Real-ESRGAN's x2plus trick),
which keeps the trunk at a quarter or a sixteenth of the pixels.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape
from superres.archs.spec import ArchSpec


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks with an outer 0.2-scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, N RRDBs, conv, two nearest-x2 + conv upsamplers, two convs.

    ``scale`` 1 and 2 pixel-unshuffle the input by 4 and 2 so the network always
    upsamples x4 internally.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        unshuffle = {1: 4, 2: 2, 4: 1}[scale]
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


_BLOCK_KEY = re.compile(r"^body\.(\d+)\.rdb1\.conv1\.weight$")


def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """Return RRDBNet constructor kwargs if ``state_dict`` is a (new-arch) RRDBNet, else None."""
    needed = ("conv_first.weight", "conv_body.weight", "conv_up1.weight", "conv_up2.weight",
              "conv_hr.weight", "conv_last.weight", "body.0.rdb1.conv1.weight")
    if not all(k in state_dict for k in needed):
        return None
    num_block = 1 + max(int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k)))
    first_out, first_in = conv_shape(state_dict["conv_first.weight"])
    num_out_ch = conv_shape(state_dict["conv_last.weight"])[0]
    num_grow_ch = conv_shape(state_dict["body.0.rdb1.conv1.weight"])[0]
    # conv_first sees in_ch * r^2 channels after pixel-unshuffle by r; assume the output
    # channel count equals the input's (true for every published RRDBNet).
    ratio = first_in // num_out_ch if first_in % num_out_ch == 0 else 1
    scale = {1: 4, 4: 2, 16: 1}.get(ratio)
    if scale is None:
        return None
    num_in_ch = first_in // {4: 1, 2: 4, 1: 16}[scale]
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": first_out,
        "num_block": num_block,
        "num_grow_ch": num_grow_ch,
    }


def mflop_per_input_pixel(num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32,
                          num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4) -> float:
    """Exact multiply-add count x2 per *input* pixel (convolutions only), in MFLOP."""
    f, g = num_feat, num_grow_ch
    r = {1: 4, 2: 2, 4: 1}[scale]
    lr = 1.0 / (r * r)  # trunk pixels per input pixel
    rdb = 9 * (f * g + (f + g) * g + (f + 2 * g) * g + (f + 3 * g) * g + (f + 4 * g) * f)
    trunk = 9 * num_in_ch * r * r * f + num_block * 3 * rdb + 9 * f * f
    # after the trunk the features are upsampled x4 relative to the trunk resolution
    up = 4 * 9 * f * f + 16 * 9 * f * f + 16 * 9 * f * f + 16 * 9 * f * num_out_ch
    return 2 * (trunk + up) * lr / 1e6


_UNSHUFFLE = {1: 4, 2: 2, 4: 1}  # pixel-unshuffle factor of the input, per scale


def receptive_radius(num_block: int = 23, scale: int = 4, **_: Any) -> int | None:
    """None: 15 convs per block in the trunk alone, hundreds of pixels."""
    return None


def activation_elems_per_pixel(num_feat: int = 64, num_grow_ch: int = 32, scale: int = 4, **_: Any) -> float:
    """HR stage: upsampled features, conv output and the next conv's output live at once;
    trunk: the dense block concat (f + 4g) plus block input/output, at 1/r^2 density."""
    r2 = {1: 16, 2: 4, 4: 1}[scale]
    return 3.0 * num_feat * scale * scale + 3.0 * (2 * num_feat + 4 * num_grow_ch) / r2


def size_multiple(scale: int = 4, **_: Any) -> int:
    """The x1/x2 variants pixel-unshuffle the input, so its sides must divide by 4 / 2."""
    return _UNSHUFFLE[scale]


SPECS = (
    ArchSpec(
        name="rrdbnet", build=RRDBNet, detect=detect, scale_key="scale",
        mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
        activation_elems_per_pixel=activation_elems_per_pixel, size_multiple=size_multiple, trunk="body",
    ),
)
