"""Architectures: plain ``nn.Module``s, each family describing itself in an ``ArchSpec``.

``ARCHS`` maps a short name to its spec so loaders can build a module from a name and
kwargs (named models, configs) or from a state dict alone (user files). It is collected
from the ``SPECS`` of the family modules in ``FAMILIES``, the one list to extend when adding
a family; detection tries the specs in this order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from superres.archs import (
    edsr,
    espcn,
    fsrcnn,
    msff,
    rcan,
    realcugan,
    rrdbnet,
    span,
    srcnn,
    srvgg,
    swinir,
    waifu2x,
)
from superres.archs.spec import ArchSpec

FAMILIES = (rrdbnet, srvgg, span, srcnn, fsrcnn, espcn, edsr, rcan, swinir, msff, waifu2x, realcugan)


def _collect() -> dict[str, ArchSpec]:
    archs: dict[str, ArchSpec] = {}
    for family in FAMILIES:
        for spec in family.SPECS:
            if spec.name in archs:
                raise AssertionError(f"architecture {spec.name!r} defined twice")
            archs[spec.name] = spec
    return archs


ARCHS: dict[str, ArchSpec] = _collect()


def build(arch: str, **kwargs: Any) -> nn.Module:
    """Construct an architecture by its short name."""
    try:
        spec = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}") from None
    return spec.build(**kwargs)


def detect_arch(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """First architecture whose detector accepts ``state_dict``: (name, kwargs)."""
    for name, spec in ARCHS.items():
        kwargs = spec.detect(state_dict)
        if kwargs is not None:
            return name, kwargs
    return None
