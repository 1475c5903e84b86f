"""Tile size for speed (engine.tilespeed) and the overlapped, profiled batch (issue 18, item 4).

Small real models (fsrcnn/espcn, ~0.03 MFLOP per pixel) keep measuring cheap; no timing is
asserted, only what is chosen from a profile, that a measurement is cached and reused, that the
memory bound and an explicit tile win, and that overlap changes no output byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from superres import batch
from superres.api import Upscaler
from superres.engine import tilespeed
from superres.engine.runners import TorchRunner
from superres.engine.tilespeed import SpeedProfile, choose_tile
from superres.engine.upscaler import TileSettings, UpscaleEngine
from superres.io import write_image
from superres.zoo.loader import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingRunner:
    """A real TorchRunner that counts its calls (to see whether a measurement happened)."""

    def __init__(self, inner: TorchRunner) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner.run(x)


def counting_engine(name: str = "espcn-x2", **tiles: int) -> tuple[UpscaleEngine, CountingRunner]:
    plain = UpscaleEngine(load_model(name), device="cpu", tiles=TileSettings(**tiles))
    runner = CountingRunner(plain.runner)  # type: ignore[arg-type]
    return UpscaleEngine(plain.model, runner=runner, tiles=TileSettings(**tiles)), runner


def profile(pad: int, per_pixel: dict[int, float]) -> SpeedProfile:
    """A profile with the given seconds per window pixel, by core tile."""
    return SpeedProfile(pad, 1, {t + 2 * pad: c * (t + 2 * pad) ** 2 for t, c in per_pixel.items()})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(tilespeed.ENV_MEASURE, raising=False)
    return tmp_path / "cache" / "tiles"


def test_choice_counts_the_overlap_and_the_measured_speed() -> None:
    # the same speed per pixel everywhere: the largest tile wastes least on context
    flat = profile(18, {96: 1.0, 192: 1.0, 384: 1.0})
    assert choose_tile(flat, 1080, 1920, max_tile=512) == 384
    # caches: per-pixel cost rising past 256 (the compact model on a 2-core CPU) -> 256
    cachey = profile(18, {96: 1.4, 128: 1.2, 192: 1.0, 256: 0.95, 384: 1.3, 512: 1.6})
    assert choose_tile(cachey, 2048, 2048, max_tile=512) == 256
    # ... but the whole image counts: 1080 rows cut into 256s need 5 windows (the last mostly
    # context), into 192s 6 rows of cheaper ones: 192 is less time in all
    assert choose_tile(cachey, 1080, 1920, max_tile=512) == 192
    # the memory bound caps the choice; none measured under it -> None (the engine's fallback)
    assert choose_tile(cachey, 2048, 2048, max_tile=200) == 192
    assert choose_tile(cachey, 2048, 2048, max_tile=64) is None
    # overlap at a big pad (x4plus blends 32 px) favours big tiles at equal per-pixel speed
    assert choose_tile(profile(32, {128: 1.0, 256: 1.05, 512: 1.1}), 2000, 2000, max_tile=512) == 512


def test_measurement_is_cached_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tilespeed, "TIME_CAP_S", 600.0)  # a busy machine must not cut it short
    engine, runner = counting_engine()
    tile = engine.tile_for(1080, 1920)
    assert runner.calls > 2  # warm-up + one per window
    files = list(cache.glob("espcn-*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["key"]["runner"] == "CountingRunner" and stored["key"]["threads"] == 1
    measured = {int(k) for k in stored["profile"]["seconds"]}
    assert measured == {t + 2 * engine.pad for t in tilespeed.CPU_CANDIDATES}  # tiny model: all fit
    assert tile in {s - 2 * engine.pad for s in measured}
    assert tile == choose_tile(engine.speed, 1080, 1920, engine.memory_tile(1080, 1920))  # type: ignore[arg-type]
    # a second engine (a new process, in effect) reads the cache: no run at all
    again, runner2 = counting_engine()
    assert again.tile_for(1080, 1920) == tile and runner2.calls == 0
    assert again.speed is not None and again.speed.seconds == engine.speed.seconds  # type: ignore[union-attr]
    # another thread count is another key: measured afresh
    torch.set_num_threads(2)
    try:
        third, runner3 = counting_engine()
        third.tile_for(1080, 1920)
    finally:
        torch.set_num_threads(1)
    assert runner3.calls > 0 and len(list(cache.glob("espcn-*.json"))) == 2


def test_a_measurement_cut_short_is_used_but_not_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tilespeed, "TIME_CAP_S", 0.0)  # a very busy machine: one window only
    engine, runner = counting_engine()
    tile = engine.tile_for(1080, 1920)
    prof = engine.speed
    assert prof is not None and not prof.complete and len(prof.seconds) == 1 and runner.calls == 2
    # the sizes not reached count as fast per pixel as the measured one: big tiles (less overlap)
    assert tile == choose_tile(prof, 1080, 1920, engine.memory_tile(1080, 1920)) and tile >= 384
    assert not cache.exists()
    monkeypatch.setattr(tilespeed, "TIME_CAP_S", 600.0)
    again, runner2 = counting_engine()
    again.tile_for(1080, 1920)
    assert runner2.calls > 2 and again.speed is not None and again.speed.complete
    assert len(list(cache.glob("*.json"))) == 1


def test_memory_bound_explicit_tile_small_images_and_switch_off(cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fast_big = profile(4, {96: 3.0, 128: 2.0, 192: 1.5, 256: 1.2, 384: 1.0, 512: 0.5})
    engine, runner = counting_engine()
    engine.speed = fast_big  # injected: no measurement
    assert engine.tile_for(2000, 3000) == 512
    # little free memory: the memory bound (here < 512) wins over the fastest size
    monkeypatch.setattr("superres.engine.upscaler.available_memory", lambda _dev: 40_000_000)
    mem = engine.memory_tile(2000, 3000)
    assert mem < 512 and engine.tile_for(2000, 3000) <= mem
    monkeypatch.undo()
    monkeypatch.setenv("SUPERRES_CACHE", str(cache.parent))
    # an image that fits in one memory-bound tile runs whole, as always (exact, no overlap)
    assert engine.tile_for(300, 451) == 451
    # an explicit tile wins; 0 means no tiling
    explicit, r2 = counting_engine(tile=100)
    assert explicit.tile_for(2000, 3000) == 100 and r2.calls == 0
    assert counting_engine(tile=0)[0].tile_for(2000, 3000) == 3000
    # measuring switched off: the documented default, and nothing is run or cached
    monkeypatch.setenv(tilespeed.ENV_MEASURE, "0")
    off, r3 = counting_engine()
    assert off.tile_for(2000, 3000) == tilespeed.DEFAULT_TILE and r3.calls == 0
    assert runner.calls == 0 and not cache.exists()


def test_a_model_too_heavy_to_measure_is_not_measured(cache: Path) -> None:
    model = load_model("realesrgan-x4plus")
    assert tilespeed.windows_to_measure(tilespeed.CPU_CANDIDATES, pad=32, multiple=1, max_tile=512,
                                        mflop_per_pixel=model.spec.mflop_per_input_pixel(**model.kwargs),
                                        budget_gflop=tilespeed.CPU_BUDGET_GFLOP) == []
    engine = UpscaleEngine(model, device="cpu")
    assert engine.tile_for(2000, 3000) == engine.memory_tile(2000, 3000)  # as before issue 18
    assert engine.speed is None and not cache.exists()
    sides = tilespeed.windows_to_measure(tilespeed.CPU_CANDIDATES, pad=18, multiple=1, max_tile=512,
                                         mflop_per_pixel=1.2384, budget_gflop=tilespeed.CPU_BUDGET_GFLOP)
    assert sides == [t + 36 for t in (96, 128, 192, 256, 384)]  # the compact model: up to 384


def _images(folder: Path) -> list[Path]:
    """Several small inputs (RGB, gray, RGBA, 16-bit) with a broken file in the middle."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    paths = []
    for i, (shape, dtype) in enumerate([((37, 53, 3), np.uint8), ((40, 31), np.uint8),
                                        ((29, 44, 4), np.uint8), ((33, 35, 3), np.uint16)]):
        hi = 65535 if dtype == np.uint16 else 255
        path = folder / f"img{i}.png"
        write_image(path, rng.integers(0, hi, size=shape, endpoint=True).astype(dtype))
        paths.append(path)
    bad = folder / "img1b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    return sorted([*paths, bad])


