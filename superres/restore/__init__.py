"""Diffusion restoration in the manner of SUPIR (SDXL + adaptor), on diffusers, offline.

Light to import (no torch until used): the networks need the ``superres[restore]`` extra
(diffusers, transformers) and load only inside :func:`load_supir`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superres.restore.pipeline import SupirPipeline

__all__ = ["RestoreSettings", "load_supir"]


def __getattr__(name: str) -> Any:
    if name == "RestoreSettings":
        return importlib.import_module("superres.restore.settings").RestoreSettings
    raise AttributeError(name)


def load_supir(
    sdxl: str | Path,
    supir: str | Path,
    tokenizer: str | Path | None = None,
    device: str = "auto",
    dtype: Any = None,
    offload: bool = False,
) -> SupirPipeline:
    """A ready :class:`~superres.restore.pipeline.SupirPipeline` from local files only.

    ``sdxl``: an SDXL-base single file; ``supir``: SUPIR-v0Q/v0F (.ckpt or .safetensors);
    ``tokenizer``: folder with CLIP's vocab.json + merges.txt (or ``$SUPERRES_CLIP_TOKENIZER``).
    ``dtype``: diffusion dtype (torch dtype or fp16/bf16/fp32; default fp16 on GPU, fp32 on CPU).
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing below may reach a hub
    import torch

    from superres.engine.devices import resolve_device
    from superres.restore.loader import load_models
    from superres.restore.pipeline import SupirPipeline
    from superres.restore.text import load_tokenizers

    if isinstance(dtype, str):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    dev = resolve_device(device, allow_mps=False)  # THE device choice; SUPIR runs on CUDA or CPU
    from superres.restore.loader import check_checkpoint_file

    check_checkpoint_file(sdxl, "sdxl")  # before the tokenizer: a mistyped path is the likelier mistake
    check_checkpoint_file(supir, "supir")
    tokenizers = load_tokenizers(tokenizer)
    return SupirPipeline(load_models(sdxl, supir), tokenizers, device=dev, dtype=dtype, offload=offload)
