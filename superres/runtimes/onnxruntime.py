"""The ONNX Runtime backend: an InferenceSession on the in-memory ONNX of the runner network.

CPU provider with ``intra_op_num_threads`` on the CPU; the CUDA provider on a CUDA device; the
TensorRT provider (with CUDA as fallback for unsupported nodes) for backend "tensorrt". The ONNX
has dynamic batch, height and width, so one session serves every tile size.
"""

from __future__ import annotations

from typing import Any

import torch

from superres.runtimes.common import BackendUnavailableError, as_numpy, check_fp32, require
from superres.zoo.loader import LoadedModel

_PROVIDERS = {"cpu": ["CPUExecutionProvider"],
              "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
              "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


def _kind(device: str | torch.device | None, tensorrt: bool) -> tuple[str, torch.device]:
    """("cpu" | "cuda" | "tensorrt", the torch device reported)."""
    name = "auto" if device is None else str(device)
    if tensorrt:
        if name != "auto" and torch.device(name).type != "cuda":
            raise ValueError(f"TensorRT runs on an NVIDIA GPU, not on {device}")
        return "tensorrt", torch.device(name if name != "auto" else "cuda")
    if name in ("auto", "cpu"):
        return "cpu", torch.device("cpu")
    dev = torch.device(name)
    if dev.type != "cuda":
        raise ValueError(f"the onnxruntime backend runs on cpu or cuda, not on {device}")
    return "cuda", dev


class OnnxRuntimeRunner:
    """An ONNX Runtime session behind the engine's Runner contract (CPU in, CPU out)."""

    def __init__(self, model: LoadedModel, *, device: str | torch.device | None = "auto",
                 precision: str = "auto", threads: int = 1, tensorrt: bool = False) -> None:
        ort = require("onnxruntime")
        check_fp32("onnxruntime" if not tensorrt else "tensorrt", precision,
                   ("auto", "fp32", "fp16") if tensorrt else ("auto", "fp32"))
        self.kind, self._device = _kind(device, tensorrt)
        providers = _PROVIDERS[self.kind]
        have = set(ort.get_available_providers())
        if providers[0] not in have:
            what = "onnxruntime-gpu built with TensorRT, and TensorRT" if tensorrt else "onnxruntime-gpu"
            raise BackendUnavailableError(
                f"ONNX Runtime here has no {providers[0]} (it has {', '.join(sorted(have))}); "
                f"install {what} in place of onnxruntime for {self.kind}")
        opts: list[Any] = list(providers)
        if self.kind == "cuda" or self.kind == "tensorrt":
            index = self._device.index or 0
            cuda_opts = {"device_id": index}
            trt_opts = {"device_id": index, "trt_fp16_enable": precision == "fp16",
                        "trt_engine_cache_enable": True}
            opts = [(p, trt_opts if p.startswith("Tensorrt") else cuda_opts) if p != "CPUExecutionProvider"
                    else p for p in providers]
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # ORT's idle worker threads spin-wait by default: they keep both cores busy after each call
        # and slow whatever runs next (the engine's own work, another backend while `auto` measures).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        from superres.export.convert import INPUT_NAME, to_onnx_bytes

        self.session = ort.InferenceSession(to_onnx_bytes(model), sess_options=so, providers=opts)
        self._input = INPUT_NAME
        self.threads = int(threads)
        self.precision = "fp16" if tensorrt and precision == "fp16" else "fp32"

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def name(self) -> str:
        if self.kind == "tensorrt":
            return f"tensorrt-ort-{self.precision}"
        return f"onnxruntime-{self.precision}" + ("" if self.kind == "cpu" else "-cuda")

    def run(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {self._input: as_numpy(x)})
        return torch.from_numpy(y)

    def __repr__(self) -> str:
        providers = self.session.get_providers()
        return f"OnnxRuntimeRunner({self.name}, providers={providers}, threads={self.threads})"
