"""superres against the ncnn runtime: same weights, same image, same thread count, one run.

The ncnn side runs the very ``.param``/``.bin`` files that superres converts its named models
from (found through the zoo's carrier lookup), on the ``ncnn`` Python runtime, CPU, fp32,
whole image. The superres side is the public API: ``superres.load(...)`` and then the model
part ``up.engine.upscale_rgb(tensor)`` (no file I/O), plus the full ``up.upscale(array)``.

Each superres configuration is timed interleaved with ncnn on the whole image (and on the
same tiles, for tiled rows): wait until the machine is quiet, one warm-up call of each, then
``--repeat`` rounds calling each in turn. Times are medians; the ratio is the median over
rounds of superres / ncnn, so a slow drift of the machine cancels out. A round during which
other processes used more than ``FOREIGN_LIMIT`` cores is thrown away and redone (``Quiet``).

    .venv/bin/python benchmarks/bench_upscale.py                  # default settings, ~1.5 min
    .venv/bin/python benchmarks/bench_upscale.py --sweep --json out/bench.json   # ~40 min

GFLOP/s counts the useful work only: the model's MFLOP per input pixel (convolutions,
``superres.zoo.catalogue``) times the image's pixels, so work repeated in tile overlaps
lowers the figure instead of inflating it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import superres
from superres.engine.tiling import iter_tiles
from superres.weights.carriers import find_carrier
from superres.zoo import catalogue

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "chelsea.png"
DEFAULT_MODELS = "realesrgan-x4plus,realesr-animevideov3"
PARTS = ("defaults", "knobs", "tiles", "scaling", "memory")
LOAD_LIMIT = 0.7  # 1-minute load average of *other* processes above which we wait
FOREIGN_LIMIT = 0.25  # cores used by other processes during a timed call before it is redone
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- a quiet machine ---------------------------------------------------------------------


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; steal counts as busy)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _own_seconds() -> float:
    """CPU seconds used by this process (every thread: torch's and ncnn's pools alike)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Quiet:
    """Waits for, and checks, a machine that nobody else is using.

    The 1-minute load average includes this benchmark's own threads, which would keep it
    above the limit right after every measurement. So the own share is estimated from this
    process's CPU time (the kernel's load average is an exponential average with a 60 s
    time constant) and subtracted: ``other load = loadavg - own``. Besides, the CPU time
    other processes used is measured directly over a short idle window before each
    measurement, and over each timed call (``foreign`` cores).
    """

    def __init__(self, max_wait: float, log: Callable[[str], None]) -> None:
        self.max_wait = max_wait
        self.log = log
        self.history: list[tuple[float, float, float]] = []  # (start, end, own cores)
        self._mark = (time.monotonic(), _own_seconds())
        self.waited = 0.0

    def _note_own(self) -> None:
        t0, c0 = self._mark
        t1, c1 = time.monotonic(), _own_seconds()
        if t1 > t0:
            self.history.append((t0, t1, (c1 - c0) / (t1 - t0)))
        self._mark = (t1, c1)

    def own_load(self) -> float:
        """This process's estimated share of the 1-minute load average."""
        self._note_own()
        now = time.monotonic()
        return sum(r * (math.exp(-(now - b) / 60) - math.exp(-(now - a) / 60)) for a, b, r in self.history)

    def foreign_now(self, window: float = 1.0) -> float:
        """Cores used by other processes over a ``window`` during which we sleep."""
        b0, s0, t0 = _busy_seconds(), _own_seconds(), time.monotonic()
        time.sleep(window)
        b1, s1, t1 = _busy_seconds(), _own_seconds(), time.monotonic()
        return max(0.0, (b1 - b0) - (s1 - s0)) / (t1 - t0)

    def wait(self, label: str) -> dict[str, float]:
        """Block until other load is low (at most ``max_wait`` s); print and return the state."""
        start = time.monotonic()
        while True:
            load1 = os.getloadavg()[0]
            own = self.own_load()
            foreign = self.foreign_now()
            other = max(0.0, load1 - own)
            quiet = other <= LOAD_LIMIT and foreign <= FOREIGN_LIMIT
            waited = time.monotonic() - start
            if quiet or waited >= self.max_wait:
                state = {"loadavg1": round(load1, 2), "own_load": round(own, 2),
                         "other_load": round(other, 2), "foreign_cores": round(foreign, 2),
                         "waited_s": round(waited, 1)}
                flag = "" if quiet else "  (NOT QUIET: gave up waiting)"
                self.log(f"    [{label}] loadavg {load1:.2f} (own ~{own:.2f}, other ~{other:.2f}), "
                         f"others now {foreign:.2f} cores, waited {waited:.0f} s{flag}")
                self.waited += waited
                return state
            time.sleep(4.0)


