"""ncnn -> PyTorch conversion: the real Real-ESRGAN files, agreement with the ncnn runtime, errors.

The converted models are compared with the ``ncnn`` Python runtime itself (CPU, fp32) on a
real photo crop and on non-square noise; the 23-block x4plus runs on small inputs to keep
this file fast on 2 cores. Corrupt and altered files are derived from the real ones.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superres.archs import detect_arch
from superres.archs.common import count_params
from superres.ncnn import ConvertedModel, convert_files, convert_ncnn
from superres.ncnn.reader import (
    TAG_FP16,
    TAG_FP32,
    TAG_FP32_SCALED,
    TAG_INT8,
    TAG_LUT,
    NcnnFormatError,
    parse_param,
    read_weights,
)
from tests.ncnn_helpers import Conversions, edit_layer, ncnn_runtime, photo_crop, run_ncnn

_RRDB = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_grow_ch": 32}
_VGG = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}

# name: (arch, kwargs, parameter count, output_resize)
EXPECTED = {
    "realesrgan-x4plus": ("rrdbnet", {**_RRDB, "num_block": 23}, 16_697_987, None),
    "realesrgan-x4plus-anime": ("rrdbnet", {**_RRDB, "num_block": 6}, 4_467_779, None),
    "realesr-animevideov3-x4": ("srvgg", _VGG, 621_424, None),
    "realesr-animevideov3-x2": ("srvgg", _VGG, 621_424, 0.5),
    "realesr-animevideov3-x3": ("srvgg", _VGG, 621_424, 0.75),
}
# (photo crop, noise) input sizes (h, w): small for the 23-block net, larger for the compact one.
SIZES = {
    "realesrgan-x4plus": ((32, 32), (24, 40)),
    "realesrgan-x4plus-anime": ((40, 40), (32, 48)),
    "realesr-animevideov3-x4": ((64, 64), (48, 56)),
    "realesr-animevideov3-x2": ((64, 64), (48, 56)),
    "realesr-animevideov3-x3": ((64, 64), (48, 56)),
}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def converted(realesrgan_models_dir: Path) -> Conversions:
    """Convert each model once per module (x4plus takes a couple of seconds)."""
    root = realesrgan_models_dir
    return Conversions(lambda name: (root / f"{name}.param", root / f"{name}.bin"))


@pytest.fixture(scope="module")
def module_of(converted: Conversions) -> Callable[[str], torch.nn.Module]:
    return converted.module


def _test_input(kind: str, size: tuple[int, int], sample_path: Path) -> np.ndarray:
    """A CHW float32 RGB image in [0, 1]: a crop of the sample photo, or seeded noise."""
    h, w = size
    if kind == "photo":
        return photo_crop(sample_path, h, w)
    return np.random.default_rng(1234).random((3, h, w), dtype=np.float32)


# --- the real files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_models_convert(name: str, converted: Callable[[str], ConvertedModel],
                             module_of: Callable[[str], torch.nn.Module]) -> None:
    arch, kwargs, n_params, resize = EXPECTED[name]
    model = converted(name)
    assert (model.arch, model.kwargs, model.output_resize) == (arch, kwargs, resize)
    assert count_params(module_of(name)) == n_params
    assert sum(t.numel() for t in model.state_dict.values()) == n_params
    assert all(t.dtype == torch.float32 for t in model.state_dict.values())
    # the key-based detector recognises the converted weights as the same architecture
    assert detect_arch(model.state_dict) == (arch, kwargs)


def test_animevideov3_variants_share_weights(converted: Callable[[str], ConvertedModel]) -> None:
    x4 = converted("realesr-animevideov3-x4").state_dict
    for name in ("realesr-animevideov3-x2", "realesr-animevideov3-x3"):
        other = converted(name).state_dict
        assert other.keys() == x4.keys()
        assert all(torch.equal(other[k], x4[k]) for k in x4)


@pytest.mark.parametrize("kind", ["photo", "noise"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_matches_ncnn_runtime(name: str, kind: str, converted: Callable[[str], ConvertedModel],
                              module_of: Callable[[str], torch.nn.Module], realesrgan_models_dir: Path,
                              sample_path: Path, two_threads: None) -> None:
    model = converted(name)
    x = _test_input(kind, SIZES[name][0 if kind == "photo" else 1], sample_path)
    (expected,) = run_ncnn(realesrgan_models_dir / f"{name}.param", realesrgan_models_dir / f"{name}.bin", x)
    with torch.inference_mode():
        out = module_of(name)(torch.from_numpy(x)[None])
        if model.output_resize is not None:
            out = F.interpolate(out, scale_factor=model.output_resize, mode="bicubic", align_corners=False)
    got = out[0].numpy()
    assert got.shape == expected.shape
    diff = float(np.abs(got - expected).max())
    assert diff < TOLERANCE, f"{name} on {kind} {x.shape}: max |diff| {diff:.3g} vs ncnn"


# --- damaged and altered files -----------------------------------------------------------


def _with_param(models_dir: Path, tmp_path: Path, name: str, edit: Callable[[str], str]) -> ConvertedModel:
    param = tmp_path / f"{name}.param"
    param.write_text(edit((models_dir / f"{name}.param").read_text()))
    return convert_files(param, models_dir / f"{name}.bin")


def _with_bin(models_dir: Path, tmp_path: Path, name: str, edit: Callable[[bytes], bytes]) -> ConvertedModel:
    binary = tmp_path / f"{name}.bin"
    binary.write_bytes(edit((models_dir / f"{name}.bin").read_bytes()))
    return convert_files(models_dir / f"{name}.param", binary)


ANIME = "realesrgan-x4plus-anime"
# offset of the second convolution's weight tag: tag + fp16 conv_first weight + fp32 bias
_CONV1_TAG_AT = 4 + 2 * 64 * 3 * 9 + 4 * 64


@pytest.mark.parametrize(("edit", "message"), [
    (lambda b: b[:-1000], r"needs \d+ bytes at offset \d+ but only \d+ remain"),
    (lambda b: b[:-3], r"needs \d+ bytes .* but only \d+ remain"),
    (lambda b: b + bytes(12), r"12 bytes left unread after the last layer"),
    (lambda b: struct.pack("<I", 0xDEADBEEF) + b[4:], r"unknown weight tag 0xdeadbeef at offset 0\b"),
    # fp16 tag turned into the fp32 tag: the layer reads twice its bytes and the next tag is garbage
    (lambda b: b[:_CONV1_TAG_AT] + bytes(4) + b[_CONV1_TAG_AT + 4:], r"unknown weight tag|remain"),
], ids=["truncated", "truncated-3", "extra-bytes", "bad-first-tag", "fp16-tag-to-fp32"])
def test_damaged_bin_is_rejected(edit: Callable[[bytes], bytes], message: str, realesrgan_models_dir: Path,
                                 tmp_path: Path) -> None:
    original = (realesrgan_models_dir / f"{ANIME}.bin").read_bytes()
    assert struct.unpack_from("<I", original, _CONV1_TAG_AT)[0] == TAG_FP16
    with pytest.raises(NcnnFormatError, match=message) as info:
        _with_bin(realesrgan_models_dir, tmp_path, ANIME, edit)
    assert f"{ANIME}.bin" in str(info.value)


X4PLUS = "realesrgan-x4plus"
VIDEO = "realesr-animevideov3-x4"


@pytest.mark.parametrize(("name", "edit", "fragments"), [
    (X4PLUS, lambda t: t.replace("7767517", "7767516", 1), ["magic number 7767517"]),
    (X4PLUS, lambda t: t.replace("999 1782", "999 1781", 1), ["declares 1781 blobs"]),
    (X4PLUS, lambda t: t.replace("999 1782", "998 1782", 1), ["declares 998 layers"]),
    # one fused LeakyReLU removed
    (X4PLUS, lambda t: edit_layer(t, "Conv_7", " 9=2 -23310=1,2.000000e-01", ""),
     ["Conv_7", "body.0.rdb1.conv3", "expected LeakyReLU(0.2)", "found no activation"]),
    # a LeakyReLU slope changed
    (X4PLUS, lambda t: edit_layer(t, "Conv_1184", "-23310=1,2.000000e-01", "-23310=1,1.000000e-01"),
     ["Conv_1184", "conv_hr", "found LeakyReLU(0.1)"]),
    # a conv's output channels changed: its weight now implies another input width too
    (X4PLUS, lambda t: edit_layer(t, "Conv_13", "0=64", "0=32"),
     ["Conv_13", "body.0.rdb1.conv5", "expected 192 -> 64 channels, found 384 -> 32"]),
    (X4PLUS, lambda t: edit_layer(t, "Conv_13", "4=1", "4=0"), ["Conv_13", "pad_left=0"]),
    # the RDB residual scale changed
    (X4PLUS, lambda t: edit_layer(t, "Add_16", "2.000000e-01,1.000000e+00", "3.000000e-01,1.000000e+00"),
     ["Conv_17", "body.0.rdb2.conv1", "is fed (0.3*"]),
    # dense concatenation order swapped
    (X4PLUS, lambda t: edit_layer(t, "Concat_3", "703_splitncnn_6 705_splitncnn_3",
                                   "705_splitncnn_3 703_splitncnn_6"),
     ["Conv_4", "body.0.rdb1.conv2", "is fed cat("]),
    # nearest x2 upsampling turned bilinear
    (X4PLUS, lambda t: edit_layer(t, "Resize_1177", "0=1", "0=2"), ["Conv_1178", "conv_up1", "bilinear"]),
    (VIDEO, lambda t: edit_layer(t, "DepthToSpace_35", "0=4", "0=2"), ["blob 'output'", "pixel_shuffle x2"]),
    (VIDEO, lambda t: edit_layer(t, "PRelu_5", "0=64", "0=32"),
     ["PRelu_5", "body.5", "64 PReLU slopes, found 32"]),
    (VIDEO, lambda t: edit_layer(t, "Add_38", "106 111", "106 106"), ["blob 'output'"]),
    (VIDEO, lambda t: edit_layer(t, "Conv_2", "56 57", "54 57"), ["Conv_2", "body.2", "is fed body.0("]),
], ids=["magic", "blob-count", "layer-count", "lrelu-removed", "lrelu-slope", "conv-channels", "conv-pad",
        "eltwise-coeff", "concat-order", "interp-mode", "pixelshuffle", "prelu-count", "residual-missing",
        "prelu-skipped"])
def test_altered_param_is_rejected(name: str, edit: Callable[[str], str], fragments: list[str],
                                   realesrgan_models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NcnnFormatError) as info:
        _with_param(realesrgan_models_dir, tmp_path, name, edit)
    message = str(info.value)
    assert f"{name}.param" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_label_from_bin_path(realesrgan_models_dir: Path) -> None:
    """Callers may name the model by its .bin path; both file names still appear correctly."""
    text = (realesrgan_models_dir / f"{VIDEO}.param").read_text()
    data = (realesrgan_models_dir / f"{VIDEO}.bin").read_bytes()
    with pytest.raises(NcnnFormatError, match=re.escape(f"dir/{VIDEO}.bin: 4 bytes left unread")):
        convert_ncnn(text, data + bytes(4), f"dir/{VIDEO}.bin")
    with pytest.raises(NcnnFormatError, match=re.escape(f"dir/{VIDEO}.param: magic")):
        convert_ncnn("1\n", data, f"dir/{VIDEO}.bin")


def test_unrelated_graph_is_rejected() -> None:
    text = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data output 0=3 1=3 4=1 5=1 6=81\n"
    with pytest.raises(NcnnFormatError, match=r"^m\.param: neither RRDBNet"):
        convert_ncnn(text, b"", "m.param")


# --- the generic reader on synthetic files -----------------------------------------------


def _f32(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _tagged(values: np.ndarray, tag: int) -> bytes:
    """``values`` stored under ``tag``; fp16 and LUT callers pass exactly representable values."""
    head = struct.pack("<I", tag)
    if tag == TAG_FP16:
        return head + _pad4(np.asarray(values, dtype="<f2").tobytes())
    if tag == TAG_INT8:
        return head + _pad4(np.asarray(values, dtype=np.int8).tobytes())
    return head + _f32(values)


def _lut(table: np.ndarray, index: np.ndarray) -> bytes:
    return struct.pack("<I", TAG_LUT) + _f32(table) + _pad4(index.astype(np.uint8).tobytes())


def test_reader_layouts_match_ncnn_runtime(tmp_path: Path) -> None:
    """Every weight layout the reader produces is checked against what ncnn computes with it."""
    ncnn_runtime()
    rng = np.random.default_rng(7)
    param = "\n".join([
        "7767517", "9 9",
        "Input in 0 1 data 0=6 1=5 2=4",
        "ConvolutionDepthWise dw 1 1 data a 0=8 1=3 4=1 5=1 6=144 7=2",
        "PReLU pr 1 1 a b 0=8",
        "Deconvolution de 1 1 b c 0=6 1=4 3=2 4=1 5=1 6=768",
        "DeconvolutionDepthWise dd 1 1 c d 0=6 1=3 4=1 5=1 6=108 7=3",
        "Scale sc 1 1 d e 0=6 1=1",
        "MemoryData md 0 1 m 0=12 1=10 2=6",
        "BinaryOp add 2 1 e m f 0=0",
        "InnerProduct ip 1 1 f output 0=5 1=1 2=3600",
    ]) + "\n"
    fp16_weights = rng.standard_normal(768).astype(np.float16)
    table, index = rng.standard_normal(256).astype(np.float32), rng.integers(0, 256, 108)
    blobs = [
        _tagged(rng.standard_normal(144), TAG_FP32_SCALED), _f32(rng.standard_normal(8)),
        _f32(rng.uniform(0, 0.5, 8)),
        _tagged(fp16_weights, TAG_FP16), _f32(rng.standard_normal(6)),
        _lut(table, index), _f32(rng.standard_normal(6)),
        _f32(rng.uniform(0.5, 2, 6)), _f32(rng.standard_normal(6)),
        _f32(rng.standard_normal(720)),
        _tagged(rng.standard_normal(3600), TAG_FP32), _f32(rng.standard_normal(5)),
    ]
    (tmp_path / "synthetic.param").write_text(param)
    (tmp_path / "synthetic.bin").write_bytes(b"".join(blobs))

    weights = read_weights(parse_param(param, "synthetic.param"), b"".join(blobs), "synthetic.bin")
    # Deconvolution is stored (out, in, kh, kw) and handed over as PyTorch's (in, out, kh, kw)
    deconv = weights["de"]["weight"]
    assert deconv.shape == (8, 6, 4, 4)
    assert np.array_equal(deconv.transpose(1, 0, 2, 3).ravel(), fp16_weights.astype(np.float32))
    assert weights["dd"]["weight"].shape == (6, 2, 3, 3)
    # per group [out/g][in/g][kh][kw] -> (in, out/g, kh, kw): stored kernel 1 is (in 1, out 0)
    stored = table[index]
    assert weights["dd"]["weight"][1, 0, 0, 0] == stored[9]
    assert weights["dd"]["weight"][0, 1, 0, 0] == stored[18]
    x = rng.random((4, 5, 6), dtype=np.float32)
    (expected,) = run_ncnn(tmp_path / "synthetic.param", tmp_path / "synthetic.bin", x)

    def t(layer: str, key: str) -> torch.Tensor:
        return torch.from_numpy(weights[layer][key])

    with torch.inference_mode():
        y = F.conv2d(torch.from_numpy(x)[None], t("dw", "weight"), t("dw", "bias"), padding=1, groups=2)
        y = F.prelu(y, t("pr", "slope"))
        y = F.conv_transpose2d(y, t("de", "weight"), t("de", "bias"), stride=2, padding=1)
        y = F.conv_transpose2d(y, t("dd", "weight"), t("dd", "bias"), padding=1, groups=3)
        y = y * t("sc", "scale")[:, None, None] + t("sc", "bias")[:, None, None] + t("md", "data")
        y = F.linear(y.flatten(1), t("ip", "weight"), t("ip", "bias"))[0]
    # outputs reach ~1e3 (sums over 720 inputs), so compare relative to their size
    assert np.abs(y.numpy() - expected).max() < 1e-5 * np.abs(expected).max()


def test_reader_int8_weights_are_dequantized() -> None:
    q = np.arange(-9, 9, dtype=np.int8)  # 2 outputs x 1 input x 3 x 3
    scales = np.array([4.0, 0.5], dtype=np.float32)
    layers = parse_param("7767517\n2 2\nInput in 0 1 data\n"
                         "Convolution c 1 1 data out 0=2 1=3 5=1 6=18 8=1\n", "q.param")
    data = _tagged(q, TAG_INT8) + _f32([0.1, 0.2]) + _f32(scales) + _f32([3.0])
    arrays = read_weights(layers, data, "q.bin")["c"]
    expected = q.astype(np.float32).reshape(2, 1, 3, 3) / scales[:, None, None, None]
    assert np.array_equal(arrays["weight"], expected)
    assert np.array_equal(arrays["input_int8_scales"], [3.0])
    with pytest.raises(NcnnFormatError, match=r"q\.bin: layer c \(Convolution\): int8 weights but no"):
        read_weights(parse_param("7767517\n2 2\nInput in 0 1 data\n"
                                 "Convolution c 1 1 data out 0=2 1=3 6=18\n", "q.param"),
                     _tagged(q, TAG_INT8), "q.bin")


def test_reader_weightless_and_unknown_layers() -> None:
    # a 0-dim MemoryData, a Scale fed its scale by a second input and Swish store nothing
    layers = parse_param("7767517\n4 4\nInput in 0 1 data\nMemoryData m 0 1 k\n"
                         "Scale s 2 1 data k x 0=-233\nSwish sw 1 1 x y\n", "w.param")
    assert read_weights(layers, b"", "w.bin") == {}
    layers = parse_param("7767517\n2 2\nInput in 0 1 data\nBatchNorm bn 1 1 data y 0=4\n", "w.param")
    with pytest.raises(NcnnFormatError, match=r"w\.bin: layer bn \(BatchNorm\): layer type 'BatchNorm' is "
                                              r"not supported and may store weights"):
        read_weights(layers, bytes(64), "w.bin")


@pytest.mark.parametrize(("text", "message"), [
    ("", "magic number 7767517 expected on line 1, found an empty file"),
    ("7767517\n1 1 1\n", "line 2 must be"),
    ("7767517\n1 1\nInput in 0 2 data\n", "line 3: in declares 0 inputs and 2 outputs"),
    ("7767517\n1 1\nInput in 0 1 data 0=1 0=2\n", "line 3: param id 0 given twice"),
    ("7767517\n1 1\nInput in 0 1 data 0=x\n", "line 3: 'x' is not a number"),
    ("7767517\n1 1\nInput in 0 1 data -5=1\n", "param id -5 is neither"),
    ("7767517\n1 1\nInput in 0 1 data -23301=3,1,2\n", "array -23301 declares 3 values but has 2"),
    ("7767517\n2 2\nInput in 0 1 data\nSwish s 1 1 other y\n", "reads blob 'other' before any layer"),
    ("7767517\n2 1\nInput in 0 1 data\nInput in2 0 1 data\n", "blob 'data' is produced by both in and in2"),
    ("7767517\n2 2\nInput in 0 1 data\nSwish in 1 1 data y\n", "two layers are named 'in'"),
], ids=["empty", "header", "blob-names", "dup-key", "not-number", "bad-key", "array-count", "unproduced",
        "produced-twice", "dup-layer"])
def test_parse_param_errors(text: str, message: str) -> None:
    with pytest.raises(NcnnFormatError, match=r"^p\.param[: ]") as info:
        parse_param(text, "p.param")
    assert message in str(info.value)


def test_parse_param_values() -> None:
    (layer,) = parse_param("7767517\n1 1\nInput in 0 1 data 0=3 1=2.5e-1 -23310=2,2.000000e-01,7\n",
                           "p.param")
    assert layer.params == {0: 3, 1: 0.25, 10: [0.2, 7]}
    assert isinstance(layer.params[10][1], int)
