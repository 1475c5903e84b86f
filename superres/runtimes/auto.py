"""``--backend auto``: the fastest installed backend for this model on this machine, measured once.

On a CUDA/MPS device ``auto`` is PyTorch (the other backends run on the CPU here). On the CPU,
the candidates for fp32 are torch, torch-winograd (RRDBNet only), openvino, onnxruntime (when
installed) and ncnn (when the model comes from ncnn files). Each runs a fixed crop of the
bundled photo (128 px for compact models, smaller for heavy ones so a call stays near 24 GFLOP);
the candidates are timed round-robin (so a busy machine slows all of them alike) and the median
wins. A candidate whose
output differs from PyTorch's by more than ``GUARD`` on that probe is never chosen.

The decision is cached as JSON under ``cache_dir()/backends``, keyed by the weights' hash,
device, precision, threads, candidates and the superres/runtime versions; a second call (or
process) reads it instead of measuring.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from superres.engine.devices import resolve_device
from superres.io.atomic import atomic_write_text
from superres.runtimes.common import installed, probe_image
from superres.zoo.loader import LoadedModel

GUARD = 1e-3  # largest max |diff| vs PyTorch on the probe that auto accepts
PROBE_GFLOP = 24.0  # per probe call: 128 px for the compact model, 32 px for x4plus
PROBE_SIDES = (32, 128)
BUDGET_S = 2.0  # timed rounds stop once each candidate has had about this long
ROUNDS = 3
RUNTIMES_VERSION = "2"  # bump when a runner changes what it computes or how fast
_PACKAGES = ("superres", "torch", "openvino", "onnxruntime", "ncnn")


def cache_folder() -> Path:
    from superres.zoo.cache import cache_dir

    return cache_dir() / "backends"


def candidates(model: LoadedModel) -> list[str]:
    """The CPU fp32 backends installed for this model, torch first."""
    from superres.runtimes.ncnn import has_ncnn_files
    from superres.runtimes.pytorch import winograd_eligible

    found = ["torch"] + (["torch-winograd"] if winograd_eligible(model) else [])
    found += [b for b in ("openvino", "onnxruntime") if installed(b)]
    if has_ncnn_files(model) and installed("ncnn"):
        found.append("ncnn")
    return found


def probe_side(model: LoadedModel) -> int:
    """The probe's side: ~PROBE_GFLOP per call, within PROBE_SIDES, a multiple of the model's."""
    mflop = max(1e-3, float(model.spec.mflop_per_input_pixel(**model.kwargs)))
    side = int(math.sqrt(PROBE_GFLOP * 1e3 / mflop))
    side = min(PROBE_SIDES[1], max(PROBE_SIDES[0], side))
    m = model.size_multiple
    return max(m, side - side % m)


def _versions() -> dict[str, str]:
    found = {"runtimes": RUNTIMES_VERSION}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def cache_key(model: LoadedModel, device: str, precision: str, threads: int,
              names: list[str]) -> dict[str, Any]:
    """What the decision depends on (the cache file is named by its hash)."""
    from superres.zoo.cache import tensors_sha256

    return {"model": model.name, "weights": tensors_sha256(model.module.state_dict()), "arch": model.arch,
            "device": device, "precision": precision, "threads": int(threads), "candidates": names,
            "probe": probe_side(model), "versions": _versions()}


def cache_file(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_folder() / f"{digest}.json"


def read_decision(path: Path, names: list[str]) -> str | None:
    """The cached winner, or None for a missing, unreadable or stale file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    winner = data.get("backend") if isinstance(data, dict) else None
    return winner if winner in names else None


def measure(model: LoadedModel, names: list[str], threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the decision record, the built runners by backend): build each candidate, check it against
    PyTorch on the probe, time the ones that agree round-robin."""
    from superres.runtimes.backends import build

    x = probe_image(probe_side(model))
    runners: dict[str, Any] = {}
    diffs: dict[str, float] = {}
    setup: dict[str, float] = {}
    excluded: dict[str, str] = {}
    ref: torch.Tensor | None = None
    for name in names:
        t0 = time.perf_counter()
        try:
            runner = build(model, name, device="cpu", precision="fp32", threads=threads)
            y = runner.run(x)  # the warm-up call, also the agreement check
        except Exception as exc:  # a candidate that cannot build or run is left out, not fatal
            excluded[name] = f"{type(exc).__name__}: {exc}"
            continue
        setup[name] = time.perf_counter() - t0
        if ref is None:
            ref = y  # torch comes first
        diff = float((y - ref).abs().max()) if y.shape == ref.shape else math.inf
        diffs[name] = diff
        if diff > GUARD:
            excluded[name] = f"max |diff| vs torch {diff:.2e} > {GUARD:g}"
            continue
        runners[name] = runner
    times: dict[str, list[float]] = {n: [] for n in runners}
    start = time.perf_counter()
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            runner.run(x)
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - start > BUDGET_S * max(1, len(runners)):
            break
    medians = {n: statistics.median(t) for n, t in times.items() if t}
    winner = min(medians, key=medians.__getitem__) if medians else "torch"
    record = {"backend": winner, "seconds": medians, "setup_seconds": setup, "max_abs_diff": diffs,
              "excluded": excluded, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return record, runners


def choose(model: LoadedModel, *, device: str | torch.device | None = "auto", precision: str = "auto",
           threads: int = 1) -> tuple[str, Any | None]:
    """(the backend ``auto`` means here, its runner when one was built while measuring, else None)."""
    dev = resolve_device(device)
    if dev.type != "cpu" or precision not in ("auto", "fp32"):
        return "torch", None  # GPUs, and half precision, are PyTorch's
    names = candidates(model)
    if len(names) == 1:
        return names[0], None
    key = cache_key(model, "cpu", "fp32", threads, names)
    path = cache_file(key)
    cached = read_decision(path, names)
    if cached is not None:
        return cached, None
    record, runners = measure(model, names, threads)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, **record}, indent=2, sort_keys=True) + "\n")
    except OSError:  # a read-only cache still gets the measured choice, just not remembered
        pass
    return record["backend"], runners.get(record["backend"])
