"""Tiny random SDXL / SUPIR checkpoints in the *official* key layout, for tests and smoke runs.

The key names and shapes are generated from the upstream (SGM/LDM/OpenCLIP) architecture rules,
independently of superres' own remapping, so loading these files checks that remapping. Same
block layout as the real models, small widths; the weights are random (outputs are noise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "SDXL_SPEC",
    "TinySpec",
    "sdxl_shapes",
    "sdxl_state_dict",
    "supir_shapes",
    "supir_state_dict",
    "write_tiny_files",
    "write_tiny_tokenizer",
]

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class TinySpec:
    widths: tuple[int, int, int] = (32, 32, 64)  # UNet levels; multiples of 32 (GroupNorm(32))
    depths: tuple[int, int, int] = (1, 1, 1)  # transformer blocks per level (level 0 has none)
    clip_l: int = 32
    clip_g: int = 32
    clip_layers: int = 2
    clip_g_layers: int = 0  # bigG layers; 0: same as clip_layers
    pooled: int = 32  # bigG projection width
    time_dim: int = 8  # Fourier width of each size/crop number (SDXL: 256)
    vae_widths: tuple[int, int, int, int] = (32, 32, 64, 64)
    connector_hidden: int = 32  # ZeroSFT hidden width (upstream: 128)
    head_channels: int = 16
    vocab: int = 0  # 0: the tiny tokenizer's size

    @property
    def context(self) -> int:
        return self.clip_l + self.clip_g

    @property
    def adm(self) -> int:
        return self.pooled + 6 * self.time_dim


# The real sizes (sd_xl_base_1.0 + SUPIR-v0Q/F): for shape-only checks against the upstream layout.
SDXL_SPEC = TinySpec(
    widths=(320, 640, 1280),
    depths=(1, 2, 10),
    clip_l=768,
    clip_g=1280,
    clip_layers=12,
    clip_g_layers=32,
    pooled=1280,
    time_dim=256,
    vae_widths=(128, 256, 512, 512),
    connector_hidden=128,
    head_channels=64,
    vocab=49408,
)


def _norm(p: str, ch: int) -> Shapes:
    """A GroupNorm / LayerNorm: scale and shift."""
    return {p + "weight": (ch,), p + "bias": (ch,)}


def _conv(p: str, cout: int, cin: int, k: int = 3) -> Shapes:
    return {p + "weight": (cout, cin, k, k), p + "bias": (cout,)}


def _linear(p: str, cout: int, cin: int, bias: bool = True) -> Shapes:
    return {p + "weight": (cout, cin), **({p + "bias": (cout,)} if bias else {})}


def _resblock(p: str, cin: int, cout: int, temb: int) -> Shapes:
    s: Shapes = {
        **_norm(p + "in_layers.0.", cin),
        **_conv(p + "in_layers.2.", cout, cin),
        **_linear(p + "emb_layers.1.", cout, temb),
        **_norm(p + "out_layers.0.", cout),
        **_conv(p + "out_layers.3.", cout, cout),
    }
    if cin != cout:
        s.update(_conv(p + "skip_connection.", cout, cin, 1))
    return s


def _transformer(p: str, ch: int, depth: int, ctx: int) -> Shapes:
    s: Shapes = {
        **_norm(p + "norm.", ch),
        **_linear(p + "proj_in.", ch, ch),
        **_linear(p + "proj_out.", ch, ch),
    }
    for k in range(depth):
        b = f"{p}transformer_blocks.{k}."
        for attn, kv in (("attn1", ch), ("attn2", ctx)):
            s.update(_linear(f"{b}{attn}.to_q.", ch, ch, bias=False))
            s.update(_linear(f"{b}{attn}.to_k.", ch, kv, bias=False))
            s.update(_linear(f"{b}{attn}.to_v.", ch, kv, bias=False))
            s.update(_linear(f"{b}{attn}.to_out.0.", ch, ch))
        for n in ("norm1", "norm2", "norm3"):
            s.update(_norm(f"{b}{n}.", ch))
        s.update(_linear(b + "ff.net.0.proj.", 8 * ch, ch))  # GEGLU: 2 x 4ch
        s.update(_linear(b + "ff.net.2.", ch, 4 * ch))
    return s


def _unet_encoder(p: str, spec: TinySpec, s: Shapes) -> list[int]:
    c0 = spec.widths[0]
    temb = 4 * c0
    s.update(_linear(p + "time_embed.0.", temb, c0))
    s.update(_linear(p + "time_embed.2.", temb, temb))
    s.update(_linear(p + "label_emb.0.0.", temb, spec.adm))
    s.update(_linear(p + "label_emb.0.2.", temb, temb))
    s.update(_conv(p + "input_blocks.0.0.", c0, 4))
    chans, ch, idx = [c0], c0, 1
    for level, width in enumerate(spec.widths):
        for _ in range(2):
            s.update(_resblock(f"{p}input_blocks.{idx}.0.", ch, width, temb))
            ch = width
            if level > 0:
                s.update(_transformer(f"{p}input_blocks.{idx}.1.", ch, spec.depths[level], spec.context))
            chans.append(ch)
            idx += 1
        if level != len(spec.widths) - 1:
            s.update(_conv(f"{p}input_blocks.{idx}.0.op.", ch, ch))
            chans.append(ch)
            idx += 1
    s.update(_resblock(p + "middle_block.0.", ch, ch, temb))
    s.update(_transformer(p + "middle_block.1.", ch, spec.depths[-1], spec.context))
    s.update(_resblock(p + "middle_block.2.", ch, ch, temb))
    return chans


def _unet_decoder(p: str, spec: TinySpec, chans: list[int], s: Shapes) -> None:
    temb = 4 * spec.widths[0]
    ch, idx = spec.widths[-1], 0
    for level in reversed(range(len(spec.widths))):
        width = spec.widths[level]
        for r in range(3):
            s.update(_resblock(f"{p}output_blocks.{idx}.0.", ch + chans.pop(), width, temb))
            ch = width
            if level > 0:
                s.update(_transformer(f"{p}output_blocks.{idx}.1.", ch, spec.depths[level], spec.context))
                if r == 2:
                    s.update(_conv(f"{p}output_blocks.{idx}.2.conv.", ch, ch))
            idx += 1
    s.update(_norm(p + "out.0.", spec.widths[0]))
    s.update(_conv(p + "out.2.", 4, spec.widths[0]))


def _vae_block(p: str, cin: int, cout: int) -> Shapes:
    s: Shapes = {
        **_norm(p + "norm1.", cin),
        **_conv(p + "conv1.", cout, cin),
        **_norm(p + "norm2.", cout),
        **_conv(p + "conv2.", cout, cout),
    }
    if cin != cout:
        s.update(_conv(p + "nin_shortcut.", cout, cin, 1))
    return s


def _vae_mid(p: str, w: int) -> Shapes:
    s = {
        **_vae_block(p + "block_1.", w, w),
        **_vae_block(p + "block_2.", w, w),
        **_norm(p + "attn_1.norm.", w),
    }
    for n in ("q", "k", "v", "proj_out"):
        s.update(_conv(f"{p}attn_1.{n}.", w, w, 1))
    return s


def _vae_encoder(p: str, widths: tuple[int, ...], s: Shapes) -> None:
    s.update(_conv(p + "conv_in.", widths[0], 3))
    cin = widths[0]
    for i, w in enumerate(widths):
        for j in range(2):
            s.update(_vae_block(f"{p}down.{i}.block.{j}.", cin, w))
            cin = w
        if i != len(widths) - 1:
            s.update(_conv(f"{p}down.{i}.downsample.conv.", w, w))
    s.update(_vae_mid(p + "mid.", cin))
    s.update(_norm(p + "norm_out.", cin))
    s.update(_conv(p + "conv_out.", 8, cin))


def _vae(p: str, widths: tuple[int, ...], s: Shapes) -> None:
    _vae_encoder(p + "encoder.", widths, s)
    s.update(_conv(p + "quant_conv.", 8, 8, 1))
    s.update(_conv(p + "post_quant_conv.", 4, 4, 1))
    d = p + "decoder."
    cin = widths[-1]
    s.update(_conv(d + "conv_in.", cin, 4))
    s.update(_vae_mid(d + "mid.", cin))
    for i in reversed(range(len(widths))):
        for j in range(3):
            s.update(_vae_block(f"{d}up.{i}.block.{j}.", cin, widths[i]))
            cin = widths[i]
        if i != 0:
            s.update(_conv(f"{d}up.{i}.upsample.conv.", cin, cin))
    s.update(_norm(d + "norm_out.", cin))
    s.update(_conv(d + "conv_out.", 3, cin))


def _clip_l(p: str, spec: TinySpec, vocab: int, s: Shapes) -> None:
    w, t = spec.clip_l, p + "text_model."
    s[t + "embeddings.token_embedding.weight"] = (vocab, w)
    s[t + "embeddings.position_embedding.weight"] = (77, w)
    for i in range(spec.clip_layers):
        b = f"{t}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s.update(_linear(f"{b}self_attn.{n}.", w, w))
        s.update(_linear(b + "mlp.fc1.", 4 * w, w))
        s.update(_linear(b + "mlp.fc2.", w, 4 * w))
        for n in ("layer_norm1", "layer_norm2"):
            s.update(_norm(f"{b}{n}.", w))
    s.update(_norm(t + "final_layer_norm.", w))


def _open_clip(p: str, spec: TinySpec, vocab: int, s: Shapes) -> None:
    w = spec.clip_g
    s.update(
        {
            p + "token_embedding.weight": (vocab, w),
            p + "positional_embedding": (77, w),
            **_norm(p + "ln_final.", w),
            p + "text_projection": (w, spec.pooled),
        }
    )
    for i in range(spec.clip_g_layers or spec.clip_layers):
        b = f"{p}transformer.resblocks.{i}."
        s.update(
            {
                b + "attn.in_proj_weight": (3 * w, w),
                b + "attn.in_proj_bias": (3 * w,),
                **_linear(b + "attn.out_proj.", w, w),
                **_linear(b + "mlp.c_fc.", 4 * w, w),
                **_linear(b + "mlp.c_proj.", w, 4 * w),
            }
        )
        for n in ("ln_1", "ln_2"):
            s.update(_norm(f"{b}{n}.", w))


def _materialise(shapes: Shapes, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        t = torch.randn(shapes[k], generator=g) * 0.05
        if len(shapes[k]) == 1 and k.endswith("weight"):  # norm scales near 1 keep activations alive
            t += 1.0
        out[k] = t
    return out


def sdxl_shapes(spec: TinySpec = TinySpec(), vocab: int = 0) -> Shapes:
    """Key -> shape of an SDXL-base single file (SGM/LDM/OpenCLIP names); no tensors."""
    vocab = vocab or spec.vocab or tiny_vocab_size()
    s: Shapes = {}
    chans = _unet_encoder("model.diffusion_model.", spec, s)
    _unet_decoder("model.diffusion_model.", spec, chans, s)
    _vae("first_stage_model.", spec.vae_widths, s)
    _clip_l("conditioner.embedders.0.transformer.", spec, vocab, s)
    _open_clip("conditioner.embedders.1.model.", spec, vocab, s)
    return s


def sdxl_state_dict(spec: TinySpec = TinySpec(), vocab: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny SDXL-base single-file state dict (SGM/LDM/OpenCLIP names)."""
    return _materialise(sdxl_shapes(spec, vocab), seed)


