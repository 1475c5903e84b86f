"""Device and precision choice: fp32 on CPU, half precision on CUDA, unless told otherwise."""

from __future__ import annotations

import os

import torch

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` means CUDA if present, else MPS if present, else CPU; explicit names are checked."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available in this PyTorch build")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU (half precision is slower there and loses accuracy); fp16 on CUDA/MPS.

    bf16 on CUDA is offered for models whose activations overflow fp16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    return _DTYPES[precision]


def available_memory(device: torch.device) -> int:
    """Bytes that inference may use on ``device`` right now (free GPU memory, or available RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30
