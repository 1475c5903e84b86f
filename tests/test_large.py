"""Size extremes: an odd-sized 8K image goes through the tiled engine with bounded tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import superres
from superres.archs.srvgg import SRVGGNetCompact


def test_odd_8k_image_upscales_tiled(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2).eval()
    path = tmp_path / "tiny.safetensors"
    save_file(net.state_dict(), str(path))
    up = superres.load(path, device="cpu", tile=512)
    seen: list[tuple[int, ...]] = []
    up.engine.runner.module.register_forward_pre_hook(lambda _m, inp: seen.append(tuple(inp[0].shape)))
    img = np.random.default_rng(0).integers(0, 256, (4321, 7681, 3), dtype=np.uint8)
    out = up.upscale(img)
    assert out.shape == (8642, 15362, 3) and out.dtype == np.uint8
    assert len(seen) == 9 * 16 and {s[2:] for s in seen} == {(512 + 2 * up.engine.pad,) * 2}
