"""Turn a model name or a weight file into a ready ``nn.Module`` (no tiling, no images).

User files are read safely: ``.safetensors`` directly, ``.pth``/``.pt``/``.ckpt`` only
through ``torch.load(weights_only=True)``, so a pickle that would run code is refused, never
executed. The architecture and its hyper-parameters are detected from the tensors.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.archs import ARCHS, build, detect_arch
from superres.zoo import registry
from superres.zoo.cache import load_named_state_dict

WEIGHT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
# Wrappers seen in BasicSR / Real-ESRGAN / Lightning files, in order of preference.
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "net_g", "generator")


class ModelFileError(ValueError):
    """A weight file that cannot be used; the message names the file and the reason."""


@dataclass
class LoadedModel:
    """A module in eval mode plus what the engine needs to know about it."""

    module: nn.Module
    name: str
    arch: str
    kwargs: dict[str, Any]
    scale: int  # the module's own factor
    output_resize: float | None = None  # applied after the module (upstream x2/x3 variants)
    licence: str = "unknown (user file)"

    @property
    def net_scale(self) -> float:
        """Overall factor of module + output_resize."""
        return self.scale * (self.output_resize or 1.0)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (pixel-unshuffle front ends)."""
        return getattr(self.module, "unshuffle", 1)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, unwrapped (``params_ema``, ``module.`` prefixes, ...)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such weight file")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_EXTENSIONS:
        raise ModelFileError(f"{path}: unsupported weight file type {suffix!r}; "
                             f"expected one of {', '.join(WEIGHT_EXTENSIONS)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path}: refused to load: the file holds pickled Python objects other than tensors, "
            f"which could run code when loaded ({str(exc).splitlines()[0][:160]}). superres only "
            f"loads plain weights; convert the file to .safetensors on a machine you trust, "
            f"or ask its author for a .safetensors version."
        ) from None
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable weight file ({type(exc).__name__}: {exc})") from None
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: Any, path: str | Path = "<state dict>") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common wrappers and strip ``module.`` prefixes."""
    for _ in range(3):  # wrappers nest at most a couple of levels in practice
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_tensor_dict(obj):
        raise ModelFileError(f"{path}: no state dict of tensors found (top-level keys: "
                             f"{list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__})")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    while sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_tensor_dict(obj: dict[Any, Any]) -> bool:
    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def model_from_state_dict(sd: dict[str, torch.Tensor], name: str, arch: str | None = None,
                          kwargs: dict[str, Any] | None = None) -> LoadedModel:
    """Build and load the module; detect arch/kwargs from the tensors unless given."""
    if arch is None or kwargs is None:
        found = detect_arch(sd)
        if found is None:
            sample = ", ".join(sorted(sd)[:6])
            raise ModelFileError(
                f"{name}: architecture not recognised from its {len(sd)} tensors (first keys: "
                f"{sample}). Supported: {', '.join(ARCHS)} in BasicSR/Real-ESRGAN key layout "
                f"(e.g. RRDBNet 'conv_first.weight' + 'body.N.rdb1.conv1.weight'; "
                f"SRVGGNetCompact 'body.N.weight')."
            )
        arch, kwargs = found
    module = build(arch, **kwargs)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{name}: tensors do not fit {arch} {kwargs}: {exc}") from None
    module.eval().requires_grad_(False)
    scale = int(kwargs[ARCHS[arch].scale_key])
    return LoadedModel(module, name, arch, dict(kwargs), scale)


def load_model(name_or_path: str | Path) -> LoadedModel:
    """A named zoo model (converted and cached on first use) or a user weight file."""
    key = str(name_or_path)
    if key in registry.MODELS:
        info = registry.get(key)
        sd = load_named_state_dict(info)
        lm = model_from_state_dict(sd, info.name, info.arch, info.kwargs)
        lm.output_resize = info.output_resize
        lm.licence = info.licence
        return lm
    path = Path(key).expanduser()
    if path.suffix.lower() in WEIGHT_EXTENSIONS or path.exists():
        return model_from_state_dict(read_state_dict(path), str(path))
    registry.get(key)  # raises the "unknown model" error with the list of names
    raise AssertionError("unreachable")
