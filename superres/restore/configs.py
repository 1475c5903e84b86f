"""Model configurations that ship with superres, so loading never asks a hub.

These are the fixed parts of the SDXL-base layout (block types, embeddings, CLIP settings). The
sizes (widths, depths, vocabulary, ...) are read from the checkpoint's tensor shapes by
:mod:`superres.restore.convert`, which is what lets a tiny checkpoint of the same layout load too;
for the real SDXL files the result equals the published SDXL-base configuration.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLIP_G_BASE", "CLIP_L_BASE", "SDXL_UNET_BASE", "SDXL_VAE_BASE", "VAE_SCALING_FACTOR"]

VAE_SCALING_FACTOR = 0.13025  # SDXL's latent scale (SD1.x uses 0.18215)

SDXL_UNET_BASE: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,  # sgm timestep_embedding is [cos, sin]
    "freq_shift": 0,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],  # diffusers' name for the number of heads (64 channels each)
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "upcast_attention": False,
}

SDXL_VAE_BASE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 1024,
    "scaling_factor": VAE_SCALING_FACTOR,
    "force_upcast": True,
}

# CLIP ViT-L/14 text tower (openai) and OpenCLIP ViT-bigG/14 text tower, as SDXL uses them.
# eos_token_id 2 selects transformers' legacy pooling (argmax of the token ids = the end token),
# which is OpenCLIP's own ``text.argmax(-1)``.
CLIP_L_BASE: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

CLIP_G_BASE: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 1280,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
