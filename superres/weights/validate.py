"""Check a state dict against the module it is meant for, before that module really exists.

The hyper-parameters of a user file come from its header (``superres.kwargs``) or from its
key names (a detector counts ``body.N`` blocks), so a 2 KB file can ask for an RRDBNet of 20000
blocks. :func:`meta_build` builds the module on the ``meta`` device (shapes only, no memory) and
stops it as soon as it registers more parameters, buffers or sub-modules than the tensors
present could fill; :func:`compare_with_module` then requires the same shapes and kinds of dtype
for the keys both have; :func:`check_values` refuses NaN/inf, integer or boolean weights and
absurd magnitudes, which would otherwise give black, white or garbage images with exit 0.
Architecture-agnostic: the caller passes a zero-argument builder.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as nn_module

from superres.weights.errors import ModelFileError
from superres.weights.limits import WeightLimits

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Registrations (parameters + buffers + sub-modules) allowed per tensor in the file, plus a
# constant: every architecture here registers fewer than 3 per state-dict entry.
REGISTRATIONS_PER_TENSOR = 8
REGISTRATIONS_EXTRA = 256


class _TooBig(Exception):
    """Raised from the registration hooks to stop a build that outgrows the file."""


class _Budget(threading.local):
    """What the build running in this thread may still register (hooks are process-global)."""

    active = False
    registrations = 0
    elements = 0
    max_registrations = 0
    max_elements = 0


_budget = _Budget()


def _count(elements: int) -> None:
    b = _budget
    if not b.active:
        return
    b.registrations += 1
    b.elements += elements
    if b.registrations > b.max_registrations or b.elements > b.max_elements:
        raise _TooBig()


def _on_parameter(module: nn.Module, name: str, param: Any) -> None:
    _count(param.numel() if isinstance(param, torch.Tensor) else 0)


def _on_buffer(module: nn.Module, name: str, buffer: Any) -> None:
    _count(buffer.numel() if isinstance(buffer, torch.Tensor) else 0)


def _on_module(module: nn.Module, name: str, submodule: Any) -> None:
    _count(0)


def meta_build(build: Callable[[], nn.Module], state_dict: dict[str, torch.Tensor], where: str,
               what: str) -> nn.Module:
    """``build()`` on the meta device, refused once it outgrows the tensors of ``state_dict``.

    Cost is bounded by the file: a build may register at most ``REGISTRATIONS_PER_TENSOR`` things
    per tensor present and twice their elements, so a header asking for millions of blocks fails
    after a few hundred registrations instead of minutes of work and gigabytes.
    """
    total = sum(int(t.numel()) for t in state_dict.values())
    b = _budget
    b.registrations, b.elements = 0, 0
    b.max_registrations = REGISTRATIONS_PER_TENSOR * len(state_dict) + REGISTRATIONS_EXTRA
    b.max_elements = 2 * total + 4096
    _install_hooks()
    b.active = True
    try:
        with torch.device("meta"):
            return build()
    except _TooBig:
        raise ModelFileError(
            f"{where}: {what} is larger than the {len(state_dict)} tensors ({total} values) in the "
            f"file: the recorded hyper-parameters do not match the weights") from None
    except ModelFileError:
        raise
    except Exception as exc:  # a constructor refusing its kwargs raises anything
        raise ModelFileError(f"{where}: cannot build {what}: {type(exc).__name__}: {exc}") from None
    finally:
        b.active = False
        _remove_hooks()


_hooks_lock = threading.Lock()
_hooks: list[Any] = []
_hook_users = 0


def _install_hooks() -> None:
    """One set of global hooks however many threads build at once (each counts its own budget)."""
    global _hook_users
    with _hooks_lock:
        if _hook_users == 0:
            _hooks[:] = [
                nn_module.register_module_parameter_registration_hook(_on_parameter),
                nn_module.register_module_buffer_registration_hook(_on_buffer),
                nn_module.register_module_module_registration_hook(_on_module),
            ]
        _hook_users += 1


def _remove_hooks() -> None:
    global _hook_users
    with _hooks_lock:
        _hook_users -= 1
        if _hook_users == 0:
            for handle in _hooks:
                handle.remove()
            _hooks.clear()


def compare_with_module(module: nn.Module, state_dict: dict[str, torch.Tensor], where: str,
                        what: str) -> None:
    """The tensors ``module`` also has: same shapes, same kind of dtype (float / integer).

    Missing and unexpected keys are left to the real, strict ``load_state_dict``: families accept
    some foreign keys there (SwinIR's ``attn_mask``, SPAN's ``no_norm``) and rebuild others. The
    real build is affordable by then, since :func:`meta_build` bounded it by the file's tensors.
    """
    for key, want in module.state_dict().items():
        got = state_dict.get(key)
        if got is None:
            continue
        if tuple(got.shape) != tuple(want.shape):
            raise ModelFileError(f"{where}: tensors do not fit {what}: {key!r} has shape "
                                 f"{tuple(got.shape)}, the model needs {tuple(want.shape)}")
        if want.is_floating_point() and got.dtype not in FLOAT_DTYPES:
            raise ModelFileError(f"{where}: tensor {key!r} is {_dtype(got)}; weights must be float16, "
                                 f"bfloat16, float32 or float64")
        if not want.is_floating_point() and (got.is_floating_point() or got.is_complex()
                                             or got.dtype == torch.bool):
            raise ModelFileError(f"{where}: tensor {key!r} is {_dtype(got)}; the model keeps an "
                                 f"integer {_dtype(want)} buffer there")


def check_values(state_dict: dict[str, torch.Tensor], where: str, limits: WeightLimits,
                 integer_keys: frozenset[str] = frozenset()) -> None:
    """Every tensor dense on the CPU; float ones finite and within ``limits.max_weight_abs``;
    integer ones only under ``integer_keys`` (buffers the architecture computes itself)."""
    for key, t in state_dict.items():
        if t.layout != torch.strided or t.device.type != "cpu" or t.is_quantized:
            raise ModelFileError(f"{where}: tensor {key!r} is not a plain dense CPU tensor "
                                 f"({t.layout}, {t.device.type}{', quantized' if t.is_quantized else ''})")
        if t.dtype not in FLOAT_DTYPES:
            if key in integer_keys and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
                continue
            raise ModelFileError(f"{where}: tensor {key!r} is {_dtype(t)}; weights must be float16, "
                                 f"bfloat16, float32 or float64")
        if t.numel() == 0:
            continue
        peak = float(t.detach().abs().max())  # NaN propagates through max; faster than aminmax
        if not math.isfinite(peak):
            what = "NaN" if bool(torch.isnan(t).any()) else "infinite"
            raise ModelFileError(f"{where}: tensor {key!r} holds {what} values (a corrupt or "
                                 f"diverged model); refusing it")
        if peak > limits.max_weight_abs:
            raise ModelFileError(
                f"{where}: tensor {key!r} holds |w| = {peak:.4g}, over the limit of "
                f"{limits.max_weight_abs:g} for a real model (SUPERRES_MAX_WEIGHT_ABS)")


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")
