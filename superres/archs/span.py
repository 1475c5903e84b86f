"""SPAN (Wan et al., "Swift Parameter-free Attention Network", NTIRE 2024 ESR winner).

Six SPAB blocks of three re-parameterisable 3x3 convs ("Conv3XC") with a parameter-free
attention ``(out3 + x) * (sigmoid(out3) - 0.5)``; the block input feature, the conv after
the last block, block 1's output and block 6's first (post-SiLU) activation are
concatenated, mixed by a 1x1 conv and pixel-shuffled. Key names follow the reference
implementation (hongyuanyu/SPAN), so its ``.pth`` files load unchanged.

A Conv3XC comes in two forms:

* **training form** (``fused=False``, the reference layout): a 1x1 skip ``sk`` and a
  1x1 -> 3x3 -> 1x1 chain ``conv.0/1/2`` (widened by ``gain``), plus ``eval_conv``, the
  single 3x3 conv they collapse into. At inference ``eval_conv`` is always re-derived from
  the branches (stored values may be stale), exactly as the reference does;
* **fused form** (``fused=True``): only ``eval_conv``. The ncnn files carry only this, and
  it is what :meth:`SPAN.fuse` produces. Fine-tune it as an ordinary conv.

The input normalisation ``(x - mean) * img_range`` is part of the network (there is no
de-normalisation at the output); ``mean`` and ``img_range`` are buffers, so they travel
with saved weights. Files without them (the reference saves neither) get the official
values, or none at all when they carry spandrel's ``no_norm`` marker.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape
from superres.archs.spec import ArchSpec

# The official checkpoints' normalisation (the DIV2K RGB mean, x255), as float32 values.
OFFICIAL_MEAN: tuple[float, float, float] = tuple(  # type: ignore[assignment]
    float(v) for v in torch.tensor((0.4488, 0.4371, 0.4040), dtype=torch.float32))
OFFICIAL_RANGE = 255.0
NUM_BLOCKS = 6  # fixed by the architecture (the forward names blocks 1 and 6)
_CONV3XC = ("conv_1", *(f"block_{b}.c{i}_r" for b in range(1, NUM_BLOCKS + 1) for i in (1, 2, 3)), "conv_2")


def fuse_conv3xc(sk_w: torch.Tensor, sk_b: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor,
                 w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The one 3x3 conv (weight, bias) equal to ``conv2(conv1(conv0(pad(x)))) + sk(x)``.

    conv0 and conv2 are 1x1 and conv1 an unpadded 3x3; the input is zero-padded by 1 before
    conv0, while the 1x1 skip ``sk`` sees it unpadded. Because conv0 is affine per pixel, its
    bias reaches conv1 at the padded border too, so the fused conv (zero-padded, bias summed
    over all nine taps) is exact everywhere, borders included. Computed in float64, returned
    in conv1's dtype.
    """
    dt = w1.dtype
    a0, a1, a2, ak = (t.detach().double() for t in (w0, w1, w2, sk_w))
    c0, c1, c2, ck = (t.detach().double() for t in (b0, b1, b2, sk_b))
    a0, a2, ak = a0[:, :, 0, 0], a2[:, :, 0, 0], ak[:, :, 0, 0]
    (n, m, kh, kw), o = a1.shape, a2.shape[0]
    chain = (a2 @ a1.reshape(n, m * kh * kw)).reshape(o, m, kh * kw)  # conv2 after conv1: (o, m, taps)
    weight = (chain.transpose(1, 2) @ a0).transpose(1, 2).reshape(o, a0.shape[1], kh, kw)  # then conv0
    weight[:, :, kh // 2, kw // 2] += ak
    bias = chain.sum(2) @ c0 + a2 @ c1 + c2 + ck
    return weight.to(dt), bias.to(dt)


class Conv3XC(nn.Module):
    """Re-parameterisable 3x3 conv: training branches + ``eval_conv``, or ``eval_conv`` alone."""

    def __init__(self, c_in: int, c_out: int, gain: int = 2, fused: bool = False) -> None:
        super().__init__()
        self.fused = fused
        if not fused:
            self.sk = nn.Conv2d(c_in, c_out, 1)
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in * gain, 1),
                nn.Conv2d(c_in * gain, c_out * gain, 3),  # unpadded: the input is padded once, by hand
                nn.Conv2d(c_out * gain, c_out, 1),
            )
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
        if not fused:
            self.eval_conv.requires_grad_(False)  # derived from the branches, never trained
            self.update_params()

    def fused_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single 3x3 conv this block computes."""
        if self.fused:
            return self.eval_conv.weight, self.eval_conv.bias
        c0, c1, c2 = self.conv
        return fuse_conv3xc(self.sk.weight, self.sk.bias, c0.weight, c0.bias, c1.weight, c1.bias,
                            c2.weight, c2.bias)

    @torch.no_grad()
    def update_params(self) -> None:
        """Write the branches' fused conv into ``eval_conv`` (no-op in the fused form)."""
        if not self.fused:
            weight, bias = self.fused_params()
            self.eval_conv.weight.copy_(weight)
            self.eval_conv.bias.copy_(bias)

    def train(self, mode: bool = True) -> Conv3XC:
        super().train(mode)
        if not mode:
            self.update_params()  # keep the saved eval_conv in step with the branches
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self.eval_conv(x)
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self.fused_params()  # always fresh, like the reference
        return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), padding=1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # A training-form file's eval_conv is whatever it was at the last validation run (or
        # absent): derive it from the branches being loaded instead of trusting it.
        names = ("sk.weight", "sk.bias", *(f"conv.{i}.{p}" for i in range(3) for p in ("weight", "bias")))
        if not self.fused and all(prefix + n in state_dict for n in names):
            tensors = [state_dict[prefix + n] for n in names]
            try:
                weight, bias = fuse_conv3xc(*tensors)
            except (RuntimeError, IndexError, ValueError):
                pass  # wrong shapes: the ordinary load reports them
            else:
                state_dict[prefix + "eval_conv.weight"] = weight
                state_dict[prefix + "eval_conv.bias"] = bias
        super()._load_from_state_dict(state_dict, prefix, *args)


