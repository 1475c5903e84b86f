"""Hostile and damaged weight files (issue 17, item 6): refused with one ModelFileError, fast, small.

Each reproduction of the issue is built here in ``tmp_path``: NaN/inf/bool/integer/1e30 weights
(black, white or garbage images with exit 0 before), small files whose header or key names ask for
enormous networks (minutes and gigabytes before), a zip-bomb ``.pth``, bad recorded scales, and a
seeded mini-fuzz over truncated / bit-flipped / re-typed files. Limits: docs/limits.md.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from superres.archs import build
from superres.archs.rrdbnet import RRDBNet
from superres.archs.srvgg import SRVGGNetCompact
from superres.weights import ModelFileError
from superres.weights.limits import WeightLimits
from superres.zoo.loader import LoadedModel, load_model
from tests.conftest import REPO

_RRDB = {"scale": 4, "num_feat": 4, "num_block": 1, "num_grow_ch": 2}
_VGG = {"num_feat": 4, "num_conv": 1, "upscale": 2}


def _sd(cls: type = SRVGGNetCompact, kwargs: dict | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = cls(**(kwargs or _VGG))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return {k: v.detach().contiguous() for k, v in net.state_dict().items()}


def _save(sd: dict[str, torch.Tensor], path: Path, meta: dict[str, str] | None = None) -> Path:
    if path.suffix == ".safetensors":
        save_file(sd, str(path), metadata=meta)
    else:
        torch.save(sd, path)
    return path


def _recorded(arch: str, kwargs: dict) -> dict[str, str]:
    """The header ``superres train`` writes."""
    return {"superres.arch": arch, "superres.kwargs": json.dumps(kwargs)}


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# ---- values: non-finite, non-float, absurd -------------------------------------------------

@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize(("value", "needle"), [(float("nan"), "NaN"), (float("inf"), "infinite"),
                                               (float("-inf"), "infinite")])
def test_non_finite_weights_are_refused(tmp_path: Path, suffix: str, value: float, needle: str) -> None:
    """One NaN gave an all-black image with exit 0, inf an all-white one."""
    sd = _sd()
    sd["body.2.weight"].view(-1)[5] = value
    _refused(_save(sd, tmp_path / f"w{suffix}"), "body.2.weight", needle)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int8, torch.uint8, torch.int32, torch.int64])
def test_non_float_weights_are_refused(tmp_path: Path, dtype: torch.dtype) -> None:
    """bool weights gave white images, int8/int64 garbage, all with exit 0."""
    sd = _sd()
    sd["body.0.weight"] = (sd["body.0.weight"] * 100).to(dtype)
    name = str(dtype).removeprefix("torch.")
    _refused(_save(sd, tmp_path / "w.safetensors"), "body.0.weight", f"is {name}", "float32")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_still_load(tmp_path: Path, dtype: torch.dtype) -> None:
    sd = {k: v.to(dtype) for k, v in _sd().items()}
    lm = load_model(_save(sd, tmp_path / "w.safetensors"))
    assert lm.arch == "srvgg" and lm.module(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)


def test_absurd_magnitudes_are_refused_unless_the_limit_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights scaled by 1e30 gave garbage with exit 0."""
    path = _save({k: v * 1e30 for k, v in _sd().items()}, tmp_path / "w.pth")
    _refused(path, "over the limit of 10000", "SUPERRES_MAX_WEIGHT_ABS")
    monkeypatch.setenv("SUPERRES_MAX_WEIGHT_ABS", "1e31")
    assert isinstance(load_model(path), LoadedModel)


def test_the_default_magnitude_bound_is_far_above_every_shipped_model() -> None:
    """docs/limits.md: the zoo's largest |w| is 458.5 (SPAN x4 ch52); keep >= 20x margin."""
    assert WeightLimits().max_weight_abs >= 20 * 458.5
    from superres.zoo.cache import load_named_state_dict
    from superres.zoo.catalogue import get

    for name in ("espcn-x2", "fsrcnn-x3"):  # shipped in the package: always here
        sd = load_named_state_dict(get(name))
        assert max(float(v.abs().max()) for v in sd.values()) < WeightLimits().max_weight_abs / 20


