"""Literature architectures and MSFFNet: published sizes, shapes, FLOP counts, detection round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from superres.archs import ARCHS, build, detect_arch
from superres.archs.common import count_params
from superres.archs.edsr import EDSR_BASELINE, EDSR_FULL
from superres.archs.swinir import SWINIR_CLASSICAL, SWINIR_LIGHTWEIGHT
from superres.engine.runners import TorchRunner
from superres.engine.tiling import tiled_forward
from superres.engine.upscaler import TileSettings, UpscaleEngine
from superres.weights import ModelFileError
from superres.zoo.loader import load_model, model_from_state_dict, scale_from_name

OURS = ("srcnn", "fsrcnn", "espcn", "edsr", "rcan", "swinir", "msff")
NO_SCALE_IN_WEIGHTS = ("srcnn", "fsrcnn")  # detect() returns "scale": None

_SWIN_S = {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "window_size": 4, "mlp_ratio": 2.0,
           "num_feat": 8, "upsampler": "pixelshuffle"}
_SWIN_L = {"embed_dim": 12, "depths": (2,), "num_heads": (3,), "window_size": 4, "mlp_ratio": 2.0,
           "upsampler": "pixelshuffledirect"}
_EDSR_S = {"num_feats": 8, "num_blocks": 2, "res_scale": 1.0}
# res_scale is not in the weights: detection pairs 0.1 with widths above 64 as published
_EDSR_WIDE = {"num_feats": 72, "num_blocks": 1, "res_scale": 0.1}
_RCAN_S = {"num_feats": 16, "num_groups": 2, "num_blocks": 2, "reduction": 4}
_MSFF_S = {"num_feat": 8, "num_blocks": 2, "growth": 4, "rdb_convs": 2, "reduction": 2}

# (arch, kwargs) small versions of every family, every scale and every variant detection must tell apart
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    *[("srcnn", {"num_channels": 1, "scale": s, "n1": 8, "n2": 4}) for s in (2, 3, 4)],
    ("srcnn", {"num_channels": 3, "scale": 2, "n1": 8, "n2": 4, "f2": 1}),  # 9-1-5
    *[("fsrcnn", {"num_channels": 1, "scale": s, "d": 8, "s": 4, "m": 2}) for s in (2, 3, 4)],
    ("fsrcnn", {"num_channels": 3, "scale": 3, "d": 6, "s": 3, "m": 1}),
    *[("espcn", {"num_channels": 1, "scale": s, "n1": 8, "n2": 4}) for s in (2, 3, 4)],
    ("espcn", {"num_channels": 3, "scale": 3, "n1": 8, "n2": 4}),
    ("espcn", {"num_channels": 1, "scale": 3, "n1": 8, "n2": 4, "blocks": 2}),  # deeper, not published
    *[("edsr", {"scale": s, **_EDSR_S}) for s in (2, 3, 4)],
    ("edsr", {"scale": 4, **_EDSR_WIDE}),
    ("edsr", {"scale": 2, **_EDSR_S, "rgb_range": 1.0}),
    *[("rcan", {"scale": s, **_RCAN_S}) for s in (2, 3, 4)],
    *[("swinir", {"scale": s, **_SWIN_S}) for s in (2, 3, 4)],
    *[("swinir", {"scale": s, **_SWIN_L}) for s in (2, 3, 4)],
    ("swinir", {"scale": 4, **_SWIN_S, "upsampler": "nearest+conv", "resi_connection": "3conv"}),
    ("swinir", {"scale": 2, **_SWIN_S, "upsampler": "nearest+conv", "patch_norm": False}),
    ("swinir", {"num_channels": 1, "scale": 2, **_SWIN_L, "qkv_bias": False, "window_size": 2}),
    *[("msff", {"scale": s, **_MSFF_S}) for s in (2, 4, 8)],
    ("msff", {"num_channels": 1, "scale": 4, **_MSFF_S, "num_blocks": 1}),
]


def _id(arch: str, kwargs: dict[str, Any]) -> str:
    shown = ("scale", "num_channels", "upsampler", "num_feats", "rgb_range", "f2", "patch_norm", "blocks")
    return "-".join([arch, *(f"{k}{v}" for k, v in kwargs.items() if k in shown)])


CASES = [pytest.param(a, kw, id=_id(a, kw)) for a, kw in VARIANTS]
# finite receptive field (exact tiles), and one case per family
EXACT_TILES = [c for c in CASES if ARCHS[c.values[0]].receptive_radius(**c.values[1]) is not None]
FIRST_OF_EACH = [c for i, c in enumerate(CASES) if c.values[0] not in {a for a, _ in VARIANTS[:i]}]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """These nets are tiny: one thread is faster than waking a pool (and kinder to shared CPUs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(arch: str, kwargs: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build(arch, **kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:  # leave EDSR/RCAN's fixed mean shifts alone
                p.normal_(0.0, 0.05)
    return net


def _input(kwargs: dict[str, Any], h: int = 7, w: int = 5) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, kwargs.get("num_channels", 3), h, w)


def _save(sd: dict[str, torch.Tensor], path_stem: Path, layout: str) -> Path:
    if layout == "safetensors":
        path = path_stem.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        return path
    wrapped: dict[str, Any] = {
        "plain": sd,
        "params": {"params": sd},
        "params_ema": {"params_ema": sd, "params": {}},  # as BasicSR saves: EMA weights preferred
    }
    obj = wrapped[layout]
    path = path_stem.with_suffix(".pth")
    torch.save(obj, path)
    return path


# ---- published sizes -------------------------------------------------------------------------

def _meta_params(arch: str, **kwargs: Any) -> int:
    with torch.device("meta"):
        return count_params(build(arch, **kwargs))


def _swin_tables(**kwargs: Any) -> int:
    """Relative position bias parameters (the SwinIR paper's counts leave them out)."""
    rows = (2 * kwargs["window_size"] - 1) ** 2
    return sum(d * rows * h for d, h in zip(kwargs["depths"], kwargs["num_heads"], strict=True))


@pytest.mark.parametrize(("arch", "kwargs", "exact", "published", "unit", "digits"), [
    ("srcnn", {"scale": 3}, 57_281, 57_281, 1, 0),
    *[("fsrcnn", {"scale": s}, 12_809, 12_809, 1, 0) for s in (2, 3, 4)],  # the deconv's shape ignores s
    ("espcn", {"scale": 2}, 21_284, 21, 1e3, 0), ("espcn", {"scale": 3}, 22_729, 23, 1e3, 0),
    ("espcn", {"scale": 4}, 24_752, 25, 1e3, 0),
    ("edsr", {"scale": 4, **EDSR_BASELINE}, 1_517_595, 1.52, 1e6, 2),
    ("edsr", {"scale": 2, **EDSR_FULL}, 40_729_627, 40.7, 1e6, 1),
    ("edsr", {"scale": 4, **EDSR_FULL}, 43_089_947, 43.1, 1e6, 1),
    ("rcan", {"scale": 4}, 15_592_379, 15.6, 1e6, 1),
    ("swinir", {"scale": 4, **SWINIR_CLASSICAL}, 11_900_199, 11.9, 1e6, 1),
    ("swinir", {"scale": 4, **SWINIR_LIGHTWEIGHT}, 929_628, 0.9, 1e6, 1),
])
def test_published_parameter_counts(arch: str, kwargs: dict, exact: int, published: float, unit: float,
                                    digits: int) -> None:
    """Built on the meta device (no memory): exact count, and the paper's rounding of it."""
    n = _meta_params(arch, **kwargs)
    assert n == exact
    assert round(n / unit, digits) == published


@pytest.mark.parametrize(("scale", "published_k"), [(2, 878), (3, 886), (4, 897)])
def test_swinir_lightweight_matches_paper_without_bias_tables(scale: int, published_k: int) -> None:
    n = _meta_params("swinir", scale=scale, **SWINIR_LIGHTWEIGHT)
    assert round((n - _swin_tables(**SWINIR_LIGHTWEIGHT)) / 1000) == published_k
    if scale == 4:  # classical x4: 11.85M without the tables, so 11.9M either way
        n = _meta_params("swinir", scale=scale, **SWINIR_CLASSICAL)
        assert round((n - _swin_tables(**SWINIR_CLASSICAL)) / 1e6, 1) == 11.9


def test_msff_default_size_trains_on_a_cpu() -> None:
    assert _meta_params("msff") == 452_281
    assert 300_000 < _meta_params("msff", scale=2) < 600_000


# ---- FLOPs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "kwargs", "macs"), [
    *[("srcnn", {"scale": s}, 57_184 * s * s) for s in (2, 3, 4)],
    *[("fsrcnn", {"scale": s}, 12_464) for s in (2, 3, 4)],
    # EDSR: the table's convs, plus the two 1x1 mean shifts (9 MAC at LR, 9 s^2 at HR)
    ("edsr", {"scale": 4, **EDSR_BASELINE}, 1_983_168 + 9 + 144),
    ("edsr", {"scale": 4, **EDSR_FULL}, 50_252_544 + 9 + 144),
    ("edsr", {"scale": 2, **EDSR_FULL}, 40_732_416 + 9 + 36),
])
def test_flops_match_the_benchmark_table(arch: str, kwargs: dict, macs: int) -> None:
    assert ARCHS[arch].mflop_per_input_pixel(**kwargs) == pytest.approx(2 * macs / 1e6, rel=1e-12)


