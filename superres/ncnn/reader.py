"""Reader for ncnn ``.param`` / ``.bin`` model files, the format of the ``*-ncnn-py`` wheels.

It turns the text graph into plain data and each layer's stored arrays into float32 numpy
arrays in PyTorch's layout, and nothing more: the architecture-specific checks live in the
converters. The ``.bin`` has no header, no names and no lengths, so a single wrong guess
about one layer shifts every later weight; the reader therefore insists that tags are
known and that the file is consumed to the last byte, and every error names the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MAGIC = 7767517
_ARRAY_KEY = -23300  # keys <= this hold arrays; the array's id is -key - 23300

ParamValue = int | float | list[int | float]

# ModelBin tags (first 4 bytes of a tagged array, little-endian).
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000
TAG_FP32_SCALED = 0x0002C056  # raw fp32 written by the int8 tools next to their scales
TAG_INT8 = 0x000D4B38
# ncnn reads *any* other nonzero tag as a 256-entry lookup table. The only writer of that
# form (caffe2ncnn) stores the C++ bool ``true`` there, so anything else is corruption.
TAG_LUT = 0x00000001

# Layer types whose load_model() reads nothing from the .bin.
WEIGHTLESS_LAYERS = frozenset({
    "AbsVal", "BinaryOp", "Cast", "Clip", "Concat", "Crop", "Dropout", "ELU", "Eltwise", "Erf",
    "Exp", "ExpandDims", "Flatten", "GELU", "HardSigmoid", "HardSwish", "Input", "Interp",
    "Log", "Mish", "Noop", "Packing", "Permute", "PixelShuffle", "Pooling", "Pooling1D",
    "Pooling3D", "Power", "ReLU", "Reduction", "Reorg", "Reshape", "SELU", "ShuffleChannel",
    "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Swish", "TanH", "Threshold", "UnaryOp",
})


class NcnnFormatError(ValueError):
    """A ``.param``/``.bin`` pair that is malformed or not what the caller expects."""


@dataclass
class NcnnLayer:
    """One line of a ``.param`` file; ``params`` maps param id to value (arrays by their id)."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, ParamValue] = field(default_factory=dict)

    def describe(self) -> str:
        return f"layer {self.name} ({self.type})"


# --- typed parameter access ------------------------------------------------------------


def param_int(layer: NcnnLayer, key: int, default: int, source: str) -> int:
    """Integer param ``key`` (ncnn's ``pd.get(key, int)``), or ``default`` when absent."""
    value = layer.params.get(key, default)
    if not isinstance(value, int):
        raise NcnnFormatError(f"{source}: {layer.describe()}: param {key}={value!r} should be an integer")
    return value


def param_float(layer: NcnnLayer, key: int, default: float, source: str) -> float:
    """Scalar float param ``key``; integers are accepted (they are exact in float)."""
    value = layer.params.get(key, default)
    if isinstance(value, list):
        raise NcnnFormatError(f"{source}: {layer.describe()}: param {key} should be a scalar, got an array")
    return float(value)


def param_array(layer: NcnnLayer, key: int, source: str) -> list[int | float] | None:
    """Array param with id ``key`` (written as ``-(23300+key)=n,v1,...``), or None when absent."""
    value = layer.params.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise NcnnFormatError(f"{source}: {layer.describe()}: param {key} should be an array, got {value!r}")
    return value


# --- .param ----------------------------------------------------------------------------