def test_overlapped_batch_writes_the_same_bytes_and_profiles(tmp_path: Path) -> None:
    inputs = _images(tmp_path / "in")
    up = Upscaler(3, model="fsrcnn-x2", device="cpu")  # x3 with a x2 model: a resize stage too
    runs = {}
    for overlap in (False, True):
        out = tmp_path / f"out-{overlap}"
        jobs = batch.collect([tmp_path / "in"], out=out)
        opts = batch.plan([tmp_path / "in"], jobs, out)
        order: list[str] = []
        res = batch.run(jobs, up, opts, overlap=overlap,
                        on_start=lambda j, order=order: order.append(f"start {j.src.name}"),
                        on_file=lambda r, order=order: order.append(f"done {r.src.name}"))
        runs[overlap] = (res, out, order)
    (serial, out_s, order_s), (over, out_o, order_o) = runs[False], runs[True]
    summary = [[(f.src, f.status, f.error) for f in r.files] for r in (serial, over)]
    assert summary[0] == summary[1]
    assert [f.src for f in over.files] == inputs  # results in input order
    assert [f.status for f in over.files] == ["written", "written", "failed", "written", "written"]
    assert "img1b.png" in (over.files[2].error or "")
    written = sorted(p.name for p in out_s.iterdir())
    assert written == sorted(p.name for p in out_o.iterdir()) and len(written) == 4
    for name in written:
        assert (out_s / name).read_bytes() == (out_o / name).read_bytes(), name
    # every start and every result reported once, results in order (overlap may report a file
    # after the next one started)
    assert order_s == [f"{k} {p.name}" for p in inputs for k in ("start", "done")]
    assert [e for e in order_o if e.startswith("done")] == [e for e in order_s if e.startswith("done")]
    for res in (serial, over):
        prof = res.profile
        assert prof is not None and prof.total == pytest.approx(res.seconds)
        stages = prof.stages()
        assert all(stages[k] > 0 for k in ("read", "model", "resize", "write")), stages
        assert sum(stages.values()) == pytest.approx(prof.total, rel=0.02)
        assert prof.read > 0 and prof.write > 0 and prof.model + prof.resize <= prof.engine
        assert "model" in prof.summary()
    # serial: the model's thread waited for all reading and writing
    assert serial.profile.read_wait == pytest.approx(serial.profile.read, rel=0.1, abs=1e-3)  # type: ignore[union-attr]
    assert all(f.timings["read"] > 0 and f.timings["write"] > 0 for f in over.files if f.status == "written")


def test_upscale_profile_flag_prints_the_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from superres.cli.main import main

    inputs = _images(tmp_path / "in")
    code = main(["upscale", str(inputs[0]), "-o", str(tmp_path / "out"), "--model", "espcn-x2", "--profile"])
    assert code == 0
    text = capsys.readouterr().out
    assert "profile:" in text and all(f"{k} " in text for k in ("read", "model", "resize", "write", "other"))
