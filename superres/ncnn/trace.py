"""Shared by every ncnn converter: a symbolic trace proving that a graph computes an architecture.

The ``.bin`` of an ncnn model carries no names: weights are matched to PyTorch keys purely by
layer order. That order is trusted only after the graph has been shown to compute exactly the
architecture: both the ncnn graph and the PyTorch forward are traced into one hash-consed
expression DAG (:class:`Trace`, weights named by their PyTorch module), and every weight
layer's input, plus the final output, must be the identical node (:func:`match_graph`). A
file whose wiring, activations, coefficients or channel counts differ therefore fails loudly
instead of loading into a model that silently computes something else.

The family converters (``realesrgan``, ``span``, ``unet`` for waifu2x and Real-CUGAN) extend
the trace with their own vocabulary and use the per-layer checks here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from superres.archs import build
from superres.ncnn.reader import (
    NcnnFormatError,
    NcnnLayer,
    param_array,
    param_float,
    param_int,
)

_MODE_NAMES = {1: "nearest", 2: "bilinear", 3: "bicubic"}

Act = tuple[Any, ...] | None


def f32(value: float) -> float:
    """ncnn computes in float32, so coefficients compare at that precision."""
    return float(np.float32(value))



@dataclass
class ConvertedModel:
    """A converted model: build ``ARCHS[arch]`` with ``kwargs`` and load ``state_dict``.

    ``output_resize`` is the scale of a trailing bicubic resize in the ncnn graph (0.5 and
    0.75 for the animevideov3 x2/x3 files, which are the x4 network plus a downscale).
    """

    arch: str
    kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    output_resize: float | None = None

    def build_module(self) -> nn.Module:
        """The network with the converted weights, in eval mode (``output_resize`` not applied)."""
        module = build(self.arch, **self.kwargs)
        module.load_state_dict(self.state_dict, strict=True)
        return module.eval()


@dataclass(frozen=True)
class WeightSpec:
    """What one weight layer (3x3 Convolution or PReLU) must be, in file order: PyTorch name,
    ncnn type, channels, activation."""

    name: str
    type: str
    in_ch: int
    out_ch: int
    act: Act = None


class LayerSpecLike(Protocol):
    """What the per-layer checks read from a spec: :class:`WeightSpec` or the U-Net's ``LayerSpec``."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def in_ch(self) -> int: ...
    @property
    def out_ch(self) -> int: ...
    @property
    def act(self) -> Act: ...


# --- symbolic trace ----------------------------------------------------------------------


