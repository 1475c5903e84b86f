"""The bundled sample photo, for probes, calibration and benchmarks that need real image content.

Random noise is far outside what super-resolution networks were trained on (some then output
values in the hundreds, where float32 rounding alone moves pixels by 0.07), so every probe,
INT8 calibration and speed measurement uses crops of one real photo. It ships inside the package
(an installed wheel has no ``examples/`` folder): "Chelsea the cat" by Stefan van der Walt, CC0,
from scikit-image's data folder, the same file as ``examples/chelsea.png``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_PATH = Path(__file__).with_name("data") / "chelsea.png"


@lru_cache(maxsize=1)
def sample_rgb() -> np.ndarray:
    """The sample photo as an HxWx3 uint8 RGB array (read once; do not modify it)."""
    from PIL import Image

    with Image.open(SAMPLE_PATH) as img:
        rgb = np.asarray(img.convert("RGB"))
    rgb.setflags(write=False)
    return rgb


def sample_crop(height: int, width: int, *, top: int = 0, left: int = 0) -> np.ndarray:
    """A (3,height,width) float32 crop in [0, 1] starting at (top, left); the photo repeats
    (wraps around) where the crop runs past its edge, so any size can be asked for."""
    rgb = sample_rgb()
    rows = (top + np.arange(height)) % rgb.shape[0]
    cols = (left + np.arange(width)) % rgb.shape[1]
    crop = rgb[rows[:, None], cols[None, :]]
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255
