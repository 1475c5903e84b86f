"""Colour correction of a diffusion result against its stage-1 reference.

SDXL sampling drifts in colour and global tone. SUPIR corrects the output against the stage-1
image (the degradation-robust encoder's latent decoded by the VAE, at the output resolution),
which has the right colours but no detail. Two methods, as upstream (reference §3.5), on NCHW
tensors in [-1, 1]:

* AdaIN: per image and channel, the output gets the reference's spatial mean and standard deviation
  (``std = sqrt(unbiased var + 1e-5)``);
* wavelet: a 5-level à-trous decomposition with the [1,2,1]⊗[1,2,1]/16 kernel dilated by 2^i
  and replicate padding; the result is the output's high frequencies plus the reference's
  low-pass residual (colour and illumination).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from superres.restore.settings import COLOUR_FIXES

__all__ = ["COLOUR_FIXES", "adain_fix", "colour_fix", "match_reference", "wavelet_decompose", "wavelet_fix"]

_EPS = 1e-5


def _mean_std(x: Tensor) -> tuple[Tensor, Tensor]:
    flat = x.flatten(2)
    mean = flat.mean(dim=2)[..., None, None]
    std = (flat.var(dim=2, unbiased=True) + _EPS).sqrt()[..., None, None]
    return mean, std


def adain_fix(content: Tensor, style: Tensor) -> Tensor:
    """``content`` normalised per channel, then given ``style``'s mean and std."""
    c_mean, c_std = _mean_std(content)
    s_mean, s_std = _mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


def _blur(x: Tensor, radius: int) -> Tensor:
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype, device=x.device)
    kernel = (kernel / 16).expand(x.shape[1], 1, 3, 3)
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, dilation=radius, groups=x.shape[1])


def wavelet_decompose(x: Tensor, levels: int = 5) -> tuple[Tensor, Tensor]:
    """(high, low) with ``high + low == x``; ``low`` is the residual after ``levels`` blurs."""
    high = torch.zeros_like(x)
    low = x
    for i in range(levels):
        blurred = _blur(low, 2**i)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_fix(content: Tensor, style: Tensor) -> Tensor:
    """The content's high frequencies on the style's low-pass image."""
    high, _ = wavelet_decompose(content)
    _, low = wavelet_decompose(style)
    return high + low


def match_reference(reference: Tensor, like: Tensor) -> Tensor:
    """The stage-1 reference at the output's size (bicubic), so either fix compares like with like."""
    if reference.shape[-2:] == like.shape[-2:]:
        return reference
    return F.interpolate(reference, size=like.shape[-2:], mode="bicubic", align_corners=False)


def colour_fix(content: Tensor, reference: Tensor, method: str = "wavelet") -> Tensor:
    """Apply one of :data:`COLOUR_FIXES`; computed in float32 whatever the model dtype was."""
    if method == "none":
        return content
    if method not in COLOUR_FIXES:
        raise ValueError(f"unknown colour fix {method!r}; choose one of {', '.join(COLOUR_FIXES)}")
    c = content.float()
    r = match_reference(reference.float(), c)
    out = adain_fix(c, r) if method == "adain" else wavelet_fix(c, r)
    return out.to(content.dtype)
