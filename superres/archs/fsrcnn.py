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

import functools
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names
from superres.archs.spec import ArchSpec, LumaLayers, num_channels_is_one


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
        return subpixel_transposed_conv(self.last_part, self.mid_part(self.first_part(x)))


@functools.lru_cache(maxsize=32)
def _taps(stride: int, kernel: int, padding: int) -> tuple[tuple[int, ...], int, int]:
    """For each output phase r and LR offset j, the transposed conv's kernel tap (``kernel`` = none)."""
    lo = min(-((kernel - 1 - r - padding) // stride) for r in range(stride))
    hi = max((r + padding) // stride for r in range(stride))
    taps = []
    for r in range(stride):
        for j in range(lo, hi + 1):
            k = r + padding - stride * j
            taps.append(k if 0 <= k < kernel else kernel)
    return tuple(taps), lo, hi


def subpixel_transposed_conv(deconv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``deconv(x)`` computed as a conv on the LR grid with s*s outputs per channel + pixel shuffle.

    Output pixel s*q + r only sees kernel taps r + p - s*j of input q + j, so the transposed conv is
    an ordinary conv whose weights are the kernel's taps regrouped per phase r. Same numbers (to float
    rounding), same parameters and state dict; on CPU, where a transposed conv with one output channel
    is slow, the whole FSRCNN runs 1.3-2x faster at inference (benchmarks/bench_fsrcnn_deconv.py).
    Falls back to ``deconv`` for geometries it does not cover.
    """
    s, k, p = deconv.stride[0], deconv.kernel_size[0], deconv.padding[0]
    square = deconv.stride[1] == s and deconv.kernel_size[1] == k and deconv.padding[1] == p
    if (not square or deconv.groups != 1 or deconv.dilation != (1, 1) or deconv.bias is None
            or tuple(deconv.output_padding) != (s + 2 * p - k,) * 2):  # output exactly H*s x W*s
        return deconv(x)
    taps, lo, hi = _taps(s, k, p)
    n = hi - lo + 1
    index = torch.tensor(taps, device=x.device)
    w = F.pad(deconv.weight, (0, 1, 0, 1))[:, :, index][:, :, :, index]  # (d, c, s*n, s*n), 0 = no tap
    d, c = deconv.weight.shape[:2]
    w = w.reshape(d, c, s, n, s, n).permute(1, 2, 4, 0, 3, 5).reshape(c * s * s, d, n, n)
    y = F.conv2d(F.pad(x, (-lo, hi, -lo, hi)), w, deconv.bias.repeat_interleave(s * s))
    return F.pixel_shuffle(y, s)


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

    The transposed convolution is counted as the work it needs: each input pixel is multiplied
    into a k x k x channels footprint (``d * c * k^2`` MAC per LR pixel). The paper counts it on
    the HR grid instead, hence its larger, scale-dependent numbers. (It runs as a sub-pixel conv,
    :func:`subpixel_transposed_conv`, which also multiplies some zero taps; those are not counted.)
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


SPECS = (ArchSpec(
    name="fsrcnn", build=FSRCNN, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
    luma_only=num_channels_is_one(1), luma_layers=LumaLayers("first_part.0", "last_part", "deconv"),
),)