def test_integer_buffers_are_allowed_only_where_the_model_keeps_them(tmp_path: Path) -> None:
    """SwinIR's relative_position_index is an integer buffer (rebuilt from the window size on load,
    so a file's values never reach inference); an integer tensor anywhere else is refused."""
    kw = {"embed_dim": 12, "depths": (2,), "num_heads": (3,), "window_size": 4, "mlp_ratio": 2.0,
          "num_feat": 8, "upsampler": "pixelshuffle"}
    net = build("swinir", **kw)
    sd = net.state_dict()
    key = next(k for k in sd if k.endswith("relative_position_index"))
    lm = load_model(_save({**sd, key: sd[key] + 1000}, tmp_path / "odd_index_x4.safetensors"))
    assert torch.equal(lm.module.state_dict()[key], sd[key])
    weight = next(k for k in sd if k.endswith("qkv.weight"))
    bad = {**sd, weight: sd[weight].to(torch.int64)}
    _refused(_save(bad, tmp_path / "int_x4.safetensors"), weight, "is int64")


# ---- small files asking for huge networks ---------------------------------------------------

@pytest.mark.parametrize(("arch", "tiny", "huge"), [
    ("rrdbnet", _RRDB, {**_RRDB, "num_block": 20000}),
    ("edsr", {"num_feats": 4, "num_blocks": 1, "scale": 2},
     {"num_feats": 4, "num_blocks": 2_000_000, "scale": 2}),
    ("espcn", {"n1": 4, "n2": 4, "scale": 2}, {"n1": 30000, "n2": 30000, "scale": 2}),
    ("srvgg", _VGG, {**_VGG, "num_conv": 3_000_000}),
])
def test_recorded_hyper_parameters_are_bounded_by_the_tensors_present(
    tmp_path: Path, arch: str, tiny: dict, huge: dict
) -> None:
    """A 1.8 KB file declaring an RRDB depth of 20000 took 56 s and 2.2 GB; 2,000,000 blocks or
    n1=n2=30000 tried 32 GB. Now refused from a meta-device build within a few hundred modules."""
    sd = {k: v.contiguous() for k, v in build(arch, **tiny).state_dict().items()}
    path = _save(sd, tmp_path / "w.safetensors", _recorded(arch, huge))
    assert path.stat().st_size < 64 * 1024
    start = time.perf_counter()
    _refused(path, "do not match the weights")
    assert time.perf_counter() - start < 5


def test_key_names_claiming_a_huge_depth_are_bounded(tmp_path: Path) -> None:
    """A detector counts ``body.N`` blocks: one stray key must not make it build 20000 blocks."""
    sd = _sd(RRDBNet, _RRDB)
    sd["body.19999.rdb1.conv1.weight"] = torch.zeros(2, 4, 3, 3)
    start = time.perf_counter()
    _refused(_save(sd, tmp_path / "w.safetensors"))
    assert time.perf_counter() - start < 5


def test_recorded_kwargs_that_do_not_fit_the_tensors_say_so(tmp_path: Path) -> None:
    path = _save(_sd(), tmp_path / "w.safetensors", _recorded("srvgg", {**_VGG, "num_feat": 8}))
    _refused(path, "do not fit", "body.0.weight")


@pytest.mark.parametrize("scale", [-2, 0, 2.5, "2", True, 1000, None, [2]])
def test_bad_recorded_scales_are_refused_at_load_time(tmp_path: Path, scale: object) -> None:
    """A negative scale in metadata loaded, then failed every image (exit 1 instead of 2)."""
    sd = {k: v.contiguous() for k, v in build("srcnn", scale=2, n1=4, n2=4).state_dict().items()}
    kwargs = {"n1": 4, "n2": 4, "scale": scale}
    path = _save(sd, tmp_path / "model.safetensors", _recorded("srcnn", kwargs))
    msg = _refused(path)
    assert "scale" in msg or "upscaling factor" in msg


@pytest.mark.parametrize("kwargs", [
    {**_VGG, "no_such_argument": 1},       # TypeError from the constructor before
    {**_VGG, "num_feat": "four"},          # TypeError
    {**_VGG, "act_type": "nonsense"},      # ValueError
    {**_VGG, "num_feat": float("nan")},
    {**_VGG, "num_feat": -4},              # RuntimeError
    {**_VGG, "num_feat": {"nested": 1}},
])
def test_every_bad_header_raises_model_file_error(tmp_path: Path, kwargs: dict) -> None:
    path = tmp_path / "w.safetensors"
    save_file(_sd(), str(path), metadata={"superres.arch": "srvgg",
                                          "superres.kwargs": json.dumps(kwargs, allow_nan=True)})
    _refused(path)


