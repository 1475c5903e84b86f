"""The PyTorch backend: the engine's own ``TorchRunner``, named like the other runners."""

from __future__ import annotations

import torch

from superres.engine.devices import resolve_device, resolve_dtype
from superres.engine.runners import TorchRunner
from superres.export.convert import runner_network
from superres.zoo.loader import LoadedModel

WINOGRAD_WINDOW = 192  # window side (tile + 2 * pad) where the Winograd runner is fastest
_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class NamedTorchRunner(TorchRunner):
    """``TorchRunner`` with the ``.name`` every runtime runner has ("torch-fp32", "torch-fp16",
    "torch-winograd-fp32")."""

    kind = "torch"

    @property
    def name(self) -> str:
        return f"{self.kind}-{_NAMES.get(self.dtype, str(self.dtype))}"


def winograd_eligible(model: LoadedModel) -> bool:
    """Where the Winograd runner was measured to beat the direct convolution: RRDBNet, whose dense
    blocks it rebuilds so each feature is transformed once (docs/winograd.md)."""
    return model.arch == "rrdbnet"


def make_torch_runner(model: LoadedModel, *, device: str | torch.device | None = "auto",
                      precision: str = "auto", channels_last: bool = True, compile: bool = False,
                      cuda_graphs: bool = False, winograd: bool = False) -> NamedTorchRunner:
    """PyTorch on ``device`` in ``precision`` (fp32 on CPU, fp16 on GPU by default), as the engine
    builds it; int8 is refused with a pointer to OpenVINO."""
    if precision == "int8":
        raise ValueError("precision int8 runs only on the OpenVINO backend: use --backend openvino "
                         "(backend='openvino')")
    dev = resolve_device(device)
    net = runner_network(model)
    if winograd:  # backend "torch-winograd": CPU fp32, RRDBNet's dense blocks as Winograd F(4x4,3x3)
        if not winograd_eligible(model):
            raise ValueError(f"the torch-winograd backend runs RRDBNet models (ESRGAN, Real-ESRGAN x4plus), "
                             f"not {model.arch}; use --backend torch")
        if dev.type != "cpu":
            raise ValueError("the torch-winograd backend runs on the CPU; use --backend torch on GPUs")
        from superres.engine.winograd import winograd_module

        net = winograd_module(net, plain_convs=False)
    runner = NamedTorchRunner(net, dev, resolve_dtype(precision, dev), channels_last=channels_last,
                              compile=compile, cuda_graphs=cuda_graphs)
    if winograd:
        runner.kind = "torch-winograd"
        # measured on x4plus vs ncnn: 0.93x at 192 px windows, 1.00x at 256, 2.75x at 512
        runner.max_fast_window = WINOGRAD_WINDOW  # type: ignore[attr-defined]
    return runner
