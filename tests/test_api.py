"""Python API: `superres.load(...).upscale(x)` returns what it was given; the classic snippet works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import superres
from superres.archs.srvgg import SRVGGNetCompact
from tests.helpers import photo

pytestmark = pytest.mark.usefixtures("realesrgan_models_dir")


@pytest.fixture(scope="module")
def up() -> superres.Upscaler:
    return superres.load("realesr-animevideov3", device="cpu")


def test_numpy_rgb_and_bgr_agree(up: superres.Upscaler) -> None:
    rgb = photo(12, 20)
    out = up.upscale(rgb)
    assert out.shape == (48, 80, 3) and out.dtype == np.uint8
    out_bgr = up.upscale(np.ascontiguousarray(rgb[:, :, ::-1]), bgr=True)
    assert np.array_equal(out_bgr[:, :, ::-1], out)
    assert np.array_equal(up.infer(np.ascontiguousarray(rgb[:, :, ::-1])), out_bgr)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (13, 5), (2, 2)])
def test_tiny_and_odd_sizes(up: superres.Upscaler, h: int, w: int) -> None:
    out = up.upscale(photo(h, w))
    assert out.shape == (4 * h, 4 * w, 3)


def test_float_array_stays_float(up: superres.Upscaler) -> None:
    f = photo(8, 8).astype(np.float32) / 255
    out = up.upscale(f)
    assert out.dtype == np.float32 and out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16", "P"])
def test_pil_in_pil_out(up: superres.Upscaler, mode: str) -> None:
    img = Image.fromarray(photo(10, 12)).convert("RGBA" if mode == "RGBA" else "RGB")
    if mode == "L":
        img = img.convert("L")
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    elif mode == "P":
        img = img.convert("P")
    out = up.upscale(img)
    assert isinstance(out, Image.Image)
    assert out.size == (48, 40)
    assert out.mode == {"P": "RGB"}.get(mode, mode)


def test_tensor_in_tensor_out(up: superres.Upscaler) -> None:
    t = torch.from_numpy(photo(8, 12)).permute(2, 0, 1).float() / 255
    out3 = up.upscale(t)
    assert out3.shape == (3, 32, 48) and out3.dtype == torch.float32
    out4 = up.upscale(torch.stack([t, t.flip(-1)]))
    assert out4.shape == (2, 3, 32, 48)
    assert torch.allclose(out4[0], out3)
    u8 = up.upscale((t * 255).round().to(torch.uint8))
    assert u8.dtype == torch.uint8 and u8.shape == (3, 32, 48)


def test_scale_argument_and_unsupported_type(up: superres.Upscaler) -> None:
    assert up.upscale(photo(10, 10), scale=1.5).shape == (15, 15, 3)
    with pytest.raises(TypeError, match="list"):
        up.upscale([[1, 2]])


def test_classic_snippet_with_a_user_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()
    path = tmp_path / "tiny_x2.safetensors"
    save_file(net.state_dict(), str(path))
    up = superres.Upscaler(scale_factor=2, model_path=str(path))
    bgr = np.ascontiguousarray(photo(6, 9)[:, :, ::-1])
    out = up.infer(bgr)
    assert out.shape == (12, 18, 3) and out.dtype == np.uint8
    assert "srvgg" in repr(up)


def test_default_model_is_x4plus_with_licence() -> None:
    up = superres.load()
    assert up.model.name == "realesrgan-x4plus" and up.model.scale == 4
    assert up.model.licence == "BSD-3-Clause"