@dataclass
class Timing:
    times: list[float]  # one per round, in round order
    foreign: list[float]  # other processes' cores during each kept call
    redone: int = 0
    state: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def measure(fns: list[Callable[[], Any]], repeat: int, quiet: Quiet, label: str
            ) -> tuple[list[Timing], list[Any]]:
    """Warm each up once, then ``repeat`` rounds calling each in turn (interleaved, so slow
    drifts of the machine hit all alike); a round in which other processes were busy is redone.
    """
    state = quiet.wait(label)
    outs = [fn() for fn in fns]  # warm-up: weight reorders, oneDNN primitive caches, ncnn pipelines
    times: list[list[float]] = [[] for _ in fns]
    foreign: list[list[float]] = [[] for _ in fns]
    redone = 0
    while len(times[0]) < repeat:
        walls, others = [], []
        for i, fn in enumerate(fns):
            b0, s0, t0 = _busy_seconds(), _own_seconds(), time.perf_counter()
            outs[i] = fn()
            wall = time.perf_counter() - t0
            walls.append(wall)
            others.append(max(0.0, (_busy_seconds() - b0) - (_own_seconds() - s0)) / wall)
        # Jiffies are 10 ms: calls under ~0.5 s cannot resolve a small share; judge longer ones.
        busy = [f"{o:.2f} cores in a {w:.2f} s call" for o, w in zip(others, walls, strict=True)
                if o > FOREIGN_LIMIT and w > 0.5]
        if busy and redone < 3 * repeat:
            redone += 1
            quiet.log(f"    [{label}] others used {', '.join(busy)}: redo the round")
            quiet.wait(label)
            continue
        for i in range(len(fns)):
            times[i].append(walls[i])
            foreign[i].append(round(others[i], 2))
    return [Timing(times[i], foreign[i], redone, state) for i in range(len(fns))], outs


# ---- inputs -------------------------------------------------------------------------------


def test_image(size: int) -> np.ndarray:
    """A size x size RGB uint8 crop of the sample photo (bicubic-enlarged first if needed)."""
    img = Image.open(SAMPLE).convert("RGB")
    w, h = img.size
    if min(w, h) < size:
        f = size / min(w, h)
        img = img.resize((math.ceil(w * f), math.ceil(h * f)), Image.Resampling.BICUBIC)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def to_chw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


# ---- the ncnn runtime -----------------------------------------------------------------------


def model_files(name: str, tmp: Path) -> tuple[Path, Path]:
    """The .param/.bin the zoo converts ``name`` from (copied out when the carrier is a wheel)."""
    info = catalogue.get(name)
    src = find_carrier(info.carrier, info.param_file)
    if src is None:
        raise SystemExit(f"{name}: carrier {info.carrier.package} not found; cannot run ncnn on it")
    if src.location.is_dir():
        return src.location / info.param_file, src.location / info.bin_file
    out = []
    for fname in (info.param_file, info.bin_file):
        (tmp / fname).write_bytes(src.read(fname))
        out.append(tmp / fname)
    return out[0], out[1]


