"""``ModelInfo``: one named model, as the family modules of the catalogue define it.

Apart from :mod:`superres.zoo.catalogue` so that the family modules (``realesrgan.py``,
``span.py``, ...) can use it while the catalogue imports them: no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from superres.archs import ARCHS
from superres.weights.carriers import Carrier


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """A named, downloadable-free model: architecture, licence and source files.

    The scale is stated once, in ``kwargs`` (the architecture's scale key); :attr:`scale`
    is derived from it and ``output_resize``.
    """

    name: str
    arch: str
    kwargs: dict[str, Any]
    licence: str
    purpose: str
    description: str
    carrier: Carrier
    param_file: str
    bin_file: str
    licence_note: str = ""
    # The upstream x2/x3 animevideov3 "models" are the x4 net + bicubic downscale.
    output_resize: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # Bundled .safetensors (``bin_file``; no ``param_file``): the tensors' hash, checked at load.
    bundled_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"model {self.name!r}: unknown architecture {self.arch!r}")
        net = self.kwargs.get(ARCHS[self.arch].scale_key)
        overall = None if net is None else net * (self.output_resize or 1.0)
        if overall is None or overall != int(overall) or overall < 1:
            raise ValueError(f"model {self.name!r}: kwargs[{ARCHS[self.arch].scale_key!r}] = {net!r} "
                             f"with output_resize {self.output_resize!r} is not a whole upscaling factor")

    @property
    def scale(self) -> int:
        """Overall factor: the network's (from ``kwargs``) times ``output_resize``."""
        net = self.kwargs[ARCHS[self.arch].scale_key]
        return int(net * (self.output_resize or 1.0))

    @property
    def params(self) -> int:
        """Parameter count, computed from the architecture (no weights needed)."""
        with torch.device("meta"):
            module = ARCHS[self.arch].build(**self.kwargs)
        return sum(p.numel() for p in module.parameters())

    @property
    def mflop_per_input_pixel(self) -> float:
        return ARCHS[self.arch].mflop_per_input_pixel(**self.kwargs)
