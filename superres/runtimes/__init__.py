"""Runners on other backends behind the engine's ``Runner`` contract, and ``auto``.

The engine keeps tiling, alpha, passes and resizing; a runner only runs a batch of NCHW float32
tiles (``superres.engine.runners.Runner``) and also says what it is (``.name``, e.g.
"openvino-int8"). Each backend is an optional extra, imported only when asked for, so a missing
one costs nothing until it is chosen and then gives a :class:`BackendUnavailableError` that names
the extra to install. ``auto`` measures the installed backends once per model and machine and
caches the winner (:mod:`superres.runtimes.auto`). See docs/runtimes.md.
"""

from __future__ import annotations

import torch

from superres.engine.devices import PRECISIONS as ENGINE_PRECISIONS
from superres.engine.runners import Runner
from superres.runtimes.backends import build
from superres.runtimes.common import BackendUnavailableError
from superres.zoo.loader import LoadedModel

BACKENDS = ("auto", "torch", "torch-winograd", "openvino", "onnxruntime", "ncnn", "tensorrt")
# int8 is a runtime precision: only OpenVINO runs the quantised IR (superres.export.int8).
PRECISIONS = (*ENGINE_PRECISIONS, "int8")
INT8_BACKENDS = ("openvino",)

__all__ = ["BACKENDS", "PRECISIONS", "BackendUnavailableError", "check_backend", "make_runner"]


def check_backend(backend: str, precision: str = "auto") -> None:
    """ValueError for an unknown backend or precision, or int8 on a backend that cannot run it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and backend not in ("auto", *INT8_BACKENDS):
        raise ValueError(f"precision int8 runs only on the OpenVINO backend (--backend openvino, "
                         f"backend='openvino'), not on {backend}")


def make_runner(model: LoadedModel, backend: str = "auto", *, device: str | torch.device | None = "auto",
                precision: str = "auto", threads: int | None = None) -> Runner:
    """A runner for ``model`` on ``backend``; ``threads`` defaults to PyTorch's thread count.

    ``auto``: PyTorch on CUDA/MPS; on the CPU the fastest installed backend, measured once per
    (weights, device, precision, threads, versions) and cached; int8 means OpenVINO.
    Raises ValueError for bad names and BackendUnavailableError when the backend is not installed.
    """
    check_backend(backend, precision)
    threads = int(threads or torch.get_num_threads())
    if backend == "auto":
        if precision == "int8":
            backend = "openvino"
        else:
            from superres.runtimes.auto import choose

            backend, runner = choose(model, device=device, precision=precision, threads=threads)
            if runner is not None:  # built while measuring: not compiled twice
                return runner
    return build(model, backend, device=device, precision=precision, threads=threads)
