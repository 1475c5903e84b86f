"""Synthetic degradations that turn HR training crops into LR inputs.

Two degraders share one interface, ``degrader(hr_batch, rng) -> lr_batch`` on ``(N, 3, H, W)``
float tensors in [0, 1], with ``H`` and ``W`` multiples of ``scale``; the output is exactly
``(N, 3, H / scale, W / scale)``:

* :class:`BicubicDegradation`: the classic benchmark protocol, LR = MATLAB
  ``imresize(uint8 HR, 1/s, 'bicubic')`` as uint8 (bit-exact with :func:`superres.metrics.imresize`);
* :class:`RealESRGANDegradation`: the published two-stage "high-order" Real-ESRGAN model (blur,
  resize, Gaussian/Poisson noise, JPEG, twice, then resize + sinc filter and JPEG in random order),
  with the published defaults, every option overridable (e.g. from a YAML config).

:func:`build_degradation` makes either from a config dict.

The building blocks are public and pure: kernel generators (numpy, float32, sum 1) and batched
ops (torch, run on the tensor's device). **Randomness**: every random choice takes an explicit
``numpy.random.Generator``; nothing reads or advances global RNG state (``random``, ``np.random``,
``torch.manual_seed``). The same generator state therefore gives bit-identical output, in the main
process and in data-loader workers alike. For workers, derive one generator per worker and epoch,
e.g. ``np.random.default_rng([seed, epoch, worker_id])``. Where an integer is accepted instead of a
generator it is used as a seed (``np.random.default_rng(seed)``); ``None`` is refused.

Granularity follows the published GPU implementation: kernels, noise strength, gray-noise flags and
JPEG qualities are drawn per sample; the resize scale and mode, the noise type (Gaussian or
Poisson), whether the second blur happens and the order of the final step are drawn per batch.

Deliberate differences from the published code (none changes the distribution materially):
JPEG is a real libjpeg encode/decode (cv2, integer quality, 4:2:0) instead of the differentiable
DiffJPEG approximation; reflect padding works for any image size (the published ``filter2D`` needs
images larger than the kernel radius); resizes pass an explicit output size to ``F.interpolate``;
sharpening of the GT (USM) is a matter of the loss targets and is not done here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superres.train.degradations.degraders import (
    BicubicDegradation,
    Degradation,
    RealESRGANDegradation,
    RealESRGANOptions,
)
from superres.train.degradations.kernels import (
    KERNEL_TYPES,
    gaussian_kernel,
    generalized_gaussian_kernel,
    pad_kernel,
    plateau_kernel,
    pulse_kernel,
    random_kernel,
    sinc_kernel,
)
from superres.train.degradations.ops import (
    RESIZE_MODES,
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    jpeg,
    random_resize,
    sample_resize,
)

__all__ = [
    "DEGRADATION_TYPES",
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "BicubicDegradation",
    "Degradation",
    "RealESRGANDegradation",
    "RealESRGANOptions",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "build_degradation",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "jpeg",
    "pad_kernel",
    "plateau_kernel",
    "pulse_kernel",
    "random_kernel",
    "random_resize",
    "sample_resize",
    "sinc_kernel",
]


# ------------------------------------------------------------------------------------------------
# Factory
# ------------------------------------------------------------------------------------------------

DEGRADATION_TYPES = ("bicubic", "realesrgan")


def build_degradation(cfg: Mapping[str, Any], *, scale: int | None = None) -> Degradation:
    """A degrader from a config dict: ``{"type": "bicubic"}`` or ``{"type": "realesrgan", **options}``
    (options: :class:`RealESRGANOptions`, e.g. ``data.train.degradation`` of a training YAML).

    The scale comes from ``scale=`` (the experiment's top-level scale) or a ``scale`` key in ``cfg``;
    both given and different -> ValueError; neither -> 4. Unknown type or option -> ValueError
    listing the valid ones.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"degradation config must be a mapping, got {type(cfg).__name__}")
    options = dict(cfg)
    kind = options.pop("type", None)
    cfg_scale = options.pop("scale", None)
    if scale is not None and cfg_scale is not None and cfg_scale != scale:
        raise ValueError(f"degradation scale {cfg_scale!r} differs from the model scale {scale!r}")
    final_scale = scale if scale is not None else cfg_scale if cfg_scale is not None else 4
    if kind == "bicubic":
        whole = options.pop("whole_image", False)
        if not isinstance(whole, bool):
            raise ValueError(f"whole_image: expected true or false, got {whole!r}")
        if options:
            raise ValueError(
                f"unknown bicubic degradation option(s) {', '.join(map(repr, sorted(options)))}; "
                "valid: type, scale, whole_image"
            )
        return BicubicDegradation(final_scale)
    if kind == "realesrgan":
        return RealESRGANDegradation(final_scale, **options)
    raise ValueError(f"unknown degradation type {kind!r}; valid: {', '.join(DEGRADATION_TYPES)}")