def parse_param(text: str, source: str) -> list[NcnnLayer]:
    """Parse ``.param`` text; checks the magic, the declared counts and the blob wiring."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines or lines[0][1] != str(MAGIC):
        found = repr(lines[0][1][:40]) if lines else "an empty file"
        raise NcnnFormatError(f"{source}: magic number {MAGIC} expected on line 1, found {found} "
                              "(not an ncnn text .param file)")
    header = lines[1][1].split() if len(lines) > 1 else []
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise NcnnFormatError(f"{source}: line 2 must be 'layer_count blob_count', found {header!r}")
    layer_count, blob_count = int(header[0]), int(header[1])
    body = lines[2:]
    if len(body) != layer_count:
        raise NcnnFormatError(f"{source}: header declares {layer_count} layers, "
                              f"found {len(body)} layer lines")
    layers = [_parse_layer(line, f"{source} line {n}") for n, line in body]
    _check_wiring(layers, blob_count, source)
    return layers


def _parse_layer(line: str, where: str) -> NcnnLayer:
    tokens = line.split()
    if len(tokens) < 4 or not tokens[2].isdigit() or not tokens[3].isdigit():
        raise NcnnFormatError(f"{where}: expected 'Type name n_in n_out ...', found {line[:60]!r}")
    n_in, n_out = int(tokens[2]), int(tokens[3])
    if len(tokens) < 4 + n_in + n_out:
        raise NcnnFormatError(f"{where}: {tokens[1]} declares {n_in} inputs and {n_out} outputs "
                              f"but lists only {len(tokens) - 4} blob names")
    params: dict[int, ParamValue] = {}
    for token in tokens[4 + n_in + n_out:]:
        key, value = _parse_param_token(token, where)
        if key in params:
            raise NcnnFormatError(f"{where}: param id {key} given twice")
        params[key] = value
    return NcnnLayer(type=tokens[0], name=tokens[1], inputs=tokens[4:4 + n_in],
                     outputs=tokens[4 + n_in:4 + n_in + n_out], params=params)


def _parse_param_token(token: str, where: str) -> tuple[int, ParamValue]:
    key_text, sep, value_text = token.partition("=")
    try:
        key = int(key_text)
    except ValueError:
        key = None
    if not sep or key is None:
        raise NcnnFormatError(f"{where}: expected 'id=value', found {token!r}")
    if key > _ARRAY_KEY:
        if key < 0:
            raise NcnnFormatError(f"{where}: param id {key} is neither a scalar (>= 0) nor an array "
                                  f"(<= {_ARRAY_KEY}) id")
        return key, _number(value_text, where)
    count_text, *items = value_text.split(",")
    count = _number(count_text, where)
    if not isinstance(count, int) or count != len(items):
        raise NcnnFormatError(f"{where}: array {key} declares {count_text} values but has {len(items)}")
    return -key + _ARRAY_KEY, [_number(v, where) for v in items]


def _number(text: str, where: str) -> int | float:
    """ncnn's rule: a value with '.', 'e' or 'E' is a float, anything else an integer."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise NcnnFormatError(f"{where}: {text!r} is not a number") from None


def _check_wiring(layers: list[NcnnLayer], blob_count: int, source: str) -> None:
    """Unique layer names, every blob produced once and before use, declared blob count."""
    producer: dict[str, str] = {}
    names: set[str] = set()
    for layer in layers:
        if layer.name in names:
            raise NcnnFormatError(f"{source}: two layers are named {layer.name!r}")
        names.add(layer.name)
        for blob in layer.inputs:
            if blob not in producer:
                raise NcnnFormatError(f"{source}: {layer.describe()} reads blob {blob!r} "
                                      "before any layer produces it")
        for blob in layer.outputs:
            if blob in producer:
                raise NcnnFormatError(f"{source}: blob {blob!r} is produced by both {producer[blob]} "
                                      f"and {layer.name}")
            producer[blob] = layer.name
    if len(producer) != blob_count:
        raise NcnnFormatError(f"{source}: header declares {blob_count} blobs, the layers use {len(producer)}")


# --- .bin ------------------------------------------------------------------------------


