"""Y-only networks (SRCNN, FSRCNN, ESPCN as published) run on RGB images.

The classic SR papers train and score on the Y of MATLAB's ``rgb2ycbcr`` (studio swing,
16..235). A one-channel network is therefore wrapped: RGB -> YCbCr, the network upscales Y,
Cb and Cr are upscaled bicubically, and the result goes back to RGB. The same conversion is
used by the trainer, so a model is trained on exactly the Y it is later fed.

``luma_state_dict`` turns an RGB (three-channel) model of these families into a Y-only one
that behaves identically on gray images: a starting point for training a Y model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs import ARCHS
from superres.archs.spec import ArchSpec
from superres.metrics.colour import RGB2YCBCR, YCBCR_OFFSET

# MATLAB rgb2ycbcr (metrics.colour, the Y Set5 is scored on) for RGB in [0, 1]:
# YCbCr = OFFSET + MATRIX @ RGB, also in [0, 1].
_MATRIX = torch.tensor(RGB2YCBCR, dtype=torch.float64) / 255.0
_OFFSET = torch.tensor(YCBCR_OFFSET, dtype=torch.float64) / 255.0
_INVERSE = torch.linalg.inv(_MATRIX)
Y_WEIGHTS = tuple(float(v) for v in _MATRIX[0])  # Y = Y_OFFSET + sum(Y_WEIGHTS * RGB)
Y_OFFSET = float(_OFFSET[0])


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    m = matrix.to(device=x.device, dtype=x.dtype)
    return torch.einsum("oc,nchw->nohw", m, x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> YCbCr in [0,1] (MATLAB ``rgb2ycbcr``: Y in 16/255..235/255)."""
    return _apply(_MATRIX, x) + _OFFSET.to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> (N,1,H,W) Y, the first channel of :func:`rgb_to_ycbcr`."""
    return _apply(_MATRIX[:1], x) + Y_OFFSET


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    return _apply(_INVERSE, x - _OFFSET.to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1))


class LumaOnly(nn.Module):
    """Runs a Y-only network on (N,3,H,W) RGB; chroma is upscaled bicubically."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # colour maths in float32 even when the network runs in half precision
        ycc = rgb_to_ycbcr(x.float())
        y = self.net(ycc[:, :1].to(x.dtype)).float()
        chroma = F.interpolate(ycc[:, 1:], size=tuple(y.shape[-2:]), mode="bicubic", align_corners=False)
        return ycbcr_to_rgb(torch.cat([y, chroma], 1)).to(x.dtype)


# ---- RGB weights -> Y weights (the layers are the spec's ``luma_layers``) ------------------


def is_rgb_input(spec: ArchSpec, sd: dict[str, torch.Tensor]) -> bool:
    """True if ``sd`` is a three-channel model of a family :func:`luma_state_dict` converts."""
    if spec.luma_layers is None:
        return False
    w = sd.get(f"{spec.luma_layers.first}.weight")
    return w is not None and w.ndim == 4 and w.shape[1] == 3


def luma_state_dict(spec: ArchSpec, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Y-only weights equal to the RGB model ``sd`` on gray images (up to border effects).

    A gray pixel g becomes Y = a + k g (a = 16/255, k = 219/255), so the input conv is summed
    over colours and rescaled by 1/k with its bias shifted; the output becomes
    a + sum_c w_c out_c with the ``rgb2ycbcr`` luma weights w_c.
    """
    if spec.luma_layers is None:
        known = ", ".join(name for name, s in ARCHS.items() if s.luma_layers is not None)
        raise ValueError(f"no RGB -> Y weight conversion for {spec.name}; known: {known}")
    arch = spec.name
    first, last, kind = spec.luma_layers
    out = dict(sd)
    w, b = sd[f"{first}.weight"].double(), sd[f"{first}.bias"].double()
    if w.shape[1] != 3:
        raise ValueError(f"{arch}: the input layer takes {w.shape[1]} channels, not 3 (RGB)")
    k = sum(Y_WEIGHTS)
    w_sum = w.sum(1, keepdim=True)
    out[f"{first}.weight"] = (w_sum / k).to(sd[f"{first}.weight"].dtype)
    out[f"{first}.bias"] = (b - w_sum.sum((1, 2, 3)) * Y_OFFSET / k).to(sd[f"{first}.bias"].dtype)
    wy = torch.tensor(Y_WEIGHTS, dtype=torch.float64)
    w, b = sd[f"{last}.weight"].double(), sd[f"{last}.bias"].double()
    if kind == "deconv":
        new_w = torch.einsum("c,icxy->ixy", wy, w)[:, None]
        new_b = (wy * b).sum().view(1)
    else:
        groups = w.shape[0] // 3
        new_w = torch.einsum("c,cgixy->gixy", wy, w.view(3, groups, *w.shape[1:]))
        new_b = torch.einsum("c,cg->g", wy, b.view(3, groups))
    out[f"{last}.weight"] = new_w.to(sd[f"{last}.weight"].dtype)
    out[f"{last}.bias"] = (new_b + Y_OFFSET).to(sd[f"{last}.bias"].dtype)
    return out
