"""Turn a model name or a weight file into a ready ``nn.Module`` (no tiling, no images).

User files are read safely: ``.safetensors`` directly, ``.pth``/``.pt``/``.ckpt`` only
through ``torch.load(weights_only=True)``, so a pickle that would run code is refused, never
executed. The architecture and its hyper-parameters are detected from the tensors.
"""

from __future__ import annotations

import pickle
import re
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
                          kwargs: dict[str, Any] | None = None, scale: int | None = None) -> LoadedModel:
    """Build and load the module; detect arch/kwargs from the tensors unless given.

    Some architectures do not record their scale in the weights (SRCNN's built-in bicubic
    upscaling, FSRCNN's deconvolution stride): their detectors return it as ``None``. It is
    then taken from ``scale``, else from an ``x3`` / ``3x`` token in ``name`` (a file name such
    as ``fsrcnn_x3.pth``), else the file is refused with a message saying how to give it:
    a wrong guess would silently produce a badly scaled image. For the other architectures
    ``scale`` is only checked against the weights.
    """
    if arch is None or kwargs is None:
        found = detect_arch(sd)
        if found is None:
            sample = ", ".join(sorted(sd)[:6])
            raise ModelFileError(
                f"{name}: architecture not recognised from its {len(sd)} tensors (first keys: "
                f"{sample}). Supported: {', '.join(ARCHS)}, each in its upstream key layout "
                f"(e.g. RRDBNet 'conv_first.weight' + 'body.N.rdb1.conv1.weight'; "
                f"SRVGGNetCompact 'body.N.weight'; EDSR 'head.0.weight' + 'body.N.body.0.weight'; "
                f"SwinIR 'layers.N.residual_group.blocks.M.*')."
            )
        arch, kwargs = found
    scale_key = ARCHS[arch].scale_key
    if kwargs.get(scale_key) is None:
        hint = scale if scale is not None else scale_from_name(name)
        if hint is None:
            raise ModelFileError(
                f"{name}: {arch} weights do not record the upscaling factor; give it (--model-scale 3 "
                f"on the command line, model_scale=3 / load_model(path, scale=3) in Python) or name "
                f"the file with it, like '{arch}_x3.pth'."
            )
        kwargs = {**kwargs, scale_key: hint}
    elif scale is not None and int(kwargs[scale_key]) != scale:
        raise ModelFileError(f"{name}: the weights are a x{kwargs[scale_key]} {arch}, not x{scale}")
    try:
        module = build(arch, **kwargs)
    except ValueError as exc:
        raise ModelFileError(f"{name}: cannot build {arch} {kwargs}: {exc}") from None
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{name}: tensors do not fit {arch} {kwargs}: {exc}") from None
    module.eval().requires_grad_(False)
    return LoadedModel(module, name, arch, dict(kwargs), int(kwargs[scale_key]))


def _recorded_arch(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(arch, kwargs) recorded in a ``.safetensors`` header by ``superres train``, else (None, None).

    Used only when the name is a known architecture and the kwargs are a JSON object; the
    tensors must still fit them exactly (strict loading), so a wrong record cannot go unnoticed.
    """
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None, None
    try:
        import json

        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        arch, kwargs = meta.get("superres.arch"), json.loads(meta.get("superres.kwargs", "null"))
    except Exception:  # unreadable header: read_state_dict reports the file properly
        return None, None
    if arch in ARCHS and isinstance(kwargs, dict):
        return arch, kwargs
    return None, None


_SCALE_TOKEN = re.compile(r"(?<![a-z0-9])(?:x([1-8])|([1-8])x)(?![a-z0-9])")


def scale_from_name(name: str) -> int | None:
    """The factor in a weight file's name (``srcnn_x3.pth``, ``4x_model.pth``), if exactly one."""
    found = {int(a or b) for a, b in _SCALE_TOKEN.findall(Path(name).stem.lower())}
    return found.pop() if len(found) == 1 else None


def load_model(name_or_path: str | Path, scale: int | None = None) -> LoadedModel:
    """A named zoo model (converted and cached on first use) or a user weight file.

    ``scale`` is needed only for user files of architectures whose weights do not record it
    (SRCNN, FSRCNN) and not named like ``*_x3.pth``; see :func:`model_from_state_dict`.
    """
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
        arch, kwargs = _recorded_arch(path)
        return model_from_state_dict(read_state_dict(path), str(path), arch, kwargs, scale=scale)
    registry.get(key)  # raises the "unknown model" error with the list of names
    raise AssertionError("unreachable")
