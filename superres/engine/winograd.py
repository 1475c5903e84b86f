"""Winograd F(m x m, 3 x 3) convolution written in plain PyTorch ops (issue 18 experiment).

Why: on a CPU the direct (oneDNN) 3x3 convolution already runs near the FMA peak, so the only way
to be faster is fewer multiplications. Winograd F(4x4, 3x3) needs 36 multiplications per 16
outputs instead of 144: the input is cut into overlapping (m+2)x(m+2) tiles, each tile and each
3x3 kernel are transformed once, the per-channel sums become one batched GEMM over the (m+2)^2
"frequency" positions, and an output transform folds them back into m x m pixels.

Where it pays (measured, docs/winograd.md): RRDBNet's dense blocks (``WinogradDenseBlock``, each
feature transformed once) make realesrgan-x4plus 1.5-1.7x faster than the direct convolution in
eager mode, about level with the ncnn runtime on one core. A single conv (``WinogradConv2d``)
pays a full transform round trip through memory (2.25x the activation for F4), so on its own it
is at best ~1.3x faster than direct (F6, 64->64) and often slower (few output channels, large
inputs). Not wired into any runner: an opt-in for the lead to decide on.

Numerics: the transform matrices come from Cook-Toom interpolation points (0, +-1, +-2 for F4;
also +-1/2 for F6) in float64; the kernel transform is done once in float64. F(4,3) keeps fp32
outputs within ~1e-5 of the direct convolution per layer; end to end the test suite checks 1e-4.
"""

from __future__ import annotations

import copy
import math
from functools import cache

import torch
from torch import nn
from torch.nn import functional as F

from superres.archs.rrdbnet import ResidualDenseBlock

#: Cook-Toom interpolation points (the point at infinity is implicit) per output tile size m.
_POINTS: dict[int, tuple[float, ...]] = {
    2: (0.0, 1.0, -1.0),
    4: (0.0, 1.0, -1.0, 2.0, -2.0),
    6: (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5),
}