class NcnnRunner:
    """One ncnn.Net on CPU; ``__call__`` runs a CHW float32 image whole or in tiles."""

    def __init__(self, param: Path, binary: Path, threads: int, fp32: bool = True,
                 winograd: bool = True) -> None:
        import ncnn

        self.ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        opt.num_threads = threads
        if fp32:  # superres runs fp32 on CPU; on AVX2 ncnn's defaults compute the same (checked)
            opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False
        opt.use_winograd_convolution = winograd  # on by default; off to see what it buys ncnn
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binary)) != 0:
            raise SystemExit(f"ncnn could not load {param} / {binary}")

    def run(self, chw: np.ndarray) -> np.ndarray:
        # ncnn.Mat wraps the array's memory without copying: keep the array alive until extract.
        arr = np.ascontiguousarray(chw, dtype=np.float32)
        mat = self.ncnn.Mat(arr)
        ex = self.net.create_extractor()
        ex.input("data", mat)
        ret, out = ex.extract("output")
        del mat, arr
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed with {ret}")
        return np.array(out, dtype=np.float32, copy=True)

    def tiled(self, chw: np.ndarray, scale: int, tile: int, pad: int) -> np.ndarray:
        """The same tile plan as superres (same-size windows, cores kept), one tile at a time."""
        _, h, w = chw.shape
        out = np.empty((3, h * scale, w * scale), dtype=np.float32)
        for r, c in iter_tiles(h, w, tile, pad):
            y = self.run(chw[:, r.win0:r.win1, c.win0:c.win1])
            out[:, r.core0 * scale:r.core1 * scale, c.core0 * scale:c.core1 * scale] = y[
                :, (r.core0 - r.win0) * scale:(r.core1 - r.win0) * scale,
                (c.core0 - c.win0) * scale:(c.core1 - c.win0) * scale]
        return out


# ---- superres -------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def mkldnn_enabled(on: bool) -> Iterator[None]:
    with torch.backends.mkldnn.flags(enabled=on):
        yield