class Trace:
    """Hash-consed expression DAG shared by the ncnn graph and the PyTorch forward.

    Two blobs get the same id exactly when they are the same computation of the input, so
    comparing graphs is comparing integers, not walking the exponentially many paths of
    the dense blocks.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[Any, ...], int] = {}
        self._keys: list[tuple[Any, ...]] = []

    def node(self, *key: Any) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._keys)
            self._keys.append(key)
        return found

    def input(self) -> int:
        return self.node("input")

    def conv(self, name: str, x: int, act: Act) -> int:
        return self.node("conv", name, act, x)

    def prelu(self, name: str, x: int) -> int:
        return self.node("prelu", name, x)

    def cat(self, xs: Sequence[int]) -> int:
        return xs[0] if len(xs) == 1 else self.node("cat", tuple(xs))

    def add(self, terms: Iterable[tuple[float, int]]) -> int:
        """Weighted sum; addition commutes, so the terms are sorted into one canonical form."""
        return self.node("sum", tuple(sorted((f32(c), x) for c, x in terms)))

    def resize(self, mode: int, scale_h: float, scale_w: float, x: int) -> int:
        return self.node("resize", mode, f32(scale_h), f32(scale_w), x)

    def pixel_shuffle(self, factor: int, x: int) -> int:
        return self.node("pixel_shuffle", factor, x)

    def opaque(self, layer: NcnnLayer, ins: Sequence[int], index: int) -> int:
        """A layer the architectures do not contain: equal to nothing they compute."""
        return self.node("layer", layer.type, layer.name, index, tuple(ins))

    def describe(self, x: int, depth: int = 2) -> str:
        """Short text of a node and ``depth`` levels of its inputs, for error messages."""
        key = self._keys[x]
        kind = key[0]
        if kind == "input":
            return "the input"
        if kind == "sum":
            if depth == 0:
                return "sum"
            return "(" + " + ".join(f"{c:g}*{self.describe(t, depth - 1)}" for c, t in key[1]) + ")"
        label, children = {
            "conv": lambda: (key[1] + (f"+{act_text(key[2])}" if key[2] else ""), (key[3],)),
            "prelu": lambda: (f"PReLU {key[1]}", (key[2],)),
            "cat": lambda: ("cat", key[1]),
            "resize": lambda: (f"{_MODE_NAMES.get(key[1], f'mode {key[1]}')} resize x{key[2]:g},{key[3]:g}",
                               (key[4],)),
            "pixel_shuffle": lambda: (f"pixel_shuffle x{key[1]}", (key[2],)),
            "layer": lambda: (f"{key[1]} {key[2]}", key[4]),
        }[kind]()
        if depth == 0:
            return label
        return f"{label}({', '.join(self.describe(c, depth - 1) for c in children)})"


def act_text(act: Act) -> str:
    if act is None:
        return "no activation"
    if act[0] == "LeakyReLU":
        return "LeakyReLU(?)" if act[1] is None else f"LeakyReLU({act[1]:g})"
    if act[0] == "ReLU":
        return "ReLU"
    return f"activation type {act[1]} {list(act[2])}"


def activation(layer: NcnnLayer, source: str) -> Act:
    """The activation fused into a Convolution (param 9, its parameters in array 10)."""
    kind = param_int(layer, 9, 0, source)
    params = param_array(layer, 10, source) or []
    if kind == 0:
        return None
    if kind == 1:
        return ("ReLU",)
    if kind == 2:
        return ("LeakyReLU", f32(params[0]) if params else None)
    return ("activation", kind, tuple(f32(v) for v in params))


def trace_layer(layer: NcnnLayer, ins: list[int], torch_name: str | None, tr: Trace,
                 source: str) -> list[int]:
    """Nodes for a layer's outputs; anything outside the SR vocabulary becomes opaque."""
    kind = layer.type

    def p(key: int, default: int = 0) -> int:
        return param_int(layer, key, default, source)

    if kind == "Input" and not ins:
        return [tr.input()]
    if kind == "Split" and len(ins) == 1:
        return [ins[0]] * len(layer.outputs)
    if len(layer.outputs) == 1:
        if kind == "Convolution" and torch_name and len(ins) == 1:
            return [tr.conv(torch_name, ins[0], activation(layer, source))]
        if kind == "PReLU" and torch_name and len(ins) == 1:
            return [tr.prelu(torch_name, ins[0])]
        if kind == "Concat" and p(0) == 0 and ins:
            return [tr.cat(ins)]
        if kind == "Eltwise" and p(0) == 1:  # 1 = SUM, optionally with coefficients
            coeffs = param_array(layer, 1, source) or [1.0] * len(ins)
            if len(coeffs) == len(ins):
                return [tr.add(zip(coeffs, ins, strict=True))]
        if kind == "BinaryOp" and p(0) == 0 and p(1) == 0 and len(ins) == 2:  # add, no scalar
            return [tr.add([(1.0, ins[0]), (1.0, ins[1])])]
        if kind == "Interp" and len(ins) == 1 and all(p(k) == 0 for k in (3, 4, 5, 6)):
            # 3/4 fixed output size, 5 dynamic size, 6 align_corners: all absent in scale mode
            return [tr.resize(p(0), param_float(layer, 1, 1.0, source), param_float(layer, 2, 1.0, source),
                              ins[0])]
        if kind == "PixelShuffle" and p(1) == 0 and len(ins) == 1:  # mode 0 = PyTorch order
            return [tr.pixel_shuffle(p(0, 1), ins[0])]
    return [tr.opaque(layer, ins, i) for i in range(len(layer.outputs))]


def match_graph(
    layers: list[NcnnLayer],
    torch_name_of: Callable[[NcnnLayer], str | None],
    trace: Callable[[NcnnLayer, list[int]], list[int]],
    feeds: dict[str, int],
    expected: int,
    tr: Trace,
    output_blob: str,
    label: str,
    source: str,
) -> None:
    """Trace the ncnn graph; each weight layer's input and the output must equal the expected.

    Shared by every converter: ``torch_name_of`` maps a weight layer to its PyTorch module
    name (None for weightless layers) and ``trace`` gives a layer's output nodes.
    """
    blobs: dict[str, int] = {}
    for layer in layers:
        ins = [blobs[b] for b in layer.inputs]  # parse_param guarantees producers come first
        torch_name = torch_name_of(layer)
        if torch_name is not None and ins[0] != feeds[torch_name]:
            raise NcnnFormatError(
                f"{source}: {layer.describe()} ({torch_name}) is fed {tr.describe(ins[0])}, but {label} "
                f"feeds it {tr.describe(feeds[torch_name])}")
        blobs.update(zip(layer.outputs, trace(layer, ins), strict=True))
    if blobs[output_blob] != expected:
        raise NcnnFormatError(f"{source}: blob {output_blob!r} is {tr.describe(blobs[output_blob])}, "
                              f"but {label} computes {tr.describe(expected)}")


