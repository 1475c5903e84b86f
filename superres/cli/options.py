"""The engine options of ``upscale``, ``video`` and ``eval``, declared once.

Each option's flags, type, default and usual help live in ``ENGINE_OPTIONS``; a command adds
the ones it takes, in its own order, and passes the bits where its wording or default
differs (e.g. ``eval`` defaults to fp32, ``video``'s ``--batch`` batches frames).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any

from superres.runtimes import BACKENDS, PRECISIONS
from superres.zoo import DEFAULT_MODEL


def bounded(kind: type[int] | type[float], low: float | None = None, high: float | None = None, *,
            above: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses ``kind`` and checks its range, so a bad number is an
    argument error (exit 2, the allowed range named) instead of a traceback or a silent default.

    ``low``/``high`` are inclusive bounds, ``above`` an exclusive lower bound; floats must be finite.
    """
    noun = "a whole number" if kind is int else "a finite number"
    if low is not None and high is not None:
        allowed = f"{noun} from {low:g} to {high:g}"
    else:
        bounds = ((">", above), (">=", low), ("<=", high))
        allowed = " and ".join(f"{op} {v:g}" for op, v in bounds if v is not None)
        allowed = f"{noun} {allowed}".strip()

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be {allowed}") from None
        bad = (isinstance(value, float) and not math.isfinite(value)) \
            or (above is not None and not value > above) \
            or (low is not None and value < low) or (high is not None and value > high)
        if bad:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be {allowed}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in some messages
    return convert


positive_int = bounded(int, 1)
non_negative_int = bounded(int, 0)
positive_float = bounded(float, above=0)

ENGINE_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "model": (("-m", "--model"), dict(
        default=DEFAULT_MODEL, metavar="NAME|PATH",
        help="zoo model name (see `superres models`) or a .pth/.pt/.safetensors file "
             "(default: %(default)s)")),
    "model_scale": (("--model-scale",), dict(
        type=positive_int, default=None, metavar="N",
        help="the factor of a weight file whose tensors do not record it (SRCNN/FSRCNN .pth); wins over "
             "an xN in the file name, checked against a recorded factor")),
    "scale": (("-s", "--scale"), dict(
        type=positive_float, default=None,
        help="output scale, any value (default: the model's own); model pass(es), then a high-quality "
             "resize")),
    "tile": (("-t", "--tile"), dict(
        type=non_negative_int, default=None,
        help="tile size in input pixels; 0 = no tiling (default: from free memory)")),
    "tile_pad": (("--tile-pad",), dict(
        type=non_negative_int, default=None,
        help="context pixels around each tile (default: the receptive field where finite, else 32)")),
    "batch": (("--batch",), dict(type=positive_int, default=1, help="tiles per forward pass (default: 1)")),
    "device": (("--device",), dict(default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")),
    "precision": (("--precision",), dict(
        choices=PRECISIONS, default="auto",
        help="auto = fp32 on CPU, fp16 on GPU; int8 needs --backend openvino (default: auto)")),
    "backend": (("--backend",), dict(
        choices=BACKENDS, default="torch",
        help="runtime that runs the network: torch, openvino, onnxruntime, ncnn (the carrier's own "
             "files), tensorrt, or auto = the fastest installed, measured once and cached "
             "(default: torch; see docs/runtimes.md)")),
    "threads": (("--threads",), dict(type=positive_int, default=None,
                                     help="CPU threads for PyTorch and the other backends")),
    "compile": (("--compile",), dict(
        action="store_true", help="torch backend: torch.compile the network (slow first call; docs/gpu.md)")),
    "cuda_graphs": (("--cuda-graphs",), dict(
        action="store_true", help="torch backend on CUDA: replay a CUDA graph per tile shape (docs/gpu.md)")),
}


def add_engine_options(parser: argparse.ArgumentParser, names: Sequence[str] = tuple(ENGINE_OPTIONS),
                       **overrides: dict[str, Any]) -> None:
    """Add the engine options ``names``, in that order; ``overrides[name]`` replaces argparse
    keywords of that option (help, default, action, ...) for this command."""
    unknown = set(names) - set(ENGINE_OPTIONS) | set(overrides) - set(names)
    if unknown:
        raise ValueError(f"unknown or unused engine options: {sorted(unknown)}")
    for name in names:
        flags, kwargs = ENGINE_OPTIONS[name]
        parser.add_argument(*flags, **{**kwargs, **overrides.get(name, {})})


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Upscaler`` keywords among the parsed engine options that the command has."""
    keys = ("device", "precision", "tile", "tile_pad", "batch", "model_scale", "backend", "threads",
            "compile", "cuda_graphs")
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}


def apply_threads(args: argparse.Namespace) -> None:
    """``--threads N``: PyTorch's CPU thread count (left alone when not given)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
