"""Tile size for speed: measured once per runner, device, precision, model and threads, cached.

Why: on a CPU the network's speed depends on the tile. The compact model (realesr-animevideov3)
runs at ~169 GFLOP/s on 256-px tiles but ~99 GFLOP/s on 512-px ones (its activations stop
fitting in the caches), so a 1080p -> 8K upscale took 53 s with the old memory-only choice (512)
and 34 s with 192. The best size differs per runner (PyTorch, OpenVINO, ncnn), device, thread
count and model width, so it is measured instead of guessed.

How: each candidate core tile ``t`` is timed once as one window of ``t + 2*pad`` (what the
engine really runs: every tile also computes its context), smallest first, after one untimed
warm-up; windows are measured while the predicted work (the model's MFLOP per pixel times the
window's pixels) stays within a budget, so the measurement costs about the same on any model
(~2-3 s on a 2-core AVX2 CPU) and a model too heavy for even the smallest window is not
measured at all. On a busy or slow machine measuring stops after ~8 s; the larger windows it did
not reach are then assumed as fast per pixel as the largest measured one (which favours them,
as the old policy did) and the profile is not cached. For an image, the chosen tile minimises
the predicted time of all its windows (so the overlap waste of small tiles counts), within the
memory bound. Complete results are cached as JSON under ``cache_dir()/tiles``, keyed by
everything that changes speed.
This is for CPU runners; GPUs keep the memory bound (larger tiles are faster there).

``SUPERRES_TILE_MEASURE=0`` turns measuring off: then :data:`DEFAULT_TILE` (a cache-friendly
256), still within the memory bound. A model too heavy to measure within the budget (x4plus:
one 160-px window is ~0.9 TFLOP) keeps the memory bound, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superres.engine import timing
from superres.engine.runners import Runner
from superres.engine.tiling import round_up

ENV_MEASURE = "SUPERRES_TILE_MEASURE"
# Core tile sides tried on CPUs, smallest first: around the cache sizes.
CPU_CANDIDATES = (96, 128, 192, 256, 384, 512)
# Tile when measuring is off (or impossible): 256 px ran the compact model fastest per pixel
# on the 2-core AVX2 box (issue 18); only used where the memory bound allows it.
DEFAULT_TILE = 256
# Work budget of one measurement, GFLOP (the model's MFLOP/px x window pixels, summed): on the
# compact model it covers cores 96..384 (~450 GFLOP, ~3 s at 150 GFLOP/s).
CPU_BUDGET_GFLOP = 450.0
TIME_CAP_S = 8.0  # stop early on a machine far slower than the budget assumes (or a busy one)
FORMAT = 1  # cache file layout; bump to invalidate old entries


def measuring_enabled() -> bool:
    """False when ``$SUPERRES_TILE_MEASURE`` is 0/false/no/off."""
    return os.environ.get(ENV_MEASURE, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class SpeedProfile:
    """Seconds for one square window, by window side; what the tile choice is made from."""

    pad: int
    multiple: int = 1
    seconds: dict[int, float] = field(default_factory=dict)  # window side -> seconds per window
    measured_s: float = 0.0  # what measuring cost (0 for an injected or cached profile)
    # window sides meant to be measured; those past the time cap are left out of ``seconds``
    planned: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return set(self.planned) <= set(self.seconds)

    def tiles(self) -> list[int]:
        """Core tile sides to choose from (window minus the context): the measured ones and the
        planned ones a busy machine did not get to, which are assumed to run at the largest
        measured window's speed per pixel (so, as before this module, the larger the better)."""
        sides = {*self.seconds, *self.planned}
        return sorted(side - 2 * self.pad for side in sides if side - 2 * self.pad > 0)

    def per_pixel(self, pixels: float) -> float:
        """Seconds per window pixel for a window of ``pixels``: log-log interpolation between the
        measured windows, flat outside them (the choice never goes outside anyway)."""
        points = sorted((s * s, t / (s * s)) for s, t in self.seconds.items())
        if not points:
            raise ValueError("empty speed profile")
        if pixels <= points[0][0]:
            return points[0][1]
        for (p0, c0), (p1, c1) in itertools.pairwise(points):
            if pixels <= p1:
                f = math.log(pixels / p0) / math.log(p1 / p0)
                return math.exp(math.log(c0) + f * (math.log(c1) - math.log(c0)))
        return points[-1][1]

    def image_seconds(self, height: int, width: int, tile: int) -> float:
        """Predicted runner time for an image cut into ``tile`` cores (windows clipped to the image)."""
        wh, ww = min(height, tile + 2 * self.pad), min(width, tile + 2 * self.pad)
        n = math.ceil(height / tile) * math.ceil(width / tile)
        return n * wh * ww * self.per_pixel(wh * ww)

    def to_json(self) -> dict[str, Any]:
        return {"pad": self.pad, "multiple": self.multiple,
                "seconds": {str(k): v for k, v in sorted(self.seconds.items())},
                "measured_s": self.measured_s, "planned": self.planned}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeedProfile:
        return cls(int(data["pad"]), int(data.get("multiple", 1)),
                   {int(k): float(v) for k, v in data["seconds"].items()}, float(data.get("measured_s", 0.0)),
                   [int(v) for v in data.get("planned", [])])


