"""Engine policy: how many model passes a target scale takes, and the output sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superres.archs.srvgg import SRVGGNetCompact
from superres.engine.protocol import Engine
from superres.engine.runners import Runner, TorchRunner
from superres.engine.upscaler import TileSettings, UpscaleEngine
from superres.zoo.loader import model_from_state_dict


def _engine(upscale: int) -> tuple[UpscaleEngine, list[int]]:
    torch.manual_seed(0)
    sd = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=upscale).state_dict()
    eng = UpscaleEngine(model_from_state_dict(sd, "tiny"), device="cpu")
    calls: list[int] = []
    eng.runner.module.register_forward_pre_hook(lambda _m, inp: calls.append(inp[0].shape[-1]))
    return eng, calls


@pytest.mark.parametrize(
    ("native", "target", "passes"),
    [
        (4, 4, 1),
        (4, 2, 1),
        (4, 2.5, 1),
        (4, 5, 1),
        (4, 6, 1),
        (4, 6.5, 2),
        (4, 8, 2),
        (4, 16, 2),
        (4, 20, 2),
        (4, 32, 3),
        (2, 3, 1),
        (2, 3.5, 2),
        (2, 8, 3),
        (2, 16, 4),
    ],
)
def test_passes_chain_only_when_it_beats_a_resize(native: int, target: float, passes: int) -> None:
    eng, calls = _engine(native)
    assert eng.passes_for(target) == passes
    out = eng.upscale_array(np.zeros((5, 7, 3), np.uint8), target)
    assert out.shape == (round(5 * target), round(7 * target), 3)
    assert len(calls) == passes  # one forward per pass (the image fits one tile)


@pytest.mark.parametrize("scale", [None, 3.0])
def test_same_size_frames_go_through_the_network_together(scale: float | None) -> None:
    eng, _ = _engine(2)
    shapes: list[tuple[int, ...]] = []
    eng.runner.module.register_forward_pre_hook(lambda _m, inp: shapes.append(tuple(inp[0].shape)))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (9, 13, 3), dtype=np.uint8) for _ in range(3)]
    batched = eng.upscale_arrays(frames, scale)
    assert shapes == [(3, 3, 9, 13)]  # one forward pass for the three frames
    one_by_one = [eng.upscale_array(f, scale) for f in frames]
    assert len(shapes) == 4
    for a, b in zip(batched, one_by_one, strict=True):
        assert a.shape == b.shape == ((18, 26, 3) if scale is None else (27, 39, 3))
        assert np.abs(a.astype(int) - b).max() <= 1  # another summation order inside the convs


def test_frames_that_need_tiles_or_differ_in_size_run_one_by_one() -> None:
    eng, _ = _engine(2)
    eng.tiles.tile = 8  # 9x13 frames need several tiles
    shapes: list[tuple[int, ...]] = []
    eng.runner.module.register_forward_pre_hook(lambda _m, inp: shapes.append(tuple(inp[0].shape)))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (9, 13, 3), dtype=np.uint8) for _ in range(2)]
    out = eng.upscale_arrays(frames)
    assert all(s[0] == 1 for s in shapes) and len(shapes) > 2  # tile by tile, frame by frame
    assert [o.shape for o in out] == [(18, 26, 3)] * 2
    eng.tiles.tile = None
    shapes.clear()
    mixed = eng.upscale_arrays([frames[0], frames[1][:8]])
    assert [s[0] for s in shapes] == [1, 1] and mixed[1].shape == (16, 26, 3)


class _NumpyRunner:
    """A runner that is not PyTorch inside (as an ONNX Runtime one would be): only the contract."""

    def __init__(self, inner: TorchRunner) -> None:
        self.inner = inner
        self.batches: list[tuple[int, ...]] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(tuple(x.shape))
        y = self.inner.run(torch.from_numpy(x.numpy().copy()))
        return torch.from_numpy(y.numpy().copy())


def test_another_runner_plugs_in_without_touching_tiling_alpha_or_passes() -> None:
    eng, _ = _engine(2)
    assert isinstance(eng.runner, TorchRunner) and isinstance(eng.runner, Runner)
    assert isinstance(eng, Engine) and eng.scale == 2 and eng.frames_per_pass == 1
    runner = _NumpyRunner(eng.runner)
    other = UpscaleEngine(eng.model, runner=runner, tiles=TileSettings(tile=8), alpha="model")
    assert isinstance(runner, Runner) and other.device.type == "cpu" and other.dtype == torch.float32
    rgba = np.random.default_rng(2).integers(0, 256, (9, 13, 4), dtype=np.uint8)
    eng.tiles.tile = 8
    assert np.array_equal(other.upscale_array(rgba, 5.0), eng.upscale_array(rgba, 5.0))
    assert len(runner.batches) > 2 and max(max(b[2:]) for b in runner.batches) == 8 + 2 * eng.pad
