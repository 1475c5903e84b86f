"""Runners: the one place where a batch of tiles meets a network.

The engine cuts images into tiles, handles alpha, luma and passes; a runner only runs one
(N,C,h,w) batch and hands the result back. Keeping that seam small lets other backends
(ONNX Runtime, OpenVINO, ...) plug in without touching tiling, alpha or passes. Runners know
nothing about tiling.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Runner(Protocol):
    """Runs one batch: (N,C,h,w) float32 on the CPU in, (N,C_out,h*s,w*s) float32 on the CPU out.

    ``device`` and ``dtype`` say where and in what precision it computes, so the engine can
    budget tile memory (and free CUDA memory after an out-of-memory retry).
    """

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def run(self, x: torch.Tensor) -> torch.Tensor: ...


class TorchRunner:
    """A PyTorch module on a device, in a precision and memory format, in inference mode."""

    def __init__(self, module: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32,
                 *, channels_last: bool = True) -> None:
        self._fmt = torch.channels_last if channels_last else torch.contiguous_format
        self._device = device
        self._dtype = dtype
        self.channels_last = channels_last
        # moved in place, as nn.Module.to does: the caller's module is the one that runs
        self.module = module.to(device=device, dtype=dtype, memory_format=self._fmt).eval()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=self._device, dtype=self._dtype).contiguous(memory_format=self._fmt)
        with torch.inference_mode():
            y = self.module(x)
        return y.float().cpu()

    def __repr__(self) -> str:
        return (f"TorchRunner({type(self.module).__name__}, device={self._device}, dtype={self._dtype}, "
                f"channels_last={self.channels_last})")
