"""Turn a model name or a weight file into a ready ``nn.Module`` (no tiling, no images).

User files are read safely (:mod:`superres.weights`); the architecture and its
hyper-parameters are detected from the tensors. The result carries its architecture's
spec, so what the engine and trainer need (size multiple, Y-only input) comes from there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.archs import ARCHS, build, detect_arch
from superres.archs.spec import ArchSpec
from superres.weights import WEIGHT_EXTENSIONS, ModelFileError, read_recorded_arch, read_state_dict
from superres.weights.limits import WeightLimits
from superres.weights.validate import check_values, compare_with_module, meta_build
from superres.zoo import catalogue
from superres.zoo.cache import load_named_state_dict


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
    def spec(self) -> ArchSpec:
        """What the architecture is and can do."""
        return ARCHS[self.arch]

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (pixel-unshuffle front ends)."""
        return self.spec.size_multiple(**self.kwargs)

    @property
    def luma_only(self) -> bool:
        """True when the module takes the rgb2ycbcr Y only (the caller converts colour around it)."""
        return self.spec.luma_only(**self.kwargs)


def model_from_state_dict(sd: dict[str, torch.Tensor], name: str, arch: str | None = None,
                          kwargs: dict[str, Any] | None = None, scale: int | None = None, *,
                          limits: WeightLimits | None = None, trusted: bool = False) -> LoadedModel:
    """Build and load the module; detect arch/kwargs from the tensors unless given.

    Some architectures do not record their scale in the weights (SRCNN's built-in bicubic
    upscaling, FSRCNN's deconvolution stride): their detectors return it as ``None``. It is
    then taken from ``scale``, else from an ``x3`` / ``3x`` token in ``name`` (a file name such
    as ``fsrcnn_x3.pth``), else the file is refused with a message saying how to give it:
    a wrong guess would silently produce a badly scaled image. For the other architectures
    ``scale`` is only checked against the weights.

    Unless ``trusted`` (the catalogue's own, hash-checked weights), the module is first built on
    the meta device, bounded by the tensors present, and compared with them (shapes and dtypes
    of the shared keys; the strict load checks the key sets), so hyper-parameters from a header
    or from key names cannot allocate before they are known to fit. Every weight must be finite,
    float and within ``limits``. Every problem is a ``ModelFileError``.
    """
    limits = limits or WeightLimits.from_env()
    if arch is None or kwargs is None:
        try:
            found = detect_arch(sd)
        except Exception as exc:  # a detector surprised by hostile shapes
            raise ModelFileError(f"{name}: architecture not recognised ({type(exc).__name__}: "
                                 f"{exc})") from None
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
    if arch not in ARCHS:
        raise ModelFileError(f"{name}: unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    _check_kwargs(kwargs, name)
    scale_key = ARCHS[arch].scale_key
    if kwargs.get(scale_key) is None:
        hint = scale if scale is not None else scale_from_name(name)
        if hint is None:
            raise ModelFileError(
                f"{name}: {arch} weights do not record the upscaling factor; give it (--model-scale 3 "
                f"on the command line, model_scale=3 / load_model(path, scale=3) in Python) or name "
                f"the file with it, like '{arch}_x3.pth'."
            )
        _check_scale(hint, name, "the given scale", limits)
        kwargs = {**kwargs, scale_key: hint}
    else:
        _check_scale(kwargs[scale_key], name, f"the recorded {scale_key}", limits)
        if scale is not None and kwargs[scale_key] != scale:
            raise ModelFileError(f"{name}: the weights are a x{kwargs[scale_key]} {arch}, not x{scale}")
    what = f"{arch} {kwargs}"
    if not trusted:
        meta = meta_build(lambda: build(arch, **kwargs), sd, name, what)
        compare_with_module(meta, sd, name, what)
    try:
        module = build(arch, **kwargs)
    except Exception as exc:
        raise ModelFileError(f"{name}: cannot build {what}: {exc}") from None
    own = module.state_dict()
    check_values(sd, name, limits, frozenset(k for k, v in own.items() if not v.is_floating_point()))
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{name}: tensors do not fit {what}: {exc}") from None
    module.eval().requires_grad_(False)
    return LoadedModel(module, name, arch, dict(kwargs), int(kwargs[scale_key]))


def _check_scale(value: Any, name: str, what: str, limits: WeightLimits) -> None:
    """A factor the engine can use: an integer 1..limits.max_model_scale (not a bool, not 2.0)."""
    if not (isinstance(value, int) and not isinstance(value, bool)
            and 1 <= value <= limits.max_model_scale):
        raise ModelFileError(f"{name}: {what} is {value!r}; a model's upscaling factor must be an "
                             f"integer from 1 to {limits.max_model_scale} (SUPERRES_MAX_MODEL_SCALE)")


_KWARG_LIMITS = (64, 256)  # list length, string length in a recorded kwargs header


def _check_kwargs(kwargs: Any, name: str) -> None:
    """Recorded hyper-parameters are a flat JSON-like object of finite numbers, short strings and lists."""

    def ok(value: Any, depth: int) -> bool:
        if value is None or isinstance(value, bool | int):
            return True
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, str):
            return len(value) <= _KWARG_LIMITS[1]
        if isinstance(value, list | tuple) and depth == 0:
            return len(value) <= _KWARG_LIMITS[0] and all(ok(v, 1) for v in value)
        return False

    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ModelFileError(f"{name}: the recorded hyper-parameters are not an object of names")
    for key, value in kwargs.items():
        if not ok(value, 0):
            raise ModelFileError(f"{name}: the recorded hyper-parameter {key}={value!r:.80} is not a "
                                 f"finite number, short string or short list")


def _recorded_arch(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(arch, kwargs) recorded in a ``.safetensors`` header by ``superres train``, else (None, None).

    Used only when the name is a known architecture and the kwargs are a JSON object; the
    tensors must still fit them exactly (strict loading), so a wrong record cannot go unnoticed.
    """
    arch, kwargs = read_recorded_arch(path)
    if arch in ARCHS and kwargs is not None:
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
    if key in catalogue.MODELS:
        info = catalogue.get(key)
        sd = load_named_state_dict(info)
        lm = model_from_state_dict(sd, info.name, info.arch, info.kwargs, trusted=True)
        lm.output_resize = info.output_resize
        lm.licence = info.licence
        return lm
    path = Path(key).expanduser()
    if path.suffix.lower() in WEIGHT_EXTENSIONS or path.exists():
        return load_weight_file(path, scale)
    catalogue.get(key)  # raises the "unknown model" error with the list of names
    raise AssertionError("unreachable")


def load_weight_file(path: Path, scale: int | None = None) -> LoadedModel:
    """A user weight file, every problem with it a ``ModelFileError`` (so callers catch one type)."""
    limits = WeightLimits.from_env()
    try:
        sd = read_state_dict(path, limits)
        arch, kwargs = _recorded_arch(path)
        return model_from_state_dict(sd, str(path), arch, kwargs, scale=scale, limits=limits)
    except ModelFileError:
        raise
    except (MemoryError, RuntimeError, TypeError, ValueError, KeyError, IndexError, AttributeError,
            ZeroDivisionError, OverflowError, OSError) as exc:
        raise ModelFileError(f"{path}: unusable weight file ({type(exc).__name__}: {exc})") from None
