"""SUPIR's networks hosted on diffusers building blocks (reference §1, §5). Plain modules: no files.

* :class:`ZeroSFT`, :class:`ZeroCrossAttn`: the 12 connectors that replace SDXL's decoder skip
  concatenations; attribute names are upstream's, so their checkpoint keys load unchanged.
* :class:`GLVControl`: the adaptor, a full SDXL-shaped encoder + middle block. It is a diffusers
  ``ControlNetModel`` whose conditioning embedding is swapped for upstream's single 3x3 hint conv on
  the LQ latent and whose per-output zero convs are removed (upstream has none), so its 10 outputs
  (9 down residuals + mid) are the raw features.
* :class:`SupirUNet`: the SDXL UNet with a custom forward (diffusers' ControlNet residual API can
  only *add* to skips; SUPIR modulates them and inserts cross-attention before two upsamplers).
* :class:`TextConditioner`: both SDXL text encoders to the ``[B, 77, 2048]`` context and the pooled
  embedding, always with original = target size 1024x1024 and crop (0, 0) as upstream.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GLVControl",
    "SupirUNet",
    "TextConditioner",
    "ZeroCrossAttn",
    "ZeroSFT",
    "connector_channels",
    "make_connectors",
]

# Upstream's GroupNorm for the connectors: sgm ``normalization`` = GroupNorm(32, C), eps 1e-5, affine.
_GROUPS = 32


class ZeroSFT(nn.Module):
    """Spatial feature transform of the skip (and decoder) features by a control feature.

    ``out = s * (GN(cat[h_ori, h + zero_conv(c)]) * (1 + gamma(c)) + beta(c)) + (1 - s) * cat[h_ori, h]``.
    With ``s = 0`` it is the plain concatenation, i.e. vanilla SDXL.
    """

    def __init__(self, label_nc: int, norm_nc: int, concat_channels: int = 0, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.GroupNorm(_GROUPS, norm_nc + concat_channels, eps=1e-5, affine=True)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.SiLU())
        self.zero_mul = nn.Conv2d(hidden, norm_nc + concat_channels, 3, padding=1)
        self.zero_add = nn.Conv2d(hidden, norm_nc + concat_channels, 3, padding=1)
        self.zero_conv = nn.Conv2d(label_nc, norm_nc, 1)
        self.pre_concat = concat_channels != 0
        for m in (self.zero_mul, self.zero_add, self.zero_conv):  # zero-initialised upstream
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self, c: Tensor, h: Tensor, h_ori: Tensor | None = None, control_scale: float = 1.0
    ) -> Tensor:
        concat = h_ori is not None and self.pre_concat
        h_raw = torch.cat([h_ori, h], dim=1) if concat else h
        h = h + self.zero_conv(c)
        if concat:
            h = torch.cat([h_ori, h], dim=1)
        actv = self.mlp_shared(c)
        h = self.param_free_norm(h) * (self.zero_mul(actv) + 1) + self.zero_add(actv)
        if h_ori is not None and not self.pre_concat:
            h = torch.cat([h_ori, h], dim=1)
        return h * control_scale + h_raw * (1 - control_scale)


class _CrossAttention(nn.Module):
    """Multi-head attention with upstream's parameter names (to_q/to_k/to_v without bias, to_out.0)."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b = x.shape[0]

        def split(t: Tensor) -> Tensor:
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        )
        return self.to_out(out.transpose(1, 2).reshape(b, x.shape[1], -1))


