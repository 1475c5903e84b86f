"""What every backend shares: the missing-backend error, device and precision checks, the probe."""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import torch

from superres.export.backends import MissingBackendError, install_hint
from superres.io.sample import sample_crop, sample_rgb

# backend -> (module to import, extra that installs it)
EXTRAS = {"openvino": ("openvino", "openvino"), "onnxruntime": ("onnxruntime", "onnx"),
          "ncnn": ("ncnn", "ncnn")}


class BackendUnavailableError(MissingBackendError):
    """The backend's package (or hardware) is not there; the message says what to install."""

    def __init__(self, message: str, module: str = "", extra: str | None = None) -> None:
        self.what, self.module, self.extra = "a backend", module, extra
        RuntimeError.__init__(self, message)


def require(backend: str) -> ModuleType:
    """Import the backend's package, or BackendUnavailableError naming the extra to install."""
    module, extra = EXTRAS[backend]
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: a shared library of the package is missing
        raise BackendUnavailableError(
            f"the {backend} backend needs the '{module}' package, which is not installed ({exc}); "
            f"install it with: {install_hint(module, extra)}", module, extra) from None


def installed(backend: str) -> bool:
    """True when the backend's package imports (without raising for the caller)."""
    try:
        require(backend)
    except BackendUnavailableError:
        return False
    return True


def cpu_device(backend: str, device: str | torch.device | None) -> torch.device:
    """The CPU, for backends that run there; ValueError for an explicit other device."""
    if device is None or str(device) in ("auto", "cpu"):
        return torch.device("cpu")
    raise ValueError(f"the {backend} backend runs on the CPU, not on {device}; use --device cpu (or "
                     "--backend torch for GPUs)")


def check_fp32(backend: str, precision: str, allowed: tuple[str, ...] = ("auto", "fp32")) -> None:
    """ValueError for a precision this backend does not run (int8 is checked by the caller)."""
    if precision not in allowed:
        raise ValueError(f"the {backend} backend runs precision {' or '.join(allowed)}, not {precision}"
                         + ("; int8 runs on --backend openvino" if precision == "int8" else ""))


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy view (a copy only when needed) of a CPU tensor batch."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


def probe_image(side: int) -> torch.Tensor:
    """A fixed (1,3,side,side) crop of the bundled photo in [0, 1], from its centre where it fits.

    Real image content, not noise: backends are compared on what they will run.
    """
    height, width = sample_rgb().shape[:2]
    chw = sample_crop(side, side, top=max(0, (height - side) // 2), left=max(0, (width - side) // 2))
    return torch.from_numpy(chw)[None]
