"""superres: image super-resolution with real pretrained models, offline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superres.api import Upscaler, load
    from superres.batch import upscale_files

__all__ = ["Upscaler", "__version__", "load", "upscale_files"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy: `import superres.metrics` or the CLI's --help should not pay for torch + the engine.
    if name in ("Upscaler", "load"):
        from superres import api

        return getattr(api, name)
    if name == "upscale_files":
        from superres import batch

        return batch.upscale_files
    raise AttributeError(f"module 'superres' has no attribute {name!r}")
