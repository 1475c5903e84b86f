"""Tiling for memory: a VAE that encodes/decodes in tiles without seams, and tiled latent sampling.

**Tiled VAE.** The VAE's full-resolution layers hold most of its activation memory, so those run
on overlapping tiles. Two things would make tiles differ from one pass over the whole image, and
both are removed here:

* GroupNorm statistics: every tile runs the network in lockstep (each tile is a generator that
  pauses at every GroupNorm); the statistics are summed over the tiles' *core* regions (the
  non-overlapping parts), so each GroupNorm normalises with exactly the whole image's mean and
  variance. Per-tile statistics are what causes the visible seams of naive tiling.
* Receptive field: each tile carries a halo of context; with the default halos (encoder 80 px,
  decoder 16 latent px) the halo covers the whole receptive field of the tiled layers (75 px and
  about 12.3 latent px for the SDXL VAE layout), so core pixels are computed from the same inputs
  as untiled. Smaller halos trade exactness for speed.

The low-resolution middle (the encoder's mid block, attention included, and the decoder's input
conv and mid block) runs on the whole latent-sized feature map: attention there is global, and
that tensor is 1/64 of the pixels. Between GroupNorms a paused tile can wait in ``store`` memory
(the CPU) so that only one tile's activations sit on the accelerator at a time.

**Tiled sampling.** Each sampler step runs on overlapping latent windows; every window gets the
same step (churn noise sliced from one shared tensor, CFG, restoration guidance with its crop of
the centre latent) and the results are blended with Gaussian weights normalised by their sum
(MultiDiffusion style), every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import torch
from torch import Tensor, nn

from superres.restore.sampler import Denoiser, RestoreEDMSampler, StepSampler, Window

__all__ = [
    "DECODER_HALO",
    "ENCODER_HALO",
    "TiledSampler",
    "gaussian_weights",
    "latent_windows",
    "tiled_decode",
    "tiled_encode",
]

ENCODER_HALO = 80  # image px; >= the 75 px receptive field of conv_in + down blocks
DECODER_HALO = 16  # latent px; >= the ~12.3 latent px receptive field of the up blocks and conv_out

_Stats = tuple[Tensor, Tensor, int]  # per (batch, group): sum, sum of squares, element count
_Program = Generator[_Stats, tuple[Tensor, Tensor], Tensor]
_Core = tuple[int, int, int, int]  # y0, y1, x0, x1 inside the tile, at the current resolution


def _group_norm(norm: nn.GroupNorm, h: Tensor, core: _Core, store: torch.device | None) -> _Program:
    """Yield this tile's core statistics, receive the global mean/var, return the normalised tile."""
    b, c = h.shape[:2]
    g = norm.num_groups
    y0, y1, x0, x1 = core
    part = h[:, :, y0:y1, x0:x1].reshape(b, g, -1).double()
    stats = (part.sum(-1), (part * part).sum(-1), part.shape[-1])
    del part
    device = h.device
    if store is not None:
        h = h.to(store)
    mean, var = yield stats
    h = h.to(device)
    shape = (b, g, c // g, *h.shape[2:])
    rstd = torch.rsqrt(var + norm.eps).float().to(device)
    mean = mean.float().to(device)[:, :, None, None, None]
    out = (h.float().reshape(shape) - mean) * rstd[:, :, None, None, None]
    out = out.reshape(h.shape)
    if norm.affine:
        out = out * norm.weight.float()[None, :, None, None] + norm.bias.float()[None, :, None, None]
    return out.to(h.dtype)


def _resnet(block: Any, x: Tensor, core: _Core, store: torch.device | None) -> _Program:
    """diffusers ResnetBlock2D (VAE form: no time embedding, no resampling) with synced GroupNorm."""
    if block.time_emb_proj is not None or block.upsample is not None or block.downsample is not None:
        raise ValueError("tiled VAE supports only plain VAE resnet blocks")
    device = x.device
    residual = x.to(store) if store is not None else x
    # Each pending generator is created before the caller drops its own reference, so that a paused
    # tile keeps no activation on the compute device (the generator moves it to ``store``).
    norm = _group_norm(block.norm1, x, core, store)
    del x
    h = yield from norm
    h = block.conv1(block.nonlinearity(h))
    norm = _group_norm(block.norm2, h, core, store)
    del h
    h = yield from norm
    h = block.conv2(block.dropout(block.nonlinearity(h)))
    residual = residual.to(device)
    if block.conv_shortcut is not None:
        residual = block.conv_shortcut(residual)
    return (residual + h) / block.output_scale_factor


def _stages(blocks: Any, x: Tensor, core: _Core, store: torch.device | None, down: bool
            ) -> Generator[_Stats, tuple[Tensor, Tensor], tuple[Tensor, _Core]]:
    """The encoder's down blocks or the decoder's up blocks: each block's resnets, then its
    resamplers, which halve (``down``) or double the core; returns the output and that core."""
    h = x
    del x
    for block in blocks:
        for res in block.resnets:
            step = _resnet(res, h, core, store)
            del h
            h = yield from step
        resamplers = block.downsamplers if down else block.upsamplers
        if resamplers is not None:
            for resample in resamplers:
                h = resample(h)
            core = tuple(v // 2 if down else v * 2 for v in core)  # type: ignore[assignment]
    return h, core


def _encoder_program(encoder: Any, x: Tensor, core: _Core, store: torch.device | None) -> _Program:
    stages = _stages(encoder.down_blocks, encoder.conv_in(x), core, store, down=True)
    del x
    h, _ = yield from stages
    return h


def _decoder_program(decoder: Any, z: Tensor, core: _Core, store: torch.device | None) -> _Program:
    stages = _stages(decoder.up_blocks, z, core, store, down=False)
    del z
    h, core = yield from stages
    norm = _group_norm(decoder.conv_norm_out, h, core, store)
    del h
    h = yield from norm
    return decoder.conv_out(decoder.conv_act(h))


def _lockstep(programs: list[_Program]) -> list[Tensor]:
    """Advance all tile programs GroupNorm by GroupNorm, feeding back the pooled statistics."""
    results: list[Tensor | None] = [None] * len(programs)
    message: tuple[Tensor, Tensor] | None = None
    while True:
        requests: list[_Stats] = []
        for i, prog in enumerate(programs):
            try:
                requests.append(prog.send(message))  # type: ignore[arg-type]
            except StopIteration as done:
                results[i] = done.value
        if not requests:
            return [r for r in results if r is not None]
        if len(requests) != len(programs):
            raise RuntimeError("tiles went out of step (a GroupNorm is conditional?)")
        total = sum(r[0] for r in requests)
        total_sq = sum(r[1] for r in requests)
        count = sum(r[2] for r in requests)
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        message = (mean, var)


def _spans(size: int, tile: int, halo: int, align: int) -> list[tuple[int, int, int, int]]:
    """(padded start, padded end, core start, core end) along one axis."""
    if tile % align or halo % align:
        raise ValueError(f"tile size and halo must be multiples of {align}")
    out = []
    for start in range(0, size, tile):
        end = min(start + tile, size)
        out.append((max(0, start - halo), min(size, end + halo), start, end))
    return out


def _run_tiled(
    program: Callable[..., _Program],
    module: Any,
    x: Tensor,
    tile: int,
    halo: int,
    align: int,
    scale: float,
    out_channels: int,
    store: torch.device | None,
) -> Tensor:
    """Split ``x`` into tiles, run ``program`` in lockstep, paste the cores at ``scale`` x size."""
    b, _, height, width = x.shape
    tiles = [(ys, xs) for ys in _spans(height, tile, halo, align) for xs in _spans(width, tile, halo, align)]
    programs = []
    for (py0, py1, cy0, cy1), (px0, px1, cx0, cx1) in tiles:
        core = (cy0 - py0, cy1 - py0, cx0 - px0, cx1 - px0)
        piece = x[:, :, py0:py1, px0:px1]
        if store is not None:
            piece = piece.to(store)
        programs.append(_deferred(program, module, piece, x.device, core, store))
    outs = _lockstep(programs)

    def s(v: int) -> int:
        return int(v * scale)

    result = None
    for ((py0, _, cy0, cy1), (px0, _, cx0, cx1)), out in zip(tiles, outs, strict=True):
        if result is None:
            result = out.new_empty((b, out_channels, s(height), s(width)), device=x.device)
        result[:, :, s(cy0) : s(cy1), s(cx0) : s(cx1)] = out[
            :, :, s(cy0 - py0) : s(cy1 - py0), s(cx0 - px0) : s(cx1 - px0)
        ].to(x.device)
    assert result is not None
    return result


def _deferred(
    program: Callable[..., _Program],
    module: Any,
    piece: Tensor,
    device: torch.device,
    core: _Core,
    store: torch.device | None,
) -> _Program:
    """Start the program only when first advanced, with its tile moved onto the compute device."""
    return (yield from program(module, piece.to(device), core, store))  # piece itself stays in store


@torch.no_grad()
def tiled_encode(
    encoder: Any, x: Tensor, tile: int = 512, halo: int = ENCODER_HALO, store: torch.device | None = None
) -> Tensor:
    """``encoder(x)`` for a diffusers VAE ``Encoder``, tiled; ``x`` is NCHW with sides divisible by 8.

    Returns the encoder's output (posterior moments before ``quant_conv``), like ``encoder(x)``.
    """
    levels = sum(1 for d in encoder.down_blocks if d.downsamplers is not None)
    factor = 2**levels
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image sides must be multiples of {factor} to encode, got {tuple(x.shape[-2:])}")
    mid_channels = encoder.down_blocks[-1].resnets[-1].conv2.out_channels
    h = _run_tiled(_encoder_program, encoder, x, tile, halo, factor, 1 / factor, mid_channels, store)
    h = encoder.mid_block(h)
    return encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(h)))


