"""The tracing of the waifu2x and Real-CUGAN ncnn graphs (UpConv7, and the CUNet U-Nets of both).

Used by :mod:`superres.ncnn.waifu2x` and :mod:`superres.ncnn.realcugan`: the PyTorch forward
and the ncnn graph are traced into the hash-consed expression DAG of
:mod:`superres.ncnn.trace`, extended with blob
shapes so that ``Crop`` layers (given as offsets against a reference blob, or as start/end
arrays) become explicit per-side crops, plus the squeeze-excitation vocabulary (global
average ``Pooling``, ``InnerProduct`` + ReLU / Sigmoid, per-channel multiply by ``Scale``
with a second input or ``BinaryOp`` mul). Every weight layer's type, geometry (kernel,
stride, padding, dilation, output padding), channels and fused activation is checked
against the architecture, its input must be the identical DAG node as in the PyTorch
forward, and so must the output blob; only then are the weights read, by layer order,
and the ``.bin`` must be consumed to the last byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from superres.ncnn.reader import NcnnFormatError, NcnnLayer, param_array, param_float, param_int, read_weights
from superres.ncnn.trace import (
    Act,
    ConvertedModel,
    Trace,
    activation,
    check_activation,
    check_channels,
    check_io,
    check_layer_form,
    check_loads,
    f32,
    match_graph,
    put_tensors,
    weight_layer_where,
)
from superres.ncnn.trace import act_text as plain_act_text

LRELU = ("LeakyReLU", f32(0.1))
RELU: Act = ("ReLU",)
SIGMOID: Act = ("activation", 4, ())
WEIGHT_TYPES = ("Convolution", "Deconvolution", "InnerProduct")
# Layer types the U-Net graphs are made of; anything else is refused outright.
VOCABULARY = frozenset({"Input", "Split", "Crop", "Eltwise", "BinaryOp", "Pooling", "Scale", "PixelShuffle",
                        *WEIGHT_TYPES})
# Param ids each weight layer type may carry (anything else has semantics we do not model).
_KNOWN_KEYS = {
    "Convolution": {0, 1, 11, 2, 12, 3, 13, 4, 14, 15, 16, 5, 6, 8, 9, 10, 18, 19},
    "Deconvolution": {0, 1, 11, 2, 12, 3, 13, 4, 14, 15, 16, 5, 6, 9, 10, 18, 19, 20, 21, 28},
    "InnerProduct": {0, 1, 2, 8, 9, 10},
}


@dataclass(frozen=True)
class LayerSpec:
    """One weight layer as the architecture has it: PyTorch name, ncnn type, geometry, activation."""

    name: str
    type: str  # Convolution, Deconvolution or InnerProduct
    in_ch: int
    out_ch: int
    kernel: int = 3
    stride: int = 1
    pad: int = 0
    act: Act = None

    def describe(self) -> str:
        if self.type == "InnerProduct":
            return f"InnerProduct {self.in_ch} -> {self.out_ch}"
        return (f"{self.type} {self.in_ch} -> {self.out_ch}, {self.kernel}x{self.kernel}, "
                f"stride {self.stride}, pad {self.pad}")


def act_text(act: Act) -> str:
    return "Sigmoid" if act == SIGMOID else plain_act_text(act)


Shape = tuple[int, ...]


class ShapeTrace(Trace):
    """The expression DAG with a (C,H,W) or (C,) shape per node, for crops and broadcasting."""

    def __init__(self, input_shape: Shape) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.shapes: dict[int, Shape] = {}

    def _shaped(self, node: int, shape: Shape) -> int:
        self.shapes[node] = shape
        return node

    def input(self) -> int:
        return self._shaped(super().input(), self.input_shape)

    def weight(self, spec: LayerSpec, x: int, act: Act) -> int:
        """A Convolution / Deconvolution / InnerProduct applied to ``x``; shape from ``spec``."""
        shape = self.shapes[x]
        if spec.type == "InnerProduct":
            out: Shape = (spec.out_ch,)
        elif len(shape) != 3:
            out = (spec.out_ch, 0, 0)
        elif spec.type == "Convolution":
            out = (spec.out_ch, *((n + 2 * spec.pad - spec.kernel) // spec.stride + 1 for n in shape[1:]))
        else:
            out = (spec.out_ch, *((n - 1) * spec.stride - 2 * spec.pad + spec.kernel for n in shape[1:]))
        return self._shaped(self.conv(spec.name, x, act), out)

    def gap(self, x: int) -> int:
        """Global average over H and W: a (C,) vector."""
        return self._shaped(self.node("gap", x), self.shapes[x][:1])

    def mul(self, x: int, s: int) -> int | None:
        """Per-channel scaling of a (C,H,W) blob by a (C,) vector, in either operand order."""
        if len(self.shapes[x]) == 1:
            x, s = s, x
        if len(self.shapes[x]) != 3 or self.shapes[s] != self.shapes[x][:1]:
            return None
        return self._shaped(self.node("mul", x, s), self.shapes[x])

    def add2(self, a: int, b: int) -> int | None:
        """Elementwise sum of two blobs of identical shape (no broadcasting)."""
        if self.shapes[a] != self.shapes[b]:
            return None
        return self._shaped(self.add([(1.0, a), (1.0, b)]), self.shapes[a])

    def crop(self, x: int, top: int, bottom: int, left: int, right: int) -> int:
        if not (top or bottom or left or right):
            return x
        c, h, w = self.shapes[x]
        node = self.node("crop", top, bottom, left, right, x)
        return self._shaped(node, (c, h - top - bottom, w - left - right))

    def shuffle(self, factor: int, x: int) -> int:
        c, h, w = self.shapes[x]
        return self._shaped(self.pixel_shuffle(factor, x), (c // factor ** 2, h * factor, w * factor))

    def describe(self, x: int, depth: int = 2) -> str:
        key = self._keys[x]
        if key[0] == "gap":
            return "global_mean" + ("" if depth == 0 else f"({self.describe(key[1], depth - 1)})")
        if key[0] == "mul":
            return "mul" + ("" if depth == 0 else
                            f"({self.describe(key[1], depth - 1)}, {self.describe(key[2], depth - 1)})")
        if key[0] == "crop":
            label = f"crop[t{key[1]},b{key[2]},l{key[3]},r{key[4]}]"
            return label + ("" if depth == 0 else f"({self.describe(key[5], depth - 1)})")
        if key[0] == "conv" and key[2] == SIGMOID:
            return f"{key[1]}+Sigmoid" + ("" if depth == 0 else f"({self.describe(key[3], depth - 1)})")
        return super().describe(x, depth)


class Builder:
    """Traces a PyTorch forward: records each weight layer's spec (in call order) and its input."""

    def __init__(self, tr: ShapeTrace) -> None:
        self.tr = tr
        self.specs: list[LayerSpec] = []
        self.feeds: dict[str, int] = {}

    def layer(self, spec: LayerSpec, x: int) -> int:
        if self.tr.shapes[x][0] != spec.in_ch:  # a bug in the spec tables, never in a file
            raise AssertionError(f"{spec.name}: fed {self.tr.shapes[x][0]} channels, expects {spec.in_ch}")
        self.specs.append(spec)
        self.feeds[spec.name] = x
        return self.tr.weight(spec, x, spec.act)

    def conv(self, name: str, x: int, out_ch: int, kernel: int = 3, stride: int = 1,
             act: Act = LRELU) -> int:
        in_ch = self.tr.shapes[x][0]
        return self.layer(LayerSpec(name, "Convolution", in_ch, out_ch, kernel, stride, 0, act), x)

    def deconv(self, name: str, x: int, out_ch: int, kernel: int, stride: int, pad: int,
               act: Act = LRELU) -> int:
        in_ch = self.tr.shapes[x][0]
        return self.layer(LayerSpec(name, "Deconvolution", in_ch, out_ch, kernel, stride, pad, act), x)

    def add(self, a: int, b: int) -> int:
        out = self.tr.add2(a, b)
        assert out is not None, "spec tables add blobs of different shapes"
        return out

    # --- the CUNet blocks of superres.archs.waifu2x, traced ---

    def unet_conv(self, prefix: str, x: int, mid: int, out: int, se: bool) -> int:
        x = self.conv(f"{prefix}.conv.2", self.conv(f"{prefix}.conv.0", x, mid), out)
        if not se:
            return x
        se1 = LayerSpec(f"{prefix}.seblock.conv1", "InnerProduct", out, out // 8, act=RELU)
        se2 = LayerSpec(f"{prefix}.seblock.conv2", "InnerProduct", out // 8, out, act=SIGMOID)
        s = self.layer(se2, self.layer(se1, self.tr.gap(x)))
        scaled = self.tr.mul(x, s)
        assert scaled is not None
        return scaled

    def bottom(self, prefix: str, x: int, kind: str, out_ch: int) -> int:
        if kind == "conv":
            return self.conv(f"{prefix}.conv_bottom", x, out_ch, act=None)
        kernel, stride, pad = (4, 2, 3) if kind == "up2" else (5, 3, 2)
        return self.deconv(f"{prefix}.conv_bottom", x, out_ch, kernel, stride, pad, act=None)

    def unet1(self, x: int, out_ch: int, bottom: str, se: bool) -> int:
        x1 = self.unet_conv("unet1.conv1", x, 32, 64, se=False)
        x2 = self.conv("unet1.conv1_down", x1, 64, kernel=2, stride=2)
        x2 = self.deconv("unet1.conv2_up", self.unet_conv("unet1.conv2", x2, 128, 64, se), 64, 2, 2, 0)
        x3 = self.conv("unet1.conv3", self.add(self.tr.crop(x1, 4, 4, 4, 4), x2), 64)
        return self.bottom("unet1", x3, bottom, out_ch)

    def unet2(self, x: int, out_ch: int, se: bool) -> int:
        x1 = self.unet_conv("unet2.conv1", x, 32, 64, se=False)
        x2 = self.unet_conv("unet2.conv2", self.conv("unet2.conv1_down", x1, 64, 2, 2), 64, 128, se)
        x3 = self.unet_conv("unet2.conv3", self.conv("unet2.conv2_down", x2, 128, 2, 2), 256, 128, se)
        x3 = self.deconv("unet2.conv3_up", x3, 128, 2, 2, 0)
        x4 = self.unet_conv("unet2.conv4", self.add(self.tr.crop(x2, 4, 4, 4, 4), x3), 64, 64, se)
        x4 = self.deconv("unet2.conv4_up", x4, 64, 2, 2, 0)
        x5 = self.conv("unet2.conv5", self.add(self.tr.crop(x1, 16, 16, 16, 16), x4), 64)
        return self.bottom("unet2", x5, "conv", out_ch)

    def cunet(self, x: int, mid_ch: int, bottom: str, se: bool) -> int:
        """unet1 -> unet2 with the residual ``crop(unet1, 20) + unet2(unet1)``."""
        y = self.unet1(x, mid_ch, bottom, se)
        return self.add(self.tr.crop(y, 20, 20, 20, 20), self.unet2(y, mid_ch, se))


# --- tracing the ncnn graph ----------------------------------------------------------------


def _p(layer: NcnnLayer, key: int, default: int, source: str) -> int:
    return param_int(layer, key, default, source)


def _crop_node(layer: NcnnLayer, ins: list[int], tr: ShapeTrace, source: str) -> int | None:
    """ncnn Crop as explicit per-side amounts; None for forms the U-Net graphs do not use."""
    shape = tr.shapes[ins[0]]
    if len(shape) != 3:
        return None
    _, h, w = shape
    keys = set(layer.params)
    if len(ins) == 2 and keys <= {0, 1, 2}:
        # offsets (0 = w, 1 = h, 2 = c) inside the first blob, size taken from the reference blob
        ref = tr.shapes[ins[1]]
        left, top = _p(layer, 0, 0, source), _p(layer, 1, 0, source)
        if _p(layer, 2, 0, source) or len(ref) != 3 or ref[0] != shape[0] or min(left, top) < 0:
            return None
        bottom, right = h - top - ref[1], w - left - ref[2]
        return tr.crop(ins[0], top, bottom, left, right) if min(bottom, right) >= 0 else None
    if len(ins) == 1 and keys == {9, 10, 11}:
        starts, ends, axes = (param_array(layer, k, source) or [] for k in (9, 10, 11))
        values = starts + ends + axes
        if not len(starts) == len(ends) == len(axes) or any(isinstance(v, float) for v in values):
            return None
        amounts = {1: [0, 0], 2: [0, 0]}  # axis (h = 1, w = 2 of c,h,w) -> [before, after]
        for start, end, axis in zip(starts, ends, axes, strict=True):
            axis = axis + 3 if axis < 0 else axis
            if axis not in amounts or start < 0 or end == 0:
                return None
            size = shape[axis]
            stop = size + end if end < 0 else min(size, end)
            amounts[axis] = [start, size - stop]
        (top, bottom), (left, right) = amounts[1], amounts[2]
        if top + bottom >= h or left + right >= w or min(bottom, right) < 0:
            return None
        return tr.crop(ins[0], top, bottom, left, right)
    return None


def trace_layer(layer: NcnnLayer, ins: list[int], spec: LayerSpec | None, tr: ShapeTrace,
                source: str) -> list[int]:
    """Nodes for a layer's outputs; forms outside the U-Net vocabulary become opaque."""
    kind = layer.type

    def p(key: int, default: int = 0) -> int:
        return _p(layer, key, default, source)

    node: int | None = None
    if kind == "Input" and not ins:
        node = tr.input()
    elif kind == "Split" and len(ins) == 1:
        return [ins[0]] * len(layer.outputs)
    elif len(layer.outputs) != 1:
        pass
    elif kind in WEIGHT_TYPES and spec is not None and len(ins) == 1:
        node = tr.weight(spec, ins[0], activation(layer, source))
    elif kind == "Pooling" and len(ins) == 1 and p(0) == 1 and p(4) == 1 and p(7) == 0 \
            and len(tr.shapes[ins[0]]) == 3:
        node = tr.gap(ins[0])  # pooling_type 1 = average, 4 = global (kernel, stride, pad ignored)
    elif kind == "Scale" and len(ins) == 2 and p(0) == -233 and p(1) == 0:
        node = tr.mul(ins[0], ins[1])
    elif kind == "BinaryOp" and len(ins) == 2 and p(1) == 0 and p(0) in (0, 2):  # 0 add, 2 mul; no scalar
        node = tr.add2(ins[0], ins[1]) if p(0) == 0 else tr.mul(ins[0], ins[1])
    elif kind == "Eltwise" and len(ins) == 2 and p(0) == 1:  # SUM, coefficients must be 1
        coeffs = param_array(layer, 1, source)
        if coeffs is None or [float(c) for c in coeffs] == [1.0, 1.0]:
            node = tr.add2(ins[0], ins[1])
    elif kind == "Crop":
        node = _crop_node(layer, ins, tr, source)
    elif kind == "PixelShuffle" and len(ins) == 1 and p(1) == 0 and len(tr.shapes[ins[0]]) == 3:
        node = tr.shuffle(p(0, 1), ins[0])
    if node is None:
        return [tr._shaped(tr.opaque(layer, ins, i), (0,)) for i in range(len(layer.outputs))]
    return [node]


# --- per-layer checks ------------------------------------------------------------------------


def _geometry(layer: NcnnLayer, source: str) -> dict[str, Any]:
    """Every setting of a (de)convolution / inner product, ncnn defaults applied."""
    def p(key: int, default: int = 0) -> int:
        return _p(layer, key, default, source)

    if layer.type == "InnerProduct":
        return {"bias_term": p(1), "int8_scale_term": p(8)}
    kw, dw, sw, pl = p(1), p(2, 1), p(3, 1), p(4)
    pt = p(14, pl)
    geo: dict[str, Any] = {"kernel_w": kw, "kernel_h": p(11, kw), "dilation_w": dw, "dilation_h": p(12, dw),
                           "stride_w": sw, "stride_h": p(13, sw), "pad_left": pl, "pad_right": p(15, pl),
                           "pad_top": pt, "pad_bottom": p(16, pt), "bias_term": p(5)}
    if layer.type == "Convolution":
        geo.update(int8_scale_term=p(8), pad_value=param_float(layer, 18, 0.0, source), dynamic_weight=p(19))
    else:
        opr = p(18)
        geo.update(output_pad_right=opr, output_pad_bottom=p(19, opr), output_w=p(20), output_h=p(21),
                   dynamic_weight=p(28))
    return geo


def _expected_geometry(spec: LayerSpec) -> dict[str, Any]:
    if spec.type == "InnerProduct":
        return {"bias_term": 1, "int8_scale_term": 0}
    k, s, pad = spec.kernel, spec.stride, spec.pad
    geo: dict[str, Any] = {"kernel_w": k, "kernel_h": k, "dilation_w": 1, "dilation_h": 1, "stride_w": s,
                           "stride_h": s, "pad_left": pad, "pad_right": pad, "pad_top": pad,
                           "pad_bottom": pad, "bias_term": 1}
    if spec.type == "Convolution":
        geo.update(int8_scale_term=0, pad_value=0.0, dynamic_weight=0)
    else:
        geo.update(output_pad_right=0, output_pad_bottom=0, output_w=0, output_h=0, dynamic_weight=0)
    return geo


def _channels(layer: NcnnLayer, spec: LayerSpec, source: str) -> tuple[int, int]:
    out_ch = _p(layer, 0, 0, source)
    size = _p(layer, 2 if layer.type == "InnerProduct" else 6, 0, source)
    area = 1 if layer.type == "InnerProduct" else spec.kernel * spec.kernel
    if out_ch <= 0 or size <= 0 or size % (out_ch * area):
        raise NcnnFormatError(f"{source}: {layer.describe()}: weight_data_size {size} does not split into "
                              f"num_output {out_ch} x {area} weights per input channel")
    return size // (out_ch * area), out_ch


def check_weight_layer(layer: NcnnLayer, spec: LayerSpec, index: int, source: str) -> None:
    where = weight_layer_where(layer, spec, index, source)
    check_layer_form(layer, spec, where)
    unknown = sorted(set(layer.params) - _KNOWN_KEYS[spec.type])
    if unknown:
        raise NcnnFormatError(f"{where}: unsupported param ids {unknown} for {spec.type}")
    found, expected = _geometry(layer, source), _expected_geometry(spec)
    wrong = [f"{k}={v}" for k, v in found.items() if v != expected[k]]
    if wrong:
        raise NcnnFormatError(f"{where}: expected {spec.describe()} with bias, found {', '.join(wrong)}")
    check_channels(_channels(layer, spec, source), spec, where)
    check_activation(layer, spec, where, source, act_text)


# --- whole-graph conversion ------------------------------------------------------------------


def weight_layers(layers: list[NcnnLayer]) -> list[NcnnLayer]:
    return [layer for layer in layers if layer.type in WEIGHT_TYPES]


def in_channels(layers: list[NcnnLayer], source: str) -> int:
    """Input channels of the first weight layer (a 3x3 Convolution in every family here)."""
    first = weight_layers(layers)[0] if weight_layers(layers) else None
    if first is None or first.type != "Convolution":
        raise NcnnFormatError(f"{source}: the graph does not start with a Convolution")
    kernel = _p(first, 1, 0, source)
    size, out_ch = _p(first, 6, 0, source), _p(first, 0, 0, source)
    if kernel <= 0 or out_ch <= 0 or size % (out_ch * kernel * kernel):
        raise NcnnFormatError(f"{source}: {first.describe()}: weight_data_size {size} does not split into "
                              f"{out_ch} {kernel}x{kernel} kernels")
    return size // (out_ch * kernel * kernel)


def num_output(layer: NcnnLayer, source: str) -> int:
    return _p(layer, 0, 0, source)


def has_input_blob(layers: list[NcnnLayer], blob: str) -> bool:
    """Whether an Input layer produces exactly ``blob``: how waifu2x and Real-CUGAN graphs are told apart."""
    return any(layer.type == "Input" and layer.outputs == [blob] for layer in layers)


@dataclass(frozen=True)
class GraphFamily:
    """How to convert one family: arch name, blob names, and its traced PyTorch forward."""

    arch: str
    label: str
    input_blob: str
    output_blob: str
    # kwargs -> shape of the padded input the network sees, for the shape trace (LR size TRACE_LR)
    padded: Callable[[dict[str, Any]], Shape]
    forward: Callable[[Builder, int, dict[str, Any]], int]


def convert_graph(layers: list[NcnnLayer], bin_data: bytes, source: str, bin_source: str, family: GraphFamily,
                  kwargs: dict[str, Any]) -> ConvertedModel:
    """Validate ``layers`` against ``family``'s forward with ``kwargs``, then read the weights."""
    label = f"{family.label}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    strange = sorted({layer.type for layer in layers} - VOCABULARY)
    if strange:
        raise NcnnFormatError(f"{source}: layer types {', '.join(strange)} are not part of {label}")
    check_io(layers, family.input_blob, family.output_blob, source)

    tr = ShapeTrace(family.padded(kwargs))
    builder = Builder(tr)
    expected = family.forward(builder, tr.input(), kwargs)
    found = weight_layers(layers)
    if len(found) != len(builder.specs):
        raise NcnnFormatError(f"{source}: {len(found)} weight layers (Convolution, Deconvolution, "
                              f"InnerProduct), but {label} has {len(builder.specs)}")
    for index, (layer, spec) in enumerate(zip(found, builder.specs, strict=True)):
        check_weight_layer(layer, spec, index, source)
    specs = {layer.name: spec for layer, spec in zip(found, builder.specs, strict=True)}
    match_graph(layers, lambda layer: spec.name if (spec := specs.get(layer.name)) else None,
                lambda layer, ins: trace_layer(layer, ins, specs.get(layer.name), tr, source),
                builder.feeds, expected, tr, family.output_blob, label, source)

    weights = read_weights(layers, bin_data, bin_source)
    state: dict[str, torch.Tensor] = {}
    for layer, spec in zip(found, builder.specs, strict=True):
        arrays = weights[layer.name]
        weight = arrays["weight"]
        if spec.type == "InnerProduct":  # the SE blocks' 1x1 convolutions
            weight = weight.reshape(*weight.shape, 1, 1)
        put_tensors(state, layer, spec.name, {"weight": weight, "bias": arrays["bias"]}, bin_source)
    return check_loads(ConvertedModel(family.arch, kwargs, state), label, source)


# --- shared by the families ------------------------------------------------------------------

# LR size of the shape trace: any size the padded networks accept (multiple of 4, non-square).
TRACE_LR = (8, 12)


def padded_shape(in_channels: int, pad: int, multiple: int) -> Shape:
    """(C, H, W) the network sees for a ``TRACE_LR`` input padded to ``multiple`` and by ``pad`` per side."""
    h, w = (n + (-n) % multiple for n in TRACE_LR)
    return (in_channels, h + 2 * pad, w + 2 * pad)
