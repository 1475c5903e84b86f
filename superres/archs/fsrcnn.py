"""FSRCNN (Dong, Loy, Tang, ECCV 2016): an hourglass of convs at LR and one 9x9 deconvolution.

Feature extraction (5x5, ``d``), shrinking (1x1, ``s``), ``m`` 3x3 mapping layers, expanding
(1x1, ``d``), each followed by a per-channel PReLU, then a 9x9 transposed convolution with
stride ``scale``. Key names follow the common PyTorch layout (``first_part.0/1``,
``mid_part.N``, ``last_part``), so files from those re-implementations load.

As with SRCNN the scale is **not** in the weights: the deconvolution's stride is a
constructor argument and its 9x9 kernel has the same shape at every scale. ``detect``
returns ``"scale": None`` and the loader fills it in (caller's ``scale=`` or the file name).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m); the published configuration is d=56, s=12, m=4 on the Y channel."""

    def __init__(self, num_channels: int = 1, scale: int = 3, d: int = 56, s: int = 12, m: int = 4,
                 deconv_kernel: int = 9) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be >= 1, not {scale}")
        if deconv_kernel % 2 == 0:
            raise ValueError(f"deconv_kernel must be odd, not {deconv_kernel}")
        self.scale = scale
        self.num_channels = num_channels
        self.first_part = nn.Sequential(nn.Conv2d(num_channels, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        # stride s, padding k//2 and output_padding s-1 give exactly H*s x W*s
        self.last_part = nn.ConvTranspose2d(d, num_channels, deconv_kernel, stride=scale,
                                            padding=deconv_kernel // 2, output_padding=scale - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """FSRCNN kwargs (``d``, ``s``, ``m``, channels) with ``"scale": None``, or None.

    The deconvolution's stride (the scale) is not recorded in the weights; the returned
    ``None`` tells the caller to supply it (see :func:`superres.zoo.loader.model_from_state_dict`).
    """
    if top_level_names(state_dict) != {"first_part", "mid_part", "last_part"}:
        return None
    if "last_part.weight" not in state_dict or "first_part.1.weight" not in state_dict:
        return None
    d, c = conv_shape(state_dict["first_part.0.weight"])
    mids = numbered(state_dict, "mid_part.", ".weight")
    if mids != list(range(len(mids))) or len(mids) < 4 or len(mids) % 2:
        return None
    convs = [state_dict[f"mid_part.{i}.weight"] for i in mids[0::2]]
    prelus = [state_dict[f"mid_part.{i}.weight"] for i in mids[1::2]]
    if any(p.ndim != 1 for p in prelus):
        return None
    s = conv_shape(convs[0])[0]
    deconv = state_dict["last_part.weight"]
    d_in, c_out = conv_shape(deconv)
    if (d_in, c_out) != (d, c) or conv_shape(convs[-1]) != (d, s) or deconv.shape[2] % 2 == 0:
        return None
    return {"num_channels": c, "scale": None, "d": d, "s": s, "m": len(convs) - 2,
            "deconv_kernel": int(deconv.shape[2])}


def mflop_per_input_pixel(num_channels: int = 1, scale: int = 3, d: int = 56, s: int = 12, m: int = 4,
                          deconv_kernel: int = 9, **_: Any) -> float:
    """Exact FLOP (2 x MAC) per input pixel, in MFLOP; independent of the scale.

    The transposed convolution is counted as it runs: each input pixel is multiplied into a
    k x k x channels footprint (``d * c * k^2`` MAC per LR pixel). The paper counts it on the
    HR grid instead, hence its larger, scale-dependent numbers.
    """
    c = num_channels
    macs = 25 * c * d + d * s + m * 9 * s * s + s * d + deconv_kernel ** 2 * d * c
    return 2 * macs / 1e6


def receptive_radius(scale: int = 3, m: int = 4, deconv_kernel: int = 9, **_: Any) -> int:
    """5x5 (2) + m 3x3 (m) at LR, plus the deconvolution's reach of ceil((k//2)/s) LR pixels."""
    return 2 + m + math.ceil((deconv_kernel // 2) / scale)


def activation_elems_per_pixel(num_channels: int = 1, scale: int = 3, d: int = 56, **_: Any) -> float:
    """Conv output + PReLU output at LR, or the expanded features + the HR output."""
    return float(max(2 * d, d + num_channels * scale * scale) + num_channels)