def jit_frozen(module: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """TorchScript trace + freeze + optimize_for_inference (oneDNN layouts, fused conv+act)."""
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


# ---- one model -----------------------------------------------------------------------------


@dataclass
class Result:
    model: str
    side: str  # "ncnn" or "superres"
    variant: str
    threads: int
    size: int
    tile: int  # core tile side actually used (== size: whole image)
    pad: int
    batch: int = 1
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    gflops: float = 0.0
    ncnn_variant: str = ""  # the ncnn run timed in the same rounds as this row
    ncnn_seconds: float | None = None
    ncnn_times: list[float] = field(default_factory=list)
    ratio: float | None = None  # median over rounds of this row / ncnn (> 1: this row slower)
    ratio_whole: float | None = None  # tiled rows: against ncnn on the whole image, same rounds
    max_abs_diff: float | None = None  # vs the ncnn whole-image output, both clamped to [0, 1]
    foreign_cores: list[float] = field(default_factory=list)
    redone: int = 0
    note: str = ""
    state: dict[str, float] = field(default_factory=dict)


class Case:
    """One model on one test image: its ncnn references and the cases run on it."""

    def __init__(self, bench: Bench, name: str, size: int) -> None:
        self.bench = bench
        self.args = bench.args
        self.name = name
        self.info = catalogue.get(name)
        self.size = size
        self.rgb = test_image(size)
        self.chw = to_chw(self.rgb)
        self.gflop = self.info.mflop_per_input_pixel * size * size / 1e3
        self.param, self.binary = model_files(name, bench.tmp)
        self.runners: dict[tuple[int, bool, bool], NcnnRunner] = {}
        self.done: dict[tuple[Any, ...], Result] = {}  # superres cases already measured
        self.ref_out: np.ndarray | None = None  # ncnn whole image, clamped to [0, 1]

    def _result(self, side: str, variant: str, threads: int, tile: int, pad: int, batch: int,
                timing: Timing, note: str = "") -> Result:
        return Result(self.name, side, variant, threads, self.size, tile, pad, batch,
                      seconds=timing.median, times=[round(t, 4) for t in timing.times],
                      gflops=self.gflop / timing.median, foreign_cores=timing.foreign,
                      redone=timing.redone, note=note, state=timing.state)

    def runner(self, threads: int, fp32: bool = True, winograd: bool = True) -> NcnnRunner:
        key = (threads, fp32, winograd)
        if key not in self.runners:
            self.runners[key] = NcnnRunner(self.param, self.binary, threads, fp32=fp32, winograd=winograd)
        return self.runners[key]

    def ncnn_fn(self, threads: int, tile: int = 0, pad: int = 0, fp32: bool = True, winograd: bool = True
                ) -> tuple[Callable[[], np.ndarray], str]:
        runner, x = self.runner(threads, fp32, winograd), self.chw
        if tile and tile < self.size:
            return (lambda: runner.tiled(x, self.info.scale, tile, pad)), f"tile {tile} pad {pad}"
        return (lambda: runner.run(x)), "whole image"

    def reference(self) -> np.ndarray:
        """ncnn's output on the whole image, clamped to [0, 1] like superres's."""
        if self.ref_out is None:
            fn, _ = self.ncnn_fn(self.args.threads)
            self.ref_out = np.clip(fn(), 0.0, 1.0)
        return self.ref_out

    def ncnn_options(self, threads: int) -> None:
        """ncnn with its own default options, and without Winograd convolutions, against the
        fp32 options used everywhere else (all three interleaved)."""
        fp32, _ = self.ncnn_fn(threads)
        default, _ = self.ncnn_fn(threads, fp32=False)
        direct, _ = self.ncnn_fn(threads, winograd=False)
        timings, outs = measure([fp32, default, direct], self.args.repeat, self.bench.quiet,
                                f"ncnn options t{threads}")
        tf = timings[0]
        for variant, tm, out in (("ncnn default options (fp16 flags on)", timings[1], outs[1]),
                                 ("ncnn fp32, Winograd off", timings[2], outs[2])):
            r = self._result("ncnn", variant, threads, self.size, 0, 1, tm)
            r.ncnn_variant, r.ncnn_seconds, r.ncnn_times = "whole image, fp32 options", tf.median, tf.times
            r.ratio = statistics.median(d / f for d, f in zip(tm.times, tf.times, strict=True))
            r.max_abs_diff = float(np.abs(np.clip(out, 0.0, 1.0) - self.reference()).max())
            self.bench.add(r)

    def superres(self, variant: str, threads: int, *, tile: int | None = None, pad: int | None = None,
                 batch: int = 1, channels_last: bool = True, mkldnn: bool = True,
                 transform: str | None = None, full: bool = False, ncnn_tiled: bool = False) -> None:
        """Time one superres configuration on this image, interleaved with ncnn on the whole
        image (and, with ``ncnn_tiled``, ncnn on the same tiles); once per configuration."""
        ref = self.reference()
        with torch_threads(threads), mkldnn_enabled(mkldnn):
            up = superres.load(self.name, device="cpu", tile=tile, tile_pad=pad, batch=batch,
                               channels_last=channels_last)
            eng = up.engine
            used_tile, used_pad = eng.tile_for(self.size, self.size), eng.pad
            if used_tile >= self.size:
                used_pad = 0
            key = (threads, used_tile, used_pad, batch, channels_last, mkldnn, transform, full)
            if key in self.done:
                old = self.done[key]
                self.bench.log(f"  superres {variant}: same as {old.variant!r} measured above")
                self.bench.add(old, record=False)
                return
            x = torch.from_numpy(self.chw.copy())
            note = ""
            if transform is not None:
                try:
                    t0 = time.perf_counter()
                    eng.runner.module = prepare(transform, eng.runner.module, x, used_tile, used_pad, batch)
                    note = f"{transform} prepared in {time.perf_counter() - t0:.1f} s"
                except Exception as exc:  # report and go on: these are optional extras
                    msg = str(exc).splitlines()[0][:200] if str(exc) else ""
                    self.bench.log(f"  superres {variant}: failed: {type(exc).__name__}: {msg}")
                    self.bench.results.append(Result(
                        self.name, "superres", variant, threads, self.size, used_tile, used_pad, batch,
                        note=f"failed: {type(exc).__name__}: {msg}"))
                    return
            fn = (lambda: up.upscale(self.rgb)) if full else (lambda: eng.upscale_rgb(x))
            whole, _ = self.ncnn_fn(threads)
            fns = [whole, fn]
            tiled = ncnn_tiled and used_tile < self.size
            if tiled:
                nt, nt_name = self.ncnn_fn(threads, used_tile, used_pad)
                fns.insert(1, nt)
            timings, outs = measure(fns, self.args.repeat, self.bench.quiet, f"superres {variant} t{threads}")
        tw, ts, out = timings[0], timings[-1], outs[-1]
        r = self._result("superres", variant, threads, used_tile, used_pad, batch, ts, note)
        if full:  # uint8 HWC out: compare with the ncnn output rounded the same way
            ncnn_u8 = np.rint(ref.transpose(1, 2, 0) * 255.0)
            r.max_abs_diff = float(np.abs(out.astype(np.float32) - ncnn_u8).max()) / 255.0
        else:
            r.max_abs_diff = float(np.abs(out.numpy() - ref).max())
        r.ncnn_variant, r.ncnn_seconds, r.ncnn_times = "whole image", tw.median, tw.times
        r.ratio = statistics.median(a / b for a, b in zip(ts.times, tw.times, strict=True))
        if tiled:
            t = self._result("ncnn", nt_name, threads, used_tile, used_pad, 1, timings[1],
                             "same tiles as the next superres row")
            t.ncnn_variant, t.ncnn_seconds, t.ncnn_times = "whole image", tw.median, tw.times
            t.ratio = statistics.median(a / b for a, b in zip(t.times, tw.times, strict=True))
            t.max_abs_diff = float(np.abs(np.clip(outs[1], 0.0, 1.0) - ref).max())
            self.bench.add(t)
            r.ratio_whole = r.ratio
            r.ncnn_variant, r.ncnn_seconds, r.ncnn_times = nt_name, t.seconds, t.times
            r.ratio = statistics.median(a / b for a, b in zip(ts.times, t.times, strict=True))
        self.done[key] = r
        self.bench.add(r)


class Bench:
    def __init__(self, args: argparse.Namespace, quiet: Quiet, tmp: Path) -> None:
        self.args = args
        self.quiet = quiet
        self.tmp = tmp
        self.results: list[Result] = []
        self.cases: dict[tuple[str, int], Case] = {}
        self.machine = machine()

    def case(self, name: str, size: int) -> Case:
        if (name, size) not in self.cases:
            self.cases[name, size] = Case(self, name, size)
        return self.cases[name, size]

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def save(self, **extra: Any) -> None:
        """Write everything so far to ``--json`` (after every row: an interrupted sweep keeps it)."""
        if not self.args.json:
            return
        self.args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": self.machine, "argv": sys.argv[1:], "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()
            if k not in ("json", "memory_child")},
            "results": [asdict(r) for r in self.results], **extra}
        self.args.json.write_text(json.dumps(payload, indent=1))

    def add(self, r: Result, record: bool = True) -> None:
        if record:
            self.results.append(r)
            self.save()
        diff = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else "   -   "
        spread = f"{min(r.times):.3f}-{max(r.times):.3f}"
        vs = ""
        if r.ratio is not None and r.ncnn_seconds is not None:
            vs = f" | {r.ratio:4.2f}x ncnn {r.ncnn_variant} ({r.ncnn_seconds:.3f} s)"
        if r.ratio_whole is not None:
            vs += f", {r.ratio_whole:4.2f}x ncnn whole image"
        self.log(f"  {r.side:8s} {r.variant:38s} t{r.threads} tile {r.tile:4d}/{r.pad:2d} b{r.batch} "
                 f"{r.seconds:8.3f} s ({spread}) {r.gflops:5.1f} GFLOP/s | diff {diff}{vs}"
                 + (f"  [{r.note}]" if r.note else ""))

    def header(self, im: Case, what: str) -> None:
        self.log(f"\n== {im.name}, {what}: {im.size}x{im.size} input, "
                 f"{im.info.mflop_per_input_pixel:.2f} MFLOP/px = {im.gflop:.1f} GFLOP per image")

    def defaults(self, name: str) -> None:
        t = self.args.threads
        im = self.case(name, self.args.size)
        self.header(im, "default settings")
        im.superres("default (upscale_rgb)", t)
        im.superres("default, full upscale(uint8 array)", t, full=True)

    def knobs(self, name: str) -> None:
        """Threads, memory layout, oneDNN, TorchScript, torch.compile; ncnn's own defaults."""
        args = self.args
        t = args.threads
        im = self.case(name, args.size)
        self.header(im, "sweep")
        other = [n for n in (1, 2) if n != t]
        for n in other:
            im.superres("default", n)
        im.superres("channels_last=False", t, channels_last=False)
        for n in other:
            im.superres("channels_last=False", n, channels_last=False)
        im.superres("oneDNN (mkldnn) disabled", t, mkldnn=False)
        im.superres("jit trace+freeze+optimize_for_inference", t, transform="jit")
        if args.compile:
            im.superres("torch.compile (inductor)", t, transform="compile")
        im.ncnn_options(t)

    def tiles(self, name: str) -> None:
        """Tile sizes and tile batching on a larger image, against ncnn on the same tiles."""
        args = self.args
        t = args.threads
        tiles = [v for v in args.tiles if v < args.tile_size]
        if not tiles:
            return
        tim = self.case(name, args.tile_size)
        self.header(tim, "tiles")
        tim.superres("whole image (tile 0)", t, tile=0)
        for tile in tiles:
            for b in args.batches if tile <= args.batch_max_tile else [1]:
                tim.superres(f"tile {tile}" + (f" batch {b}" if b > 1 else ""), t, tile=tile, batch=b,
                             ncnn_tiled=b == 1)
        if args.tile_size > 512:  # the engine's automatic CPU tile (capped at 512)
            tim.superres("auto tile", t)

    def scaling(self, name: str, sizes: list[int]) -> None:
        """Whole-image throughput against image size: does a bigger tile stay as fast?"""
        t = self.args.threads
        self.log(f"\n== {name}: whole-image throughput against size (threads {t})")
        limit = self.args.scaling_max_gflop
        for s in sizes:
            if catalogue.get(name).mflop_per_input_pixel * s * s / 1e3 > limit:
                self.log(f"  {s}x{s}: skipped, over --scaling-max-gflop {limit:g}")
                continue
            im = self.case(name, s)
            im.superres(f"whole image {s}x{s}", t, tile=0)
            if s > 512:  # the engine's automatic CPU tile is capped at 512: what does that cost?
                im.superres(f"auto tile {s}x{s}", t)


