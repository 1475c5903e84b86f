"""Engine policy: how many model passes a target scale takes, and the output sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superres.archs.srvgg import SRVGGNetCompact
from superres.engine.upscaler import UpscaleEngine
from superres.zoo.loader import model_from_state_dict


def _engine(upscale: int) -> tuple[UpscaleEngine, list[int]]:
    torch.manual_seed(0)
    sd = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=upscale).state_dict()
    eng = UpscaleEngine(model_from_state_dict(sd, "tiny"), device="cpu")
    calls: list[int] = []
    eng.module.register_forward_pre_hook(lambda _m, inp: calls.append(inp[0].shape[-1]))
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