def supir_state_dict(spec: TinySpec = TinySpec(), seed: int = 1) -> dict[str, torch.Tensor]:
    """A tiny SUPIR checkpoint: adaptor, 12 connectors, denoise encoder (upstream names)."""
    return _materialise(supir_shapes(spec), seed)


def supir_shapes(spec: TinySpec = TinySpec()) -> Shapes:
    """Key -> shape of a SUPIR checkpoint (adaptor, 12 connectors, denoise encoder); no tensors."""
    s: Shapes = {}
    p = "model.control_model."
    _unet_encoder(p, spec, s)
    s.update(_conv(p + "input_hint_block.0.", spec.widths[0], 4))
    c0, c1, c2 = spec.widths
    cond = [c0] * 4 + [c1] * 3 + [c2] * 3
    concat = [c0] * 2 + [c1] * 3 + [c2] * 4 + [0]
    mods: list[Shapes] = []
    nh = spec.connector_hidden
    for n, k in zip(cond, concat, strict=True):
        mods.append(
            {
                **_norm("param_free_norm.", n + k),
                **_conv("mlp_shared.0.", nh, n),
                **_conv("zero_mul.", n + k, nh),
                **_conv("zero_add.", n + k, nh),
                **_conv("zero_conv.", n, n, 1),
            }
        )
    for i in (6, 3):
        ctx, q = cond[i], concat[i]
        inner = max(1, q // 64) * min(64, q)  # upstream: query_dim // 64 heads of 64 channels
        mods.insert(
            i,
            {
                "attn.to_q.weight": (inner, q),
                "attn.to_k.weight": (inner, ctx),
                "attn.to_v.weight": (inner, ctx),
                "attn.to_out.0.weight": (q, inner),
                "attn.to_out.0.bias": (q,),
                **_norm("norm1.", q),
                **_norm("norm2.", ctx),
            },
        )
    for i, m in enumerate(mods):
        s.update({f"model.diffusion_model.project_modules.{i}.{k}": v for k, v in m.items()})
    _vae_encoder("first_stage_model.denoise_encoder.", spec.vae_widths, s)
    return s


# -- a tiny CLIP BPE vocabulary in the transformers file format (vocab.json + merges.txt) --------

_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("o", "n</w>"), ("i", "n"), ("e", "r</w>")]


def _byte_chars() -> list[str]:
    """CLIP's reversible byte-to-unicode table, in its canonical order."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return [chr(c) for c in chars]


def _tiny_vocab() -> dict[str, int]:
    base = _byte_chars()
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]  # end token last: the highest id, as in CLIP
    return {t: i for i, t in enumerate(tokens)}


def tiny_vocab_size() -> int:
    return len(_tiny_vocab())


def write_tiny_tokenizer(folder: Path) -> Path:
    """vocab.json + merges.txt of a tiny CLIP-style BPE (real format, 520 tokens)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(_tiny_vocab(), ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES), encoding="utf-8"
    )
    return folder


def write_tiny_files(folder: Path, spec: TinySpec = TinySpec()) -> tuple[Path, Path, Path]:
    """(sdxl.safetensors, supir.ckpt as a torch pickle like upstream's, tokenizer folder)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    sdxl, supir = folder / "tiny-sdxl.safetensors", folder / "tiny-SUPIR-v0Q.ckpt"
    save_file(sdxl_state_dict(spec), str(sdxl))
    torch.save({"state_dict": supir_state_dict(spec)}, supir)
    return sdxl, supir, write_tiny_tokenizer(folder / "tokenizer")