@cache
def winograd_matrices(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T (m, n), G (n, 3), B^T (n, n)) in float64 for F(m, 3), n = m + 2.

    A^T and G follow from the points (Vandermonde / Lagrange); B^T is solved from the identity
    sum_j A^T[i,j] G[j,k] B^T[j,l] = [l == i + k] (the 1-D correlation), which pins it down
    uniquely, so no hand-copied table can carry a typo.
    """
    pts = _POINTS[m]
    r, n = 3, m + 2
    at = torch.zeros(m, n, dtype=torch.float64)
    g = torch.zeros(n, r, dtype=torch.float64)
    for j, p in enumerate(pts):
        at[:, j] = torch.tensor([p**i for i in range(m)], dtype=torch.float64)
        den = math.prod(p - q for q in pts if q != p)
        g[j] = torch.tensor([p**k / den for k in range(r)], dtype=torch.float64)
    at[m - 1, n - 1] = 1.0
    g[n - 1, r - 1] = 1.0
    # Linear system in the n*n unknowns of B^T, one equation per (i, k, l).
    coef = at[:, None, :] * g.T[None, :, :]  # (m, r, n_j)
    eqs = torch.zeros(m, r, n, n, n, dtype=torch.float64)  # (i, k, l) x (j, l')
    rhs = torch.zeros(m, r, n, dtype=torch.float64)
    for l_ in range(n):
        eqs[:, :, l_, :, l_] = coef
    for i in range(m):
        for k in range(r):
            rhs[i, k, i + k] = 1.0
    sol = torch.linalg.lstsq(eqs.reshape(-1, n * n), rhs.reshape(-1, 1)).solution
    bt = sol.reshape(n, n)
    bt = torch.where(bt.abs() < 1e-12, torch.zeros_like(bt), bt)
    return at, g, bt


def transform_kernel(weight: torch.Tensor, m: int) -> torch.Tensor:
    """(Cout, Cin, 3, 3) weights -> (n*n, Cin, Cout) transformed weights, G w G^T in float64."""
    _, g, _ = winograd_matrices(m)
    u = torch.einsum("ak,oikl,bl->abio", g, weight.detach().double(), g)
    n = m + 2
    return u.reshape(n * n, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def _combine(terms: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """sum(c * t) skipping zeros and multiplications by +-1 (traced as few ops as possible)."""
    out: torch.Tensor | None = None
    for c, t in terms:
        if c == 0.0:
            continue
        v = t if c == 1.0 else (-t if c == -1.0 else t * c)
        out = v if out is None else out + v
    assert out is not None
    return out


def winograd_conv_nhwc(
    x: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    m: int,
    *,
    compiled: bool | None = None,
) -> torch.Tensor:
    """3x3 stride-1 pad-1 convolution of NHWC ``x`` with transformed weights ``u``; NHWC out.

    Two formulations of the same arithmetic: under ``torch.compile`` the transforms are written
    as sums of strided slices (inductor fuses them into a few C++ loops); in eager mode they are
    skinny GEMMs with B^T / A^T (``_input_transform``, ``_output_transform``), far fewer separate
    passes over memory than the elementwise form. ``compiled`` picks one (default: whichever fits).
    """
    at, bt, _, _ = _plan(m)
    n = m + 2
    nb, h, w, c = x.shape
    th, tw = -(-h // m), -(-w // m)
    p = nb * th * tw
    k = u.shape[2]
    if torch.compiler.is_compiling() if compiled is None else compiled:
        xp = F.pad(x, (0, 0, 1, tw * m + 1 - w, 1, th * m + 1 - h))
        d = [[xp[:, a : a + m * th : m, b : b + m * tw : m, :] for b in range(n)] for a in range(n)]
        t1 = [[_combine([(bt[i][a], d[a][b]) for a in range(n)]) for b in range(n)] for i in range(n)]
        v = torch.stack([_combine(list(zip(bt[j], t1[i], strict=True))) for i in range(n) for j in range(n)])
        mm = torch.bmm(v.view(n * n, p, c), u).view(n, n, nb, th, tw, k)
        y1 = [[_combine([(at[i][a], mm[a, b]) for a in range(n)]) for b in range(n)] for i in range(m)]
        rows = [[_combine(list(zip(at[j], y1[i], strict=True))) for j in range(m)] for i in range(m)]
        y = torch.stack([torch.stack(r, 3) for r in rows], 2)  # (nb, th, m, tw, m, k)
        out = y.reshape(nb, th * m, tw * m, k)[:, :h, :w]
    else:
        v = _input_transform(x, m)
        out = _output_transform(torch.bmm(v, u), nb, h, w, m)
    return out if bias is None else out + bias


def _input_transform(x: torch.Tensor, m: int) -> torch.Tensor:
    """NHWC ``x`` -> V (n*n, tiles, C): zero pad, gather (m+2)^2 tiles, B^T along rows then columns.

    Two skinny GEMMs (6x6 @ 6 x many) instead of one with kron(B^T, B^T): 6x fewer FLOPs for one
    more pass over the tiles, measured 1.35x faster here.
    """
    bt = _plan(m)[3].to(x.dtype)
    n = m + 2
    nb, h, w, c = x.shape
    th, tw = -(-h // m), -(-w // m)
    xp = F.pad(x, (0, 0, 1, tw * m + 1 - w, 1, th * m + 1 - h))
    s_n, s_h, s_w, s_c = xp.stride()
    tiles = xp.as_strided((n, n, nb, th, tw, c), (s_h, s_w, s_n, m * s_h, m * s_w, s_c))
    rows = bt @ tiles.reshape(n, -1)  # B^T along the tile rows
    return torch.matmul(bt, rows.view(n, n, -1)).view(n * n, nb * th * tw, c)  # then along columns


def _output_transform(mm: torch.Tensor, nb: int, h: int, w: int, m: int) -> torch.Tensor:
    """M (n*n, tiles, K) -> NHWC (nb, h, w, K): A^T along rows then columns, fold back, crop."""
    at = _plan(m)[2].to(mm.dtype)
    n, k = m + 2, mm.shape[2]
    th, tw = -(-h // m), -(-w // m)
    rows = at @ mm.reshape(n, -1)
    y = torch.matmul(at, rows.view(m, n, -1)).view(m, m, nb, th, tw, k)
    return y.permute(2, 3, 0, 4, 1, 5).reshape(nb, th * m, tw * m, k)[:, :h, :w]


_PLANS: dict[int, tuple[list[list[float]], list[list[float]], torch.Tensor, torch.Tensor]] = {}


def _plan(m: int) -> tuple[list[list[float]], list[list[float]], torch.Tensor, torch.Tensor]:
    """A^T and B^T as Python floats (constants for the tracer) and as float32 tensors.

    Filled outside any traced region (``WinogradConv2d.__init__``), because dynamo cannot trace
    the float64 solve in ``winograd_matrices``.
    """
    if m not in _PLANS:
        at, _, bt = winograd_matrices(m)
        rows = [[float(v) for v in r] for r in at], [[float(v) for v in r] for r in bt]
        _PLANS[m] = (*rows, at.float(), bt.float())
    return _PLANS[m]


class WinogradConv2d(nn.Module):
    """Drop-in for an eligible ``nn.Conv2d`` (3x3, stride 1, dilation 1, groups 1, zero pad 1).

    Weights are transformed once at construction (float64 -> the conv's dtype); the output is
    an NCHW tensor in channels_last memory, which is what the next direct conv prefers anyway.
    """

    def __init__(self, conv: nn.Conv2d, m: int = 4) -> None:
        super().__init__()
        if not eligible(conv, min_channels=1):
            raise ValueError(f"not a Winograd-eligible convolution: {conv}")
        self.m = m
        _plan(m)  # the constants, built before any tracing
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.register_buffer("u", transform_kernel(conv.weight, m))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = winograd_conv_nhwc(x.permute(0, 2, 3, 1), self.u, self.bias, self.m)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=3, F({self.m}x{self.m},3x3)"


class WinogradDenseBlock(nn.Module):
    """RRDBNet's ResidualDenseBlock with every feature transformed into the Winograd domain ONCE.

    Why this wins where single convs do not: the block concatenates its input and the 32-channel
    outputs of convs 1-4 and convolves the growing concatenation (64, 96, .., 192 channels).
    Concatenation commutes with the (linear, per-channel) input transform, so each feature is
    transformed once and reused by every later conv of the block: 192 channels of input
    transforms per block instead of 640, the part that made the 96..192 -> 32 layers lose. Conv i
    is one ``bmm`` on the block input's transform plus one ``baddbmm_`` per earlier feature into
    the same accumulator (measured faster than one bmm on a channel slice of a shared buffer,
    which MKL does not take without a copy), then one output transform. The bias rides on the
    accumulator at the frequency position of the interpolation point 1, whose column of A^T is
    all ones, so it reaches every output pixel without a pass over the image.
    """

    def __init__(self, block: ResidualDenseBlock, m: int = 4) -> None:
        super().__init__()
        self.m = m
        _plan(m)
        convs = [block.conv1, block.conv2, block.conv3, block.conv4, block.conv5]
        feat, grow = block.conv1.in_channels, block.conv1.out_channels
        splits = [feat] + [grow] * 4
        self.slope = float(block.lrelu.negative_slope)
        self.u = nn.ParameterList()
        self.bias = nn.ParameterList()
        for i, conv in enumerate(convs):
            u = transform_kernel(conv.weight, m)
            for part in torch.split(u, splits[: i + 1], dim=1):
                self.u.append(nn.Parameter(part.contiguous(), requires_grad=False))
            b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels)
            self.bias.append(nn.Parameter(b, requires_grad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, at_one = self.m, self.m + 3  # (point 1, point 1) = row 1, column 1 of the n x n grid
        xh = x.permute(0, 2, 3, 1)
        nb, h, w, _ = xh.shape
        feats = [_input_transform(xh, m)]
        j = 0
        for i in range(5):
            acc = torch.bmm(feats[0], self.u[j])
            for v in feats[1:]:
                j += 1
                acc.baddbmm_(v, self.u[j])
            j += 1
            acc[at_one] += self.bias[i]
            y = _output_transform(acc, nb, h, w, m)
            if i < 4:
                feats.append(_input_transform(F.leaky_relu(y, self.slope), m))
        return y.permute(0, 3, 1, 2) * 0.2 + x


def eligible(conv: nn.Module, min_channels: int = 16) -> bool:
    """A plain 3x3 'same' convolution with enough channels on both sides for the GEMM to pay.

    Below ~16 channels (the RGB input conv, x4plus's 64->3 output conv) the transforms cost more
    than the multiplications they save.
    """
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding == (1, 1)
        and conv.padding_mode == "zeros"
        and conv.in_channels >= min_channels
        and conv.out_channels >= min_channels
    )


def winograd_module(
    module: nn.Module, *, m: int = 4, min_channels: int = 16, plain_convs: bool = True
) -> nn.Module:
    """A deep copy of ``module`` whose eligible 3x3 convolutions run as Winograd F(m x m, 3x3).

    RRDBNet dense blocks become ``WinogradDenseBlock`` (1.5-1.7x faster than the direct
    convolution in eager mode, see docs/winograd.md); other eligible convs become
    ``WinogradConv2d`` when ``plain_convs``. Measured choices: RRDBNet ``plain_convs=False`` (its
    upsampler convs at 2x/4x resolution are slower as Winograd); plain conv stacks such as
    SRVGGNetCompact ``m=6`` (1.1-1.3x faster than direct; F4 is not). The original is untouched.
    """
    if m not in _POINTS:
        raise ValueError(f"F({m},3) not supported; choose m in {sorted(_POINTS)}")
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ResidualDenseBlock) and all(
                eligible(c, min_channels) for c in (child.conv1, child.conv5)
            ):
                setattr(parent, name, WinogradDenseBlock(child, m))
            elif plain_convs and eligible(child, min_channels):
                setattr(parent, name, WinogradConv2d(child, m))
    return out
