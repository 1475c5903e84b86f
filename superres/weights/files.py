"""Read weight files safely: tensors only, never code.

``.safetensors`` files are read directly, ``.pth``/``.pt``/``.ckpt`` only through
``torch.load(weights_only=True)``, so a pickle that would run code is refused, never
executed. Nothing here knows architectures: detecting one from the tensors is ``archs``'s job.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from superres.weights.containers import check_container
from superres.weights.errors import ModelFileError
from superres.weights.limits import WeightLimits

WEIGHT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
# Wrappers seen in BasicSR / Real-ESRGAN / Lightning files, in order of preference.
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "net_g", "generator")


def read_state_dict(path: str | Path, limits: WeightLimits | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, unwrapped (``params_ema``, ``module.`` prefixes, ...).

    The container is checked against ``limits`` (default: ``WeightLimits.from_env()``) before
    anything is read, so a small file cannot make the reader allocate gigabytes.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such weight file")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_EXTENSIONS:
        raise ModelFileError(f"{path}: unsupported weight file type {suffix!r}; "
                             f"expected one of {', '.join(WEIGHT_EXTENSIONS)}")
    try:
        check_container(path, limits or WeightLimits.from_env())
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the weight file ({exc})") from None
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


def read_recorded_arch(path: str | Path) -> tuple[str | None, dict[str, Any] | None]:
    """The ``superres.arch`` / ``superres.kwargs`` that ``superres train`` records in a ``.safetensors``
    header, as found: (arch name or None, kwargs dict or None). (None, None) for other files and
    unreadable headers (``read_state_dict`` reports a bad file properly); whether the name is a
    known architecture is for the caller to check.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None, None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        arch, kwargs = meta.get("superres.arch"), json.loads(meta.get("superres.kwargs", "null"))
    except Exception:
        return None, None
    return (arch if isinstance(arch, str) else None), (kwargs if isinstance(kwargs, dict) else None)
