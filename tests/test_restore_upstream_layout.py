"""The official checkpoint layouts at their real sizes, pinned to names and shapes read from upstream code.

The tiny test checkpoints come from ``superres.restore.tiny``; these tests keep that generator (and the
remapping in ``convert.py``) honest against facts taken independently from the upstream sources:

* Fanghua-Yu/SUPIR @ bda91af: ``SUPIR/modules/SUPIR_v0.py`` (GLVControl, LightGLVUNet mode XL-base,
  ZeroSFT, ZeroCrossAttn), ``options/SUPIR_v0.yaml`` (project_channel_scale 2, SDXL UNet/VAE configs),
  ``SUPIR/models/SUPIR_model.py`` (denoise_encoder = deepcopy of the VAE encoder);
* its ``sgm/modules/diffusionmodules/openaimodel.py``, ``sgm/modules/diffusionmodules/model.py`` (LDM
  Encoder/Decoder), ``sgm/modules/attention.py``, ``sgm/models/autoencoder.py`` (quant convs),
  ``sgm/modules/encoders/modules.py`` (embedder 0: HF CLIPTextModel as ``transformer``; embedder 1:
  OpenCLIP as ``model``);
* mlfoundations/open_clip (2023, ``src/open_clip/transformer.py``, ``model.py``): resblocks with
  ``nn.MultiheadAttention`` (``in_proj_weight``), ``text_projection`` a (width, embed_dim) parameter.

The shapes and counts below were obtained by instantiating those upstream classes with the released
configuration on the meta device, not from superres code.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from superres.restore import convert as cv
from superres.restore.models import GLVControl, ZeroCrossAttn, ZeroSFT, make_connectors
from superres.restore.tiny import SDXL_SPEC, sdxl_shapes, supir_shapes

C, P = "model.control_model.", "model.diffusion_model.project_modules."
D = "first_stage_model.denoise_encoder."
U, V = "model.diffusion_model.", "first_stage_model."
L, G = "conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."

UPSTREAM: dict[str, tuple[int, ...]] = {
    # GLVControl: SDXL encoder + middle block, plus the zero-initialised hint conv on the LQ latent
    C + "input_hint_block.0.weight": (320, 4, 3, 3),
    C + "input_hint_block.0.bias": (320,),
    C + "time_embed.0.weight": (1280, 320),
    C + "label_emb.0.0.weight": (1280, 2816),
    C + "input_blocks.0.0.weight": (320, 4, 3, 3),
    C + "input_blocks.3.0.op.weight": (320, 320, 3, 3),
    C + "input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
    C + "input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight": (640, 2048),
    C + "input_blocks.6.0.op.weight": (640, 640, 3, 3),
    C + "input_blocks.7.1.proj_in.weight": (1280, 1280),
    C + "input_blocks.8.1.transformer_blocks.9.ff.net.0.proj.weight": (10240, 1280),
    C + "middle_block.1.transformer_blocks.9.attn1.to_out.0.bias": (1280,),
    C + "middle_block.2.out_layers.3.weight": (1280, 1280, 3, 3),
    # LightGLVUNet.project_modules (XL-base, project_channel_scale 2): ZeroSFT(label_nc, norm_nc, concat)
    # with ZeroCrossAttn(context_dim, query_dim) inserted at 6 and then 3
    P + "0.param_free_norm.weight": (640,),
    P + "0.mlp_shared.0.weight": (128, 320, 3, 3),
    P + "0.zero_mul.weight": (640, 128, 3, 3),
    P + "0.zero_conv.weight": (320, 320, 1, 1),
    P + "2.zero_add.bias": (960,),
    P + "3.attn.to_q.weight": (640, 640),
    P + "3.attn.to_k.weight": (640, 320),
    P + "3.attn.to_v.weight": (640, 320),
    P + "3.attn.to_out.0.bias": (640,),
    P + "3.norm1.weight": (640,),
    P + "3.norm2.weight": (320,),
    P + "4.param_free_norm.bias": (960,),
    P + "5.mlp_shared.0.weight": (128, 640, 3, 3),
    P + "6.zero_mul.weight": (1920, 128, 3, 3),
    P + "7.attn.to_k.weight": (1280, 640),
    P + "7.attn.to_out.0.weight": (1280, 1280),
    P + "7.norm2.bias": (640,),
    P + "8.param_free_norm.weight": (1920,),
    P + "9.zero_conv.weight": (1280, 1280, 1, 1),
    P + "10.zero_add.weight": (2560, 128, 3, 3),
    P + "11.param_free_norm.weight": (1280,),
    P + "11.zero_mul.bias": (1280,),
    # denoise encoder: LDM Encoder(ch 128, ch_mult 1,2,4,4, z 4, double_z)
    D + "conv_in.weight": (128, 3, 3, 3),
    D + "down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
    D + "down.2.downsample.conv.weight": (512, 512, 3, 3),
    D + "down.3.block.1.conv2.weight": (512, 512, 3, 3),
    D + "mid.attn_1.q.weight": (512, 512, 1, 1),
    D + "mid.attn_1.proj_out.bias": (512,),
    D + "conv_out.weight": (8, 512, 3, 3),
    # SDXL UNet (SGM UNetModel) decoder and head
    U + "label_emb.0.2.weight": (1280, 1280),
    U + "output_blocks.0.0.in_layers.0.weight": (2560,),
    U + "output_blocks.2.0.in_layers.2.weight": (1280, 1920, 3, 3),
    U + "output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
    U + "output_blocks.3.0.skip_connection.weight": (640, 1920, 1, 1),
    U + "output_blocks.5.1.transformer_blocks.1.norm3.weight": (640,),
    U + "output_blocks.5.2.conv.weight": (640, 640, 3, 3),
    U + "output_blocks.8.0.in_layers.2.weight": (320, 640, 3, 3),
    U + "out.2.weight": (4, 320, 3, 3),
    # SDXL VAE
    V + "quant_conv.weight": (8, 8, 1, 1),
    V + "post_quant_conv.weight": (4, 4, 1, 1),
    V + "decoder.conv_in.weight": (512, 4, 3, 3),
    V + "decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
    V + "decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
    V + "decoder.up.1.block.2.conv1.weight": (256, 256, 3, 3),
    # text encoders: HF CLIP-L (transformers names) and OpenCLIP bigG
    L + "embeddings.token_embedding.weight": (49408, 768),
    L + "encoder.layers.11.self_attn.k_proj.weight": (768, 768),
    L + "encoder.layers.0.mlp.fc1.weight": (3072, 768),
    L + "final_layer_norm.weight": (768,),
    G + "token_embedding.weight": (49408, 1280),
    G + "positional_embedding": (77, 1280),
    G + "text_projection": (1280, 1280),
    G + "ln_final.bias": (1280,),
    G + "transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
    G + "transformer.resblocks.31.attn.in_proj_bias": (3840,),
    G + "transformer.resblocks.0.attn.out_proj.weight": (1280, 1280),
    G + "transformer.resblocks.0.mlp.c_fc.weight": (5120, 1280),
    G + "transformer.resblocks.0.ln_2.weight": (1280,),
}

# (tensors, parameters) per part, counted on the instantiated upstream modules
UPSTREAM_COUNTS = {
    C: (810, 1_243_378_880),
    P: (118, 54_797_440),
    D: (106, 34_163_592),
}


@pytest.fixture(scope="module")
def full() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    return sdxl_shapes(SDXL_SPEC), supir_shapes(SDXL_SPEC)


def _part(shapes: dict[str, tuple[int, ...]], prefix: str, exclude: str = "\0") -> tuple[int, int]:
    keys = [k for k in shapes if k.startswith(prefix) and not k.startswith(exclude)]
    return len(keys), sum(math.prod(shapes[k]) for k in keys)


def test_generator_at_full_size_writes_the_upstream_names_and_shapes(full):
    sdxl, supir = full
    both = {**sdxl, **supir}
    wrong = {k: (both.get(k), v) for k, v in UPSTREAM.items() if both.get(k) != v}
    assert not wrong, wrong
    for prefix, counts in UPSTREAM_COUNTS.items():
        assert _part(supir, prefix) == counts, prefix
    assert sum(math.prod(v) for v in supir.values()) == 1_332_339_912  # the whole of SUPIR-v0Q.ckpt
    assert len(supir) == 810 + 118 + 106
    assert _part(sdxl, U)[1] == 2_567_463_684  # SDXL-base UNet
    assert _part(sdxl, V) == (106 + 138 + 4, 34_163_592 + 49_490_179 + 72 + 20)  # encoder, decoder, quant
    assert _part(sdxl, G) == (32 * 12 + 5, 694_659_840)  # bigG text tower (no logit_scale here)
    assert _part(sdxl, "conditioner.embedders.0.transformer.") == (12 * 16 + 4, 123_060_480)
    assert {k.split(".")[3] for k in supir if k.startswith(P)} == {str(i) for i in range(12)}


def test_connectors_are_built_in_upstream_order():
    conn = make_connectors((320, 640, 1280))
    kinds = ["A" if isinstance(m, ZeroCrossAttn) else "S" for m in conn]
    assert kinds == list("SSSASSSASSSS")
    assert all(isinstance(m, ZeroSFT) for i, m in enumerate(conn) if i not in (3, 7))


def test_loader_maps_the_full_size_upstream_layout_without_leftovers(full):
    """Configs read from real-size shapes, every converter, every host module: on meta tensors."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sdxl = {k: torch.empty(v, device="meta") for k, v in full[0].items()}
    supir = {k: torch.empty(v, device="meta") for k, v in full[1].items()}
    sdxl["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.empty(
        1, 77, device="meta"
    )
    sdxl[G + "logit_scale"] = torch.empty((), device="meta")  # in the real file, unused
    l_cfg, g_cfg = cv.clip_config(sdxl, "l"), cv.clip_config(sdxl, "g")
    u_cfg = cv.unet_config(sdxl, cv.UNET, addition_time_embed_dim=256)
    c_cfg = cv.unet_config(supir, cv.CONTROL, addition_time_embed_dim=256)
    v_cfg = cv.vae_config(sdxl)
    assert u_cfg["block_out_channels"] == [320, 640, 1280] and c_cfg == u_cfg
    assert u_cfg["transformer_layers_per_block"] == [1, 2, 10]
    assert u_cfg["attention_head_dim"] == [5, 10, 20]
    assert (u_cfg["cross_attention_dim"], u_cfg["projection_class_embeddings_input_dim"]) == (2048, 2816)
    assert v_cfg["block_out_channels"] == [128, 256, 512, 512]
    assert (l_cfg["num_hidden_layers"], l_cfg["num_attention_heads"]) == (12, 12)
    g_sizes = (g_cfg["num_hidden_layers"], g_cfg["num_attention_heads"], g_cfg["projection_dim"])
    assert g_sizes == (32, 20, 1280)
    _, connectors, _ = cv.split_supir(supir)
    with torch.device("meta"):
        vae = AutoencoderKL(**v_cfg)
        parts = {
            "unet": (UNet2DConditionModel(**u_cfg), cv.convert_unet(sdxl, u_cfg)),
            "control": (GLVControl(c_cfg).net, cv.convert_adaptor(supir, c_cfg)),
            "connectors": (make_connectors((320, 640, 1280), hidden=128), connectors),
            "vae": (vae, cv.convert_vae(sdxl, v_cfg)),
            "denoise_encoder": (vae.encoder, cv.convert_denoise_encoder(supir, v_cfg)),
            "clip_l": (CLIPTextModel(CLIPTextConfig(**l_cfg)), cv.convert_clip_l(sdxl)),
            "clip_g": (CLIPTextModelWithProjection(CLIPTextConfig(**g_cfg)), cv.convert_open_clip(sdxl)),
        }
    for name, (module, state) in parts.items():
        own = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("position_ids")}
        if not any(k.startswith("text_model.") for k in own):  # transformers 5 drops the prefix
            state = {k.removeprefix("text_model."): v for k, v in state.items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        assert got == own, (name, sorted(set(got) ^ set(own))[:5])
    assert parts["control"][1]["controlnet_cond_embedding.weight"].shape == (320, 4, 3, 3)