def test_swinir_flops_reproduce_the_official_convention() -> None:
    """SwinIR's README gives 788.6 GFLOP (its flops() counts MACs) for x4 on 256x256: that
    counts conv_after_body as 3C^2 and no reconstruction head; ours counts both."""
    kw = {"scale": 4, **SWINIR_CLASSICAL}
    ours_macs = ARCHS["swinir"].mflop_per_input_pixel(**kw) * 1e6 / 2
    c = 180
    head = 9 * c * 64 + 9 * 64 * 256 + 4 * 9 * 64 * 256 + 16 * 9 * 64 * 3
    official = ours_macs - head - 9 * c * c + 3 * c * c + 36 * 2 * c  # + the LayerNorms it counts
    assert official * 256 * 256 / 1e9 == pytest.approx(788.6, rel=2e-3)


def _counted_flops(net: torch.nn.Module, x: torch.Tensor, **fwd: Any) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x, **fwd)
    return counter.get_total_flops()


@pytest.mark.parametrize(("arch", "kwargs"), CASES)
def test_flop_count_matches_a_real_forward(arch: str, kwargs: dict) -> None:
    """Conv / linear / matmul FLOPs counted on a forward, per input pixel; two sizes, so per-image
    terms (channel attention and gates on pooled vectors) cancel out."""
    net = _net(arch, kwargs)
    m = kwargs.get("window_size", 1)  # SwinIR: multiples of the window (no padding)
    sizes = ((4 * m, 4 * m), (8 * m, 6 * m))
    counts = [_counted_flops(net, _input(kwargs, h, w)) for h, w in sizes]
    per_px = (counts[1] - counts[0]) / (sizes[1][0] * sizes[1][1] - sizes[0][0] * sizes[0][1])
    expected = ARCHS[arch].mflop_per_input_pixel(**kwargs) * 1e6
    if arch == "fsrcnn":  # its deconvolution runs as a sub-pixel conv: zero taps are multiplied too
        from superres.archs.fsrcnn import _taps

        sc, (_, lo, hi) = kwargs["scale"], _taps(kwargs["scale"], 9, 4)
        expected += 2 * ((sc * (hi - lo + 1)) ** 2 - 81) * kwargs["d"] * kwargs.get("num_channels", 1)
    assert per_px == pytest.approx(expected, rel=1e-9)
    if arch not in ("rcan", "msff"):  # no per-image terms: the count is exact at any one size
        assert counts[0] == pytest.approx(expected * sizes[0][0] * sizes[0][1], rel=1e-9)


