"""One backend by name (no ``auto``): each runner module imported only when it is asked for."""

from __future__ import annotations

import torch

from superres.engine.runners import Runner
from superres.zoo.loader import LoadedModel

NAMED = ("torch", "torch-winograd", "openvino", "onnxruntime", "ncnn", "tensorrt")


def build(model: LoadedModel, backend: str, *, device: str | torch.device | None, precision: str,
          threads: int) -> Runner:
    """The runner of one named backend (no ``auto``), imported lazily."""
    if backend in ("torch", "torch-winograd"):
        from superres.runtimes.pytorch import make_torch_runner

        return make_torch_runner(model, device=device, precision=precision,
                                 winograd=backend == "torch-winograd")
    if backend == "openvino":
        from superres.runtimes.openvino import OpenVinoRunner

        return OpenVinoRunner(model, device=device, precision=precision, threads=threads)
    if backend == "onnxruntime":
        from superres.runtimes.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model, device=device, precision=precision, threads=threads)
    if backend == "ncnn":
        from superres.runtimes.ncnn import NcnnRunner

        return NcnnRunner.for_model(model, device=device, precision=precision, threads=threads)
    if backend == "tensorrt":
        from superres.runtimes.tensorrt import make_tensorrt_runner

        return make_tensorrt_runner(model, device=device, precision=precision, threads=threads)
    raise ValueError(f"backend must be one of {', '.join(NAMED)}, not {backend!r}")

