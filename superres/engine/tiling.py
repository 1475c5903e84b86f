"""Tiled inference: bounded memory for any image size, exact where the context suffices.

The image is cut into core tiles that partition it; each tile is run with ``pad`` pixels of
real image context around it (windows overlap by ``2*pad``) and only its core is kept. A pixel
whose receptive field fits in the context therefore gets exactly the untiled value. All
windows have the same shape (border windows slide inward instead of shrinking), so tiles
can be batched, and only the output buffer grows with the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from superres.engine.runners import Runner


@dataclass(frozen=True)
class Span:
    """One tile along one axis: kept core [core0, core1) inside window [win0, win1)."""

    core0: int
    core1: int
    win0: int
    win1: int


def plan_axis(length: int, tile: int, pad: int, multiple: int = 1) -> list[Span]:
    """Cut ``length`` into cores of ``tile`` with same-size windows of ``tile + 2*pad``.

    ``length``, ``tile`` and ``pad`` must be multiples of ``multiple`` so that windows stay
    aligned with pixel-unshuffle front ends.
    """
    if length <= 0 or tile <= 0 or pad < 0:
        raise ValueError(f"bad tiling: length={length} tile={tile} pad={pad}")
    if length % multiple or tile % multiple or pad % multiple:
        raise ValueError(f"length {length}, tile {tile} and pad {pad} must be multiples of {multiple}")
    win = min(length, tile + 2 * pad)
    spans = []
    for core0 in range(0, length, tile):
        core1 = min(core0 + tile, length)
        win0 = min(max(core0 - pad, 0), length - win)
        spans.append(Span(core0, core1, win0, win0 + win))
    return spans


def iter_tiles(
    height: int, width: int, tile: int, pad: int, multiple: int = 1
) -> Iterator[tuple[Span, Span]]:
    """All (row span, column span) pairs, row-major."""
    rows = plan_axis(height, tile, pad, multiple)
    cols = plan_axis(width, tile, pad, multiple)
    for r in rows:
        for c in cols:
            yield r, c


def tiled_forward(
    runner: Runner,
    image: torch.Tensor,
    scale: int,
    *,
    tile: int,
    pad: int,
    batch: int = 1,
    multiple: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run ``runner`` over ``image`` (C,H,W float32 on CPU) tile by tile; (C_out,H*s,W*s) float32 CPU.

    ``on_tile(done, total)`` is called after each batch, for progress bars.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (C,H,W) tensor, got shape {tuple(image.shape)}")
    _, h, w = image.shape
    tiles = list(iter_tiles(h, w, tile, pad, multiple))
    groups = [tiles[start:start + max(1, batch)] for start in range(0, len(tiles), max(1, batch))]
    batches = (torch.stack([image[:, r.win0:r.win1, c.win0:c.win1] for r, c in g]) for g in groups)
    # a runner's run_many (optional) may overlap the copies of neighbouring batches with compute
    run_many = getattr(runner, "run_many", None)
    results = run_many(batches) if run_many is not None else map(runner.run, batches)
    out: torch.Tensor | None = None
    done = 0
    for group, y in zip(groups, results, strict=True):
        if out is None:
            out = torch.empty((y.shape[1], h * scale, w * scale), dtype=torch.float32)
        for (r, c), yi in zip(group, y, strict=True):
            out[:, r.core0 * scale:r.core1 * scale, c.core0 * scale:c.core1 * scale] = yi[
                :,
                (r.core0 - r.win0) * scale:(r.core1 - r.win0) * scale,
                (c.core0 - c.win0) * scale:(c.core1 - c.win0) * scale,
            ]
        done += len(group)
        if on_tile is not None:
            on_tile(done, len(tiles))
    assert out is not None
    return out


def round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def auto_tile(
    height: int,
    width: int,
    *,
    pad: int,
    bytes_per_input_pixel: float,
    budget_bytes: int,
    multiple: int = 1,
    max_tile: int = 1024,
    min_tile: int = 32,
) -> int:
    """Largest square core tile whose window's activations fit ``budget_bytes``.

    Returns a tile covering the whole image when it fits; never below ``min_tile``.
    """
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_input_pixel, 1e-9))) - 2 * pad
    side = max(min_tile, min(side, max_tile))
    side = max(multiple, side - side % max(8, multiple))
    longest = round_up(max(height, width), multiple)
    return min(side, longest)