@pytest.mark.parametrize("run_scale", [2, 4, 8])
def test_msff_flops_at_each_scale(run_scale: int) -> None:
    net = _net("msff", {"scale": 8, **_MSFF_S})
    a = _counted_flops(net, _input({}, 8, 8), scale=run_scale)
    b = _counted_flops(net, _input({}, 16, 8), scale=run_scale)
    expected = ARCHS["msff"].mflop_per_input_pixel(scale=8, run_scale=run_scale, **_MSFF_S) * 1e6
    assert (b - a) / 64 == pytest.approx(expected, rel=1e-9)


# ---- shapes, tiling --------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "kwargs"), CASES)
@pytest.mark.parametrize(("h", "w"), [(7, 5), (3, 3), (8, 12)])
def test_forward_shape(arch: str, kwargs: dict, h: int, w: int) -> None:
    net = _net(arch, kwargs)
    with torch.inference_mode():
        y = net(_input(kwargs, h, w))
    s = kwargs["scale"]
    assert y.shape == (1, kwargs.get("num_channels", 3), h * s, w * s)
    assert torch.isfinite(y).all()


def test_msff_gives_every_scale_from_one_network() -> None:
    net = _net("msff", {"scale": 8, **_MSFF_S})
    x = _input({}, 5, 6)
    with torch.inference_mode():
        for s in (2, 4, 8):
            assert net(x, scale=s).shape == (1, 3, 5 * s, 6 * s)
        assert torch.equal(net(x), net(x, scale=8))
        with pytest.raises(ValueError, match="x16"):
            net(x, scale=16)
    with torch.inference_mode(), pytest.raises(ValueError, match="x8"):
        _net("msff", {"scale": 4, **_MSFF_S})(x, scale=8)


