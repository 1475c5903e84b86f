"""Tiled inference: exact when the context covers the receptive field; bounded tile memory."""

from __future__ import annotations

import pytest
import torch

from superres.archs.rrdbnet import RRDBNet
from superres.archs.srvgg import SRVGGNetCompact
from superres.engine.runners import TorchRunner
from superres.engine.tiling import auto_tile, iter_tiles, plan_axis, tiled_forward

CPU = torch.device("cpu")


def _seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return module.eval()


@pytest.mark.parametrize(
    ("length", "tile", "pad"), [(1, 8, 4), (7, 3, 2), (64, 16, 8), (65, 16, 0), (10, 32, 4)]
)
def test_plan_axis_cores_partition_and_windows_same_size(length: int, tile: int, pad: int) -> None:
    spans = plan_axis(length, tile, pad)
    covered = [i for s in spans for i in range(s.core0, s.core1)]
    assert covered == list(range(length))
    sizes = {s.win1 - s.win0 for s in spans}
    assert sizes == {min(length, tile + 2 * pad)}
    for s in spans:
        assert 0 <= s.win0 <= s.core0 < s.core1 <= s.win1 <= length
        # every kept pixel has `pad` real context or touches the true image border
        assert s.core0 - s.win0 >= pad or s.win0 == 0
        assert s.win1 - s.core1 >= pad or s.win1 == length


def test_plan_axis_rejects_misaligned_multiple() -> None:
    with pytest.raises(ValueError, match="multiples"):
        plan_axis(10, 3, 2, multiple=2)


@pytest.mark.parametrize(("h", "w", "tile"), [(37, 53, 16), (9, 70, 24), (1, 1, 8), (20, 20, 64), (64, 8, 8)])
def test_compact_tiled_equals_untiled_exactly(h: int, w: int, tile: int) -> None:
    """Contiguous layout, one tile per call: oneDNN sums in the same order, so bit-identical."""
    net = _seeded(SRVGGNetCompact(num_feat=8, num_conv=4, upscale=2))
    x = torch.rand(3, h, w)
    with torch.inference_mode():
        full = net(x[None])[0]
    radius = 4 + 2  # one pixel per 3x3 conv
    out = tiled_forward(TorchRunner(net, CPU, channels_last=False), x, 2, tile=tile, pad=radius)
    assert out.shape == full.shape
    assert torch.equal(out, full)


@pytest.mark.parametrize(("channels_last", "batch"), [(True, 1), (True, 4), (False, 4)])
def test_compact_tiled_matches_untiled_to_float_rounding(channels_last: bool, batch: int) -> None:
    """channels_last and batched calls let oneDNN pick a kernel per tensor shape, so the
    summation order (not the data) differs between tile and whole image: 1-ulp level."""
    net = _seeded(SRVGGNetCompact(num_feat=8, num_conv=4, upscale=2))
    x = torch.rand(3, 37, 53)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        full = net(x[None].contiguous(memory_format=fmt))[0]
    out = tiled_forward(TorchRunner(net, CPU, channels_last=channels_last), x, 2, tile=16, pad=6, batch=batch)
    assert (out - full).abs().max() <= 5e-7


def test_compact_tiled_with_short_pad_differs_near_seams() -> None:
    net = _seeded(SRVGGNetCompact(num_feat=8, num_conv=4, upscale=2))
    x = torch.rand(3, 40, 40)
    with torch.inference_mode():
        full = net(x[None])[0]
    out = tiled_forward(TorchRunner(net, CPU), x, 2, tile=16, pad=1)
    assert (out - full).abs().max() > 1e-4  # the exactness above is not vacuous


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_tiled_equals_untiled_with_enough_pad(scale: int) -> None:
    net = _seeded(RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4))
    m = {1: 4, 2: 2, 4: 1}[scale]
    x = torch.rand(3, 12 * m, 20 * m)
    with torch.inference_mode():
        full = net(x[None])[0]
    out = tiled_forward(TorchRunner(net, CPU), x, scale, tile=4 * m, pad=24 * m, multiple=m)
    assert torch.allclose(out, full, atol=1e-6)


def test_tiles_seen_by_the_model_do_not_grow_with_the_image() -> None:
    net = _seeded(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=1))
    seen: list[tuple[int, ...]] = []
    net.register_forward_pre_hook(lambda _m, inp: seen.append(tuple(inp[0].shape)))
    for size in (64, 300):
        tiled_forward(TorchRunner(net, CPU), torch.rand(3, size, size), 1, tile=32, pad=4, batch=2)
    assert {s[2:] for s in seen} == {(40, 40)}
    assert max(s[0] for s in seen) == 2


def test_auto_tile_fits_budget_and_whole_image_when_small() -> None:
    assert auto_tile(50, 70, pad=10, bytes_per_input_pixel=1000, budget_bytes=1 << 40) == 70
    t = auto_tile(5000, 5000, pad=10, bytes_per_input_pixel=10_000, budget_bytes=100 * 10_000 * 100)
    assert (t + 20) ** 2 * 10_000 <= 100 * 10_000 * 100
    assert auto_tile(5000, 5000, pad=10, bytes_per_input_pixel=1e12, budget_bytes=1) == 32


def test_iter_tiles_counts() -> None:
    assert len(list(iter_tiles(100, 50, 32, 8))) == 4 * 2
