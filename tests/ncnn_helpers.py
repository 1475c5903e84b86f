"""Shared by the ncnn converter tests (Real-ESRGAN, SPAN, waifu2x / Real-CUGAN).

The ncnn Python runtime is the reference each conversion is checked against; the inputs are
crops of the bundled photo; altered files are made by editing one layer of a real ``.param``.
The carrier folders and the ``two_threads`` fixture are in ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from superres.ncnn import ConvertedModel, convert_files


def ncnn_runtime():  # ncnn ships no type stubs
    """The ``ncnn`` module, or a skip."""
    return pytest.importorskip("ncnn", reason="the ncnn Python runtime is not installed (pip install ncnn); "
                                              "it is the reference the conversion is checked against")


def run_ncnn(param: Path, binary: Path, chw: np.ndarray, blob_in: str = "data",
             blobs_out: Sequence[str] = ("output",)) -> list[np.ndarray]:
    """Run a model on the ncnn CPU runtime in plain fp32 (two threads); one array per output blob."""
    ncnn = ncnn_runtime()
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.num_threads = 2
    opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binary)) == 0
    ex = net.create_extractor()
    ex.input(blob_in, ncnn.Mat(np.ascontiguousarray(chw, dtype=np.float32)))
    results = []
    for blob in blobs_out:
        ret, out = ex.extract(blob)
        assert ret == 0, f"ncnn extract({blob!r}) failed with {ret}"
        results.append(np.array(out, dtype=np.float32, copy=True))
    return results


def photo_crop(sample_path: Path, h: int, w: int, y: int = 80, x: int = 120) -> np.ndarray:
    """A CHW float32 RGB crop in [0, 1] of the sample photo."""
    rgb = np.asarray(Image.open(sample_path).convert("RGB"), dtype=np.float32) / 255.0
    assert rgb.shape[0] >= y + h and rgb.shape[1] >= x + w
    return np.ascontiguousarray(rgb[y:y + h, x:x + w].transpose(2, 0, 1))


def edit_layer(text: str, layer: str, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` in the line of ``layer`` of a ``.param`` text (exactly one occurrence)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if len(line.split()) > 1 and line.split()[1] == layer]
    assert len(hits) == 1, f"layer {layer} not found once"
    assert lines[hits[0]].count(old) == 1, f"{old!r} not found once in {lines[hits[0]]!r}"
    lines[hits[0]] = lines[hits[0]].replace(old, new)
    return "".join(lines)


class Conversions:
    """Each model converted (and built) once: x4plus takes seconds on a busy 2-core box.

    Called with a key (a model name or file stem) it gives the :class:`ConvertedModel`;
    :meth:`module` gives the built module. ``files`` maps a key to its (.param, .bin) paths.
    """

    def __init__(self, files: Callable[[str], tuple[Path, Path]]) -> None:
        self._files = files
        self._converted: dict[str, ConvertedModel] = {}
        self._modules: dict[str, torch.nn.Module] = {}

    def __call__(self, key: str) -> ConvertedModel:
        if key not in self._converted:
            self._converted[key] = convert_files(*self._files(key))
        return self._converted[key]

    def module(self, key: str) -> torch.nn.Module:
        if key not in self._modules:
            self._modules[key] = self(key).build_module()
        return self._modules[key]
