"""The GPU paths of TorchRunner, checked on the CPU where their logic does not need a GPU.

torch.compile (with the eager fallback when the compiler fails), short-batch padding, batched
tiles, the copy/compute overlap order of ``run_many``, bf16, and benchmarks/bench_gpu.py
(its --smoke run, its arithmetic and its exit status without CUDA). CUDA graphs and the
pinned-memory streams themselves only run on a GPU: see docs/gpu.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from superres.engine.runners import TorchRunner, overlapped
from superres.engine.tiling import tiled_forward
from superres.export.convert import runner_network
from superres.zoo.loader import load_model
from tests.conftest import REPO

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
BENCH = REPO / "benchmarks" / "bench_gpu.py"


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _tiny(seed: int, feats: int = 8) -> nn.Module:
    """A small x2 net (conv, PReLU, conv, pixel shuffle): compiles in seconds on a CPU."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, feats, 3, padding=1), nn.PReLU(feats),
                         nn.Conv2d(feats, 12, 3, padding=1), nn.PixelShuffle(2)).eval()


def test_compile_matches_eager_and_pads_the_short_batch() -> None:
    """9 tiles in batches of 4 (4, 4, 1): the last batch runs padded to 4, so one compile serves all."""
    torch.compiler.reset()
    net = _tiny(0)
    eager = TorchRunner(_tiny(0), CPU)
    runner = TorchRunner(net, CPU, compile=True)
    x = torch.rand(3, 40, 40)
    ref = tiled_forward(eager, x, 2, tile=16, pad=2, batch=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tiled_forward(runner, x, 2, tile=16, pad=2, batch=4)
    if runner.compile_error is not None:  # no C++ compiler here: the fallback test covers this path
        pytest.skip(f"torch.compile unavailable on this machine: {runner.compile_error}")
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert torch.allclose(out, ref, atol=1e-4, rtol=0)
    assert runner._batches == {(3, 20, 20): {4}}  # the 1-tile batch never became a shape of its own
    assert runner.describe()["compile"] and runner.describe()["compile_mode"] == "default"


def test_a_failing_compiler_falls_back_to_eager_with_a_warning() -> None:
    """A real compiler failure (no working C++ compiler for inductor) leaves correct eager output."""
    import torch._inductor.config as inductor_config

    torch.compiler.reset()
    net = _tiny(1, feats=5)
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        ref = net(x)
    with inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",)}):
        runner = TorchRunner(net, CPU, compile=True)
        with pytest.warns(RuntimeWarning, match="torch.compile failed .*running eager instead"):
            y = runner.run(x)
    assert runner.compile_error is not None and not runner.static_shapes
    assert torch.allclose(y, ref, atol=1e-5, rtol=0)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert torch.allclose(runner.run(x), ref, atol=1e-5, rtol=0)
    assert not [w for w in again if "torch.compile" in str(w.message)]  # eager from then on


def test_short_batches_pad_until_they_keep_coming_back() -> None:
    runner = TorchRunner(_tiny(2), CPU, compile=True)  # nothing is compiled until the first call
    shape = (3, 20, 20)
    assert [runner._batch_to_run(shape, n) for n in (4, 1, 1, 1, 1, 3, 4)] == [4, 4, 4, 1, 1, 4, 4]
    assert runner._batches[shape] == {1, 4}


def test_batched_tiles_equal_one_by_one_tiles_on_a_catalogue_model(realesrgan_models_dir: Path) -> None:
    model = load_model("realesr-animevideov3")
    runner = TorchRunner(runner_network(model), CPU)
    x = torch.rand(3, 30, 26)
    one = tiled_forward(runner, x, model.scale, tile=12, pad=4, batch=1)
    many = tiled_forward(runner, x, model.scale, tile=12, pad=4, batch=4)
    assert many.shape == (3, 120, 104)
    assert torch.allclose(one, many, atol=1e-5, rtol=0)
    batches = [x[None, :, :16, :16], x[None, :, 8:24, 8:24]]
    for a, b in zip(runner.run_many(batches), batches, strict=True):  # run_many == run, in order
        assert torch.equal(a, runner.run(b))


def test_overlapped_queues_the_next_copy_before_waiting_for_a_result() -> None:
    log: list[str] = []

    def source(n: int):
        for i in range(n):
            log.append(f"read{i}")
            yield i

    def step(name: str):
        def f(v: int) -> int:
            log.append(f"{name}{v}")
            return v
        return f

    out = list(overlapped(source(3), step("in"), step("compute"), step("out"), step("wait")))
    assert out == [0, 1, 2]
    assert log == ["read0", "in0", "compute0", "read1", "in1", "out0", "compute1", "read2", "in2", "out1",
                   "wait0", "compute2", "out2", "wait1", "wait2"]
    log.clear()
    assert list(overlapped(source(1), step("in"), step("compute"), step("out"), step("wait"))) == [0]
    assert log == ["read0", "in0", "compute0", "out0", "wait0"]
    assert list(overlapped(source(0), step("in"), step("compute"), step("out"), step("wait"))) == []


def test_cuda_only_options_are_refused_clearly_on_the_cpu() -> None:
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        TorchRunner(_tiny(3), CPU, cuda_graphs=True)
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        TorchRunner(_tiny(3), CPU, compile=True, compile_mode="fastest")


def test_bf16_on_the_cpu_is_allowed_and_within_bf16_rounding(realesrgan_models_dir: Path) -> None:
    bench = _bench_module()
    x = bench.photo_frame(20, 16)[None]
    ref = TorchRunner(runner_network(load_model("realesr-animevideov3")), CPU).run(x)
    runner = TorchRunner(runner_network(load_model("realesr-animevideov3")), CPU, torch.bfloat16)
    y = runner.run(x)
    assert y.dtype == torch.float32 and runner.dtype == torch.bfloat16
    assert 0 < float((y - ref).abs().max()) < 2e-2  # measured 5.8e-3 (bf16 keeps 8 significant bits)


def test_peak_table_and_arithmetic() -> None:
    bench = _bench_module()
    assert bench.peak_for("NVIDIA H100 80GB HBM3", None)[0] == 989.4
    assert bench.peak_for("NVIDIA H100 PCIe", None)[0] == 756.0
    assert bench.peak_for("NVIDIA H200", None)[0] == 989.4
    assert bench.peak_for("NVIDIA A100-SXM4-80GB", None)[0] == 312.0
    assert bench.peak_for("NVIDIA L40S", None)[0] == 362.0
    assert bench.peak_for("NVIDIA GeForce RTX 4090", None)[0] == 165.2
    assert bench.peak_for("NVIDIA H100 NVL", None)[0] is None  # not in the table: ask
    assert bench.peak_for("Tesla V100-SXM2-16GB", None)[0] is None
    assert bench.peak_for("NVIDIA H100 PCIe", 500.0) == (500.0, "--peak-tflops")
    # realesrgan-x4plus on a 1280x720 frame at 1 fps: 35.85 MFLOP/px x 921600 px = 33 TFLOP/s
    assert bench.tflops(35.853696, 1280 * 720, 1.0) == pytest.approx(33.04, abs=0.01)


def _run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=600, check=False)


