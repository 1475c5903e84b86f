"""Issue 17 item 8: the Python API's edge cases, each reproduction a regression test.

Float in, float out for float16/32/64 (arrays and tensors); NaN/inf input, a scale that is not
finite and > 0 and an output over the pixel limit refused with ValueError before inference;
integer tensors and PIL "I" images handled or refused clearly; empty batches handled. The tiny
shipped ``fsrcnn-x2`` keeps them fast.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import superres
from superres.engine.upscaler import ENV_MAX_OUTPUT_PIXELS, MAX_OUTPUT_PIXELS, UpscaleEngine
from tests.helpers import photo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def up() -> superres.Upscaler:
    return superres.load("fsrcnn-x2", device="cpu")


@pytest.fixture
def forwards(up: superres.Upscaler) -> Iterator[list[tuple[int, ...]]]:
    """Shapes of every forward pass of the network during the test."""
    seen: list[tuple[int, ...]] = []
    handle = up.engine.runner.module.register_forward_pre_hook(lambda _m, a: seen.append(tuple(a[0].shape)))
    yield seen
    handle.remove()


def rgb01(h: int = 6, w: int = 7) -> np.ndarray:
    return photo(h, w).astype(np.float64) / 255


# ---- float in, float out ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_float_arrays_come_back_as_the_same_float(up: superres.Upscaler, dtype: type, channels: int) -> None:
    base = rgb01()
    arr = {0: base[:, :, 0], 1: base[:, :, :1], 3: base,
           4: np.dstack([base, np.linspace(0, 1, 42).reshape(6, 7)])}[channels].astype(dtype)
    out = up.upscale(arr)
    assert out.dtype == dtype and out.shape == (12, 14, *arr.shape[2:])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    ref = up.upscale(arr.astype(np.float32))
    assert np.allclose(out.astype(np.float32), ref, atol=2e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_tensors_come_back_as_the_same_float(up: superres.Upscaler, dtype: torch.dtype) -> None:
    t = torch.from_numpy(rgb01()).permute(2, 0, 1).to(dtype)
    out = up.upscale(t)
    assert out.dtype == dtype and out.shape == (3, 12, 14)
    batch = up.upscale(torch.stack([t, t]))
    assert batch.dtype == dtype and batch.shape == (2, 3, 12, 14)


def test_uint8_and_uint16_unchanged(up: superres.Upscaler) -> None:
    u8 = photo(6, 7)
    assert up.upscale(u8).dtype == np.uint8
    u16 = u8.astype(np.uint16) * 257
    out16 = up.upscale(u16)
    assert out16.dtype == np.uint16 and out16.shape == (12, 14, 3)


# ---- non-finite input ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_non_finite_samples_refused_before_inference(up: superres.Upscaler, forwards: list,
                                                     bad: float) -> None:
    arr = rgb01()
    arr[2, 3, 1] = bad  # 1e300 is finite in float64 but not in the float32 the model sees
    with pytest.raises(ValueError, match="NaN or infinite"):
        up.upscale(arr)
    t = torch.from_numpy(arr).permute(2, 0, 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        up.upscale(t)
    with np.errstate(over="ignore"):
        plane = arr[:, :, 1].astype(np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        up.upscale(Image.fromarray(plane, mode="F"))
    assert forwards == []


# ---- scale -----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0, 0.0, -1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_scale_must_be_finite_and_positive(up: superres.Upscaler, forwards: list, scale: float) -> None:
    img = photo(4, 4)
    with pytest.raises(ValueError, match="finite number > 0"):
        up.upscale(img, scale=scale)
    with pytest.raises(ValueError, match="finite number > 0"):
        up.upscale_array(img, scale)
    with pytest.raises(ValueError, match="finite number > 0"):
        up.engine.upscale_array(img, scale)
    with pytest.raises(ValueError, match="finite number > 0"):
        superres.Upscaler(scale, model=up.model)
    assert forwards == []


def test_default_scale_is_the_model_s_and_small_scales_work(up: superres.Upscaler) -> None:
    assert up.upscale(photo(5, 6)).shape == (10, 12, 3)
    assert up.upscale(photo(10, 12), scale=0.5).shape == (5, 6, 3)
    assert superres.Upscaler(None, model=up.model).scale == 2


# ---- output size limit -----------------------------------------------------------------------
def test_huge_scale_refused_before_allocating(up: superres.Upscaler, forwards: list) -> None:
    one = np.zeros((1, 1, 3), np.uint8)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="over the output limit"):
            up.upscale(one, scale=1e5)
        with pytest.raises(ValueError, match="over the output limit"):
            up.upscale(torch.zeros(1, 3, 1, 1), scale=1e5)
        with pytest.raises(ValueError, match="over the output limit"):
            up.upscale(torch.zeros(0, 3, 1, 1), scale=1e5)
        with pytest.raises(ValueError, match="over the output limit"):
            up.upscale_rgb(torch.zeros(3, 1, 1), 1e5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and forwards == []
    assert MAX_OUTPUT_PIXELS == 1 << 28


def test_output_limit_is_configurable_and_checks_the_model_passes(up: superres.Upscaler,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    small = superres.load(up.model, device="cpu", max_output_pixels=20 * 20)
    assert small.upscale(photo(10, 10)).shape == (20, 20, 3)  # exactly the limit: fine
    with pytest.raises(ValueError, match=r"output 22x20 .* over the output limit of 400 pixels"):
        small.upscale(photo(10, 11))
    # x3.5 with a x2 model runs two passes (x4, 40x40) and shrinks: the pass is what is checked
    mid = superres.load(up.model, device="cpu", max_output_pixels=1300)
    with pytest.raises(ValueError, match="model pass"):
        mid.upscale(photo(10, 10), scale=3.5)
    assert superres.load(up.model, device="cpu", max_output_pixels=1600).upscale(
        photo(10, 10), scale=3.5).shape == (35, 35, 3)
    monkeypatch.setenv(ENV_MAX_OUTPUT_PIXELS, "399")
    with pytest.raises(ValueError, match=ENV_MAX_OUTPUT_PIXELS):
        up.upscale(photo(10, 10))
    monkeypatch.setenv(ENV_MAX_OUTPUT_PIXELS, "lots")
    with pytest.raises(ValueError, match="not a whole number"):
        up.upscale(photo(10, 10))
    with pytest.raises(ValueError, match="at least 1"):
        UpscaleEngine(up.model, device="cpu", max_output_pixels=0)


# ---- integer tensors, PIL "I" ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.bool])
def test_integer_tensors_other_than_uint8_are_refused(up: superres.Upscaler, forwards: list,
                                                      dtype: torch.dtype) -> None:
    t = torch.from_numpy(photo(4, 5)).permute(2, 0, 1).to(dtype)
    with pytest.raises(ValueError, match=r"unsupported tensor dtype .* uint8"):
        up.upscale(t)
    assert forwards == []


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.int8, np.bool_])
def test_integer_arrays_other_than_uint8_16_are_refused(up: superres.Upscaler, dtype: type) -> None:
    with pytest.raises(ValueError, match=r"unsupported sample type .* uint8 .* uint16"):
        up.upscale(photo(4, 5).astype(dtype))


def test_uint8_tensor_and_uint16_tensor(up: superres.Upscaler) -> None:
    u8 = torch.from_numpy(photo(4, 5)).permute(2, 0, 1)
    out = up.upscale(u8)
    assert out.dtype == torch.uint8 and out.shape == (3, 8, 10) and int(out.max()) > 1
    if hasattr(torch, "uint16"):
        u16 = up.upscale(u8.to(torch.int32).mul(257).to(torch.uint16))
        assert u16.dtype == torch.uint16 and u16.shape == (3, 8, 10)


def test_pil_mode_i_above_16_bit_is_refused_not_wrapped(up: superres.Upscaler) -> None:
    gray = np.asarray(Image.fromarray(photo(6, 7)).convert("L")).astype(np.int32)
    fine = up.upscale(Image.fromarray(gray * 257, mode="I"))
    assert fine.mode == "I;16" and fine.size == (14, 12)
    wide = gray * 257
    wide[0, 0], wide[1, 1] = 0, 70000  # wrapped to 4464 before
    with pytest.raises(ValueError, match=r'mode "I" image has values 0\.\.70000'):
        up.upscale(Image.fromarray(wide, mode="I"))
    with pytest.raises(ValueError, match="-1"):
        up.upscale(Image.fromarray(gray - 1 - gray.min(), mode="I"))


# ---- empty batches ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
def test_empty_batch_gives_an_empty_batch_of_the_output_shape(up: superres.Upscaler, forwards: list,
                                                              dtype: torch.dtype) -> None:
    out = up.upscale(torch.zeros(0, 3, 5, 7, dtype=dtype))
    assert out.shape == (0, 3, 10, 14) and out.dtype == dtype
    assert up.upscale(torch.zeros(0, 4, 5, 7), scale=1.5).shape == (0, 4, 8, 10)
    with pytest.raises(ValueError, match=r"C in 1\.\.4"):
        up.upscale(torch.zeros(0, 5, 5, 7))
    assert forwards == []


def test_library_batch_refuses_an_output_that_is_its_input(tmp_path: Path) -> None:
    from tests.helpers import save_rgb

    src = save_rgb(tmp_path / "a.png", photo(4, 4))
    with pytest.raises(ValueError, match="is the input"):
        superres.upscale_files(src, tmp_path / "." / "a.png", model="fsrcnn-x2")
    for scale in (0, -2, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number > 0"):
            superres.upscale_files(src, tmp_path / "o", model="fsrcnn-x2", scale=scale)