@pytest.mark.parametrize(("arch", "kwargs"), EXACT_TILES)
def test_receptive_radius_makes_tiles_exact(arch: str, kwargs: dict) -> None:
    net = _net(arch, kwargs)
    x = _input(kwargs, 23, 19)[0]
    radius = ARCHS[arch].receptive_radius(**kwargs)
    with torch.inference_mode():
        whole = net(x[None])[0]
    tiled = tiled_forward(TorchRunner(net, torch.device("cpu"), channels_last=False), x, kwargs["scale"],
                          tile=6, pad=radius)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("arch", "kwargs"), [c for c in CASES if c.values[1].get("num_channels", 3) == 3])
def test_engine_runs_every_rgb_model_tiled(arch: str, kwargs: dict) -> None:
    """Through the engine as a user file would go: tiles, padding policy, memory estimate."""
    lm = model_from_state_dict(_net(arch, kwargs).state_dict(), f"{arch}_x{kwargs['scale']}.pth")
    engine = UpscaleEngine(lm, device="cpu", tiles=TileSettings(tile=8))
    rgb = _input(kwargs, 13, 11)[0]
    s = kwargs["scale"]
    out = engine.upscale_rgb(rgb)
    assert out.shape == (3, 13 * s, 11 * s)
    if ARCHS[arch].receptive_radius(**lm.kwargs) is not None:  # exact tiles
        with torch.inference_mode():
            whole = lm.module(rgb[None])[0].clamp(0, 1)
        torch.testing.assert_close(out, whole, rtol=0, atol=1e-5)


def test_radius_and_memory_estimates_are_defined_for_published_configs() -> None:
    for arch, kwargs in [("srcnn", {}), ("fsrcnn", {}), ("espcn", {}), ("edsr", EDSR_BASELINE),
                         ("edsr", EDSR_FULL), ("rcan", {}), ("swinir", SWINIR_CLASSICAL),
                         ("swinir", SWINIR_LIGHTWEIGHT), ("msff", {})]:
        spec = ARCHS[arch]
        radius = spec.receptive_radius(scale=4, **kwargs)
        assert radius is None or 0 < radius < 100
        assert spec.activation_elems_per_pixel(scale=4, **kwargs) > 16


# ---- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["plain", "params", "params_ema", "safetensors"])
@pytest.mark.parametrize(("arch", "kwargs"), CASES)
def test_detect_round_trip_gives_identical_output(tmp_path: Path, arch: str, kwargs: dict,
                                                  layout: str) -> None:
    net = _net(arch, kwargs)
    # SRCNN/FSRCNN weights do not record the scale: their file names carry it, as upstream's do
    stem = f"{arch}_x{kwargs['scale']}" if arch in NO_SCALE_IN_WEIGHTS else "weights"
    lm = load_model(_save(net.state_dict(), tmp_path / stem, layout))
    assert lm.arch == arch
    assert lm.scale == kwargs["scale"]
    assert lm.size_multiple == 1
    for key, value in kwargs.items():
        assert lm.kwargs[key] == value, key
    assert type(lm.module) is type(net)
    assert build(arch, **lm.kwargs).state_dict().keys() == net.state_dict().keys()
    x = _input(kwargs)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), net(x))


@pytest.mark.parametrize(("arch", "kwargs"), CASES)
def test_detected_kwargs_are_complete(arch: str, kwargs: dict) -> None:
    """Detection returns every constructor argument (scale None where the weights lack it)."""
    import inspect

    found = detect_arch(_net(arch, kwargs).state_dict())
    assert found is not None and found[0] == arch
    params = set(inspect.signature(ARCHS[arch].build).parameters)
    assert set(found[1]) == params
    assert (found[1]["scale"] is None) == (arch in NO_SCALE_IN_WEIGHTS)


