"""Where the time goes: named stage clocks that the engine ticks and a caller may collect.

The engine marks its stages (``model``: the runner on tiles, ``resize``: bicubic resizes,
``tile-measure``: the one-off tile speed measurement) with :func:`stage`. Nothing is recorded
unless a caller (a batch run with ``--profile``) opened :func:`collect` in the same thread, so
the clocks cost two ``perf_counter`` calls per stage and need no change to the ``Engine``
protocol or to ``Upscaler``. :class:`Profile` adds them up for a batch of files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_TIMES: ContextVar[dict[str, float] | None] = ContextVar("superres_stage_times", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent in the block to ``name`` in the collecting dict, if one is open."""
    times = _TIMES.get()
    if times is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0


@contextmanager
def collect(times: dict[str, float]) -> Iterator[dict[str, float]]:
    """Record this thread's (context's) stages into ``times`` within the block."""
    token = _TIMES.set(times)
    try:
        yield times
    finally:
        _TIMES.reset(token)


@dataclass
class Profile:
    """Where a batch's wall time went (``superres upscale --profile``).

    ``read`` and ``write`` are the decode and encode+write work, which run beside the model when
    overlapped; ``read_wait`` and ``write_wait`` the part of it the model's thread waited for
    (all of it in a serial batch). :meth:`stages` adds up to ``total``.
    """

    overlapped: bool = True
    total: float = 0.0
    read: float = 0.0
    write: float = 0.0
    read_wait: float = 0.0
    write_wait: float = 0.0
    model: float = 0.0  # the runner on tiles
    resize: float = 0.0  # bicubic resizes (target scale, output_resize, bicubic alpha)
    measure: float = 0.0  # the one-off tile speed measurement (engine.tilespeed)
    engine: float = 0.0  # whole engine calls (model + resize + conversions)

    def add_engine(self, times: dict[str, float], busy: float) -> None:
        self.model += times.get("model", 0.0)
        self.resize += times.get("resize", 0.0)
        self.measure += times.get("tile-measure", 0.0)
        self.engine += busy

    def stages(self) -> dict[str, float]:
        """Seconds of the wall time by stage, adding up to ``total`` (``other``: the engine's
        conversions, alpha and bookkeeping)."""
        parts = {"read": self.read_wait, "model": self.model, "resize": self.resize,
                 "write": self.write_wait, "tile-measure": self.measure}
        parts["other"] = max(0.0, self.total - sum(parts.values()))
        return parts

    def summary(self) -> str:
        """Two lines for a person: the shares of the wall time, then what overlap hid."""
        parts = ", ".join(f"{k} {v:.2f} s ({100 * v / max(self.total, 1e-9):.0f}%)"
                          for k, v in self.stages().items() if v > 0 or k != "tile-measure")
        text = f"profile: {self.total:.2f} s: {parts}"
        if self.overlapped:
            text += (f"\n  read {self.read:.2f} s and write {self.write:.2f} s ran beside the model; "
                     f"it waited {self.read_wait:.2f} s for reads and {self.write_wait:.2f} s for writes")
        return text