class _BinReader:
    """Sequential reader over the .bin with ncnn ModelBin's two array forms."""

    def __init__(self, data: bytes, source: str) -> None:
        self.buf = memoryview(data)
        self.pos = 0
        self.source = source

    def take(self, nbytes: int, what: str) -> memoryview:
        left = len(self.buf) - self.pos
        if nbytes > left:
            raise NcnnFormatError(f"{self.source}: {what}: needs {nbytes} bytes at offset {self.pos} "
                                  f"but only {left} remain (file truncated, or a layer parameter is wrong)")
        chunk = self.buf[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        """Untagged array (``ModelBin::load(n, 1)``): little-endian fp32."""
        return np.frombuffer(self.take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> tuple[np.ndarray, bool]:
        """Tagged array (``ModelBin::load(n, 0)``) as float32; the flag is True for raw int8 values."""
        at = self.pos
        tag = int(np.frombuffer(self.take(4, what), dtype="<u4")[0])
        if tag == TAG_FP16:
            data = self.take(_align4(2 * count), what)
            return np.frombuffer(data, dtype="<f2", count=count).astype(np.float32), False
        if tag in (TAG_FP32, TAG_FP32_SCALED):
            return self.raw(count, what), False
        if tag == TAG_INT8:
            data = self.take(_align4(count), what)
            return np.frombuffer(data, dtype=np.int8, count=count).astype(np.float32), True
        if tag == TAG_LUT:
            table = self.raw(256, what)
            index = np.frombuffer(self.take(_align4(count), what), dtype=np.uint8, count=count)
            return table[index], False
        raise NcnnFormatError(
            f"{self.source}: {what}: unknown weight tag 0x{tag:08x} at offset {at} (known: fp16 "
            f"0x{TAG_FP16:08x}, fp32 0x{TAG_FP32:08x} / 0x{TAG_FP32_SCALED:08x}, int8 0x{TAG_INT8:08x}, "
            f"lookup table 0x{TAG_LUT:08x}); the file is corrupt or an earlier layer was misread")


def _align4(n: int) -> int:
    return (n + 3) & ~3


Arrays = dict[str, np.ndarray]
_LayerReader = Callable[[NcnnLayer, _BinReader, str], Arrays]


def read_weights(layers: list[NcnnLayer], data: bytes, source: str) -> dict[str, Arrays]:
    """Arrays stored in the ``.bin`` for each layer that stores any, keyed by layer name.

    Inner keys: ``weight`` and ``bias`` (Convolution (out, in/groups, kh, kw), Deconvolution
    transposed to PyTorch's (in, out/groups, kh, kw), InnerProduct (out, in)), ``slope``
    (PReLU), ``scale``/``bias`` (Scale), ``data`` (MemoryData), ``pad_values`` (Padding), and
    the int8 calibration scales where present. Int8-stored weights come back dequantized.
    The whole of ``data`` must be consumed.
    """
    reader = _BinReader(data, source)
    out: dict[str, Arrays] = {}
    for layer in layers:
        if layer.type in WEIGHTLESS_LAYERS:
            continue
        read = _READERS.get(layer.type)
        if read is None:
            raise NcnnFormatError(f"{source}: {layer.describe()}: layer type {layer.type!r} is not supported "
                                  "and may store weights, so the rest of the .bin cannot be located")
        arrays = read(layer, reader, source)
        if arrays:
            if layer.name in out:
                raise NcnnFormatError(f"{source}: two weight layers are named {layer.name!r}")
            out[layer.name] = arrays
    left = len(reader.buf) - reader.pos
    if left:
        raise NcnnFormatError(f"{source}: {left} bytes left unread after the last layer "
                              f"({reader.pos} of {len(reader.buf)} consumed)")
    return out


def _positive(layer: NcnnLayer, key: int, what: str, source: str, default: int = 0) -> int:
    value = param_int(layer, key, default, source)
    if value <= 0:
        raise NcnnFormatError(f"{source}: {layer.describe()}: {what} (param {key}) must be positive, "
                              f"got {value}")
    return value


def _kernel(layer: NcnnLayer, source: str) -> tuple[int, int, int, int]:
    """(num_output, kernel_h, kernel_w, weight_data_size) shared by the (de)convolutions."""
    num_output = _positive(layer, 0, "num_output", source)
    kernel_w = _positive(layer, 1, "kernel_w", source)
    kernel_h = _positive(layer, 11, "kernel_h", source, default=kernel_w)
    size = _positive(layer, 6, "weight_data_size", source)
    return num_output, kernel_h, kernel_w, size


def _groups(layer: NcnnLayer, num_output: int, source: str) -> int:
    group = _positive(layer, 7, "group", source, default=1)
    if num_output % group:
        raise NcnnFormatError(f"{source}: {layer.describe()}: num_output {num_output} is not divisible "
                              f"by group {group}")
    return group


def _fan_in(layer: NcnnLayer, size: int, per_input: int, source: str) -> int:
    """Input channels (per group) implied by weight_data_size, which must divide exactly."""
    if size % per_input:
        raise NcnnFormatError(f"{source}: {layer.describe()}: weight_data_size {size} is not a multiple of "
                              f"num_output x kernel area = {per_input}")
    return size // per_input


def _int8_scales(layer: NcnnLayer, reader: _BinReader, n_weight: int, top: bool, source: str) -> Arrays:
    what = f"{layer.describe()} int8 scales"
    scales = {"weight_int8_scales": reader.raw(n_weight, what), "input_int8_scales": reader.raw(1, what)}
    if top:
        scales["output_int8_scales"] = reader.raw(1, what)
    return scales


def _dequantize(layer: NcnnLayer, values: np.ndarray, scales: np.ndarray | None, source: str) -> np.ndarray:
    """int8 weights back to float: ncnn stores round(w * scale) per equal slice of the array."""
    if scales is None:
        raise NcnnFormatError(f"{source}: {layer.describe()}: int8 weights but no int8_scale_term (param 8), "
                              "so no scales to dequantize them")
    if values.size % scales.size:
        raise NcnnFormatError(f"{source}: {layer.describe()}: {values.size} int8 weights do not split into "
                              f"{scales.size} scale groups")
    grouped = values.reshape(scales.size, -1)
    safe = np.where(scales == 0, 1.0, scales).astype(np.float32)[:, None]
    return np.where(scales[:, None] == 0, 0.0, grouped / safe).astype(np.float32).reshape(values.shape)


def _no_int8(layer: NcnnLayer, source: str) -> None:
    """Layers without int8 calibration scales cannot hold int8-tagged data."""
    raise NcnnFormatError(f"{source}: {layer.describe()}: int8-tagged data in a layer type that has no "
                          "int8 scales to dequantize it")


def _read_dense(layer: NcnnLayer, reader: _BinReader, size: int, num_output: int, bias_key: int,
                scales: Callable[[int], tuple[int, bool]], source: str) -> tuple[np.ndarray, Arrays]:
    """Convolution's and InnerProduct's data, in ncnn's order: the weight (float or int8-tagged),
    the bias if param ``bias_key`` is set, the int8 scales if int8_scale_term (param 8) is
    (``scales(term)``: how many weight scales, whether an output scale follows). Returns the
    flat weight, dequantized, and the other arrays."""
    weight, is_int8 = reader.tagged(size, f"{layer.describe()} weight")
    arrays: Arrays = {}
    if param_int(layer, bias_key, 0, source):
        arrays["bias"] = reader.raw(num_output, f"{layer.describe()} bias")
    int8_term = param_int(layer, 8, 0, source)
    if int8_term:
        arrays.update(_int8_scales(layer, reader, *scales(int8_term), source))
    if is_int8:
        weight = _dequantize(layer, weight, arrays.get("weight_int8_scales"), source)
    return weight, arrays


def _read_convolution(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    """Convolution and ConvolutionDepthWise: weight (out, in/groups, kh, kw), bias, int8 scales."""
    if param_int(layer, 19, 0, source):
        return {}  # dynamic weight: it arrives as an input blob
    num_output, kernel_h, kernel_w, size = _kernel(layer, source)
    depthwise = layer.type == "ConvolutionDepthWise"
    group = _groups(layer, num_output, source) if depthwise else 1
    fan_in = _fan_in(layer, size, num_output * kernel_h * kernel_w, source)

    def scales(int8_term: int) -> tuple[int, bool]:
        if depthwise and int8_term % 100 not in (1, 2):
            raise NcnnFormatError(f"{source}: {layer.describe()}: unsupported int8_scale_term {int8_term}")
        n_scales = group if (depthwise and int8_term % 100 == 1) else (1 if depthwise else num_output)
        return n_scales, int8_term > 100

    weight, arrays = _read_dense(layer, reader, size, num_output, 5, scales, source)
    return {"weight": weight.reshape(num_output, fan_in, kernel_h, kernel_w), **arrays}


def _read_deconvolution(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    """Deconvolution(DepthWise): stored [group][out][in][kh][kw], PyTorch wants (in, out/groups, kh, kw)."""
    if param_int(layer, 28, 0, source):
        return {}  # dynamic weight
    num_output, kernel_h, kernel_w, size = _kernel(layer, source)
    group = _groups(layer, num_output, source) if layer.type == "DeconvolutionDepthWise" else 1
    fan_in = _fan_in(layer, size, num_output * kernel_h * kernel_w, source)  # per group
    weight, is_int8 = reader.tagged(size, f"{layer.describe()} weight")
    if is_int8:
        _no_int8(layer, source)
    per_group = weight.reshape(group, num_output // group, fan_in, kernel_h, kernel_w)
    torch_layout = per_group.transpose(0, 2, 1, 3, 4).reshape(group * fan_in, num_output // group,
                                                             kernel_h, kernel_w)
    arrays: Arrays = {"weight": np.ascontiguousarray(torch_layout)}
    if param_int(layer, 5, 0, source):
        arrays["bias"] = reader.raw(num_output, f"{layer.describe()} bias")
    return arrays


def _read_inner_product(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    """InnerProduct: note its keys differ from Convolution's (1 = bias_term, 2 = weight size)."""
    num_output = _positive(layer, 0, "num_output", source)
    size = _positive(layer, 2, "weight_data_size", source)
    fan_in = _fan_in(layer, size, num_output, source)
    weight, arrays = _read_dense(layer, reader, size, num_output, 1, lambda _term: (num_output, False),
                                 source)
    return {"weight": weight.reshape(num_output, fan_in), **arrays}


def _read_prelu(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    num_slope = _positive(layer, 0, "num_slope", source)
    return {"slope": reader.raw(num_slope, f"{layer.describe()} slopes")}


def _read_scale(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    size = param_int(layer, 0, 0, source)
    if size == -233:
        return {}  # the scale comes from a second input blob
    size = _positive(layer, 0, "scale_data_size", source)
    arrays = {"scale": reader.raw(size, f"{layer.describe()} scale")}
    if param_int(layer, 1, 0, source):
        arrays["bias"] = reader.raw(size, f"{layer.describe()} bias")
    return arrays


def _read_memory_data(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    """MemoryData: shape (c, d, h, w) trimmed to its nonzero dims; all-zero dims store nothing."""
    w, h, d, c = (param_int(layer, k, 0, source) for k in (0, 1, 11, 2))
    if d:
        shape: tuple[int, ...] = (c, d, h, w)
    elif c:
        shape = (c, h, w)
    elif h:
        shape = (h, w)
    elif w:
        shape = (w,)
    else:
        return {}  # ncnn creates a 1-element blob without reading
    if any(n <= 0 for n in shape):
        raise NcnnFormatError(f"{source}: {layer.describe()}: invalid shape {shape}")
    count = int(np.prod(shape))
    load_type = param_int(layer, 21, 1, source)
    what = f"{layer.describe()} data"
    if load_type == 1:
        values = reader.raw(count, what)
    elif load_type == 0:
        values, is_int8 = reader.tagged(count, what)
        if is_int8:
            _no_int8(layer, source)
    else:
        raise NcnnFormatError(f"{source}: {layer.describe()}: unsupported load_type (param 21) {load_type}")
    return {"data": values.reshape(shape)}


def _read_padding(layer: NcnnLayer, reader: _BinReader, source: str) -> Arrays:
    count = param_int(layer, 6, 0, source)
    if count <= 0:
        return {}
    return {"pad_values": reader.raw(count, f"{layer.describe()} per-channel pad values")}


_READERS: dict[str, _LayerReader] = {
    "Convolution": _read_convolution,
    "ConvolutionDepthWise": _read_convolution,
    "Deconvolution": _read_deconvolution,
    "DeconvolutionDepthWise": _read_deconvolution,
    "InnerProduct": _read_inner_product,
    "PReLU": _read_prelu,
    "Scale": _read_scale,
    "MemoryData": _read_memory_data,
    "Padding": _read_padding,
}