def _foreign_state_dicts() -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Every other registered architecture, built with its defaults (shapes only: meta device)."""
    out = []
    small = {"rrdbnet": {"num_feat": 8, "num_block": 2, "num_grow_ch": 4},
             "srvgg": {"num_feat": 8, "num_conv": 2, "upscale": 2}}
    for name, spec in ARCHS.items():
        if name in OURS:
            continue
        with torch.device("meta"):
            try:
                module = spec.build(**small.get(name, {}))
            except TypeError:  # a constructor without defaults
                continue
        out.append((name, module.state_dict()))
    for scale in (1, 2):
        with torch.device("meta"):
            out.append(("rrdbnet", build("rrdbnet", scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
                        .state_dict()))
    return out


def test_no_detector_accepts_another_architectures_weights() -> None:
    for case in CASES:
        arch, kwargs = case.values
        sd = _net(arch, kwargs).state_dict()
        accepted = [n for n, spec in ARCHS.items() if spec.detect(sd) is not None]
        assert accepted == [arch], case.id
    foreign = _foreign_state_dicts()
    assert {"rrdbnet", "srvgg"} <= {n for n, _ in foreign}
    for name, sd in foreign:
        accepted = [n for n in OURS if ARCHS[n].detect(sd) is not None]
        assert accepted == [], name


@pytest.mark.parametrize(("arch", "kwargs"), FIRST_OF_EACH)
def test_damaged_files_give_a_clear_error(arch: str, kwargs: dict) -> None:
    """A missing or reshaped parameter: ModelFileError, never a crash inside a detector."""
    sd = _net(arch, kwargs).state_dict()
    names = sorted(k for k, _ in _net(arch, kwargs).named_parameters())
    for key in names[:: max(1, len(names) // 6)]:
        broken = {k: v for k, v in sd.items() if k != key}
        with pytest.raises(ModelFileError):
            model_from_state_dict(broken, "broken_x2.pth")
        reshaped = {**sd, key: sd[key].new_zeros((*sd[key].shape, 2))}
        with pytest.raises(ModelFileError):
            model_from_state_dict(reshaped, "broken_x2.pth")


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("channels", [1, 3])
def test_fsrcnn_deconvolution_as_subpixel_conv_equals_the_transposed_conv(scale: int, channels: int) -> None:
    """FSRCNN runs its 9x9 transposed conv as a conv on the LR grid + pixel shuffle (faster on CPU):
    same output and same gradients as nn.ConvTranspose2d itself."""
    from superres.archs.fsrcnn import subpixel_transposed_conv

    torch.manual_seed(scale)
    deconv = torch.nn.ConvTranspose2d(6, channels, 9, stride=scale, padding=4, output_padding=scale - 1)
    deconv = deconv.double()
    x = torch.randn(2, 6, 7, 10, dtype=torch.float64, requires_grad=True)
    want = deconv(x)
    got = subpixel_transposed_conv(deconv, x)
    assert got.shape == want.shape == (2, channels, 7 * scale, 10 * scale)
    assert torch.allclose(got, want, atol=1e-12)
    g = torch.randn_like(want)
    grads_want = torch.autograd.grad(want, [x, deconv.weight, deconv.bias], g)
    grads_got = torch.autograd.grad(got, [x, deconv.weight, deconv.bias], g)
    for a, b in zip(grads_got, grads_want, strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    other = torch.nn.ConvTranspose2d(6, 1, 9, stride=scale, padding=1).double()  # output not H*s: falls back
    assert torch.equal(subpixel_transposed_conv(other, x), other(x))


# ---- SRCNN / FSRCNN: the scale is not in the weights ------------------------------------------

@pytest.mark.parametrize("arch", NO_SCALE_IN_WEIGHTS)
def test_scale_not_in_weights_must_be_given(tmp_path: Path, arch: str) -> None:
    kwargs = next(kw for a, kw in VARIANTS if a == arch and kw["scale"] == 3)
    net = _net(arch, kwargs)
    path = _save(net.state_dict(), tmp_path / "weights", "safetensors")
    with pytest.raises(ModelFileError, match=r"do not record the upscaling factor.*--model-scale 3.*scale=3"):
        load_model(path)
    lm = load_model(path, scale=3)
    assert lm.scale == 3 and lm.kwargs["scale"] == 3
    x = _input(kwargs)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), net(x))
    # an explicit scale beats the file name
    named = _save(net.state_dict(), tmp_path / f"{arch}_x2", "plain")
    assert load_model(named).scale == 2
    assert load_model(named, scale=3).scale == 3


def test_explicit_scale_must_agree_with_weights_that_record_one(tmp_path: Path) -> None:
    kwargs = next(kw for a, kw in VARIANTS if a == "espcn" and kw["scale"] == 3)
    path = _save(_net("espcn", kwargs).state_dict(), tmp_path / "espcn_x2", "plain")
    assert load_model(path).scale == 3  # the weights win over a misleading file name
    with pytest.raises(ModelFileError, match="x3 espcn, not x2"):
        load_model(path, scale=2)


@pytest.mark.parametrize(("name", "scale"), [
    ("srcnn_x3.pth", 3), ("/a/b/FSRCNN_x4.pth", 4), ("4x_model.safetensors", 4), ("x2.pth", 2),
    ("srcnn-9-5-5-x2-epoch10.pth", 2), ("model_3x.pth", 3), ("RealESRGAN_x4plus.pth", None),
    ("srcnn.pth", None), ("srcnn_x2_x3.pth", None), ("srcnn_x2_to_x2.pth", 2), ("max4.pth", None),
])
def test_scale_from_file_name(name: str, scale: int | None) -> None:
    assert scale_from_name(name) == scale


# ---- SwinIR: files as the official code writes them ----------------------------------------------

@pytest.mark.parametrize("with_index", [True, False])
def test_swinir_official_buffers_are_accepted(tmp_path: Path, with_index: bool) -> None:
    """Official files hold relative_position_index and attn_mask buffers (the mask for the training
    patch size): both are accepted, neither is required."""
    kwargs = {"scale": 2, **_SWIN_S}
    net = _net("swinir", kwargs)
    sd = dict(net.state_dict())
    ws = kwargs["window_size"]
    for key in list(sd):
        if not with_index and key.endswith("relative_position_index"):
            del sd[key]
        if key.endswith("blocks.1.norm1.weight"):  # odd blocks are shifted
            sd[key.replace("norm1.weight", "attn_mask")] = torch.zeros(64 // ws * 64 // ws, ws * ws, ws * ws)
    lm = load_model(_save(sd, tmp_path / "swinir", "params_ema"))
    assert lm.kwargs["window_size"] == ws
    x = _input(kwargs, 9, 6)  # padded to 12x8 inside, cropped after
    with torch.inference_mode():
        assert torch.equal(lm.module(x), net(x))


def test_swinir_pads_to_the_window_and_crops() -> None:
    """A padded input gives the same pixels as running the reflect-padded image by hand."""
    kwargs = {"scale": 2, **_SWIN_L}
    net = _net("swinir", kwargs)
    x = _input(kwargs, 6, 7)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 2), mode="reflect")
    with torch.inference_mode():
        assert torch.equal(net(x), net(padded)[:, :, :12, :14])


def test_swinir_shifted_windows_mix_across_window_borders() -> None:
    """With shifts a pixel's output depends on the next window; with depth 1 (no shift) it does not."""
    for depths, crosses in (((2,), True), ((1,), False)):
        kwargs = {"scale": 2, **_SWIN_L, "depths": depths, "num_heads": (3,), "window_size": 4}
        net = _net("swinir", kwargs)
        x = _input(kwargs, 8, 8)
        y = x.clone()
        y[:, :, :, 6] += 0.5  # a column in the second window (3x3 convs reach 1 pixel per conv)
        with torch.inference_mode():
            diff = (net(x) - net(y)).abs()[:, :, :, :2].amax()  # first two LR columns: far from conv reach
        assert (diff > 0).item() is crosses


def test_espcn_blocks_start_as_the_published_network() -> None:
    """A deeper ESPCN (``blocks``, not the published shape) seeded with published weights computes
    the same function before training: each block's last conv starts at zero. Then it is trainable
    (the block's output moves once that conv does)."""
    torch.manual_seed(0)
    published = build("espcn", num_channels=1, scale=3, n1=8, n2=4)
    deeper = build("espcn", num_channels=1, scale=3, n1=8, n2=4, blocks=2)
    missing, unexpected = deeper.load_state_dict(published.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == sorted(f"blocks.{i}.{j}.{s}" for i in range(2)
                                                        for j in (0, 2) for s in ("weight", "bias"))
    x = torch.rand(1, 1, 12, 10)
    assert torch.equal(deeper(x), published(x))
    deeper(x).square().mean().backward()
    assert deeper.blocks[0][2].weight.grad is not None and deeper.blocks[0][2].weight.grad.abs().sum() > 0
    added = _meta_params("espcn", scale=3, blocks=2) - _meta_params("espcn", scale=3)
    assert added == 2 * 2 * (32 * 32 * 9 + 32)  # two blocks of two 3x3 convs at 32 features
