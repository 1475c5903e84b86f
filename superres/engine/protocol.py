"""What front ends (batch jobs, video, evaluation, bench, the CLI) may ask of an engine.

They take an ``Engine`` instead of reaching into ``Upscaler.engine``: ``UpscaleEngine``
satisfies it, and so does ``superres.Upscaler`` (which delegates, with its own default
scale), so library users can hand either to ``upscale_video`` or ``upscale_files``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from superres.zoo.loader import LoadedModel

TileCallback = Callable[[int, int], None]


@runtime_checkable
class Engine(Protocol):
    """A loaded model ready to upscale arrays at any scale (``None``: the default ``scale``)."""

    @property
    def model(self) -> LoadedModel:
        """The loaded weights (name, arch, native scale) for labels, notes and resume keys."""
        ...

    @property
    def scale(self) -> float:
        """The output scale used when a call gives none."""
        ...

    @property
    def frames_per_pass(self) -> int:
        """How many same-size images :meth:`upscale_arrays` is worth feeding at once."""
        ...

    def passes_for(self, target_scale: float) -> int:
        """Model passes used for ``target_scale`` (the rest is a resize)."""
        ...

    def upscale_rgb(self, rgb: torch.Tensor, target_scale: float | None = None,
                    on_tile: TileCallback | None = None) -> torch.Tensor:
        """(3,H,W) float in [0,1] -> (3,round(H*S),round(W*S)) float in [0,1]."""
        ...

    def upscale_array(self, pixels: np.ndarray, target_scale: float | None = None,
                      on_tile: TileCallback | None = None) -> np.ndarray:
        """Gray, RGB or RGBA (HxW or HxWxC), uint8/uint16/float -> the same kind, upscaled."""
        ...

    def upscale_arrays(self, frames: list[np.ndarray], target_scale: float | None = None) -> list[np.ndarray]:
        """Several images (video frames), batched where possible."""
        ...