TraceT = TypeVar("TraceT", bound=Trace)


def match_in_order(
    layers: list[NcnnLayer],
    weight_layers: list[NcnnLayer],
    specs: Sequence[LayerSpecLike],
    trace: Callable[[NcnnLayer, list[int], str | None, TraceT, str], list[int]],
    feeds: dict[str, int],
    expected: int,
    tr: TraceT,
    output_blob: str,
    label: str,
    source: str,
) -> None:
    """:func:`match_graph` for weight layers named by their specs in file order; ``trace`` is the
    family's layer tracer (:func:`trace_layer` or one extending it), called with that name."""
    names = {layer.name: spec.name for layer, spec in zip(weight_layers, specs, strict=True)}
    match_graph(layers, lambda layer: names.get(layer.name),
                lambda layer, ins: trace(layer, ins, names.get(layer.name), tr, source),
                feeds, expected, tr, output_blob, label, source)


# --- whole-graph and per-layer checks --------------------------------------------------------------------


def check_io(layers: list[NcnnLayer], input_blob: str, output_blob: str, source: str) -> None:
    """Exactly one Input layer, producing ``input_blob``, and some layer producing ``output_blob``."""
    inputs = [blob for layer in layers if layer.type == "Input" for blob in layer.outputs]
    if inputs != [input_blob]:
        raise NcnnFormatError(f"{source}: expected one Input layer producing blob {input_blob!r}, "
                              f"found {inputs}")
    if not any(output_blob in layer.outputs for layer in layers):
        raise NcnnFormatError(f"{source}: no layer produces the output blob {output_blob!r}")


