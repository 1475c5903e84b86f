"""Build the SUPIR model set from an SDXL single file and a SUPIR checkpoint, offline.

Modules are created on the meta device (no random initialisation of billions of parameters) and
then take the checkpoint tensors directly; every module parameter must come from a file, and every
file tensor must land in a module: the :class:`LoadReport` lists both kinds of mismatch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from superres.restore import convert as cv
from superres.restore.convert import DESCRIPTIONS, SDXL_HELP, SUPIR_HELP, CheckpointError
from superres.restore.models import GLVControl, SupirUNet, TextConditioner, make_connectors

__all__ = ["LoadReport", "SupirModels", "build_models", "load_models", "read_checkpoint"]

# File tensors that carry no weights the networks use.
_IGNORED_SUFFIXES = ("position_ids", "logit_scale", "attn_mask")
_IGNORED_PREFIXES = ("denoiser.", "model_ema.", "loss.", "lpips")


@dataclass
class LoadReport:
    missing: dict[str, list[str]] = field(default_factory=dict)  # module tensors no file provided
    unexpected: dict[str, list[str]] = field(default_factory=dict)  # file tensors no module took

    @property
    def clean(self) -> bool:
        return not any(self.missing.values()) and not any(self.unexpected.values())

    def summary(self) -> str:
        parts = [f"{k}: {len(v)} missing (e.g. {v[0]})" for k, v in self.missing.items() if v]
        parts += [f"{k}: {len(v)} unexpected (e.g. {v[0]})" for k, v in self.unexpected.items() if v]
        return "; ".join(parts) or "all tensors matched"


@dataclass
class SupirModels:
    unet: SupirUNet
    control: GLVControl
    vae: nn.Module  # diffusers AutoencoderKL
    denoise_encoder: nn.Module  # diffusers Encoder with SUPIR's fine-tuned weights
    text: TextConditioner
    report: LoadReport

    def modules(self) -> dict[str, nn.Module]:
        return {
            "unet": self.unet,
            "control": self.control,
            "vae": self.vae,
            "denoise_encoder": self.denoise_encoder,
            "text": self.text,
        }


def _flag_and_help(expect: str) -> tuple[str, str]:
    return ("--sdxl", SDXL_HELP) if expect == "sdxl" else ("--supir", SUPIR_HELP)


def check_checkpoint_file(path: str | Path, expect: str) -> Path:
    """``path`` as a Path if it is a file; else a CheckpointError saying what to pass (sdxl|supir)."""
    path = Path(path)
    if not path.is_file():
        flag, help_text = _flag_and_help(expect)
        raise CheckpointError(f"{flag}: no such file {path}. Expected {help_text}.")
    return path


def read_checkpoint(path: str | Path, expect: str) -> dict[str, Tensor]:
    """A state dict from .safetensors or a torch pickle (``state_dict`` unwrapped); ``expect`` sdxl|supir."""
    path = check_checkpoint_file(path, expect)
    flag, help_text = _flag_and_help(expect)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
                sd = sd["state_dict"]
    except Exception as exc:
        raise CheckpointError(
            f"{flag}: cannot read {path} as a checkpoint ({exc}). Expected {help_text}."
        ) from exc
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"{flag}: {path} holds no tensor state dict. Expected {help_text}.")
    kind = cv.classify(sd)
    if kind != expect:
        raise CheckpointError(
            f"{flag}: {path} is {DESCRIPTIONS.get(kind, kind)}, not "
            f"{DESCRIPTIONS[expect]}. Expected {help_text}."
        )
    return sd


def _ignored(key: str) -> bool:
    return key.endswith(_IGNORED_SUFFIXES) or key.startswith(_IGNORED_PREFIXES)


def _assign(name: str, module: nn.Module, state: dict[str, Tensor], report: LoadReport) -> None:
    """Load ``state`` into a meta-built ``module`` (assign: no copies); record mismatches."""
    own = module.state_dict()
    if not any(k.startswith("text_model.") for k in own):  # transformers 5 CLIPTextModel drops the prefix
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    report.missing[name] = sorted(k for k in own if k not in state and not _ignored(k))
    report.unexpected.setdefault(name, []).extend(sorted(k for k in state if k not in own))
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{name}: tensor {k} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(own[k].shape)}: the two checkpoints do not belong together"
            )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False, assign=True)
    for mod_name, mod in module.named_modules():  # non-persistent buffers are not in any file
        for buf_name, buf in list(mod.named_buffers(recurse=False)):
            if buf.is_meta:
                if buf_name != "position_ids":
                    raise CheckpointError(f"{name}: {mod_name}.{buf_name} was not provided")
                mod.register_buffer(buf_name, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
    for k, p in module.named_parameters():
        if p.is_meta:  # missing tensors: keep the module usable for the report, zero-filled
            parent, _, leaf = k.rpartition(".")
            sub = module.get_submodule(parent) if parent else module
            setattr(sub, leaf, nn.Parameter(torch.zeros(p.shape, dtype=p.dtype), requires_grad=False))


def _used(converted: dict[str, Tensor]) -> int:
    return sum(v.numel() for v in converted.values())


def _source_numel(sd: dict[str, Tensor], prefix: str, exclude: str | None = None) -> int:
    return sum(
        v.numel()
        for k, v in sd.items()
        if k.startswith(prefix) and not (exclude and k.startswith(exclude)) and not _ignored(k)
    )


def build_models(sdxl: dict[str, Tensor], supir: dict[str, Tensor], head_channels: int = 64) -> SupirModels:
    """All SUPIR networks from two state dicts in the upstream layouts; configs from tensor shapes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    report = LoadReport()
    l_cfg, g_cfg = cv.clip_config(sdxl, "l", head_channels), cv.clip_config(sdxl, "g", head_channels)
    adm = cv._shape(sdxl, cv.UNET + "label_emb.0.0.weight")[1]
    time_dim, rest = divmod(adm - g_cfg["projection_dim"], 6)
    if rest or time_dim <= 0:
        raise CheckpointError(
            f"UNet vector width {adm} does not fit pooled bigG {g_cfg['projection_dim']} "
            "+ 6 size embeddings: not an SDXL-base checkpoint"
        )
    u_cfg = cv.unet_config(sdxl, cv.UNET, head_channels, addition_time_embed_dim=time_dim)
    if u_cfg["cross_attention_dim"] != l_cfg["hidden_size"] + g_cfg["hidden_size"]:
        raise CheckpointError("UNet context width does not match the two text encoders: not SDXL base")
    c_cfg = cv.unet_config(supir, cv.CONTROL, head_channels, addition_time_embed_dim=time_dim)
    for key in ("block_out_channels", "cross_attention_dim", "projection_class_embeddings_input_dim"):
        if c_cfg[key] != u_cfg[key]:
            raise CheckpointError(
                f"SUPIR adaptor {key} {c_cfg[key]} does not match the SDXL UNet's {u_cfg[key]}"
            )
    v_cfg = cv.vae_config(sdxl)
    _, connectors, _ = cv.split_supir(supir)

    with torch.device("meta"):
        unet = UNet2DConditionModel(**u_cfg)
        control = GLVControl(c_cfg)
        hidden = cv._shape(connectors, "0.mlp_shared.0.weight")[0]
        conn = make_connectors(tuple(u_cfg["block_out_channels"]), hidden=hidden)  # type: ignore[arg-type]
        vae = AutoencoderKL(**v_cfg)
        clip_l = CLIPTextModel(CLIPTextConfig(**l_cfg))
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**g_cfg))

    parts: list[tuple[str, nn.Module, dict[str, Tensor], int]] = [
        ("unet", unet, cv.convert_unet(sdxl, u_cfg), _source_numel(sdxl, cv.UNET, cv.PROJECT)),
        ("vae", vae, cv.convert_vae(sdxl, v_cfg), _source_numel(sdxl, cv.VAE, cv.DENOISE)),
        ("clip_l", clip_l, cv.convert_clip_l(sdxl), _source_numel(sdxl, cv.CLIP_L)),
        ("clip_g", clip_g, cv.convert_open_clip(sdxl), _source_numel(sdxl, cv.CLIP_G)),
        ("control", control.net, cv.convert_adaptor(supir, c_cfg), _source_numel(supir, cv.CONTROL)),
        ("connectors", conn, connectors, _source_numel(supir, cv.PROJECT)),
    ]
    for name, module, state, source in parts:
        _assign(name, module, state, report)
        if _used(state) != source:  # a converter silently dropped file tensors
            report.unexpected[name].append(f"{source - _used(state)} values of the file were not mapped")
    denoise_encoder = (
        copy.deepcopy(vae.encoder) if not any(p.is_meta for p in vae.encoder.parameters()) else None
    )
    if denoise_encoder is None:
        raise CheckpointError("the SDXL VAE encoder did not load")
    enc_state = cv.convert_denoise_encoder(supir, v_cfg)
    _assign("denoise_encoder", denoise_encoder, enc_state, report)
    if _used(enc_state) != _source_numel(supir, cv.DENOISE):
        report.unexpected["denoise_encoder"].append("values of the file were not mapped")
    known = (cv.UNET, cv.VAE, cv.CLIP_L, cv.CLIP_G, cv.CONTROL)
    report.unexpected["other"] = sorted(
        k for k in [*sdxl, *supir] if not k.startswith(known) and not _ignored(k)
    )
    models = SupirModels(
        SupirUNet(unet, conn), control, vae, denoise_encoder, TextConditioner(clip_l, clip_g), report
    )
    for m in models.modules().values():
        m.eval().requires_grad_(False)
    return models


def load_models(sdxl_path: str | Path, supir_path: str | Path, head_channels: int = 64) -> SupirModels:
    """Read both files (with clear errors for wrong or missing ones) and build the networks."""
    return build_models(
        read_checkpoint(sdxl_path, "sdxl"), read_checkpoint(supir_path, "supir"), head_channels
    )
