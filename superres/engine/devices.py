"""THE device choice and free-memory probe of superres (engine, restore and train use these).

Precision: fp32 on CPU, half precision on CUDA, unless told otherwise.
"""

from __future__ import annotations

import torch

from superres.io.limits import available_memory as host_ram
from superres.io.limits import host_available_memory

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None = "auto", *, allow_mps: bool = True) -> torch.device:
    """``auto`` means CUDA if present, else MPS if present (and allowed), else CPU; explicit names
    are checked. Restore passes ``allow_mps=False``: its diffusion runs are made for CUDA or CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if allow_mps and mps is not None and mps.is_available():
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


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` right now: free CUDA memory, available RAM for the CPU; None where
    it cannot be told (other devices, or no OS report), so callers may skip a memory check."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        return host_available_memory()
    return None


def available_memory(device: torch.device) -> int:
    """Bytes that inference may use on ``device`` right now, for sizing tiles: as
    :func:`free_memory`, with host RAM for devices that share it (MPS) and a 4 GiB guess
    where nothing is reported."""
    free = free_memory(device)
    return free if free is not None else host_ram()


