"""The OpenVINO backend: the runner network compiled once with a dynamic shape, fp32 or INT8.

One compiled model serves every tile size. Compiling a static model per input shape was
measured against it (docs/runtimes.md): 1-3 % faster per call on the compact model and
x4plus, within the noise of a shared machine, but each new shape costs a compile (0.1 s for
the compact model, 2.6 s for x4plus), and an image's edge tiles bring new shapes; so one
dynamic model it is. fp32 runs with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO would
otherwise pick bf16 on CPUs that have it, which does not reproduce PyTorch); ``int8`` loads
the quantised IR that :func:`superres.export.int8.int8_model_path` builds and caches.
"""

from __future__ import annotations

from typing import Any

import torch

from superres.runtimes.common import as_numpy, check_fp32, require
from superres.zoo.loader import LoadedModel


def _ov_device(core: Any, device: str | torch.device | None) -> str:
    """OpenVINO's device name: CPU for auto/cpu, GPU (an Intel GPU OpenVINO reports) for gpu."""
    name = "auto" if device is None else str(device).lower()
    if name in ("auto", "cpu"):
        return "CPU"
    if name == "gpu":
        if not any(d.startswith("GPU") for d in core.available_devices):
            raise ValueError("OpenVINO reports no GPU device here (available: "
                             f"{', '.join(core.available_devices)}); use --device cpu")
        return "GPU"
    raise ValueError(f"the openvino backend runs on cpu (or gpu: an Intel GPU OpenVINO reports), not on "
                     f"{device}; use --backend torch for CUDA")


class OpenVinoRunner:
    """An OpenVINO compiled model behind the engine's Runner contract (CPU in, CPU out)."""

    def __init__(self, model: LoadedModel, *, device: str | torch.device | None = "auto",
                 precision: str = "auto", threads: int = 1) -> None:
        ov = require("openvino")
        check_fp32("openvino", precision, ("auto", "fp32", "int8"))
        core = ov.Core()
        self.ov_device = _ov_device(core, device)
        self.precision = "int8" if precision == "int8" else "fp32"
        if self.precision == "int8":
            try:
                from superres.export.int8 import int8_model_path
            except ImportError as exc:  # pragma: no cover - until the int8 module is merged
                raise ValueError(f"int8 needs superres.export.int8, which this build lacks ({exc})") from None
            ovm = core.read_model(str(int8_model_path(model)))
        else:
            from superres.export.convert import to_openvino

            ovm = to_openvino(model)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if self.ov_device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.threads = int(threads)
        self.compiled = core.compile_model(ovm, self.ov_device, config)
        self._request = self.compiled.create_infer_request()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # host memory in and out (an Intel GPU shares it as well)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def name(self) -> str:
        suffix = "" if self.ov_device == "CPU" else f"-{self.ov_device.lower()}"
        return f"openvino-{self.precision}{suffix}"

    def run(self, x: torch.Tensor) -> torch.Tensor:
        arr = as_numpy(x)  # kept alive by this frame while OpenVINO reads it
        self._request.infer({0: arr}, share_inputs=True)
        return torch.from_numpy(self._request.get_output_tensor(0).data.copy())

    def __repr__(self) -> str:
        return f"OpenVinoRunner({self.name}, device={self.ov_device}, threads={self.threads})"