class SPAB(nn.Module):
    """Swift parameter-free attention block; returns (output, post-SiLU first activation)."""

    def __init__(self, channels: int, fused: bool = False) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels, 2, fused)
        self.c2_r = Conv3XC(channels, channels, 2, fused)
        self.c3_r = Conv3XC(channels, channels, 2, fused)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(out1)))
        return (out3 + x) * (torch.sigmoid(out3) - 0.5), out1


class SPAN(nn.Module):
    """SPAN with the reference key names; ``fused=True`` builds the inference-only form."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        feature_channels: int = 48,
        upscale: int = 4,
        img_range: float = OFFICIAL_RANGE,
        rgb_mean: tuple[float, ...] = OFFICIAL_MEAN,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {num_in_ch} input channels")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.feature_channels = feature_channels
        self.upscale = upscale
        self.scale = upscale
        self.fused = fused
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, num_in_ch, 1, 1))
        self.register_buffer("img_range", torch.tensor([float(img_range)], dtype=torch.float32))
        c = feature_channels
        self.conv_1 = Conv3XC(num_in_ch, c, 2, fused)
        self.block_1 = SPAB(c, fused)
        self.block_2 = SPAB(c, fused)
        self.block_3 = SPAB(c, fused)
        self.block_4 = SPAB(c, fused)
        self.block_5 = SPAB(c, fused)
        self.block_6 = SPAB(c, fused)
        self.conv_cat = nn.Conv2d(4 * c, c, 1)
        self.conv_2 = Conv3XC(c, c, 2, fused)
        self.upsampler = nn.Sequential(nn.Conv2d(c, num_out_ch * upscale * upscale, 3, 1, 1),
                                       nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * self.img_range
        feat = self.conv_1(x)
        b1, _ = self.block_1(feat)
        h = b1
        for block in (self.block_2, self.block_3, self.block_4, self.block_5):
            h, _ = block(h)
        h, b6_act1 = self.block_6(h)
        out = self.conv_cat(torch.cat([feat, self.conv_2(h), b1, b6_act1], 1))
        return self.upsampler(out)

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (normalisation included)."""
        return {"num_in_ch": self.num_in_ch, "num_out_ch": self.num_out_ch,
                "feature_channels": self.feature_channels, "upscale": self.upscale,
                "img_range": float(self.img_range), "rgb_mean": tuple(float(v) for v in self.mean.flatten()),
                "fused": self.fused}

    @torch.no_grad()
    def fused_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict of the fused form computing the same function."""
        sd = {"mean": self.mean.clone(), "img_range": self.img_range.clone()}
        for name in _CONV3XC:
            weight, bias = self.get_submodule(name).fused_params()
            sd[f"{name}.eval_conv.weight"] = weight.detach().clone()
            sd[f"{name}.eval_conv.bias"] = bias.detach().clone()
        for name in ("conv_cat", "upsampler.0"):
            sd[f"{name}.weight"] = self.get_submodule(name).weight.detach().clone()
            sd[f"{name}.bias"] = self.get_submodule(name).bias.detach().clone()
        return sd

    def fuse(self) -> SPAN:
        """An inference-only (fused) copy; the training branches are collapsed, not kept."""
        module = SPAN(**{**self.kwargs(), "fused": True}).to(device=self.mean.device, dtype=self.mean.dtype)
        module.load_state_dict(self.fused_state_dict(), strict=True)
        return module.train(self.training)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: Any,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        # Reference files store no normalisation: keep the constructor's (from detect()).
        no_norm = state_dict.pop(prefix + "no_norm", None)
        if no_norm is not None and (bool(self.mean.any()) or float(self.img_range) != 1.0):
            error_msgs.append(f"{prefix}no_norm: the weights were trained without input normalisation, "
                              "but this SPAN normalises (build it with rgb_mean zeros and img_range 1)")
        state_dict.setdefault(prefix + "mean", self.mean)
        state_dict.setdefault(prefix + "img_range", self.img_range)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


_BLOCK_KEY = re.compile(r"^block_(\d+)\.")


def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """SPAN kwargs if ``state_dict`` has its layout (training or fused form), else None."""
    fused = "conv_1.sk.weight" not in state_dict
    first = "conv_1.eval_conv.weight" if fused else "conv_1.sk.weight"
    needed = [first, "conv_cat.weight", "upsampler.0.weight"]
    needed += [f"{n}.eval_conv.weight" if fused else f"{n}.conv.1.weight" for n in _CONV3XC]
    if not all(k in state_dict for k in needed):
        return None
    if {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k))} != set(range(1, NUM_BLOCKS + 1)):
        return None
    try:
        feature_channels, num_in_ch = conv_shape(state_dict[first])
        cat_out, cat_in = conv_shape(state_dict["conv_cat.weight"])
        up_out, up_in = conv_shape(state_dict["upsampler.0.weight"])
    except ValueError:
        return None
    if (cat_out, cat_in, up_in) != (feature_channels, 4 * feature_channels, feature_channels):
        return None
    kwargs: dict[str, Any] | None = None
    for out_ch in (3, 1, num_in_ch):
        s = _isqrt_exact(up_out // out_ch) if up_out % out_ch == 0 else 0
        if s:
            kwargs = {"num_in_ch": num_in_ch, "num_out_ch": out_ch, "feature_channels": feature_channels,
                      "upscale": s}
            break
    if kwargs is None:
        return None
    if "mean" in state_dict:  # saved by superres (the reference keeps both out of its state dict)
        mean = tuple(float(v) for v in state_dict["mean"].float().flatten())
        stored_range = state_dict.get("img_range")
        img_range = OFFICIAL_RANGE if stored_range is None else float(stored_range.float().flatten()[0])
        if len(mean) != num_in_ch:
            return None
    elif "no_norm" in state_dict:
        mean, img_range = (0.0,) * num_in_ch, 1.0
    elif num_in_ch == 3:
        mean, img_range = OFFICIAL_MEAN, OFFICIAL_RANGE
    else:  # the reference only normalises RGB: assume an unnormalised model
        mean, img_range = (0.0,) * num_in_ch, 1.0
    return {**kwargs, "img_range": img_range, "rgb_mean": mean, "fused": fused}


def _isqrt_exact(n: int) -> int:
    r = int(n**0.5 + 0.5)
    return r if r >= 1 and r * r == n else 0


def mflop_per_input_pixel(num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48,
                          upscale: int = 4, **_: Any) -> float:
    """Exact FLOP (2 x MAC) per input pixel of the (fused) convolutions, in MFLOP.

    The training form runs the same fused convs at inference (fusing costs per call, not
    per pixel).
    """
    c = feature_channels
    macs = 9 * num_in_ch * c + (3 * NUM_BLOCKS + 1) * 9 * c * c + 4 * c * c + 9 * c * num_out_ch * upscale**2
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> int:
    """One pixel per 3x3 conv on the longest path: conv_1, 6 x 3 in the blocks, conv_2, upsampler."""
    return 1 + 3 * NUM_BLOCKS + 1 + 1


def activation_elems_per_pixel(feature_channels: int = 48, num_out_ch: int = 3, upscale: int = 4,
                               **_: Any) -> float:
    """Peak live activations per input pixel (estimate).

    Around the concat: the block-1 input and output and block 6's first activation stay
    alive, plus the concat itself (4c) and the working tensors of a block (~3c); after
    that, the upsampler output and its pixel-shuffled copy (2 x out x s^2).
    """
    return 10.0 * feature_channels + 2.0 * num_out_ch * upscale * upscale


SPECS = (ArchSpec(
    name="span", build=SPAN, detect=detect, scale_key="upscale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel,
),)