def prepare(kind: str, module: torch.nn.Module, x: torch.Tensor, tile: int, pad: int,
            batch: int) -> torch.nn.Module:
    """An optional compiled form of ``module`` for the sweep ("jit" or "compile")."""
    win = min(x.shape[1], tile + 2 * pad)
    example = torch.rand(batch, 3, win, win).contiguous(memory_format=torch.channels_last)
    if kind == "jit":
        return jit_frozen(module, example)
    if kind == "compile":
        compiled = torch.compile(module, dynamic=False)
        with torch.inference_mode():
            compiled(example)  # compile now, not inside the warm-up
        return compiled
    raise ValueError(kind)


# ---- memory ------------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def memory_child(name: str, size: int, tile: int, threads: int) -> None:
    """Run in a fresh process: peak RSS growth of one upscale_rgb, as JSON on stdout.

    ``getrusage().ru_maxrss`` is recorded too, but a child's starts at the parent's RSS at
    fork time (Linux keeps it across fork + exec), so the peak comes from the kernel's
    per-process high-water mark ``VmHWM``, reset after loading when the kernel allows.
    """
    torch.set_num_threads(threads)
    up = superres.load(name, device="cpu", tile=tile)
    x = torch.from_numpy(to_chw(test_image(size)))
    reset = True
    try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = (_status_kib("VmRSS") if reset else _status_kib("VmHWM")) * 1024
    t0 = time.perf_counter()
    y = up.engine.upscale_rgb(x)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM") * 1024
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out_bytes = y.numel() * y.element_size()
    print(json.dumps({"model": name, "size": size, "tile": up.engine.tile_for(size, size),
                      "pad": up.engine.pad, "threads": threads, "seconds": round(seconds, 2),
                      "rss_before": before, "rss_peak": peak, "growth": peak - before,
                      "output_bytes": out_bytes, "growth_minus_output": peak - before - out_bytes,
                      "hwm_reset": reset, "ru_maxrss_before": maxrss_before,
                      "ru_maxrss_after": maxrss_after}))