def choose_tile(profile: SpeedProfile, height: int, width: int, max_tile: int) -> int | None:
    """The measured core tile (<= ``max_tile``, the memory bound) with the least predicted time
    for this image; within 2% the larger wins (fewer seams). None when none was measured."""
    times = {tile: profile.image_seconds(height, width, tile) for tile in profile.tiles()
             if tile <= max_tile and tile % max(profile.multiple, 1) == 0}
    if not times:
        return None
    fastest = min(times.values())
    return max(tile for tile, t in times.items() if t <= fastest * 1.02)


def _test_window(side: int) -> torch.Tensor:
    """A smooth deterministic texture (no denormals, no all-zero shortcuts) as (1,3,side,side)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    rgb = 0.5 + 0.4 * np.sin(np.stack([xx / 7.0, yy / 5.0, (xx + yy) / 11.0]))
    return torch.from_numpy(rgb.astype(np.float32))[None]


def windows_to_measure(candidates: tuple[int, ...], *, pad: int, multiple: int, max_tile: int,
                       mflop_per_pixel: float, budget_gflop: float) -> list[int]:
    """Window sides to time: candidates within the memory bound, smallest first, while the
    summed work stays within ``budget_gflop`` (none when the smallest alone is over it)."""
    sides: list[int] = []
    work = 0.0
    for tile in candidates:
        tile = round_up(tile, multiple)
        if tile > max_tile:
            break
        side = tile + 2 * pad
        cost = mflop_per_pixel * side * side / 1e3
        if work + cost > budget_gflop:
            break
        work += cost
        sides.append(side)
    return sides


def measure(runner: Runner, sides: list[int], *, pad: int, multiple: int,
            time_cap_s: float | None = None) -> SpeedProfile:
    """Time ``runner`` once on a window of each side (after a warm-up run on the smallest);
    past ``time_cap_s`` (default :data:`TIME_CAP_S`) the larger sides are left unmeasured."""
    cap = TIME_CAP_S if time_cap_s is None else time_cap_s
    start = time.perf_counter()
    profile = SpeedProfile(pad, multiple, planned=list(sides))
    if not sides:
        return profile
    runner.run(_test_window(sides[0]))  # first-call costs (allocation, kernel choice) not timed
    for side in sides:
        if profile.seconds:  # would this window end past the cap? (a busy or slow machine)
            last = max(profile.seconds)
            predicted = profile.seconds[last] * (side / last) ** 2
            if time.perf_counter() - start + predicted > cap:
                break
        x = _test_window(side)
        t0 = time.perf_counter()
        runner.run(x)
        profile.seconds[side] = time.perf_counter() - t0
    profile.measured_s = time.perf_counter() - start
    return profile


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runner_key(runner: Runner, model: Any, *, pad: int, multiple: int, sides: list[int]) -> dict[str, Any]:
    """Everything that changes the measured speed (and so must key the cache)."""
    threads = getattr(runner, "threads", None) or torch.get_num_threads()
    device = runner.device
    return {
        "format": FORMAT,
        "runner": getattr(runner, "name", None) or type(runner).__qualname__,
        "channels_last": getattr(runner, "channels_last", None),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpus": os.cpu_count(),
        "dtype": str(runner.dtype),
        "threads": int(threads),
        "arch": model.arch,
        "kwargs": {k: repr(v) for k, v in sorted(model.kwargs.items())},
        "luma": bool(model.luma_only),
        "pad": pad,
        "multiple": multiple,
        "windows": sides,
        "torch": torch.__version__,
    }


def cache_path(key: dict[str, Any]) -> Path:
    from superres.zoo.cache import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "tiles" / f"{key['arch']}-{digest}.json"


def load_cached(key: dict[str, Any]) -> SpeedProfile | None:
    """The cached profile for ``key``, or None (missing, unreadable, or another key's file)."""
    path = cache_path(key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != json.loads(json.dumps(key)):
            return None
        return SpeedProfile.from_json(data["profile"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(key: dict[str, Any], profile: SpeedProfile) -> None:
    """Write the profile atomically; a read-only cache only costs a measurement next time."""
    from superres.io.atomic import atomic_write_text

    with contextlib.suppress(OSError):
        atomic_write_text(cache_path(key), json.dumps({"key": key, "profile": profile.to_json()}, indent=1))


def profile_for(runner: Runner, model: Any, *, pad: int, multiple: int, max_tile: int) -> SpeedProfile | None:
    """The speed profile for this runner and model: cached, else measured now (and cached).

    None when measuring is off or the model is too heavy to measure within the budget.
    """
    if not measuring_enabled():
        return None
    mflop = float(model.spec.mflop_per_input_pixel(**model.kwargs))
    sides = windows_to_measure(CPU_CANDIDATES, pad=pad, multiple=multiple, max_tile=max_tile,
                               mflop_per_pixel=mflop, budget_gflop=CPU_BUDGET_GFLOP)
    if len(sides) < 2:  # nothing to compare
        return None
    key = runner_key(runner, model, pad=pad, multiple=multiple, sides=sides)
    cached = load_cached(key)
    if cached is not None:
        return cached
    with timing.stage("tile-measure"):
        profile = measure(runner, sides, pad=pad, multiple=multiple)
    if profile.complete:  # one cut short by a busy machine serves this process only
        store(key, profile)
    return profile