class ZeroCrossAttn(nn.Module):
    """``x + s * Attn(q = GN(x), kv = GN(c))`` over flattened pixels (heads of 64 channels upstream)."""

    def __init__(self, context_dim: int, query_dim: int, head_dim: int = 64) -> None:
        super().__init__()
        heads = max(1, query_dim // head_dim)
        self.attn = _CrossAttention(query_dim, context_dim, heads, min(head_dim, query_dim))
        self.norm1 = nn.GroupNorm(_GROUPS, query_dim, eps=1e-5, affine=True)
        self.norm2 = nn.GroupNorm(_GROUPS, context_dim, eps=1e-5, affine=True)

    def forward(self, context: Tensor, x: Tensor, control_scale: float = 1.0) -> Tensor:
        b, c, h, w = x.shape
        q = self.norm1(x).flatten(2).transpose(1, 2)
        kv = self.norm2(context).flatten(2).transpose(1, 2)
        out = self.attn(q, kv).transpose(1, 2).reshape(b, c, h, w)
        return x + out * control_scale


def connector_channels(widths: tuple[int, int, int]) -> tuple[list[int], list[int], list[int]]:
    """(cond channels, concat channels, cross-attention insert positions) for UNet widths (c0, c1, c2)."""
    c0, c1, c2 = widths
    cond = [c0] * 4 + [c1] * 3 + [c2] * 3
    concat = [c0] * 2 + [c1] * 3 + [c2] * 4 + [0]
    return cond, concat, [6, 3]


def make_connectors(widths: tuple[int, int, int], hidden: int = 128, head_dim: int = 64) -> nn.ModuleList:
    """The 12 ``project_modules`` in upstream order (10 ZeroSFT + ZeroCrossAttn at 3 and 7)."""
    cond, concat, inserts = connector_channels(widths)
    mods: list[nn.Module] = [
        ZeroSFT(c, c, concat_channels=k, hidden=hidden) for c, k in zip(cond, concat, strict=True)
    ]
    for i in inserts:
        mods.insert(i, ZeroCrossAttn(cond[i], concat[i], head_dim=head_dim))
    return nn.ModuleList(mods)


class GLVControl(nn.Module):
    """The SUPIR adaptor on a diffusers ``ControlNetModel`` (built from an SDXL UNet config)."""

    def __init__(self, unet_config: dict[str, Any]) -> None:
        super().__init__()
        import inspect

        from diffusers import ControlNetModel

        accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
        cfg = {k: v for k, v in unet_config.items() if k in accepted and not k.startswith("_")}
        cfg["conditioning_channels"] = unet_config.get("in_channels", 4)
        self.net = ControlNetModel(**cfg)
        width = unet_config["block_out_channels"][0]
        self.net.controlnet_cond_embedding = nn.Conv2d(cfg["conditioning_channels"], width, 3, padding=1)
        self.net.controlnet_down_blocks = nn.ModuleList(
            nn.Identity() for _ in self.net.controlnet_down_blocks
        )
        self.net.controlnet_mid_block = nn.Identity()

    def forward(
        self, z_lq: Tensor, xt: Tensor, t: Tensor, context: Tensor, added: dict[str, Tensor]
    ) -> list[Tensor]:
        """Features for the connectors: ``conv_in(xt) + hint(z_lq)``, 8 more down features, mid."""
        down, mid = self.net(
            sample=xt,
            timestep=t,
            encoder_hidden_states=context,
            controlnet_cond=z_lq,
            conditioning_scale=1.0,
            added_cond_kwargs=added,
            return_dict=False,
        )
        return [*down, mid]


class SupirUNet(nn.Module):
    """SDXL UNet (diffusers) whose decoder skips go through SUPIR's connectors."""

    def __init__(self, unet: nn.Module, connectors: nn.ModuleList) -> None:
        super().__init__()
        self.unet = unet
        self.project_modules = connectors

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        context: Tensor,
        added: dict[str, Tensor],
        control: list[Tensor],
        control_scale: float = 1.0,
    ) -> Tensor:
        """eps; ``control``: :class:`GLVControl`'s output, ``added``: SDXL's text_embeds and time_ids."""
        u: Any = self.unet
        dtype = control[0].dtype
        x, context = x.to(dtype), context.to(dtype)
        added = {k: v.to(dtype) for k, v in added.items()}
        emb = u.time_embedding(u.get_time_embed(sample=x, timestep=t).to(dtype))
        aug = u.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added)
        emb = emb + aug
        h = u.conv_in(x)
        skips = [h]
        for down in u.down_blocks:
            if getattr(down, "has_cross_attention", False):
                h, res = down(h, temb=emb, encoder_hidden_states=context)
            else:
                h, res = down(h, temb=emb)
            skips.extend(res)
        h = u.mid_block(h, emb, encoder_hidden_states=context)
        conn = self.project_modules
        k, ci = len(conn) - 1, len(control) - 1
        h = conn[k](control[ci], h, control_scale=control_scale)
        k, ci = k - 1, ci - 1
        for up in u.up_blocks:
            attentions = getattr(up, "attentions", None)
            last = len(up.resnets) - 1
            for j, res in enumerate(up.resnets):
                h = conn[k](control[ci], skips.pop(), h, control_scale=control_scale)
                k -= 1
                h = res(h, emb)
                if attentions is not None:
                    h = attentions[j](h, encoder_hidden_states=context, return_dict=False)[0]
                if j == last and up.upsamplers is not None:
                    h = conn[k](control[ci], h, control_scale=control_scale)
                    k -= 1
                    for upsampler in up.upsamplers:
                        h = upsampler(h, skips[-1].shape[-2:])
                ci -= 1
        h = u.conv_out(u.conv_act(u.conv_norm_out(h)))
        return h


class TextConditioner(nn.Module):
    """CLIP-L + OpenCLIP-bigG (as diffusers' SDXL hosts them): penultimate layers and pooled bigG."""

    def __init__(self, clip_l: nn.Module, clip_g: nn.Module) -> None:
        super().__init__()
        self.clip_l = clip_l
        self.clip_g = clip_g

    def forward(self, ids_l: Tensor, ids_g: Tensor, size: int = 1024) -> tuple[Tensor, dict[str, Tensor]]:
        """(context [B, 77, w_l + w_g], added_cond_kwargs with text_embeds and time_ids)."""
        out_l = self.clip_l(ids_l, output_hidden_states=True)
        out_g = self.clip_g(ids_g, output_hidden_states=True)
        context = torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1)
        pooled = out_g.text_embeds
        # upstream: original_size = target_size = (1024, 1024), crop (0, 0), whatever the image size
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=pooled.dtype, device=pooled.device)
        return context, {"text_embeds": pooled, "time_ids": time_ids.expand(pooled.shape[0], -1)}
