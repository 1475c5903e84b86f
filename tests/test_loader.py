"""User weight files: wrappers and prefixes, detection without hints, and safe loading only."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from superres.archs.rrdbnet import RRDBNet
from superres.archs.srvgg import SRVGGNetCompact
from superres.weights import ModelFileError, read_state_dict
from superres.zoo.loader import load_model

VARIANTS = [
    (RRDBNet, {"scale": 4, "num_feat": 16, "num_block": 2, "num_grow_ch": 8}),
    (RRDBNet, {"scale": 2, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}),
    (RRDBNet, {"scale": 1, "num_feat": 8, "num_block": 3, "num_grow_ch": 4}),
    (RRDBNet, {"scale": 4, "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}),
    (SRVGGNetCompact, {"num_feat": 16, "num_conv": 4, "upscale": 4}),
    (SRVGGNetCompact, {"num_feat": 8, "num_conv": 2, "upscale": 2}),
    (SRVGGNetCompact, {"num_feat": 8, "num_conv": 1, "upscale": 3}),
]


def _net(cls: type, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    net = cls(**kwargs).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net


@pytest.mark.parametrize("layout", ["params_ema", "params", "module", "plain", "safetensors"])
@pytest.mark.parametrize(("cls", "kwargs"), VARIANTS)
def test_detect_round_trip_gives_identical_output(
    tmp_path: Path, cls: type, kwargs: dict, layout: str
) -> None:
    net = _net(cls, kwargs)
    sd = net.state_dict()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        obj = (
            {"params_ema": sd, "params": {}}
            if layout == "params_ema"
            else (
                {"params": sd}
                if layout == "params"
                else {f"module.{k}": v for k, v in sd.items()}
                if layout == "module"
                else sd
            )
        )
        path = tmp_path / "w.pth"
        torch.save(obj, path)
    lm = load_model(path)
    for key, value in kwargs.items():
        assert lm.kwargs[key] == value
    assert type(lm.module) is cls
    c = kwargs.get("num_in_ch", 3)
    x = torch.rand(1, c, 8, 12)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), net(x))


class _Evil:
    """Unpickling this would run ``os.system`` (the classic malicious .pth)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params_ema": _Evil(marker)}, f)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert not marker.exists(), "the pickle's payload ran"
    msg = str(err.value)
    assert str(path) in msg and "safetensors" in msg


def test_malicious_pickle_inside_torch_zip_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil_zip.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "x": _Evil(marker)}, path)
    with pytest.raises(ModelFileError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_unknown_architecture_lists_what_is_supported(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    msg = str(err.value)
    assert "not recognised" in msg and "rrdbnet" in msg and "srvgg" in msg and "encoder.layer.0.weight" in msg


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.pth", None, "no such weight file"),
        ("empty.pth", b"", "not a readable weight file"),
        ("text.safetensors", b"hello", "not a readable weight file"),
        ("weights.bin", b"\0" * 8, "unsupported weight file type"),
    ],
)
def test_bad_weight_files_name_the_file(
    tmp_path: Path, name: str, content: bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=needle) as err:
        read_state_dict(path)
    assert name in str(err.value)


def test_mismatched_tensor_shapes_are_reported(tmp_path: Path) -> None:
    sd = _net(SRVGGNetCompact, {"num_feat": 8, "num_conv": 2, "upscale": 2}).state_dict()
    sd["body.2.weight"] = torch.zeros(8, 4, 3, 3)
    path = tmp_path / "broken.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)


def test_unknown_model_name_lists_the_zoo() -> None:
    with pytest.raises(LookupError, match="realesrgan-x4plus"):
        load_model("no-such-model")