def check_loads(converted: ConvertedModel, label: str, source: str) -> ConvertedModel:
    """``converted`` itself, once its tensors load strictly (every key and shape) into its architecture.

    Built on the "meta" device: no initialisation, no copy.
    """
    try:
        with torch.device("meta"):
            module = build(converted.arch, **converted.kwargs)
        module.load_state_dict(converted.state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        raise NcnnFormatError(f"{source}: converted weights do not load into {label}: {exc}") from exc
    return converted


SAME_3X3 = {"kernel_w": 3, "kernel_h": 3, "dilation_w": 1, "dilation_h": 1, "stride_w": 1, "stride_h": 1,
             "pad_left": 1, "pad_right": 1, "pad_top": 1, "pad_bottom": 1, "bias_term": 1,
             "int8_scale_term": 0, "dynamic_weight": 0}


def conv_settings(layer: NcnnLayer, source: str) -> dict[str, int]:
    """Convolution params with ncnn's defaults applied (11-16 default to their 1-4 partners)."""

    def p(key: int, default: int) -> int:
        return param_int(layer, key, default, source)

    kernel_w, dilation_w, stride_w, pad_left = p(1, 0), p(2, 1), p(3, 1), p(4, 0)
    pad_top = p(14, pad_left)
    return {"kernel_w": kernel_w, "kernel_h": p(11, kernel_w), "dilation_w": dilation_w,
            "dilation_h": p(12, dilation_w), "stride_w": stride_w, "stride_h": p(13, stride_w),
            "pad_left": pad_left, "pad_right": p(15, pad_left), "pad_top": pad_top,
            "pad_bottom": p(16, pad_top), "bias_term": p(5, 0), "int8_scale_term": p(8, 0),
            "dynamic_weight": p(19, 0)}


def conv_channels(layer: NcnnLayer, source: str) -> tuple[int, int]:
    """(in, out) channels: ncnn stores no input count, it follows from weight_data_size."""
    out_ch = param_int(layer, 0, 0, source)
    kernel_w = param_int(layer, 1, 0, source)
    kernel_h = param_int(layer, 11, kernel_w, source)
    size = param_int(layer, 6, 0, source)
    per_input = out_ch * kernel_w * kernel_h
    if per_input <= 0 or size <= 0 or size % per_input:
        raise NcnnFormatError(f"{source}: {layer.describe()}: weight_data_size {size} does not split into "
                              f"num_output {out_ch} x {kernel_h}x{kernel_w} kernels")
    return size // per_input, out_ch


def weight_layer_where(layer: NcnnLayer, spec: LayerSpecLike, index: int, source: str) -> str:
    """The start of every message about weight layer #``index`` (in file order)."""
    return f"{source}: {layer.describe()}, weight layer #{index} (expected {spec.name})"


def check_layer_form(layer: NcnnLayer, spec: LayerSpecLike, where: str) -> None:
    """The spec's layer type, with one input and one output blob."""
    if layer.type != spec.type:
        raise NcnnFormatError(f"{where}: expected a {spec.type} layer, found {layer.type}")
    if len(layer.inputs) != 1 or len(layer.outputs) != 1:
        raise NcnnFormatError(f"{where}: expected 1 input and 1 output blob, found "
                              f"{len(layer.inputs)} and {len(layer.outputs)}")


def check_channels(channels: tuple[int, int], spec: LayerSpecLike, where: str) -> None:
    """(in, out) channels as read from the layer must be the spec's."""
    if channels != (spec.in_ch, spec.out_ch):
        raise NcnnFormatError(f"{where}: expected {spec.in_ch} -> {spec.out_ch} channels, found "
                              f"{channels[0]} -> {channels[1]}")


def check_activation(layer: NcnnLayer, spec: LayerSpecLike, where: str, source: str,
                     describe: Callable[[Act], str] = act_text) -> None:
    """The activation fused into the layer (param 9) must be the spec's; ``describe`` names one."""
    act = activation(layer, source)
    if act != spec.act:
        raise NcnnFormatError(f"{where}: expected {describe(spec.act)} fused into it (param 9), "
                              f"found {describe(act)}")


def check_weight_layer(layer: NcnnLayer, spec: WeightSpec, index: int, source: str) -> None:
    where = weight_layer_where(layer, spec, index, source)
    check_layer_form(layer, spec, where)
    if spec.type == "PReLU":
        slopes = param_int(layer, 0, 0, source)
        if slopes != spec.out_ch:
            raise NcnnFormatError(f"{where}: expected {spec.out_ch} PReLU slopes, found {slopes}")
        return
    settings = conv_settings(layer, source)
    wrong = [f"{k}={v}" for k, v in settings.items() if v != SAME_3X3[k]]
    if wrong or param_float(layer, 18, 0.0, source) != 0.0:
        raise NcnnFormatError(f"{where}: expected a 3x3, stride 1, zero-pad 1 convolution with bias, found "
                              f"{', '.join(wrong) or 'a nonzero pad value'}")
    check_channels(conv_channels(layer, source), spec, where)
    check_activation(layer, spec, where, source)


def check_counts(layers: list[NcnnLayer], expected: dict[str, int], label: str, source: str) -> None:
    """Layer counts by type (Split aside: how often a blob fans out is the exporter's business)."""
    found = Counter(layer.type for layer in layers if layer.type != "Split")
    for kind in sorted(set(expected) | set(found)):
        if found[kind] != expected.get(kind, 0):
            raise NcnnFormatError(f"{source}: expected {expected.get(kind, 0)} {kind} layers for {label}, "
                                  f"found {found[kind]}")


def state_dict_of(weight_layers: list[NcnnLayer], specs: list[WeightSpec],
                  weights: dict[str, dict[str, np.ndarray]], source: str) -> dict[str, torch.Tensor]:
    """PyTorch keys for the weight layers; PReLU slopes become ``.weight`` as in nn.PReLU."""
    state: dict[str, torch.Tensor] = {}
    for layer, spec in zip(weight_layers, specs, strict=True):
        arrays = weights[layer.name]
        parts = {"weight": arrays["slope"]} if spec.type == "PReLU" else {"weight": arrays["weight"],
                                                                          "bias": arrays["bias"]}
        put_tensors(state, layer, spec.name, parts, source)
    return state


def put_tensors(state: dict[str, torch.Tensor], layer: NcnnLayer, name: str, parts: dict[str, np.ndarray],
                source: str) -> None:
    """``state[f"{name}.{suffix}"]`` (contiguous float32) for each part; non-finite values are refused."""
    for suffix, array in parts.items():
        if not np.isfinite(array).all():
            raise NcnnFormatError(f"{source}: {layer.describe()} ({name}): non-finite {suffix} values")
        state[f"{name}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


