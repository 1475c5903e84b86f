"""The network a runtime sees, and its conversion to ONNX and OpenVINO in memory.

Every backend runs the same network as the PyTorch runner: RGB tiles in [0, 1], NCHW float32,
Y-only models (SRCNN/FSRCNN/ESPCN) wrapped in ``LumaOnly`` so the colour conversion is part of
the graph. Batch, height and width stay dynamic, so one file serves every tile size.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn

from superres.archs.luma import LumaOnly
from superres.zoo.loader import LoadedModel

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def runner_network(model: LoadedModel) -> nn.Module:
    """The module a runner runs for ``model``: RGB in, RGB out (Y-only nets wrapped), eval mode."""
    net = LumaOnly(model.module) if model.luma_only else model.module
    return net.eval()


def example_input(model: LoadedModel, side: int = 64) -> torch.Tensor:
    """A (1,3,side,side) probe in [0, 1] whose sides fit the model's size multiple."""
    m = model.size_multiple
    side = max(m, side - side % m)
    g = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, side, side), generator=g)


def to_onnx_bytes(model: LoadedModel, *, opset: int = ONNX_OPSET) -> bytes:
    """The runner network as an ONNX model (dynamic batch, height, width), serialised."""
    net = runner_network(model)
    buf = io.BytesIO()
    # distinct names for the output's sides: ONNX reads one name as one size, and the output is
    # scale times the input (runtimes that plan buffers by name fail on a shared name)
    in_axes = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 2: "out_height", 3: "out_width"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python values
        torch.onnx.export(net, (example_input(model),), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: in_axes, OUTPUT_NAME: out_axes})
    return buf.getvalue()


def to_openvino(model: LoadedModel) -> Any:
    """The runner network as an ``openvino.Model`` (dynamic batch, height, width), in memory."""
    import openvino as ov  # optional extra: callers check availability first

    net = runner_network(model)
    with torch.no_grad():
        ovm = ov.convert_model(net, example_input=example_input(model), input=[(-1, 3, -1, -1)])
    ovm.inputs[0].get_tensor().set_names({INPUT_NAME})
    ovm.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return ovm