def memory(args: argparse.Namespace, quiet: Quiet) -> list[dict[str, Any]]:
    rows = []
    print(f"\n== peak RSS growth, {args.mem_model}, tile {args.mem_tile}, each size in a fresh process")
    for size in args.mem_sizes:
        quiet.wait(f"memory {size}")
        cmd = [sys.executable, __file__, "--memory-child", args.mem_model, str(size), str(args.mem_tile),
               str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        mib = 1 << 20
        print(f"  {size:5d}x{size:<5d} tile {row['tile']}/{row['pad']}: RSS {row['rss_before'] / mib:7.1f}"
              f" -> {row['rss_peak'] / mib:7.1f} MiB, growth {row['growth'] / mib:7.1f} MiB, output buffer "
              f"{row['output_bytes'] / mib:7.1f} MiB, growth - output "
              f"{row['growth_minus_output'] / mib:6.1f} MiB ({row['seconds']} s)", flush=True)
    return rows


# ---- main --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags: list[str] = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [x for x in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile")
                         if x in have]
                break
    try:
        from importlib.metadata import version

        ncnn_version = version("ncnn")
    except Exception:
        ncnn_version = "not installed"
    return {"cpu": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__, "ncnn": ncnn_version, "superres": superres.__version__,
            "mkldnn": torch.backends.mkldnn.is_available()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated zoo names")
    p.add_argument("--size", type=int, default=128, help="input side (crop of examples/chelsea.png)")
    p.add_argument("--threads", type=int, default=2, help="threads for both torch and ncnn")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per case (median), after a warm-up")
    p.add_argument("--sweep", action="store_true",
                   help="also explore threads, channels_last, tiles, batching, oneDNN, TorchScript, "
                        "size scaling and memory")
    p.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)} to run (unset: defaults; "
                   "with --sweep: all)")
    p.add_argument("--tile-size", type=int, default=256, help="input side for the tile part of --sweep")
    p.add_argument("--tiles", default="64,128", help="tile sides for --sweep (below --tile-size only)")
    p.add_argument("--batches", default="1,2,4", help="tile batch sizes for --sweep")
    p.add_argument("--batch-max-tile", type=int, default=64, help="try --batches only for tiles up to this")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="in --sweep, try torch.compile (inductor; needs a C++ compiler, ~1 min per model)")
    p.add_argument("--scaling-sizes", default="64,128,192,256,512,1024",
                   help="in --sweep, whole-image sizes for the throughput-against-size table")
    p.add_argument("--scaling-max-gflop", type=float, default=2500.0,
                   help="skip scaling sizes whose image costs more than this many GFLOP")
    p.add_argument("--mem-model", default="realesr-animevideov3", help="model for the memory part")
    p.add_argument("--mem-tile", type=int, default=128, help="fixed tile for the memory part")
    p.add_argument("--mem-sizes", default="256,1024", help="input sides for the memory part")
    p.add_argument("--max-wait", type=float, default=180.0,
                   help="longest wait for a quiet machine before each measurement (s)")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--memory-child", nargs=4, metavar=("MODEL", "SIZE", "TILE", "THREADS"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = args.parts.split(",") if args.parts else list(PARTS if args.sweep else PARTS[:1])
    if unknown := set(args.parts) - set(PARTS):
        p.error(f"unknown --parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.tiles = [int(v) for v in args.tiles.split(",") if v]
    args.batches = [int(v) for v in args.batches.split(",") if v]
    args.scaling_sizes = [int(v) for v in args.scaling_sizes.split(",") if v]
    args.mem_sizes = [int(v) for v in args.mem_sizes.split(",") if v]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        name, size, tile, threads = args.memory_child
        memory_child(name, int(size), int(tile), int(threads))
        return 0
    t_start = time.monotonic()
    info = machine()
    print(f"machine: {info['cpu']} ({', '.join(info['cpu_flags'])}), {info['logical_cpus']} logical CPUs; "
          f"Python {info['python']}, torch {info['torch']}, ncnn {info['ncnn']}, superres {info['superres']}")
    print(f"settings: models {args.models}, size {args.size}, threads {args.threads}, repeat {args.repeat}"
          f"{', sweep' if args.sweep else ''}")
    print("columns: side, variant, threads, core tile/pad (tile == size: whole image), tile batch, median s "
          "(min-max), useful GFLOP/s, max |diff| vs ncnn whole image, median over rounds of this row / the "
          "ncnn run timed in the same rounds")
    quiet = Quiet(args.max_wait, lambda m: print(m, flush=True))
    models = [m for m in args.models.split(",") if m]
    for m in models:
        catalogue.get(m)  # fail early on a typo
    mem_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, quiet, Path(tmp))
        for part in ("defaults", "knobs", "tiles"):
            if part in args.parts:
                for m in models:
                    getattr(bench, part)(m)
        if "scaling" in args.parts:
            for m in models:
                bench.scaling(m, args.scaling_sizes)
        if "memory" in args.parts:
            mem_rows = memory(args, quiet)
    print("\n== summary: superres default settings vs ncnn (whole image, same threads, same rounds)")
    for r in bench.results:
        if r.side == "superres" and r.variant.startswith("default") and r.threads == args.threads:
            print(f"  {r.model:22s} {r.variant:36s} superres {r.seconds:7.3f} s ({r.gflops:5.1f} GFLOP/s), "
                  f"ncnn {r.ncnn_seconds:7.3f} s, superres/ncnn {r.ratio:.2f}x, "
                  f"max |diff| {r.max_abs_diff:.1e}")
    if "knobs" in args.parts:
        print("\n== best superres variant per model (lowest superres/ncnn, whole image, same threads)")
        for m in models:
            rows = [r for r in bench.results if r.model == m and r.side == "superres" and r.ratio
                    and r.threads == args.threads and r.size == args.size and "full" not in r.variant]
            if rows:
                best = min(rows, key=lambda r: r.ratio or 0.0)
                print(f"  {m:22s} {best.variant:40s} {best.seconds:7.3f} s ({best.gflops:5.1f} GFLOP/s), "
                      f"ncnn {best.ncnn_seconds:7.3f} s: {best.ratio:.2f}x")
    total = time.monotonic() - t_start
    print(f"\ntotal {total:.0f} s, of which {quiet.waited:.0f} s waiting for a quiet machine")
    bench.save(memory=mem_rows, total_s=round(total, 1))
    if args.json:
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