@torch.no_grad()
def tiled_decode(
    decoder: Any, z: Tensor, tile: int = 64, halo: int = DECODER_HALO, store: torch.device | None = None
) -> Tensor:
    """``decoder(z)`` for a diffusers VAE ``Decoder`` (``z`` after ``post_quant_conv``), tiled."""
    levels = sum(1 for u in decoder.up_blocks if u.upsamplers is not None)
    h = decoder.conv_in(z)
    h = decoder.mid_block(h, None)
    h = h.to(next(iter(decoder.up_blocks.parameters())).dtype)
    return _run_tiled(
        _decoder_program, decoder, h, tile, halo, 1, 2**levels, decoder.conv_out.out_channels, store
    )


# -- tiled sampling ---------------------------------------------------------------------------------


def latent_windows(height: int, width: int, tile: int, stride: int) -> list[Window]:
    """Windows starting every ``stride``, plus a last one flush with each edge (upstream layout)."""
    if stride <= 0 or stride > tile:
        raise ValueError(f"tile stride must be in 1..tile ({tile}), got {stride}")

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        out = list(range(0, size - tile + 1, stride))
        if out[-1] != size - tile:
            out.append(size - tile)
        return out

    th, tw = min(tile, height), min(tile, width)
    return [(y, y + th, x, x + tw) for y in starts(height) for x in starts(width)]


