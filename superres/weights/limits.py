"""Limits on weight files, checked before anything is allocated (docs/limits.md).

A weight file comes from anywhere (``--model PATH``, ``superres.load(path)``), so its size, its
container's declared sizes and the values of its tensors are bounded here. Each default is far
above every real model superres ships or converts (the measurements are in the docs page) and
can be changed with an environment variable, read at each load.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

ENV_PREFIX = "SUPERRES_"


@dataclass(frozen=True)
class WeightLimits:
    """Bounds for one weight file; ``from_env`` applies the ``SUPERRES_*`` overrides."""

    # Bytes of the file itself (the largest zoo model, RRDBNet x4plus, is 67 MB; VGG19 548 MB).
    max_weight_file_bytes: int = 2 * 1024**3
    # Tensors (and zip entries) in one file; the largest zoo model has 700 tensors.
    max_weight_tensors: int = 100_000
    # Largest |w| of any float tensor; the zoo's largest is 458.5 (SPAN x4 ch52).
    max_weight_abs: float = 1e4
    # Declared unpacked bytes of a ``.pth`` zip per byte of file (torch.save stores, ratio ~1).
    max_weight_zip_ratio: float = 4.0
    # Bytes of a ``.safetensors`` JSON header (about 100 bytes per tensor in practice).
    max_weight_header_bytes: int = 64 * 1024**2
    # The upscaling factor a weight file may claim (real models: 1-8).
    max_model_scale: int = 16

    @classmethod
    def from_env(cls) -> WeightLimits:
        """Defaults, each overridable by ``SUPERRES_<FIELD NAME>`` (e.g. ``SUPERRES_MAX_WEIGHT_ABS``)."""
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or not raw.strip():
                continue
            kind = float if f.type in ("float", float) else int
            try:
                value = kind(float(raw)) if kind is int else kind(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a number") from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a positive number")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]
