"""SwinIR (Liang et al., ICCVW 2021) for super-resolution, with the official key names.

Shallow conv (``conv_first``), residual Swin transformer blocks (``layers.i`` = RSTB:
``residual_group.blocks.j`` Swin layers with (shifted) window attention, then ``conv``),
``norm``, ``conv_after_body``, a long skip, and one of the official reconstruction heads:

- ``"pixelshuffle"`` (classical SR): ``conv_before_upsample.0`` + LeakyReLU,
  ``upsample.{0,2}`` conv + pixel shuffle stages, ``conv_last``;
- ``"pixelshuffledirect"`` (lightweight SR): ``upsample.0`` conv to ``c * s^2`` + shuffle;
- ``"nearest+conv"`` (real-world SR): ``conv_before_upsample.0``, ``conv_up1``,
  ``conv_up2`` (x4), ``conv_hr``, ``conv_last``.

Official ``.pth`` files (often wrapped in ``params`` / ``params_ema``) load unchanged:
``relative_position_index`` buffers are accepted or rebuilt, and ``attn_mask`` buffers are
accepted and ignored (masks are computed on the fly for the actual, padded input size).
The input is reflect-padded to a multiple of ``window_size`` inside ``forward`` and the
output is cropped back. ``img_range`` and the RGB mean are the official constants: they
are not stored in the weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.common import conv_shape, numbered, tolerant, top_level_names
from superres.archs.spec import ArchSpec

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")

SWINIR_CLASSICAL: dict[str, Any] = {
    "embed_dim": 180, "depths": (6, 6, 6, 6, 6, 6), "num_heads": (6, 6, 6, 6, 6, 6), "window_size": 8,
    "mlp_ratio": 2.0, "upsampler": "pixelshuffle", "resi_connection": "1conv",
}
SWINIR_LIGHTWEIGHT: dict[str, Any] = {
    "embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6), "window_size": 8,
    "mlp_ratio": 2.0, "upsampler": "pixelshuffledirect", "resi_connection": "1conv",
}


def relative_position_index(window_size: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table for every pair of positions in a window."""
    ar = torch.arange(window_size)
    coords = torch.stack(torch.meshgrid(ar, ar, indexing="ij")).flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws * ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask: -100 between positions from different regions after the roll."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    win = window_partition(img, ws).squeeze(-1)  # nW, N
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The index is a function of the window size: rebuild it rather than require it.
        state_dict[prefix + "relative_position_index"] = self.relative_position_index
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, h).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, h, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(b, h, n, n)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """LayerNorm, (shifted) window attention, residual; LayerNorm, MLP, residual."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float,
                 qkv_bias: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Official files store the mask for their training patch size; it is recomputed per input.
        state_dict.pop(prefix + "attn_mask", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = window_reverse(self.attn(window_partition(x, ws), mask if s else None), ws, h, w)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, qkv_bias)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, x_size, mask)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        q = dim // 4
        return nn.Sequential(nn.Conv2d(dim, q, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(q, q, 1),
                             nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(q, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', not {kind!r}")


def _tokens_to_image(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, *x_size)


class RSTB(nn.Module):
    """Residual Swin transformer block: Swin layers, a conv on the image grid, a residual."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, qkv_bias)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        y = _tokens_to_image(self.residual_group(x, x_size, mask), x_size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class _PatchEmbed(nn.Module):
    """Image -> tokens (patch size 1), with the optional LayerNorm (key ``patch_embed.norm``)."""

    def __init__(self, dim: int, patch_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if patch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class SwinIR(nn.Module):
    """SwinIR for SR; ``**SWINIR_CLASSICAL`` and ``**SWINIR_LIGHTWEIGHT`` are the published sizes.

    ``scale`` 2, 3, 4 or 8 for the pixel-shuffle heads, 2 or 4 for ``"nearest+conv"``.
    Inputs and outputs are 0..1; ``img_range`` and the mean (DIV2K for RGB, 0 otherwise) are
    applied inside as upstream. Absolute position embeddings (``ape``) are not supported:
    no released SR model uses them.
    """

    def __init__(
        self,
        num_channels: int = 3,
        scale: int = 4,
        embed_dim: int = 180,
        depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        patch_norm: bool = True,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        num_feat: int = 64,
        img_range: float = 1.0,
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, not {upsampler!r}")
        if upsampler == "nearest+conv" and scale not in (2, 4):
            raise ValueError(f"the nearest+conv head supports x2 and x4, not x{scale}")
        if len(depths) != len(num_heads):
            raise ValueError("depths and num_heads must have one entry per RSTB")
        self.scale = scale
        self.window_size = window_size
        self.upsampler = upsampler
        self.img_range = img_range
        mean = DIV2K_MEAN if num_channels == 3 else (0.0,) * num_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, num_channels, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(num_channels, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchEmbed(embed_dim, patch_norm)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, h, window_size, mlp_ratio, qkv_bias, resi_connection)
            for d, h in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            layers: list[nn.Module] = []
            if scale == 3:
                layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
            elif scale >= 2 and scale & (scale - 1) == 0:
                for _ in range(int(math.log2(scale))):
                    layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
            else:
                raise ValueError(f"scale must be 2, 3, 4 or 8, not {scale}")
            self.upsample = nn.Sequential(*layers)
            self.conv_last = nn.Conv2d(num_feat, num_channels, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, num_channels * scale * scale, 3, 1, 1),
                                          nn.PixelShuffle(scale))
        else:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            if scale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, num_channels, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        ws = self.window_size
        mask = shifted_window_mask(*x_size, ws, ws // 2, x.device).to(x.dtype) if ws > 1 else None
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size, mask)
        return _tokens_to_image(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        ws = self.window_size
        ph, pw = (-h) % ws, (-w) % ws
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif self.upsampler == "pixelshuffledirect":
            x = self.upsample(x)
        else:
            x = self.conv_before_upsample(x)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
            if self.scale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        x = x / self.img_range + self.mean
        return x[:, :, : h * self.scale, : w * self.scale]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


_BLOCK = "layers.{i}.residual_group.blocks.{j}."
_BLOCK_KEYS = {
    *(f"{m}.{p}" for m in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
      for p in ("weight", "bias")),
    "attn.relative_position_bias_table", "attn.relative_position_index", "attn_mask",
}
_TOP = {"conv_first", "patch_embed", "layers", "norm", "conv_after_body", "conv_before_upsample",
        "upsample", "conv_last", "conv_up1", "conv_up2", "conv_hr"}


@tolerant
def detect(state_dict: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """SwinIR kwargs read from the tensor shapes, else None.

    ``embed_dim`` from ``conv_first``; ``depths`` by counting ``blocks.j`` per layer;
    ``num_heads`` from each layer's first relative position bias table (columns);
    ``window_size`` from its rows, (2w-1)^2; ``mlp_ratio`` from ``mlp.fc1``; the head type
    from which upsampling keys exist; the scale from the upsampler's shapes (pixel-shuffle
    stages, ``c * s^2`` output channels, or ``conv_up2``); ``resi_connection`` from
    ``conv_after_body`` being one conv or three. ``img_range`` (1) and the mean are not in
    the weights: every released SwinIR SR model uses the defaults.
    """
    names = top_level_names(state_dict)
    if not names <= _TOP or "absolute_pos_embed" in state_dict:
        return None
    first = _BLOCK.format(i=0, j=0)
    if first + "attn.relative_position_bias_table" not in state_dict:
        return None
    # Swin-like relatives (Swin2SR, HAT, ...) have other tensors in their blocks
    if not {k[len(first):] for k in state_dict if k.startswith(first)} <= _BLOCK_KEYS:
        return None
    embed_dim, c = conv_shape(state_dict["conv_first.weight"])
    layers = numbered(state_dict, "layers.", ".residual_group.blocks.0.norm1.weight")
    if layers != list(range(len(layers))):
        return None
    depths, heads = [], []
    window = None
    for i in layers:
        blocks = numbered(state_dict, f"layers.{i}.residual_group.blocks.", ".norm1.weight")
        if blocks != list(range(len(blocks))):
            return None
        depths.append(len(blocks))
        table = state_dict[_BLOCK.format(i=i, j=0) + "attn.relative_position_bias_table"]
        heads.append(int(table.shape[1]))
        side = math.isqrt(int(table.shape[0]))
        if side * side != table.shape[0] or side % 2 == 0:
            return None
        if window not in (None, (side + 1) // 2):
            return None
        window = (side + 1) // 2
    fc1 = state_dict[_BLOCK.format(i=0, j=0) + "mlp.fc1.weight"]
    mlp_ratio = fc1.shape[0] / embed_dim
    if "conv_after_body.weight" in state_dict:
        resi = "1conv"
    elif "conv_after_body.0.weight" in state_dict:
        resi = "3conv"
    else:
        return None
    kwargs: dict[str, Any] = {
        "num_channels": c, "scale": None, "embed_dim": embed_dim, "depths": tuple(depths),
        "num_heads": tuple(heads), "window_size": window, "mlp_ratio": mlp_ratio,
        "qkv_bias": _BLOCK.format(i=0, j=0) + "attn.qkv.bias" in state_dict,
        "patch_norm": "patch_embed.norm.weight" in state_dict, "upsampler": None,
        "resi_connection": resi, "num_feat": 64, "img_range": 1.0,
    }
    if "conv_up1.weight" in state_dict:
        kwargs["upsampler"] = "nearest+conv"
        kwargs["scale"] = 4 if "conv_up2.weight" in state_dict else 2
        kwargs["num_feat"] = conv_shape(state_dict["conv_up1.weight"])[0]
    elif "conv_before_upsample.0.weight" in state_dict:
        nf = conv_shape(state_dict["conv_before_upsample.0.weight"])[0]
        convs = numbered(state_dict, "upsample.", ".weight")
        if not convs or convs != list(range(0, 2 * len(convs), 2)):
            return None
        outs = {conv_shape(state_dict[f"upsample.{i}.weight"])[0] for i in convs}
        if outs == {4 * nf}:
            scale = 2 ** len(convs)
        elif outs == {9 * nf} and len(convs) == 1:
            scale = 3
        else:
            return None
        kwargs.update(upsampler="pixelshuffle", scale=scale, num_feat=nf)
    elif "upsample.0.weight" in state_dict and "conv_last.weight" not in state_dict:
        out = conv_shape(state_dict["upsample.0.weight"])[0]
        s = math.isqrt(out // c)
        if s < 1 or s * s * c != out:
            return None
        kwargs.update(upsampler="pixelshuffledirect", scale=s)
    else:
        return None  # denoising / JPEG models (no upsampler) are not SR models
    return kwargs


def _resi_macs(dim: int, kind: str) -> float:
    if kind == "1conv":
        return 9.0 * dim * dim
    q = dim // 4
    return 9.0 * dim * q + q * q + 9.0 * q * dim


def mflop_per_input_pixel(num_channels: int = 3, scale: int = 4, embed_dim: int = 180,
                          depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
                          num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6), window_size: int = 8,
                          mlp_ratio: float = 2.0, upsampler: str = "pixelshuffle",
                          resi_connection: str = "1conv", num_feat: int = 64, **_: Any) -> float:
    """FLOP (2 x MAC) per input pixel, in MFLOP, for sides that are multiples of the window.

    Per token and Swin layer: qkv ``3C^2``, projection ``C^2``, MLP ``2 r C^2``, and the two
    attention matmuls (``QK^T`` and ``AV``) ``2 w^2 C`` (each token meets the ``w^2`` tokens
    of its window; independent of the number of heads). Plus every convolution, counted
    exactly. Not counted: LayerNorm, softmax, GELU, bias/mask additions (elementwise, a few
    percent at most) and the padding of sides that are not a multiple of ``window_size``
    (which adds the padded pixels' cost). The official ``flops()`` counts ``conv_after_body``
    as ``3 C^2`` and omits the reconstruction head, hence its lower numbers.
    """
    c, d = embed_dim, embed_dim
    layer = (4 + 2 * mlp_ratio) * d * d + 2 * window_size * window_size * d
    macs = 9.0 * num_channels * c + sum(depths) * layer + len(depths) * _resi_macs(d, resi_connection)
    macs += _resi_macs(d, resi_connection)  # conv_after_body
    nf, s2 = num_feat, scale * scale
    if upsampler == "pixelshuffle":
        macs += 9.0 * d * nf
        if scale == 3:
            macs += 9.0 * nf * 9 * nf
        else:
            macs += sum(4**k * 9.0 * nf * 4 * nf for k in range(int(math.log2(scale))))
        macs += s2 * 9.0 * nf * num_channels
    elif upsampler == "pixelshuffledirect":
        macs += 9.0 * d * num_channels * s2
    else:
        macs += 9.0 * d * nf + 4 * 9.0 * nf * nf + (16 * 9.0 * nf * nf if scale == 4 else 0.0)
        macs += s2 * 9.0 * nf * nf + s2 * 9.0 * nf * num_channels
    return 2 * macs / 1e6


def receptive_radius(**_: Any) -> None:
    return None  # dozens of (shifted) window layers: the context reaches across the image


def activation_elems_per_pixel(num_channels: int = 3, scale: int = 4, embed_dim: int = 180,
                               num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6), window_size: int = 8,
                               mlp_ratio: float = 2.0, upsampler: str = "pixelshuffle", num_feat: int = 64,
                               **_: Any) -> float:
    """Estimate: during attention the long skip, layer input, norm output, qkv and its
    reshaped q/k/v (about 8 C), the attention scores and their softmax (2 heads w^2) and the
    mask (w^2); during the MLP fewer; in the head the last upsampling conv and its shuffle."""
    d, n = embed_dim, window_size * window_size
    trunk = max(8 * d + 2 * max(num_heads) * n + n, (3 + 2 * mlp_ratio) * d)
    s2 = scale * scale
    if upsampler == "pixelshuffledirect":
        head = d + 2 * num_channels * s2
    else:
        head = d + 2 * num_feat * s2 + num_channels * s2
    return float(max(trunk, head))


SPECS = (ArchSpec(
    name="swinir", build=SwinIR, detect=detect, scale_key="scale",
    mflop_per_input_pixel=mflop_per_input_pixel, receptive_radius=receptive_radius,
    activation_elems_per_pixel=activation_elems_per_pixel, trunk="layers",
),)
