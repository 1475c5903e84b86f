"""Converted-weight cache: ncnn files are converted once and kept as ``.safetensors``.

Each cache file records the SHA-256 of the source files it came from, the converter
version and a hash of its own tensors, so a stale cache (new carrier wheel, new converter)
or a corrupt one (truncated, bit-flipped) is detected and rebuilt instead of trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from superres.io.atomic import atomic_path
from superres.ncnn import convert_ncnn
from superres.weights.carriers import CarrierMissingError, find_carrier, missing_message
from superres.zoo.info import ModelInfo

# Bump when the conversion could produce different tensors for the same source files.
CONVERTER_VERSION = "1"


def cache_dir() -> Path:
    """``$SUPERRES_CACHE``, else ``$XDG_CACHE_HOME/superres``, else ``~/.cache/superres``."""
    if env := os.environ.get("SUPERRES_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "superres"


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Order-independent content hash of a state dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().contiguous().cpu()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _read_sources(info: ModelInfo) -> tuple[bytes, bytes, str]:
    src = find_carrier(info.carrier, info.param_file)
    if src is None or not src.has(info.bin_file):
        raise CarrierMissingError(f"model '{info.name}': {missing_message(info.carrier, info.name)}")
    return src.read(info.param_file), src.read(info.bin_file), src.describe()


def _try_load(path: Path, source_sha: str) -> dict[str, torch.Tensor] | None:
    """The cached tensors if the file is intact and matches the source; None otherwise."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        sd = load_file(str(path))
    except Exception as exc:  # any parse failure means "corrupt": rebuild
        warnings.warn(f"{path}: unreadable cache file ({exc}); rebuilding it", stacklevel=3)
        return None
    if meta.get("source_sha256") != source_sha or meta.get("converter_version") != CONVERTER_VERSION:
        warnings.warn(f"{path}: cache is stale (source or converter changed); rebuilding it", stacklevel=3)
        return None
    if meta.get("tensors_sha256") != tensors_sha256(sd):
        warnings.warn(f"{path}: cache content does not match its hash (corrupt); rebuilding it",
                      stacklevel=3)
        return None
    return sd


def _save_atomic(path: Path, sd: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp), metadata=meta)


def cached_path(info: ModelInfo, source_sha: str) -> Path:
    return cache_dir() / f"{info.name}-{source_sha[:16]}.safetensors"


def _load_bundled(info: ModelInfo) -> dict[str, torch.Tensor]:
    """Weights shipped inside superres: read as they are, checked against the catalogue's hash."""
    from safetensors.torch import load

    src = find_carrier(info.carrier, info.bin_file)
    if src is None:
        raise FileNotFoundError(f"model '{info.name}': {info.bin_file} is missing from the superres "
                                f"package (a broken install?); reinstall superres")
    sd = load(src.read(info.bin_file))
    if tensors_sha256(sd) != info.bundled_sha256:
        raise ValueError(f"model '{info.name}': {src.describe()}/{info.bin_file} does not match its "
                         f"recorded hash (corrupt or replaced); reinstall superres")
    return sd


def load_named_state_dict(info: ModelInfo) -> dict[str, torch.Tensor]:
    """The PyTorch weights of a named model, converting and caching them on first use."""
    if info.bundled_sha256 is not None:
        return _load_bundled(info)
    param, binary, where = _read_sources(info)
    source_sha = hashlib.sha256(param + b"\0" + binary).hexdigest()
    path = cached_path(info, source_sha)
    if path.is_file():
        sd = _try_load(path, source_sha)
        if sd is not None:
            return sd
        path.unlink(missing_ok=True)
    converted = convert_ncnn(param.decode("utf-8", errors="replace"), binary, f"{where}/{info.bin_file}")
    if converted.arch != info.arch or converted.kwargs != info.kwargs:
        raise ValueError(
            f"{where}: {info.param_file} holds {converted.arch} {converted.kwargs}, but the registry "
            f"expects {info.arch} {info.kwargs} for '{info.name}'"
        )
    sd = converted.state_dict
    meta = {
        "model": info.name,
        "source": where,
        "source_sha256": source_sha,
        "converter_version": CONVERTER_VERSION,
        "tensors_sha256": tensors_sha256(sd),
        "arch": info.arch,
        "kwargs": json.dumps(info.kwargs, sort_keys=True),
    }
    try:
        _save_atomic(path, sd, meta)
    except OSError as exc:  # a read-only cache must not stop the upscale
        warnings.warn(f"could not write the weight cache {path}: {exc}", stacklevel=2)
    return sd


def is_available(info: ModelInfo) -> bool:
    """Whether the weights can be had offline right now (cache or carrier present)."""
    src = find_carrier(info.carrier, info.param_file or info.bin_file)
    return src is not None and src.has(info.bin_file)
