"""Runners: the one place where a batch of tiles meets a network.

The engine cuts images into tiles, handles alpha, luma and passes; a runner only runs one
(N,C,h,w) batch and hands the result back. Keeping that seam small lets other backends
(ONNX Runtime, OpenVINO, ...) plug in without touching tiling, alpha or passes. Runners know
nothing about tiling.

A runner may also offer ``run_many(batches)``: the same results for an iterable of batches,
yielded in order. The tiler uses it where present so that a runner can overlap work across
batches (the CUDA ``TorchRunner`` copies the next batch to the device while the current one
computes, and the previous result back while the next one computes).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Captured CUDA graphs kept at once (one per input shape; each holds its activation memory).
MAX_GRAPHS = 4
# Forward passes on a side stream before a capture: cuDNN autotuning and lazy init happen there.
GRAPH_WARMUP = 2
# A short batch is padded up to a known batch size this many times; after that it gets its own
# compile or capture (it keeps coming back: e.g. the last batch of every same-size image).
PAD_REPEATS = 2
# torch.compile modes that replay CUDA graphs themselves: their outputs are overwritten by the next call
_GRAPHING_MODES = ("reduce-overhead", "max-autotune")
_END = object()
_In = TypeVar("_In")
_Up = TypeVar("_Up")
_Res = TypeVar("_Res")
_Down = TypeVar("_Down")
_Out = TypeVar("_Out")


@runtime_checkable
class Runner(Protocol):
    """Runs one batch: (N,C,h,w) float32 on the CPU in, (N,C_out,h*s,w*s) float32 on the CPU out.

    ``device`` and ``dtype`` say where and in what precision it computes, so the engine can
    budget tile memory (and free CUDA memory after an out-of-memory retry). Optional, read with
    ``getattr``: ``max_fast_window`` (int), the window side past which the runner slows down,
    which caps the engine's default tile.
    """

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def run(self, x: torch.Tensor) -> torch.Tensor: ...


class _Graph(NamedTuple):
    graph: torch.cuda.CUDAGraph
    static_in: torch.Tensor
    static_out: torch.Tensor


class _Upload(NamedTuple):
    x: torch.Tensor  # on the device, float32, allocated on the copy stream
    ready: torch.cuda.Event


class _Download(NamedTuple):
    host: torch.Tensor  # pinned CPU float32, filled by the copy stream
    ready: torch.cuda.Event


@contextmanager
def _cudnn_benchmark(on: bool) -> Iterator[None]:
    """cuDNN autotuning for the duration of a forward: tiles repeat one shape, so the one-off
    search pays back at once. Only this flag is touched (and restored), not the user's others."""
    if not on:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _native_bf16() -> bool:
    """bfloat16 in hardware (torch >= 2.3 would also count slow emulation as support)."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch: no emulation, the plain answer is the hardware's
        return bool(torch.cuda.is_bf16_supported())


def overlapped(batches: Iterable[_In], start: Callable[[_In], _Up], compute: Callable[[_Up], _Res],
               fetch: Callable[[_Res], _Down], finish: Callable[[_Down], _Out]) -> Iterator[_Out]:
    """The order of a copy-in / compute / copy-out pipeline over ``batches``, results in order.

    ``start`` begins the copy in of a batch, ``compute`` queues its compute, ``fetch`` begins the
    copy out of a result and ``finish`` waits for it. For batch i the order is: compute(i), start
    (i+1) (its copy overlaps compute i), fetch(i), then finish(i-1) and yield it (the caller's
    work on result i-1 overlaps compute i). All but ``finish`` only queue work on CUDA streams.
    Device-free, so the order itself is tested on the CPU.
    """
    source = iter(batches)
    item = next(source, _END)
    if item is _END:
        return
    incoming = start(item)  # type: ignore[arg-type]
    outgoing: list[_Down] = []  # at most one result whose copy out is under way
    more = True
    while more:
        result = compute(incoming)
        item = next(source, _END)
        more = item is not _END
        if more:
            incoming = start(item)  # type: ignore[arg-type]
        outgoing.append(fetch(result))
        if len(outgoing) == 2:
            yield finish(outgoing.pop(0))
    yield finish(outgoing.pop())


class TorchRunner:
    """A PyTorch module on a device, in a precision and memory format, in inference mode.

    ``compile=True`` runs the module through ``torch.compile`` (``dynamic=False``: tiles have
    one shape); when compiling or the compiled code fails, it warns once and runs eager from
    then on. ``compile_mode`` defaults to "max-autotune-no-cudagraphs" on CUDA and "default"
    elsewhere. ``cuda_graphs=True`` (CUDA only) captures one graph per input shape with static
    input/output buffers and replays it, which removes the per-kernel launch cost of small
    tiles; it combines with ``compile`` (the compiled code is captured).

    With ``compile`` or ``cuda_graphs`` a batch smaller than the largest one seen for the same
    tile shape (the last, partial batch of an image) is padded with zero tiles to that size,
    so no second compile or capture is made for it.

    On CUDA, inputs go through pinned host memory on a side stream (``non_blocking``), and
    :meth:`run_many` overlaps the copies of neighbouring batches with the compute of the
    current one. Results are pinned CPU float32 tensors the caller owns.
    """

    def __init__(self, module: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32,
                 *, channels_last: bool = True, compile: bool = False, cuda_graphs: bool = False,
                 compile_mode: str | None = None) -> None:
        device = torch.device(device)
        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs a CUDA device, not {device.type!r} "
                             "(CUDA graphs replay recorded GPU kernels; leave it off elsewhere)")
        if compile_mode is None:
            compile_mode = "max-autotune-no-cudagraphs" if device.type == "cuda" else "default"
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, not {compile_mode!r}")
        if compile and cuda_graphs and compile_mode in ("reduce-overhead", "max-autotune"):
            raise ValueError(f"compile_mode {compile_mode!r} makes CUDA graphs of its own; with "
                             "cuda_graphs=True use 'default' or 'max-autotune-no-cudagraphs'")
        if dtype == torch.bfloat16 and device.type == "cuda" and not _native_bf16():
            raise ValueError("bf16 needs a GPU with native bfloat16 (NVIDIA Ampere or newer); use fp16")
        self._fmt = torch.channels_last if channels_last else torch.contiguous_format
        self._device = device
        self._dtype = dtype
        self.channels_last = channels_last
        self.compile = compile
        self.compile_mode = compile_mode
        self.cuda_graphs = cuda_graphs
        # None while fine; the reason once compiling (or a capture) failed and eager took over
        self.compile_error: str | None = None
        self.graph_error: str | None = None
        # moved in place, as nn.Module.to does: the caller's module is the one that runs
        self.module = module.to(device=device, dtype=dtype, memory_format=self._fmt).eval()
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        if compile:
            try:  # lazy: compiling happens at the first call, where failures are caught too
                self._compiled = torch.compile(self.module, mode=compile_mode, dynamic=False)
            except Exception as exc:  # e.g. a Python version this torch cannot compile for
                self._compile_failed(exc, stacklevel=2)
        self._graphs: OrderedDict[tuple[int, ...], _Graph] = OrderedDict()
        self._batches: dict[tuple[int, ...], set[int]] = {}  # batch sizes run, per tile shape
        self._padded: dict[tuple[int, ...], int] = {}  # times each (shape, short batch) was padded
        # outputs that the next call overwrites (graph buffers): copied before they are handed out
        self._aliased = cuda_graphs or (compile and device.type == "cuda" and compile_mode in _GRAPHING_MODES)
        self._copy_stream: torch.cuda.Stream | None = None

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def static_shapes(self) -> bool:
        """Whether each new input shape costs a compile or a capture (so batches are padded)."""
        return self._compiled is not None or (self.cuda_graphs and self.graph_error is None)

    # ---- the network on device tensors ---------------------------------------------
    def _net(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled module where it works, else the eager one."""
        if self._compiled is not None:
            try:
                if self._aliased and not self.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()  # the previous output is consumed
                return self._compiled(x)
            except torch.OutOfMemoryError:
                raise  # the engine retries with smaller tiles; not a compiler failure
            except Exception as exc:  # any compiler or backend failure: eager
                self._compile_failed(exc, stacklevel=4)
        return self.module(x)

    def _compile_failed(self, exc: Exception, stacklevel: int) -> None:
        self._compiled = None
        self.compile_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        warnings.warn(f"torch.compile failed ({self.compile_error}); running eager instead",
                      RuntimeWarning, stacklevel=stacklevel + 1)

    def _capture(self, x: torch.Tensor) -> _Graph | None:
        """Record the network on ``x``'s shape (after warm-up on a side stream); None if that fails."""
        static_in = x.clone(memory_format=self._fmt)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        try:
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP):  # compiles (if compiling) and autotunes outside the capture
                    self._net(static_in)
            torch.cuda.current_stream(self._device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # the capture uses the current device's streams: make it this runner's device
            with torch.cuda.device(self._device), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = self._net(static_in)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # an op that cannot be captured: no graphs
            self.graph_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            warnings.warn(f"CUDA graph capture failed ({self.graph_error}); running without graphs",
                          RuntimeWarning, stacklevel=3)
            self._graphs.clear()
            return None
        entry = _Graph(graph, static_in, static_out)
        self._graphs[tuple(x.shape)] = entry
        while len(self._graphs) > MAX_GRAPHS:
            self._graphs.popitem(last=False)  # the oldest shape's graph and memory go
        return entry

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(output, whether it is a graph's static buffer that the next replay overwrites)."""
        if self.cuda_graphs and self.graph_error is None:
            key = tuple(x.shape)
            entry = self._graphs.get(key)
            if entry is not None:
                self._graphs.move_to_end(key)
            else:
                entry = self._capture(x)
            if entry is not None:
                entry.static_in.copy_(x)
                entry.graph.replay()
                return entry.static_out, True
        return self._net(x), False

    def forward_device(self, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) on the device (any float dtype) -> float32 on the device (NCHW-contiguous on
        CUDA), not overwritten by later calls.

        Pads a short batch (see the class docstring) and cuts the padding off again.
        """
        n = x.shape[0]
        x = x.to(dtype=self._dtype, memory_format=self._fmt)
        if self.static_shapes:
            full = self._batch_to_run(tuple(x.shape[1:]), n)
            if full > n:
                x = torch.cat([x, x.new_zeros((full - n, *x.shape[1:]))]).contiguous(memory_format=self._fmt)
        with torch.inference_mode(), _cudnn_benchmark(self._device.type == "cuda"):
            try:
                y, static = self._forward(x)
            except torch.OutOfMemoryError:
                self._graphs.clear()  # their memory pools go too, before the engine retries smaller tiles
                raise
            static = static or self._aliased
            # NCHW on CUDA, where the copy to the host is one flat memcpy; kept as is elsewhere
            fmt = torch.contiguous_format if self._device.type == "cuda" else torch.preserve_format
            return y[:n].to(dtype=torch.float32, memory_format=fmt, copy=static)

    def _batch_to_run(self, shape: tuple[int, ...], n: int) -> int:
        """The batch size to run ``n`` tiles of ``shape`` as: the smallest larger size already run
        (so no new compile or capture), unless this short size keeps coming back."""
        known = self._batches.setdefault(shape, set())
        larger = [b for b in known if b > n]
        if n in known or not larger or self._padded.get((*shape, n), 0) >= PAD_REPEATS:
            known.add(n)
            return n
        self._padded[(*shape, n)] = self._padded.get((*shape, n), 0) + 1
        return min(larger)

    # ---- host <-> device -----------------------------------------------------------
    def run(self, x: torch.Tensor) -> torch.Tensor:
        if self._device.type != "cuda":
            return self.forward_device(x.to(self._device)).cpu()
        (y,) = self.run_many([x])
        return y

    def run_many(self, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """``run`` on each batch, in order; on CUDA the copies overlap the compute of a neighbour.

        Batch i+1 is copied in while batch i computes, and result i is copied out while batch
        i+1 computes; result i is yielded once batch i+1 is queued, so the caller's work on it
        (pasting tiles) overlaps the GPU too.
        """
        if self._device.type != "cuda":
            for x in batches:
                yield self.run(x)
            return
        compute_stream = torch.cuda.current_stream(self._device)
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self._device)
        copy = self._copy_stream

        def compute(up: _Upload) -> tuple[torch.Tensor, torch.cuda.Event]:
            compute_stream.wait_event(up.ready)
            up.x.record_stream(compute_stream)  # allocated on the copy stream, used here
            y = self.forward_device(up.x)
            done = torch.cuda.Event()
            done.record(compute_stream)
            return y, done

        yield from overlapped(batches, lambda x: self._upload(x, copy), compute,
                              lambda out: self._download(*out, copy), self._finish)

    def _upload(self, x: torch.Tensor, copy: torch.cuda.Stream) -> _Upload:
        """Start copying ``x`` to the device on the copy stream (from pinned memory, non-blocking)."""
        ready = torch.cuda.Event()
        if x.device.type == "cuda":
            ready.record(torch.cuda.current_stream(self._device))
            return _Upload(x, ready)
        src = x.contiguous()
        if not src.is_pinned():
            src = src.pin_memory()  # the caching host allocator keeps it until the copy is done
        with torch.cuda.stream(copy):
            x_dev = src.to(self._device, non_blocking=True)
            ready.record(copy)
        return _Upload(x_dev, ready)

    @staticmethod
    def _download(y: torch.Tensor, done: torch.cuda.Event, copy: torch.cuda.Stream) -> _Download:
        """Start copying ``y`` (float32 NCHW on the device) into pinned host memory once ``done``."""
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        copy.wait_event(done)
        with torch.cuda.stream(copy):
            host.copy_(y, non_blocking=True)
            y.record_stream(copy)  # freed by the compute stream's allocator only after this copy
            ready = torch.cuda.Event()
            ready.record(copy)
        return _Download(host, ready)

    @staticmethod
    def _finish(pending: _Download) -> torch.Tensor:
        pending.ready.synchronize()
        return pending.host

    def describe(self) -> dict[str, Any]:
        """The settings in force (and why compile or graphs fell back), for logs and benchmarks."""
        return {"device": str(self._device), "dtype": str(self._dtype).removeprefix("torch."),
                "channels_last": self.channels_last, "compile": self.compile,
                "compile_mode": self.compile_mode if self.compile else None,
                "compile_error": self.compile_error, "cuda_graphs": self.cuda_graphs,
                "graph_error": self.graph_error, "graphs": len(self._graphs)}

    def __repr__(self) -> str:
        extra = "".join(f", {k}=True" for k in ("compile", "cuda_graphs") if getattr(self, k))
        return (f"TorchRunner({type(self.module).__name__}, device={self._device}, dtype={self._dtype}, "
                f"channels_last={self.channels_last}{extra})")
