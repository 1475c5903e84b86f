"""waifu2x networks (nagadomi/waifu2x): UpConv7 and CUNet / UpCUNet.

All convolutions are unpadded ("valid"), as in the upstream models and their ncnn ports.
The upstream wrappers therefore pad the input themselves; here that padding and the final
crop happen inside ``forward``, so that, like every superres model, ``module(x)`` maps an
LR batch (N,3,H,W) in [0,1] to (N,3,sH,sW) for any H, W >= 1. The padding is what
waifu2x-ncnn-vulkan does: replicate (edge) padding of 7 px (UpConv7), 18 px (UpCUNet x2)
or 28 px (CUNet x1), plus replicate padding on the bottom/right up to a multiple of 2 (x2)
or 4 (x1) so the strided convolutions divide evenly; the extra output is cropped off.

CUNet uses squeeze-and-excitation (SE) blocks whose channel weights come from the mean of
the whole input tile. Tiled output therefore differs slightly from whole-image output unless
a tile covers the image, so :func:`receptive_radius` is None for CUNet.

Key names: UpConv7 is an ``nn.Sequential`` ``net.{0..12}`` (convs at even indices, the
transposed conv at 12); CUNet uses the U-Net layout of Real-CUGAN's ``upcunet_v3.py`` (which
nagadomi's PyTorch re-implementation, nunif, shares as far as we know): ``unet1.*`` /
``unet2.*`` with ``conv.0``/``conv.2`` per double conv and ``seblock.conv1``/``conv2`` (1x1
convs) per SE block. Real-CUGAN (bilibili) derives from CUNet and reuses :class:`UNet1` and
:class:`UNet2` from here.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.spec import ArchSpec

_SLOPE = 0.1  # every LeakyReLU in waifu2x and Real-CUGAN


def crop(x: torch.Tensor, n: int) -> torch.Tensor:
    """Remove ``n`` pixels from each side (``F.pad(x, (-n,) * 4)`` upstream)."""
    return x[..., n:x.shape[-2] - n, n:x.shape[-1] - n]


def edge_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int, mode: str) -> torch.Tensor:
    """``F.pad`` with ``replicate`` or ``reflect``; reflect also works when a pad exceeds the side.

    PyTorch's reflect needs each pad smaller than the side; tiny inputs (a few pixels, as
    tiles or thumbnails can be) are then mirrored repeatedly, like ``numpy.pad(mode='reflect')``.
    """
    h, w = x.shape[-2:]
    if mode == "replicate" or (max(top, bottom) < h and max(left, right) < w):
        return F.pad(x, (left, right, top, bottom), mode=mode)
    rows = _reflect_index(h, top, bottom, x.device)
    cols = _reflect_index(w, left, right, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _reflect_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(_SLOPE, inplace=True)


# --- UpConv7 -------------------------------------------------------------------------------

_UPCONV7_CHANNELS = (16, 32, 64, 128, 128, 256)
UPCONV7_PAD = 7


class UpConv7(nn.Module):
    """waifu2x UpConv7: six valid 3x3 convs + LeakyReLU(0.1), then ConvTranspose 4x4 / 2, pad 3."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, scale: int = 2) -> None:
        super().__init__()
        if scale != 2:
            raise ValueError(f"UpConv7 upscales by 2, not {scale}")
        self.scale = scale
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in _UPCONV7_CHANNELS:
            layers += [nn.Conv2d(prev, ch, 3, 1, 0), _lrelu()]
            prev = ch
        layers.append(nn.ConvTranspose2d(prev, out_channels, 4, 2, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = UPCONV7_PAD  # 2 * (H + 14) - 28 = 2H: no crop needed
        return self.net(F.pad(x, (p, p, p, p), mode="replicate"))


# --- CUNet building blocks (shared with Real-CUGAN) ------------------------------------------


class SEBlock(nn.Module):
    """Squeeze-and-excitation over the whole input: mean -> 1x1 conv, ReLU -> 1x1 conv, sigmoid."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1, 1, 0)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(2, 3), keepdim=True)
        z = torch.sigmoid(self.conv2(F.relu(self.conv1(z))))
        return x * z


class UNetConv(nn.Module):
    """Two valid 3x3 convs with LeakyReLU(0.1), optionally followed by an SE block."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, se: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, 1, 0), _lrelu(),
                                  nn.Conv2d(mid_channels, out_channels, 3, 1, 0), _lrelu())
        self.seblock = SEBlock(out_channels) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.seblock(x) if self.seblock is not None else x


def _bottom(kind: str, out_channels: int) -> nn.Module:
    """The last layer of a U-Net: valid 3x3 conv (x1), or ConvTranspose x2 (4/2/3) or x3 (5/3/2)."""
    if kind == "conv":
        return nn.Conv2d(64, out_channels, 3, 1, 0)
    if kind == "up2":
        return nn.ConvTranspose2d(64, out_channels, 4, 2, 3)
    if kind == "up3":
        return nn.ConvTranspose2d(64, out_channels, 5, 3, 2)
    raise ValueError(f"unknown U-Net bottom {kind!r}")


class UNet1(nn.Module):
    """Shallow U-Net (one down/up level); input side S -> output S-16 (conv), 2S-32 (up2), 3S-44 (up3)."""

    def __init__(self, in_channels: int, out_channels: int, bottom: str, se: bool = True) -> None:
        super().__init__()
        self.conv1 = UNetConv(in_channels, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2, 0)
        self.conv2 = UNetConv(64, 128, 64, se=se)
        self.conv2_up = nn.ConvTranspose2d(64, 64, 2, 2, 0)
        self.conv3 = nn.Conv2d(64, 64, 3, 1, 0)
        self.conv_bottom = _bottom(bottom, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = F.leaky_relu(self.conv1_down(x1), _SLOPE)
        x2 = F.leaky_relu(self.conv2_up(self.conv2(x2)), _SLOPE)
        x3 = F.leaky_relu(self.conv3(crop(x1, 4) + x2), _SLOPE)
        return self.conv_bottom(x3)


class UNet2(nn.Module):
    """Deeper U-Net (two down/up levels); input side S -> output S-40 (3x3 conv bottom)."""

    def __init__(self, in_channels: int, out_channels: int, bottom: str = "conv", se: bool = True) -> None:
        super().__init__()
        self.conv1 = UNetConv(in_channels, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2, 0)
        self.conv2 = UNetConv(64, 64, 128, se=se)
        self.conv2_down = nn.Conv2d(128, 128, 2, 2, 0)
        self.conv3 = UNetConv(128, 256, 128, se=se)
        self.conv3_up = nn.ConvTranspose2d(128, 128, 2, 2, 0)
        self.conv4 = UNetConv(128, 64, 64, se=se)
        self.conv4_up = nn.ConvTranspose2d(64, 64, 2, 2, 0)
        self.conv5 = nn.Conv2d(64, 64, 3, 1, 0)
        self.conv_bottom = _bottom(bottom, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(F.leaky_relu(self.conv1_down(x1), _SLOPE))
        x3 = self.conv3(F.leaky_relu(self.conv2_down(x2), _SLOPE))
        x3 = F.leaky_relu(self.conv3_up(x3), _SLOPE)
        x4 = self.conv4(crop(x2, 4) + x3)
        x4 = F.leaky_relu(self.conv4_up(x4), _SLOPE)
        x5 = F.leaky_relu(self.conv5(crop(x1, 16) + x4), _SLOPE)
        return self.conv_bottom(x5)


# --- CUNet / UpCUNet -------------------------------------------------------------------------

# scale: (pre-padding per side, side multiple) as in waifu2x-ncnn-vulkan
CUNET_PADDING = {1: (28, 4), 2: (18, 2)}


class CUNet(nn.Module):
    """waifu2x CUNet (``scale=1``, denoise only) and UpCUNet (``scale=2``): UNet1 -> UNet2, residual.

    ``out = crop(unet1(x), 20) + unet2(unet1(x))`` on the replicate-padded input. SE blocks
    use whole-tile statistics (see the module docstring).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, scale: int = 2) -> None:
        super().__init__()
        if scale not in CUNET_PADDING:
            raise ValueError(f"CUNet scale must be 1 or 2, not {scale}")
        self.scale = scale
        self.unet1 = UNet1(in_channels, out_channels, "up2" if scale == 2 else "conv")
        self.unet2 = UNet2(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad, multiple = CUNET_PADDING[self.scale]
        x = F.pad(x, (pad, pad + (-w) % multiple, pad, pad + (-h) % multiple), mode="replicate")
        x = self.unet1(x)
        y = crop(x, 20) + self.unet2(x)
        return y[..., :h * self.scale, :w * self.scale]


# --- detection and costs ---------------------------------------------------------------------


def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """UpConv7 kwargs for ``net.{0,2,...,12}`` keys, else None (CUNet: :func:`detect_cunet`)."""
    expected = {f"net.{i}.{p}" for i in range(0, 13, 2) for p in ("weight", "bias")}
    if set(state_dict) != expected:
        return None
    shapes = [tuple(state_dict[f"net.{i}.weight"].shape) for i in range(0, 13, 2)]
    in_ch = shapes[0][1] if len(shapes[0]) == 4 else 0
    chans = (in_ch, *_UPCONV7_CHANNELS)
    convs_ok = all(shapes[k] == (chans[k + 1], chans[k], 3, 3) for k in range(6))
    last = shapes[6]
    if not convs_ok or len(last) != 4 or last[0] != 256 or last[2:] != (4, 4):
        return None
    return {"in_channels": in_ch, "out_channels": last[1], "scale": 2}


def detect_cunet(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """CUNet x1 kwargs (``unet1.conv_bottom`` a 3x3 conv), else None.

    The x2 UpCUNet has exactly the tensors of Real-CUGAN's x2 network, so a file with a
    transposed-conv ``unet1.conv_bottom`` is left to the Real-CUGAN detector; a waifu2x x2
    CUNet file therefore loads as Real-CUGAN x2, which differs only in the border padding
    (reflect instead of replicate). The registry's named models are not affected.
    """
    bottom = state_dict.get("unet1.conv_bottom.weight")
    first = state_dict.get("unet1.conv1.conv.0.weight")
    if bottom is None or first is None or bottom.ndim != 4 or first.ndim != 4:
        return None
    if any(not k.startswith(("unet1.", "unet2.")) for k in state_dict):
        return None
    if tuple(bottom.shape[1:]) != (64, 3, 3) or "unet1.conv2.seblock.conv1.weight" not in state_dict:
        return None
    return {"in_channels": int(first.shape[1]), "out_channels": int(bottom.shape[0]), "scale": 1}


def _conv_macs(layers: list[tuple[float, int, int, int]]) -> float:
    """Sum of density * k*k * cin * cout over (density, cin, cout, k) per layer.

    Density (pixels per pixel of the network input) is that of a conv's output, and that of a
    transposed conv's input (each input pixel is scattered through the whole kernel).
    """
    return sum(d * k * k * ci * co for d, ci, co, k in layers)


def unet1_macs(in_ch: int, out_ch: int, bottom: str) -> float:
    """MACs per pixel of UNet1's input (border shrinkage ignored; deconvs counted per input pixel)."""
    macs = _conv_macs([(1, in_ch, 32, 3), (1, 32, 64, 3), (0.25, 64, 64, 2), (0.25, 64, 128, 3),
                       (0.25, 128, 64, 3), (0.25, 64, 64, 2), (1, 64, 64, 3)])
    macs += {"conv": 9, "up2": 16, "up3": 25}[bottom] * 64 * out_ch
    return macs


def unet2_macs(in_ch: int, out_ch: int) -> float:
    """MACs per pixel of UNet2's input."""
    return _conv_macs([(1, in_ch, 32, 3), (1, 32, 64, 3), (0.25, 64, 64, 2), (0.25, 64, 64, 3),
                       (0.25, 64, 128, 3), (1 / 16, 128, 128, 2), (1 / 16, 128, 256, 3),
                       (1 / 16, 256, 128, 3), (1 / 16, 128, 128, 2), (0.25, 128, 64, 3),
                       (0.25, 64, 64, 3), (0.25, 64, 64, 2), (1, 64, 64, 3), (1, 64, out_ch, 3)])


def mflop_per_input_pixel(in_channels: int = 3, out_channels: int = 3, scale: int = 2, **_: Any) -> float:
    """UpConv7 FLOP (2 x MAC) per LR pixel, in MFLOP (padding overhead not counted)."""
    chans = (in_channels, *_UPCONV7_CHANNELS)
    macs = sum(9 * a * b for a, b in itertools.pairwise(chans)) + 16 * 256 * out_channels
    return 2 * macs / 1e6


def cunet_mflop_per_input_pixel(in_channels: int = 3, out_channels: int = 3, scale: int = 2,
                                **_: Any) -> float:
    """CUNet FLOP per LR pixel, in MFLOP: UNet1 at LR, UNet2 at the output resolution."""
    macs = unet1_macs(in_channels, out_channels, "up2" if scale == 2 else "conv")
    macs += scale * scale * unet2_macs(out_channels, out_channels)
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> int:
    """UpConv7: six 3x3 convs and the 4x4 transposed conv need 7 LR pixels of context (exact tiles)."""
    return UPCONV7_PAD


def cunet_receptive_radius(**_: Any) -> None:
    """None: the SE blocks see the whole tile, so no finite context makes tiles exact."""
    return None


def activation_elems_per_pixel(out_channels: int = 3, **_: Any) -> float:
    """UpConv7 peak live activations per (padded) LR pixel: the 128 -> 256 conv pair."""
    return 128.0 + 256.0 + 4.0 * out_channels


def cunet_activation_elems_per_pixel(scale: int = 2, **_: Any) -> float:
    """CUNet peak per LR pixel: UNet2's first level (64-channel skip + 32/64-channel convs) at s^2."""
    return scale * scale * (64.0 + 32.0 + 64.0 + 64.0) + 3.0 * 64.0


SPECS = (
ArchSpec(
    name="upconv7", build=UpConv7, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
),
ArchSpec(
    name="cunet", build=CUNet, detect=detect_cunet, scale_key="scale",
    mflop_per_input_pixel=cunet_mflop_per_input_pixel, receptive_radius=cunet_receptive_radius,
    activation_elems_per_pixel=cunet_activation_elems_per_pixel,
),
)
