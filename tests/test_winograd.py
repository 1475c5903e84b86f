"""Winograd 3x3 convolution (superres.engine.winograd) reproduces nn.Conv2d and whole models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from superres.archs.rrdbnet import ResidualDenseBlock, RRDBNet
from superres.archs.srvgg import SRVGGNetCompact
from superres.engine.winograd import (
    WinogradConv2d,
    WinogradDenseBlock,
    eligible,
    winograd_conv_nhwc,
    winograd_matrices,
    winograd_module,
)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_matrices_compute_1d_correlation(m: int) -> None:
    at, g, bt = winograd_matrices(m)
    d = torch.randn(m + 2, dtype=torch.float64)
    k = torch.randn(3, dtype=torch.float64)
    y = at @ ((g @ k) * (bt @ d))
    ref = torch.stack([(d[i : i + 3] * k).sum() for i in range(m)])
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize(
    ("n", "cin", "cout", "h", "w", "bias"),
    [(1, 16, 16, 8, 8, True), (2, 17, 24, 7, 11, False), (1, 32, 20, 1, 5, True), (1, 20, 33, 13, 6, True)],
)
@pytest.mark.parametrize("compiled_form", [False, True])
def test_conv_matches_conv2d(m: int, n: int, cin: int, cout: int, h: int, w: int, bias: bool,
                             compiled_form: bool) -> None:
    """Both formulations (the kron GEMMs and the slice sums traced by torch.compile) run eagerly here."""
    torch.manual_seed(cin * 100 + cout)
    conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)
    x = torch.rand(n, cin, h, w)
    wc = WinogradConv2d(conv, m)
    with torch.no_grad():
        ref = conv(x)
        y = winograd_conv_nhwc(x.permute(0, 2, 3, 1), wc.u, wc.bias, m, compiled=compiled_form)
    assert y.shape == (n, h, w, cout)
    assert (y.permute(0, 3, 1, 2) - ref).abs().max().item() < 1e-4


def test_module_keeps_noneligible_convs_and_the_original() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1),  # too few input channels
        nn.Conv2d(32, 32, 3, 1, 1),  # eligible
        nn.Conv2d(32, 32, 3, 2, 1),  # stride 2
        nn.Conv2d(32, 32, 1),  # 1x1
        nn.Conv2d(32, 32, 3, 1, 2, dilation=2),  # dilated
        nn.Conv2d(32, 32, 3, 1, 1, groups=2),  # grouped
        nn.Conv2d(32, 32, 3, 1, 1, padding_mode="reflect"),  # not zero padding
        nn.Conv2d(32, 32, 3, 1, 0),  # 'valid'
    )
    before = [type(c) for c in net]
    out = winograd_module(net)
    assert [type(c) for c in net] == before  # a copy; the original is untouched
    kinds = [type(c).__name__ for c in out]
    assert kinds == ["Conv2d", "WinogradConv2d"] + ["Conv2d"] * 6
    assert [eligible(c) for c in net] == [False, True] + [False] * 6
    x = torch.rand(1, 3, 19, 17)
    with torch.no_grad():
        assert (out(x) - net(x)).abs().max().item() < 1e-4


def test_compact_model_end_to_end() -> None:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=32, num_conv=6, upscale=4).eval()
    for mod in net.modules():
        if isinstance(mod, nn.PReLU):
            mod.weight.data.uniform_(0.0, 0.3)
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        ref = net(x)
        for m in (4, 6):
            assert (winograd_module(net, m=m)(x) - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("plain_convs", [True, False])
def test_tiny_rrdbnet_end_to_end(plain_convs: bool) -> None:
    """Dense blocks (features transformed once) plus the upsampler; errors must not grow past 1e-4."""
    torch.manual_seed(1)
    net = RRDBNet(num_feat=32, num_block=2, num_grow_ch=16).eval()
    x = torch.rand(1, 3, 14, 11)
    wnet = winograd_module(net, plain_convs=plain_convs)
    assert sum(isinstance(mod, WinogradDenseBlock) for mod in wnet.modules()) == 2 * 3
    # conv_body, conv_up1, conv_up2, conv_hr; never the RGB-in and RGB-out convs
    assert sum(isinstance(mod, WinogradConv2d) for mod in wnet.modules()) == (4 if plain_convs else 0)
    with torch.no_grad():
        assert (wnet(x) - net(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize(("h", "w", "bias"), [(16, 16, True), (9, 13, True), (5, 7, False)])
def test_dense_block_matches(h: int, w: int, bias: bool) -> None:
    torch.manual_seed(h * w)
    block = ResidualDenseBlock(num_feat=24, num_grow_ch=16).eval()
    if not bias:
        for conv in (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5):
            conv.bias = None
    x = torch.rand(2, 24, h, w)
    for m in (2, 4, 6):
        with torch.no_grad():
            for fmt in (torch.contiguous_format, torch.channels_last):
                xf = x.contiguous(memory_format=fmt)
                assert (WinogradDenseBlock(block, m)(xf) - block(xf)).abs().max().item() < 1e-4


def test_rejects_unsupported_tile() -> None:
    with pytest.raises(ValueError, match="F\\(3,3\\)"):
        winograd_module(nn.Conv2d(16, 16, 3, 1, 1), m=3)
    with pytest.raises(ValueError, match="not a Winograd-eligible"):
        WinogradConv2d(nn.Conv2d(16, 16, 3, 2, 1))