def gaussian_weights(height: int, width: int, var: float = 0.01) -> Tensor:
    """Blend weights peaking at the window centre; variance relative to the window size as upstream."""

    def axis(n: int) -> Tensor:
        pos = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) / n
        return torch.exp(-pos * pos / (2 * var)) / math.sqrt(2 * math.pi * var)

    return axis(height)[:, None] * axis(width)[None, :]


class TiledSampler(StepSampler):
    """Runs a :class:`RestoreEDMSampler` step by step on overlapping latent windows, blended."""

    def __init__(self, sampler: RestoreEDMSampler, tile: int, stride: int) -> None:
        self.sampler = sampler
        self.tile = tile
        self.stride = stride

    @property
    def steps(self) -> int:
        return self.sampler.steps

    def churn_noise(self, i: int, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
        return self.sampler.churn_noise(i, x, generator)  # for the whole latent, sliced per window

    def step(self, i: int, x: Tensor, denoise: Denoiser, z_center: Tensor | None, noise: Tensor | None
             ) -> tuple[Tensor, Tensor]:
        """The sampler's step on every window, the results blended by normalised Gaussian weights."""
        wins = latent_windows(x.shape[-2], x.shape[-1], self.tile, self.stride)
        th, tw = wins[0][1] - wins[0][0], wins[0][3] - wins[0][2]
        weight = gaussian_weights(th, tw).to(device=x.device, dtype=x.dtype)
        total = torch.zeros(x.shape[-2:], device=x.device, dtype=x.dtype)
        for y0, y1, x0, x1 in wins:
            total[y0:y1, x0:x1] += weight
        acc = torch.zeros_like(x)
        acc_x0 = torch.zeros_like(x)
        for win in wins:
            y0, y1, x0, x1 = win
            crop = (slice(None), slice(None), slice(y0, y1), slice(x0, x1))
            x_new, x0_pred = self.sampler.step(
                i,
                x[crop],
                denoise,
                None if z_center is None else z_center[crop],
                None if noise is None else noise[crop],
                window=win,
            )
            acc[crop] += x_new * weight
            acc_x0[crop] += x0_pred * weight
        return acc / total, acc_x0 / total