# ---- containers ------------------------------------------------------------------------------

def _zip_bomb(path: Path, unpacked: int) -> Path:
    """A real torch.save zip with one storage replaced by ``unpacked`` deflated zero bytes."""
    plain = path.with_suffix(".plain.pth")
    torch.save(_sd(), plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                dst.writestr(info, src.read(info))
                continue
            bomb = zipfile.ZipInfo(info.filename)
            bomb.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(bomb, "w", force_zip64=True) as out:
                chunk = bytes(1 << 20)
                for _ in range(unpacked >> 20):
                    out.write(chunk)
    plain.unlink()
    return path


def _numel_lie(path: Path, legacy: bool) -> Path:
    """A .pth whose pickle declares a 2^31-element storage for a 4,099-element tensor's bytes."""
    sd = _sd()
    sd["body.0.weight"] = torch.zeros(4099)
    needle, lie = b"M" + (4099).to_bytes(2, "little"), b"J" + (2**31 - 1).to_bytes(4, "little")
    if legacy:
        torch.save(sd, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes().replace(needle, lie))
        return path
    plain = path.with_suffix(".plain.pth")
    torch.save(sd, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(needle, lie) if info.filename.endswith("data.pkl") else data)
    plain.unlink()
    return path


def test_zip_bomb_pth_is_refused_from_its_directory(tmp_path: Path) -> None:
    """A 285 KB zip-bomb .pth took 267 s and 2.9 GB; its declared sizes now refuse it unread."""
    path = _zip_bomb(tmp_path / "bomb.pth", 64 << 20)
    assert path.stat().st_size < 1 << 20
    start = time.perf_counter()
    _refused(path, "compression bomb")
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(("header", "needle"), [
    ({"a": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}}, "needs 4000000 bytes"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}, "outside"),
    ({"a": {"dtype": "X9", "shape": [4], "data_offsets": [0, 16]}}, "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, "bad shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, "truncated or padded"),
    ([1, 2], "not a JSON object"),
])
def test_safetensors_headers_are_checked_against_the_file(tmp_path: Path, header: object,
                                                          needle: str) -> None:
    raw = json.dumps(header).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(16))
    _refused(path, needle)


def test_a_header_length_beyond_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    _refused(path, "header claims")


def test_file_size_limit_is_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(_sd(), tmp_path / "w.safetensors")
    monkeypatch.setenv("SUPERRES_MAX_WEIGHT_FILE_BYTES", "100")
    _refused(path, "over the weight-file limit", "SUPERRES_MAX_WEIGHT_FILE_BYTES")
    monkeypatch.delenv("SUPERRES_MAX_WEIGHT_FILE_BYTES")
    assert isinstance(load_model(path), LoadedModel)


# ---- bounded memory, in a fresh process ---------------------------------------------------

