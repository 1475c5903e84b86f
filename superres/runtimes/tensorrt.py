"""The TensorRT backend: ONNX Runtime's TensorRT provider, else torch-tensorrt, on an NVIDIA GPU.

Neither is installed on the machines this project is tested on, so only the error path runs
in the tests; the two paths below follow the libraries' documented entry points.
"""

from __future__ import annotations

import importlib.util

import torch

from superres.runtimes.common import BackendUnavailableError, check_fp32
from superres.zoo.loader import LoadedModel

INSTALL = ("TensorRT needs an NVIDIA GPU with CUDA and one of: onnxruntime-gpu built with the TensorRT "
           "execution provider plus TensorRT (pip install onnxruntime-gpu tensorrt), or torch-tensorrt "
           "(pip install torch-tensorrt)")


def _ort_has_tensorrt() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "TensorrtExecutionProvider" in ort.get_available_providers()


class TorchTensorRTRunner:
    """A torch-tensorrt compiled module (dynamic height/width) on a CUDA device."""

    def __init__(self, model: LoadedModel, device: torch.device, precision: str) -> None:
        import torch_tensorrt

        from superres.export.convert import runner_network

        self._device = device
        self._dtype = torch.float16 if precision in ("auto", "fp16") else torch.float32
        net = runner_network(model).to(device)
        m = model.size_multiple
        spec = torch_tensorrt.Input(min_shape=(1, 3, m, m), opt_shape=(1, 3, 256, 256),
                                    max_shape=(8, 3, 2048, 2048), dtype=torch.float32)
        self.module = torch_tensorrt.compile(net, ir="dynamo", inputs=[spec],
                                             enabled_precisions={self._dtype})

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def name(self) -> str:
        return "tensorrt-fp16" if self._dtype == torch.float16 else "tensorrt-fp32"

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(x.to(self._device, torch.float32)).float().cpu()


def make_tensorrt_runner(model: LoadedModel, *, device: str | torch.device | None = "auto",
                         precision: str = "auto", threads: int = 1) -> object:
    """The ORT TensorRT provider where present, else torch-tensorrt, else BackendUnavailableError."""
    check_fp32("tensorrt", precision, ("auto", "fp32", "fp16"))
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"no CUDA GPU here. {INSTALL}")
    name = "cuda" if device is None or str(device) == "auto" else str(device)
    dev = torch.device(name)
    if dev.type != "cuda":
        raise ValueError(f"TensorRT runs on an NVIDIA GPU, not on {device}")
    if _ort_has_tensorrt():
        from superres.runtimes.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model, device=dev, precision="fp16" if precision == "auto" else precision,
                                 threads=threads, tensorrt=True)
    if importlib.util.find_spec("torch_tensorrt") is not None:
        return TorchTensorRTRunner(model, dev, precision)
    raise BackendUnavailableError(f"neither onnxruntime's TensorRT provider nor torch-tensorrt is installed. "
                                  f"{INSTALL}")
