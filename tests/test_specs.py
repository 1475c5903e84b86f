"""Each architecture describes itself: ``SPECS`` in its module, collected into ``ARCHS``; no guessing."""

from __future__ import annotations

import dataclasses
import pkgutil
from importlib import import_module
from typing import Any

import pytest
import torch
from torch import nn

import superres.archs
from superres.archs import ARCHS, FAMILIES, build
from superres.archs.spec import ArchSpec
from superres.train.model import enable_grad_checkpointing
from superres.zoo.loader import model_from_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Modules of superres.archs that are not architecture families.
NOT_FAMILIES = {"common", "discriminators", "luma", "spec"}
TINY_RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _meta(spec: ArchSpec, **kwargs: Any) -> nn.Module | None:
    """The family's module with its defaults (shapes only), or None for a constructor without defaults."""
    with torch.device("meta"):
        try:
            return spec.build(**kwargs)
        except TypeError:
            return None


def test_every_family_module_exposes_specs_and_archs_is_built_from_them() -> None:
    names = {m.name for m in pkgutil.iter_modules(superres.archs.__path__)} - NOT_FAMILIES
    modules = {import_module(f"superres.archs.{n}") for n in names}
    assert modules == set(FAMILIES), "a family module missing from archs.FAMILIES (or listed but gone)"
    collected = [spec for family in FAMILIES for spec in family.SPECS]
    assert all(isinstance(family.SPECS, tuple) for family in FAMILIES)
    assert all(isinstance(spec, ArchSpec) for spec in collected)
    assert list(ARCHS) == [spec.name for spec in collected]
    assert all(ARCHS[spec.name] is spec for spec in collected)
    assert len(ARCHS) == 13


def test_spec_is_frozen_and_keyword_only() -> None:
    spec = ARCHS["srvgg"]
    with pytest.raises(TypeError):
        ArchSpec("x", spec.build, spec.detect, "scale", spec.mflop_per_input_pixel,  # type: ignore[misc]
                 spec.receptive_radius, spec.activation_elems_per_pixel)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.trunk = "layers"  # type: ignore[misc]


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_size_multiple_is_its_unshuffle(scale: int) -> None:
    kwargs = {**TINY_RRDB, "scale": scale}
    module = build("rrdbnet", **kwargs)
    assert ARCHS["rrdbnet"].size_multiple(**kwargs) == module.unshuffle == {1: 4, 2: 2, 4: 1}[scale]
    lm = model_from_state_dict(module.state_dict(), "tiny")
    assert lm.spec is ARCHS["rrdbnet"] and lm.size_multiple == module.unshuffle


def test_other_families_take_any_size() -> None:
    for name, spec in ARCHS.items():
        if name != "rrdbnet":
            assert spec.size_multiple() == 1, name
            module = _meta(spec)
            assert module is None or not hasattr(module, "unshuffle"), name


@pytest.mark.parametrize("arch", ["srcnn", "fsrcnn", "espcn", "msff"])
@pytest.mark.parametrize("channels", [1, 3])
def test_luma_only_follows_the_kwargs(arch: str, channels: int) -> None:
    spec = ARCHS[arch]
    assert spec.luma_only(num_channels=channels) is (channels == 1)
    module = _meta(spec, num_channels=channels)
    assert module is not None and module.num_channels == channels


def test_luma_only_defaults_and_other_families() -> None:
    assert [n for n, s in ARCHS.items() if s.luma_only()] == ["srcnn", "fsrcnn", "espcn"]  # Y by default
    assert [n for n, s in ARCHS.items() if s.luma_layers is not None] == ["srcnn", "fsrcnn", "espcn"]
    for name in ("rrdbnet", "srvgg", "span", "edsr", "rcan", "swinir", "upconv7", "cunet", "realcugan"):
        assert ARCHS[name].luma_only(num_channels=1, num_in_ch=1, in_channels=1) is False, name


def test_luma_layers_name_the_colour_layers() -> None:
    for name, spec in ARCHS.items():
        if spec.luma_layers is None:
            continue
        sd = _meta(spec, num_channels=3).state_dict()  # type: ignore[union-attr]
        first, last, kind = spec.luma_layers
        assert sd[f"{first}.weight"].shape[1] == 3, name
        assert kind in ("conv", "deconv", "shuffle")
        assert f"{last}.weight" in sd and f"{last}.bias" in sd, name


def test_trunk_is_the_block_container() -> None:
    trunks = {name: spec.trunk for name, spec in ARCHS.items() if spec.trunk is not None}
    assert trunks == {"rrdbnet": "body", "srvgg": "body", "edsr": "body", "rcan": "body", "swinir": "layers"}
    for name, trunk in trunks.items():
        module = _meta(ARCHS[name])
        assert isinstance(getattr(module, trunk), (nn.Sequential, nn.ModuleList)), name


def test_grad_checkpointing_uses_the_spec_trunk() -> None:
    module = build("rrdbnet", **TINY_RRDB, num_in_ch=3, num_out_ch=3, scale=4)
    assert enable_grad_checkpointing(module, ARCHS["rrdbnet"].trunk) == 1
    assert enable_grad_checkpointing(build("fsrcnn", d=8, s=4, m=1), ARCHS["fsrcnn"].trunk) == 0


def test_loaded_model_carries_its_spec() -> None:
    module = build("espcn", num_channels=1, scale=3, n1=8, n2=4)
    lm = model_from_state_dict(module.state_dict(), "espcn_x3.pth")
    assert lm.spec is ARCHS["espcn"] and lm.luma_only and lm.size_multiple == 1
    rgb = model_from_state_dict(build("espcn", num_channels=3, scale=3, n1=8, n2=4).state_dict(), "e_x3.pth")
    assert rgb.spec is ARCHS["espcn"] and not rgb.luma_only