def test_bench_gpu_smoke_runs_on_the_cpu_and_its_figures_add_up(
    tmp_path: Path, realesrgan_models_dir: Path, span_models_dir: Path
) -> None:
    out = tmp_path / "gpu.json"
    res = _run_bench("--smoke", "--models", "realesr-animevideov3-x2,span-x4", "--configs",
                     "fp16-eager,fp16-graphs,fp16-tiles,fp16-compile", "--seconds", "0.01",
                     "--e2e-frames", "1", "--peak-tflops", "2", "--threads", "1", "--json", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CPU SMOKE RUN" in res.stdout and "card: CPU" in res.stdout and "torch " in res.stdout
    assert "tensorrt realesr-animevideov3" not in res.stdout  # only models that were run are checked
    doc = json.loads(out.read_text())
    assert doc["smoke"] and doc["peak_tflops"] == 2 and doc["torch"] == torch.__version__
    rows = {(r["model"], r["config"]): r for r in doc["rows"]}
    assert len(rows) == 8
    measured = [r for r in doc["rows"] if r["fps"] is not None]
    assert {(r["model"], r["config"]) for r in measured} == {
        (m, c) for m in ("realesr-animevideov3-x2", "span-x4-ch48") for c in ("fp16-eager", "fp16-tiles")}
    for r in measured:
        assert r["fps"] > 0 and r["fps_e2e"] > 0 and r["dtype"] == "float32"
        assert r["tflops"] == pytest.approx(r["mflop_per_px"] * r["width"] * r["height"] * r["fps"] / 1e6)
        assert r["peak_share"] == pytest.approx(r["tflops"] / 2)
        assert r["max_abs_diff"] < 1e-4  # fp32 on the CPU: the same network as the reference
        assert "CPU smoke" in r["note"]
    assert rows[("realesr-animevideov3-x2", "fp16-eager")]["scale"] == 2.0
    assert rows[("span-x4-ch48", "fp16-eager")]["mflop_per_px"] == pytest.approx(0.850464)
    assert "need CUDA" in rows[("span-x4-ch48", "fp16-graphs")]["note"]
    assert "compile on CPU is slow" in rows[("span-x4-ch48", "fp16-compile")]["note"]


def test_bench_gpu_without_cuda_exits_2_with_a_message() -> None:
    res = _run_bench("--models", "span-x4", env={"CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 2
    assert "no CUDA device" in res.stderr and "--smoke" in res.stderr
