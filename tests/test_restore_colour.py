"""Colour fixes satisfy their definitions."""

from __future__ import annotations

import pytest
import torch

from superres.restore.colour import adain_fix, colour_fix, match_reference, wavelet_decompose, wavelet_fix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    content = torch.rand((2, 3, 40, 48), generator=g, dtype=torch.float64) * 2 - 1
    style = (
        torch.rand((2, 3, 40, 48), generator=g, dtype=torch.float64) * 0.5
        + torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64)[None, :, None, None]
    )
    return content, style


def test_adain_output_has_the_reference_channel_mean_and_std():
    content, style = _images()
    out = adain_fix(content, style)
    dims = (2, 3)
    torch.testing.assert_close(out.mean(dims), style.mean(dims), rtol=0, atol=1e-12)
    # std: the reference's, to within what upstream's eps (sqrt(var + 1e-5)) allows ...
    torch.testing.assert_close(out.std(dims), style.std(dims), rtol=2e-3, atol=0)

    # ... and exactly so by that definition: out std = c_std / sqrt(c_var + eps) * sqrt(s_var + eps)
    def eps_std(t):
        return (t.var(dims) + 1e-5).sqrt()

    expected = content.std(dims) / eps_std(content) * eps_std(style)
    torch.testing.assert_close(out.std(dims), expected, rtol=1e-12, atol=0)
    # and the shape within each channel is the content's (an affine map of it)
    for b in range(2):
        for ch in range(3):
            corr = torch.corrcoef(torch.stack([out[b, ch].flatten(), content[b, ch].flatten()]))[0, 1]
            assert corr == pytest.approx(1.0, abs=1e-12)


def test_wavelet_decomposition_reconstructs_and_low_pass_removes_the_finest_detail():
    content, _ = _images(1)
    high, low = wavelet_decompose(content)
    torch.testing.assert_close(high + low, content, rtol=0, atol=1e-12)
    # a constant image is all low frequency
    flat = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    h, lo = wavelet_decompose(flat)
    torch.testing.assert_close(lo, flat, rtol=0, atol=1e-12)
    assert float(h.abs().max()) < 1e-12
    # a checkerboard (the Nyquist frequency) is zeroed by the [1,2,1] kernel away from the border
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).to(torch.float64)[None, None].expand(1, 3, 64, 64)
    _, lo = wavelet_decompose(checker)
    assert float(lo[..., 32:33, 32:33].abs().max()) < 1e-12


def test_wavelet_fix_keeps_reference_low_and_input_high_frequencies():
    content, style = _images(2)
    out = wavelet_fix(content, style)
    high_c, low_c = wavelet_decompose(content)
    _, low_s = wavelet_decompose(style)
    torch.testing.assert_close(out, high_c + low_s, rtol=0, atol=1e-12)
    torch.testing.assert_close(out - content, low_s - low_c, rtol=0, atol=1e-12)
    torch.testing.assert_close(wavelet_fix(content, content), content, rtol=0, atol=1e-12)
    # the colour cast of the reference (its per-channel offset) moves into the output
    shift = (out - content).mean((0, 2, 3)) - (style - content).mean((0, 2, 3))
    assert float(shift.abs().max()) < 0.02


def test_colour_fix_dispatch_and_reference_resizing():
    content, style = _images(3)
    small = style[..., ::2, ::2]
    assert match_reference(small, content).shape == content.shape
    assert colour_fix(content, style, "none") is content
    torch.testing.assert_close(
        colour_fix(content.float(), style.float(), "adain"), adain_fix(content.float(), style.float())
    )
    out = colour_fix(content.half(), small.half(), "wavelet")
    assert out.dtype == torch.float16 and out.shape == content.shape
    with pytest.raises(ValueError, match="unknown colour fix"):
        colour_fix(content, style, "histogram")
