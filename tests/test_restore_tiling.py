"""Tiled VAE (GroupNorm statistics shared across tiles) and tiled latent sampling."""

from __future__ import annotations

import pytest
import torch

from superres.restore.sampler import RestoreEDMSampler
from superres.restore.tiling import TiledSampler, gaussian_weights, latent_windows, tiled_decode, tiled_encode

diffusers = pytest.importorskip("diffusers")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vae():
    """A tiny AutoencoderKL with the SDXL VAE's block layout (4 levels, 2 resnets each, 8x)."""
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    ).eval()
    with torch.no_grad():  # non-trivial GroupNorm affines, so a wrong statistic would show
        for m in vae.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    return vae


def test_tiled_encode_matches_untiled(vae):
    # 32 px tiles on a 136 px wide image: the end tiles' padded regions are strict sub-images.
    x = torch.rand((1, 3, 32, 136), generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ref = vae.encoder(x)
    out = tiled_encode(vae.encoder, x, tile=32)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=5e-5)


def test_tiled_decode_matches_untiled_with_cpu_store(vae):
    # 12-latent-px tiles on a 36 wide latent: the end tiles' padded regions are strict sub-images.
    z = torch.randn((1, 4, 2, 36), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = vae.decoder(z)
    out = tiled_decode(vae.decoder, z, tile=12, store=torch.device("cpu"))
    assert out.shape == ref.shape == (1, 3, 16, 288)
    torch.testing.assert_close(out, ref, rtol=0, atol=5e-5)


def test_tiled_encode_rejects_sizes_it_cannot_tile(vae):
    with pytest.raises(ValueError, match="multiples of 8"):
        tiled_encode(vae.encoder, torch.zeros(1, 3, 30, 32), tile=32)
    with pytest.raises(ValueError, match="multiples of 8"):
        tiled_encode(vae.encoder, torch.zeros(1, 3, 32, 32), tile=30)


def test_windows_and_weights():
    assert latent_windows(10, 6, tile=4, stride=3) == [
        (y, y + 4, x, x + 4) for y in (0, 3, 6) for x in (0, 2)
    ]
    assert latent_windows(3, 3, tile=8, stride=4) == [(0, 3, 0, 3)]
    w = gaussian_weights(6, 8)
    torch.testing.assert_close(w, w.flip(0).flip(1))  # symmetric about the window centre
    assert float(w[2:4, 3:5].min()) == float(w.max())
    assert float(w[0, 0]) < 0.01 * float(w.max())


class PointwiseGaussian:
    """Exact denoiser for N(0.3, 1) data: acts per pixel, so tiling must not change anything."""

    def __init__(self) -> None:
        self.windows: list = []

    def __call__(self, x, sigma, control_scale, window):
        self.windows.append(window)
        cond = 0.3 + (x - 0.3) / (1 + sigma**2)
        return cond - 0.1, cond


@pytest.mark.parametrize(("tile", "stride"), [(16, 8), (6, 4), (5, 5)])
def test_tiled_sampling_equals_untiled_for_a_pointwise_denoiser(tile, stride):
    sampler = RestoreEDMSampler(steps=6, s_churn=5.0, restoration_scale=2.0)
    z = torch.linspace(-1, 1, 2 * 4 * 12 * 14, dtype=torch.float64).reshape(2, 4, 12, 14)
    x_t = sampler.initial_noise(z.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = sampler.sample(
        PointwiseGaussian(), x_t.clone(), z_center=z, generator=torch.Generator().manual_seed(1)
    )
    den = PointwiseGaussian()
    out = TiledSampler(sampler, tile, stride).sample(
        den, x_t.clone(), z_center=z, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    windows = latent_windows(12, 14, tile, stride)
    assert den.windows == windows * sampler.steps
