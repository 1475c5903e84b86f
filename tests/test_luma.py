"""Y-only models (the published SRCNN/FSRCNN/ESPCN layout): colour conversion, the RGB wrapper,
RGB -> Y weight conversion, and the engine and loader running such models on RGB and gray images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from superres.archs import ARCHS, build
from superres.archs.luma import (
    Y_OFFSET,
    Y_WEIGHTS,
    LumaOnly,
    is_rgb_input,
    luma_state_dict,
    rgb_to_y,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from superres.engine.upscaler import TileSettings, UpscaleEngine
from superres.metrics.colour import rgb_to_y as rgb_to_y_numpy
from superres.zoo.loader import LoadedModel, load_model
from tests.helpers import photo

TINY = {
    "srcnn": {"n1": 8, "n2": 4, "scale": 2},
    "fsrcnn": {"d": 8, "s": 4, "m": 1, "scale": 3},
    "espcn": {"n1": 8, "n2": 4, "scale": 3},
}


def _loaded(module: torch.nn.Module, arch: str, kwargs: dict[str, int]) -> LoadedModel:
    return LoadedModel(module.eval(), "tiny", arch, kwargs, kwargs["scale"])


def test_ycbcr_is_matlab_rgb2ycbcr_and_inverts() -> None:
    img = photo(24, 32)
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float64) / 255)[None]
    ycc = rgb_to_ycbcr(x)
    np.testing.assert_allclose(ycc[0, 0].numpy() * 255, rgb_to_y_numpy(img), atol=1e-9)
    assert torch.allclose(rgb_to_y(x), ycc[:, :1])
    # MATLAB rgb2ycbcr maps white to (235, 128, 128) and black to (16, 128, 128)
    ends = rgb_to_ycbcr(torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 1, 1, 2).expand(1, 3, 1, 2))
    np.testing.assert_allclose(ends[0, :, 0].numpy() * 255, [[235, 16], [128, 128], [128, 128]], atol=1e-9)
    assert torch.allclose(ycbcr_to_rgb(ycc), x, atol=1e-12)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_rgb_weights_convert_to_an_equal_y_model_on_gray(arch: str) -> None:
    torch.manual_seed(0)
    kwargs = TINY[arch]
    spec = ARCHS[arch]
    rgb = build(arch, num_channels=3, **kwargs).eval()
    sd = rgb.state_dict()
    assert is_rgb_input(spec, sd) and not spec.luma_only(num_channels=3, **kwargs)
    y_net = build(arch, num_channels=1, **kwargs).eval()
    y_net.load_state_dict(luma_state_dict(spec, sd))
    assert spec.luma_only(num_channels=1, **kwargs) and not is_rgb_input(spec, y_net.state_dict())
    assert _loaded(y_net, arch, {"num_channels": 1, **kwargs}).luma_only
    gray = torch.rand(1, 1, 40, 40).expand(1, 3, 40, 40)
    with torch.no_grad():
        out = rgb(gray)
        want = (torch.tensor(Y_WEIGHTS).view(1, 3, 1, 1) * out).sum(1, keepdim=True) + Y_OFFSET
        got = y_net(rgb_to_y(gray))
    b = 14 * kwargs["scale"]  # away from the zero-padded border, where gray in != Y in
    assert torch.allclose(got[..., b:-b, b:-b], want[..., b:-b, b:-b], atol=1e-5)
    with pytest.raises(ValueError, match="not 3"):
        luma_state_dict(spec, y_net.state_dict())
    with pytest.raises(ValueError, match="no RGB -> Y weight conversion for edsr"):
        luma_state_dict(ARCHS["edsr"], sd)


def test_engine_runs_a_y_model_on_y_and_upscales_chroma_bicubically() -> None:
    torch.manual_seed(1)
    kwargs = TINY["fsrcnn"]
    net = build("fsrcnn", num_channels=1, **kwargs)
    engine = UpscaleEngine(_loaded(net, "fsrcnn", kwargs), device="cpu", precision="fp32",
                           tiles=TileSettings(tile=0))
    img = photo(30, 36)
    out = engine.upscale_array(img)
    assert out.shape == (90, 108, 3) and out.dtype == np.uint8
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.no_grad():
        ycc = rgb_to_ycbcr(x)
        want = torch.cat([net(ycc[:, :1]), F.interpolate(ycc[:, 1:], scale_factor=3, mode="bicubic")], 1)
        want = (ycbcr_to_rgb(want).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(out.astype(int) - want).max() <= 1
    # tiles give the same picture: the pad covers the network and the bicubic chroma
    tiled = UpscaleEngine(_loaded(net, "fsrcnn", kwargs), device="cpu", precision="fp32",
                          tiles=TileSettings(tile=12)).upscale_array(img)
    assert np.abs(tiled.astype(int) - out).max() <= 1
    gray = engine.upscale_array(img[:, :, 1])
    assert gray.shape == (90, 108)


def test_a_y_only_user_file_loads_and_upscales(tmp_path: Path) -> None:
    """Most published FSRCNN/ESPCN .pth files are Y-only; they load and run on RGB and RGBA."""
    torch.manual_seed(2)
    path = tmp_path / "espcn_x3.pth"
    torch.save(build("espcn", num_channels=1, **TINY["espcn"]).state_dict(), path)
    lm = load_model(path)
    assert lm.arch == "espcn" and lm.kwargs["num_channels"] == 1 and lm.scale == 3
    engine = UpscaleEngine(lm, device="cpu", precision="fp32", alpha="bicubic")  # untrained net
    rgba = np.dstack([photo(20, 24), np.full((20, 24), 200, np.uint8)])
    out = engine.upscale_array(rgba)
    assert out.shape == (60, 72, 4) and np.all(out[..., 3] == 200)


def test_luma_wrapper_keeps_the_network_state_dict() -> None:
    net = build("espcn", num_channels=1, **TINY["espcn"])
    wrapped = LumaOnly(net)
    assert set(wrapped.state_dict()) == {f"net.{k}" for k in net.state_dict()}
    assert wrapped(torch.rand(2, 3, 8, 10)).shape == (2, 3, 24, 30)
