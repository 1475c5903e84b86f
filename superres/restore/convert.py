"""Checkpoint key layouts: what a file is, the configuration its shapes imply, and key remapping.

Upstream layouts (reference §1.6, §5.1):

* SDXL single file (SGM/LDM names): ``model.diffusion_model.*`` (UNet),
  ``first_stage_model.*`` (VAE), ``conditioner.embedders.0.transformer.*`` (CLIP-L, already in
  transformers' names), ``conditioner.embedders.1.model.*`` (OpenCLIP bigG names).
* SUPIR: ``model.control_model.*`` (GLVControl: an SGM UNet encoder + middle block, plus
  ``input_hint_block.0``), ``model.diffusion_model.project_modules.*`` (connectors, names kept by
  our modules), ``first_stage_model.denoise_encoder.*`` (an LDM VAE encoder).

Remapping to diffusers names:

* UNet and adaptor: ``model.control_model.`` is renamed to ``model.diffusion_model.`` and both go
  through diffusers' ``convert_ldm_unet_checkpoint``; ``input_hint_block.0.*`` becomes
  ``controlnet_cond_embedding.*`` (our swapped-in hint conv).
* VAE and denoise encoder: ``first_stage_model.denoise_encoder.`` is renamed to
  ``first_stage_model.encoder.`` and both go through ``convert_ldm_vae_checkpoint``.
* bigG: OpenCLIP to transformers, written out in :func:`convert_open_clip` (``in_proj`` split
  into q/k/v, ``text_projection`` transposed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from superres.restore.configs import CLIP_G_BASE, CLIP_L_BASE, SDXL_UNET_BASE, SDXL_VAE_BASE

__all__ = [
    "CheckpointError",
    "classify",
    "clip_config",
    "convert_adaptor",
    "convert_clip_l",
    "convert_denoise_encoder",
    "convert_open_clip",
    "convert_unet",
    "convert_vae",
    "split_supir",
    "unet_config",
    "vae_config",
]

UNET = "model.diffusion_model."
CONTROL = "model.control_model."
PROJECT = "model.diffusion_model.project_modules."
VAE = "first_stage_model."
DENOISE = "first_stage_model.denoise_encoder."
CLIP_L = "conditioner.embedders.0.transformer."
CLIP_G = "conditioner.embedders.1.model."

SDXL_HELP = (
    "SDXL base 1.0: sd_xl_base_1.0_0.9vae.safetensors from stabilityai/stable-diffusion-xl-base-1.0 "
    "on Hugging Face (CreativeML Open RAIL++-M licence), or an SDXL fine-tune in the same single-file "
    "layout (e.g. Juggernaut XL)"
)
SUPIR_HELP = (
    "SUPIR-v0Q.ckpt or SUPIR-v0F.ckpt from the SUPIR project (github.com/Fanghua-Yu/SUPIR: Google "
    "Drive / Baidu links; mirrors on Hugging Face), or Kijai/SUPIR_pruned's fp16 .safetensors. "
    "Licence: SUPIR Software License Agreement, non-commercial use only"
)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not what the caller needs; says what to get instead."""


def classify(keys: Any) -> str:
    """What a state dict is, by key layout: sdxl, sdxl-refiner, supir, sd1, sd2, diffusers-unet or unknown."""
    keys = set(keys)
    if any(k.startswith(CONTROL) for k in keys):
        return "supir"
    if any(k.startswith(CLIP_G) for k in keys) and any(k.startswith(CLIP_L) for k in keys):
        return "sdxl"
    if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        return "sdxl-refiner"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("down_blocks.") for k in keys):
        return "diffusers-unet"
    if any(k.startswith(UNET) for k in keys):
        return "unet-only"
    return "unknown"


DESCRIPTIONS = {
    "supir": "a SUPIR adaptor checkpoint",
    "sdxl": "an SDXL base checkpoint",
    "sdxl-refiner": "an SDXL *refiner* checkpoint (one text encoder; SUPIR needs SDXL base)",
    "sd1": "a Stable Diffusion 1.x checkpoint (CLIP-L only, 768-wide context)",
    "sd2": "a Stable Diffusion 2.x checkpoint (OpenCLIP-H only)",
    "diffusers-unet": "a diffusers-format UNet (not the single-file layout)",
    "unet-only": "a bare UNet without VAE or text encoders",
    "unknown": "no Stable Diffusion layout superres knows",
}


