"""The PyTorch backend: the engine's own ``TorchRunner``, named like the other runners."""

from __future__ import annotations

import torch

from superres.engine.devices import resolve_device, resolve_dtype
from superres.engine.runners import TorchRunner
from superres.export.convert import runner_network
from superres.zoo.loader import LoadedModel

_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class NamedTorchRunner(TorchRunner):
    """``TorchRunner`` with the ``.name`` every runtime runner has ("torch-fp32", "torch-fp16")."""

    @property
    def name(self) -> str:
        return f"torch-{_NAMES.get(self.dtype, str(self.dtype))}"


def make_torch_runner(model: LoadedModel, *, device: str | torch.device | None = "auto",
                      precision: str = "auto", channels_last: bool = True, compile: bool = False,
                      cuda_graphs: bool = False) -> NamedTorchRunner:
    """PyTorch on ``device`` in ``precision`` (fp32 on CPU, fp16 on GPU by default), as the engine
    builds it; int8 is refused with a pointer to OpenVINO."""
    if precision == "int8":
        raise ValueError("precision int8 runs only on the OpenVINO backend: use --backend openvino "
                         "(backend='openvino')")
    dev = resolve_device(device)
    return NamedTorchRunner(runner_network(model), dev, resolve_dtype(precision, dev),
                            channels_last=channels_last, compile=compile, cuda_graphs=cuda_graphs)