_PEAK = """
import resource, sys
from superres.weights import ModelFileError
from superres.zoo.loader import load_model
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for p in sys.argv[1:]:
    try:
        load_model(p)
        print("LOADED", p)
    except ModelFileError:
        print("REFUSED", p)
print("PEAK_MB", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_bombs_stay_within_a_small_memory_budget(tmp_path: Path) -> None:
    files = [
        _zip_bomb(tmp_path / "bomb.pth", 256 << 20),
        _numel_lie(tmp_path / "legacy_lie.pth", legacy=True),  # torch reserves, never touches, 8 GB
        _numel_lie(tmp_path / "zip_lie.pth", legacy=False),  # torch checks it against the record size
        _save(_sd(RRDBNet, _RRDB), tmp_path / "deep.safetensors",
              _recorded("rrdbnet", {**_RRDB, "num_block": 20000})),
        _save(_sd(), tmp_path / "wide.safetensors", _recorded("srvgg", {**_VGG, "num_feat": 30000})),
        _save(_sd(), tmp_path / "blocks.safetensors", _recorded("srvgg", {**_VGG, "num_conv": 2_000_000})),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PEAK, *map(str, files)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert "LOADED" not in out and out.count("REFUSED") == len(files), out
    peak = float(out.split("PEAK_MB")[1])
    assert peak < 100, out


# ---- the CLI: exit 2 and one line ------------------------------------------------------------

def test_cli_refuses_bad_models_with_exit_2_and_one_line(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 6), (40, 90, 140)).save(tmp_path / "img.png")
    nan = _sd()
    nan["body.0.bias"][0] = float("nan")
    bad = [_save(nan, tmp_path / "nan.safetensors"), _zip_bomb(tmp_path / "bomb.pth", 64 << 20),
           _save(_sd(), tmp_path / "neg.safetensors", _recorded("srvgg", {**_VGG, "upscale": -2}))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for model in bad:
        res = subprocess.run([sys.executable, "-m", "superres", "upscale", str(tmp_path / "img.png"), "-o",
                              str(tmp_path / "out"), "--model", str(model)],
                             capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 2, (model, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot load model {model}"), res.stderr
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---- seeded mini-fuzz ------------------------------------------------------------------------

def _mutations(seed: int, base: dict[str, torch.Tensor]) -> list[tuple[str, bytes | None, dict | None]]:
    """(suffix, raw file bytes, or None with a state dict to save) for ~100 damaged files."""
    rng = random.Random(seed)
    tmp_st = Path(f"/tmp/superres-fuzz-{os.getpid()}.safetensors")
    tmp_pt = tmp_st.with_suffix(".pth")
    save_file(base, str(tmp_st), metadata=_recorded("srvgg", _VGG))
    torch.save(base, tmp_pt)
    raws = {".safetensors": tmp_st.read_bytes(), ".pth": tmp_pt.read_bytes()}
    tmp_st.unlink()
    tmp_pt.unlink()
    cases: list[tuple[str, bytes | None, dict | None]] = []
    for suffix, raw in raws.items():
        for _ in range(15):  # truncations
            cases.append((suffix, raw[:rng.randrange(len(raw))], None))
        for _ in range(20):  # bit flips
            b = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            cases.append((suffix, bytes(b), None))
    keys = sorted(base)
    for _ in range(30):  # structural: dtype, extra/missing keys, wrong metadata
        sd = dict(base)
        kind = rng.choice(["dtype", "extra", "missing", "reshape", "meta", "value"])
        key = rng.choice(keys)
        meta = _recorded("srvgg", _VGG)
        if kind == "dtype":
            dtype = rng.choice([torch.int8, torch.int64, torch.bool, torch.float16, torch.uint8])
            sd[key] = sd[key].to(dtype)
        elif kind == "extra":
            sd[f"extra.{rng.randrange(99)}.weight"] = torch.zeros(rng.randint(1, 4))
        elif kind == "missing":
            del sd[key]
        elif kind == "reshape":
            sd[key] = torch.zeros(*(d + rng.randint(0, 2) for d in sd[key].shape))
        elif kind == "meta":
            field = rng.choice([*_VGG, "num_in_ch", "act_type"])
            value = rng.choice([0, -1, 10**6, 10**12, 2.5, "x", None, True, [1, 2], 4])
            meta = _recorded(rng.choice(["srvgg", "rrdbnet", "espcn", "nosuch"]), {**_VGG, field: value})
        else:
            t = sd[key].clone()
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf"), 1e9, -1e20])
            sd[key] = t
        cases.append((".safetensors", None, {"sd": sd, "meta": meta}))
    return cases


def test_seeded_fuzz_gives_a_working_model_or_model_file_error(tmp_path: Path) -> None:
    base = _sd()
    outcomes = {"loaded": 0, "refused": 0}
    start = time.perf_counter()
    for i, (suffix, raw, spec) in enumerate(_mutations(1717, base)):
        path = tmp_path / f"case{i:03d}{suffix}"
        if raw is not None:
            path.write_bytes(raw)
        else:
            assert spec is not None
            save_file(spec["sd"], str(path), metadata=spec["meta"])
        t0 = time.perf_counter()
        try:
            lm = load_model(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
            outcomes["refused"] += 1
        else:
            with torch.inference_mode():
                out = lm.module(torch.rand(1, 3, 4, 4))
            assert out.shape == (1, 3, 8, 8) and bool(torch.isfinite(out).all()), path
            outcomes["loaded"] += 1
        assert time.perf_counter() - t0 < 5, path
    assert sum(outcomes.values()) >= 100
    assert outcomes["refused"] >= 50 and outcomes["loaded"] >= 5, outcomes
    assert time.perf_counter() - start < 60