def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"expected tensor {key!r} is missing: not an SDXL-shaped checkpoint")
    return tuple(sd[key].shape)


def _count(sd: Mapping[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def unet_config(
    sd: Mapping[str, Tensor],
    prefix: str = UNET,
    head_channels: int = 64,
    addition_time_embed_dim: int | None = None,
) -> dict[str, Any]:
    """diffusers UNet config of an SDXL-shaped SGM UNet (or adaptor) from its tensor shapes.

    The layout is SDXL's (3 levels, 2 resnets each, attention on levels 1 and 2); widths, depths,
    context width and embedding sizes are read. Heads: width // ``head_channels`` (SDXL: 64), at
    least 1, since head counts leave no trace in shapes.
    """
    c0, cin = _shape(sd, prefix + "input_blocks.0.0.weight")[:2]
    c1 = _shape(sd, prefix + "input_blocks.4.0.out_layers.3.weight")[0]
    c2 = _shape(sd, prefix + "input_blocks.7.0.out_layers.3.weight")[0]
    if (
        any(k.startswith(prefix + "input_blocks.1.1.") for k in sd)
        or _count(sd, re.escape(prefix) + r"input_blocks\.(\d+)\.") != 9
    ):
        raise CheckpointError("UNet is not SDXL-shaped (expected 9 input blocks, no attention on level 0)")
    d1 = _count(sd, re.escape(prefix) + r"input_blocks\.4\.1\.transformer_blocks\.(\d+)\.")
    d2 = _count(sd, re.escape(prefix) + r"input_blocks\.7\.1\.transformer_blocks\.(\d+)\.")
    dm = _count(sd, re.escape(prefix) + r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    if dm != d2:
        raise CheckpointError(f"middle transformer depth {dm} differs from level-2 depth {d2}")
    ctx = _shape(sd, prefix + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight")[1]
    if len(_shape(sd, prefix + "input_blocks.4.1.proj_in.weight")) != 2:
        raise CheckpointError(
            "UNet uses conv projections in its transformers (SD1.x style), not SDXL's linear"
        )
    adm = _shape(sd, prefix + "label_emb.0.0.weight")[1]
    cfg = dict(SDXL_UNET_BASE)
    cfg.update(
        in_channels=cin,
        out_channels=_shape(sd, prefix + "out.2.weight")[0] if prefix + "out.2.weight" in sd else cin,
        block_out_channels=[c0, c1, c2],
        transformer_layers_per_block=[1, d1, d2],
        attention_head_dim=[max(1, c // head_channels) for c in (c0, c1, c2)],
        cross_attention_dim=ctx,
        projection_class_embeddings_input_dim=adm,
    )
    if addition_time_embed_dim is not None:
        cfg["addition_time_embed_dim"] = addition_time_embed_dim
    return cfg


def vae_config(sd: Mapping[str, Tensor], prefix: str = VAE) -> dict[str, Any]:
    """diffusers AutoencoderKL config from an LDM VAE's shapes (SDXL block layout)."""
    levels = _count(sd, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    widths = [_shape(sd, f"{prefix}encoder.down.{i}.block.0.conv1.weight")[0] for i in range(levels)]
    cfg = dict(SDXL_VAE_BASE)
    cfg.update(
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        block_out_channels=widths,
        layers_per_block=_count(sd, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\."),
        latent_channels=_shape(sd, prefix + "encoder.conv_out.weight")[0] // 2,
        in_channels=_shape(sd, prefix + "encoder.conv_in.weight")[1],
        out_channels=_shape(sd, prefix + "decoder.conv_out.weight")[0],
    )
    return cfg


def clip_config(sd: Mapping[str, Tensor], which: str, head_channels: int = 64) -> dict[str, Any]:
    """transformers CLIPTextConfig kwargs for SDXL's CLIP-L (``"l"``) or bigG (``"g"``) from shapes."""
    if which == "l":
        p = CLIP_L + "text_model."
        vocab, width = _shape(sd, p + "embeddings.token_embedding.weight")
        positions = _shape(sd, p + "embeddings.position_embedding.weight")[0]
        layers = _count(sd, re.escape(p) + r"encoder\.layers\.(\d+)\.")
        inner = _shape(sd, p + "encoder.layers.0.mlp.fc1.weight")[0]
        cfg = dict(CLIP_L_BASE, projection_dim=width)
    else:
        p = CLIP_G
        vocab, width = _shape(sd, p + "token_embedding.weight")
        positions = _shape(sd, p + "positional_embedding")[0]
        layers = _count(sd, re.escape(p) + r"transformer\.resblocks\.(\d+)\.")
        inner = _shape(sd, p + "transformer.resblocks.0.mlp.c_fc.weight")[0]
        cfg = dict(CLIP_G_BASE, projection_dim=_shape(sd, p + "text_projection")[1])
    cfg.update(
        vocab_size=vocab,
        hidden_size=width,
        max_position_embeddings=positions,
        num_hidden_layers=layers,
        intermediate_size=inner,
        num_attention_heads=max(1, width // head_channels),
    )
    return cfg


def _sub(sd: Mapping[str, Tensor], prefix: str, new_prefix: str = "") -> dict[str, Tensor]:
    return {new_prefix + k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def convert_unet(sd: Mapping[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """SDXL UNet (``model.diffusion_model.*`` minus connectors) to diffusers UNet2DConditionModel keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet = {k: v for k, v in sd.items() if k.startswith(UNET) and not k.startswith(PROJECT)}
    return convert_ldm_unet_checkpoint(unet, config)


def convert_adaptor(sd: Mapping[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """GLVControl (``model.control_model.*``) to our ControlNetModel host's keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    body = {
        UNET + k[len(CONTROL) :]: v
        for k, v in sd.items()
        if k.startswith(CONTROL) and not k.startswith(CONTROL + "input_hint_block.")
    }
    out = convert_ldm_unet_checkpoint(body, config)
    for name in ("weight", "bias"):
        key = f"{CONTROL}input_hint_block.0.{name}"
        if key in sd:
            out[f"controlnet_cond_embedding.{name}"] = sd[key]
    return out


def convert_vae(sd: Mapping[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """SDXL VAE (``first_stage_model.*`` minus the denoise encoder) to diffusers AutoencoderKL keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    vae = {k: v for k, v in sd.items() if k.startswith(VAE) and not k.startswith(DENOISE)}
    return convert_ldm_vae_checkpoint(vae, config)


def convert_denoise_encoder(sd: Mapping[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """SUPIR's denoise encoder to diffusers ``Encoder`` keys (same naming as the VAE's encoder)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    enc = _sub(sd, DENOISE, VAE + "encoder.")
    out = convert_ldm_vae_checkpoint(enc, config)
    return {k[len("encoder.") :]: v for k, v in out.items() if k.startswith("encoder.")}


def convert_clip_l(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CLIP-L is stored in transformers' own names under ``conditioner.embedders.0.transformer.``."""
    return {k: v for k, v in _sub(sd, CLIP_L).items() if not k.endswith("position_ids")}


def convert_open_clip(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """OpenCLIP bigG text tower to transformers CLIPTextModelWithProjection keys."""
    src = _sub(sd, CLIP_G)
    out: dict[str, Tensor] = {
        "text_model.embeddings.token_embedding.weight": src["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": src["positional_embedding"],
        "text_model.final_layer_norm.weight": src["ln_final.weight"],
        "text_model.final_layer_norm.bias": src["ln_final.bias"],
        "text_projection.weight": src["text_projection"].t().contiguous(),
    }
    renames = {
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
        "attn.out_proj": "self_attn.out_proj",
    }
    rx = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)$")  # in_proj_weight has "_"
    for key, value in src.items():
        m = rx.match(key)
        if m is None:
            continue
        layer, name, kind = m.groups()
        dst = f"text_model.encoder.layers.{layer}."
        if name == "attn.in_proj":
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                out[f"{dst}self_attn.{part}.{kind}"] = chunk.contiguous()
        elif name in renames:
            out[f"{dst}{renames[name]}.{kind}"] = value
    return out


def split_supir(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """(adaptor, connectors, denoise encoder) parts of a SUPIR checkpoint; connector keys unprefixed."""
    return (
        {k: v for k, v in sd.items() if k.startswith(CONTROL)},
        _sub(sd, PROJECT),
        {k: v for k, v in sd.items() if k.startswith(DENOISE)},
    )
