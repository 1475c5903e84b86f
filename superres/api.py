"""Public Python API: ``superres.load(...)`` and the classic ``Upscaler(...).infer(bgr)``.

``Upscaler.upscale`` accepts what people have at hand (numpy arrays, PIL images, torch
tensors) and returns the same kind, so it drops into existing code.

What it takes: numpy uint8 (0-255), uint16 (0-65535) or float16/32/64 (0-1, returned as the
same float type); tensors uint8, uint16 (where torch has it) or floating point (other integer
tensors are refused: whether int64 holds 0..255 or 0..65535 cannot be told); PIL images of any
mode Pillow converts, mode "I" only within 0..65535 (returned as "I;16"). Refused with ValueError
before inference: NaN/inf samples, a scale that is not finite and > 0, an output over the
engine's pixel limit (superres.engine.upscaler.MAX_OUTPUT_PIXELS, ``max_output_pixels=``).
An empty (0,C,H,W) batch gives an empty batch of the output size.

``backend`` picks the runtime that runs the network (superres.runtimes, docs/runtimes.md). The
default is "torch", not "auto": PyTorch's output is the reference the other backends are checked
against (they agree within ~1e-5, not bit for bit), and "auto" measures the backends once per
model and machine, which a plain ``load()`` should not cost. ``backend="auto"`` opts in.
"""


from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superres.engine.upscaler import TileSettings, UpscaleEngine, check_scale
from superres.runtimes import check_backend, make_runner
from superres.runtimes.pytorch import make_torch_runner
from superres.zoo import DEFAULT_MODEL
from superres.zoo.loader import LoadedModel, load_model


class Upscaler:
    """A loaded model ready to upscale images; also an ``Engine`` (superres.engine.protocol).

    ``scale_factor`` is the output scale (default: the model's own); ``model_path`` or
    ``model`` name the weights (a zoo name or a ``.pth``/``.safetensors`` file).
    """

    def __init__(
        self,
        scale_factor: float | None = None,
        model_path: str | Path | None = None,
        *,
        model: str | Path | LoadedModel | None = None,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        batch: int = 1,
        alpha: str = "model",
        channels_last: bool = True,
        model_scale: int | None = None,
        max_output_pixels: int | None = None,
        backend: str = "torch",
        threads: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        # model_scale: the factor of a weight file that does not record it (SRCNN/FSRCNN .pth)
        # max_output_pixels: refuse larger outputs (default $SUPERRES_MAX_OUTPUT_PIXELS or 2^28)
        # backend: torch (default), auto, torch-winograd, openvino, onnxruntime, ncnn, tensorrt;
        # precision "int8" needs openvino.
        # threads: CPU threads of a non-torch backend (default: PyTorch's count)
        # compile / cuda_graphs: torch.compile and CUDA graph replay of the torch runner (docs/gpu.md)
        if scale_factor is not None:
            scale_factor = check_scale(scale_factor)  # before loading: 0 is not "the default"
        check_backend(backend, precision)  # before loading: a typo should not cost a model load
        if (compile or cuda_graphs) and backend != "torch":
            raise ValueError(f"compile and cuda_graphs apply to the torch backend only, not {backend!r}")
        source = model if model is not None else (model_path or DEFAULT_MODEL)
        loaded = source if isinstance(source, LoadedModel) else load_model(source, scale=model_scale)
        runner = None
        if backend != "torch":  # torch: the engine's own TorchRunner, as before (same bytes)
            runner = make_runner(loaded, backend, device=device, precision=precision, threads=threads)
        elif compile or cuda_graphs:
            runner = make_torch_runner(loaded, device=device, precision=precision,
                                       channels_last=channels_last, compile=compile, cuda_graphs=cuda_graphs)
        self.engine = UpscaleEngine(
            loaded, device=device, precision=precision,
            tiles=TileSettings(tile=tile, pad=tile_pad, batch=batch), alpha=alpha,
            channels_last=channels_last, runner=runner, max_output_pixels=max_output_pixels,
        )
        self.scale = float(loaded.net_scale) if scale_factor is None else scale_factor

    @property
    def model(self) -> LoadedModel:
        return self.engine.model

    @property
    def backend(self) -> str:
        """The runner's name, e.g. "torch-fp32", "openvino-int8", "ncnn-fp32"."""
        runner = self.engine.runner
        name = getattr(runner, "name", None)
        if name is None:
            dtype = str(runner.dtype).removeprefix("torch.").replace("float", "fp").replace("bfp", "bf")
            name = f"torch-{dtype}"
        return str(name)

    def __repr__(self) -> str:
        m = self.model
        return (f"Upscaler(model={m.name!r}, arch={m.arch}, scale={self.scale:g}, "
                f"backend={self.backend}, device={self.engine.device}, dtype={self.engine.dtype})")

    def upscale(self, image: Any, *, bgr: bool = False, scale: float | None = None) -> Any:
        """Upscale a numpy array (HxW[xC], RGB(A) unless ``bgr``), PIL image or tensor.

        Tensors are (C,H,W) or (N,C,H,W), float in [0,1] (uint8 read as 0-255); the result
        has the input's type, dtype, layout and device. See the module docstring for what is
        refused (ValueError, before inference).
        """
        scale = self.scale if scale is None else check_scale(scale)
        if isinstance(image, np.ndarray):
            return self._numpy(image, bgr, scale)
        if isinstance(image, torch.Tensor):
            return self._tensor(image, scale)
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - Pillow is a dependency
            Image = None  # type: ignore[assignment]
        if Image is not None and isinstance(image, Image.Image):
            return self._pil(image, scale)
        raise TypeError(f"cannot upscale a {type(image).__name__}: give a numpy array, PIL image or tensor")

    def infer(self, bgr_image: np.ndarray) -> np.ndarray:
        """The classic snippet's call: BGR(A) uint8/uint16 array in, BGR(A) array out."""
        return self.upscale(bgr_image, bgr=True)

    __call__ = upscale

    # ---- the engine contract (superres.engine.protocol.Engine), at this upscaler's scale ----
    @property
    def frames_per_pass(self) -> int:
        return self.engine.frames_per_pass

    def passes_for(self, target_scale: float) -> int:
        return self.engine.passes_for(target_scale)

    def upscale_rgb(self, rgb: torch.Tensor, target_scale: float | None = None,
                    on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
        return self.engine.upscale_rgb(rgb, self._target(target_scale), on_tile)

    def upscale_array(self, pixels: np.ndarray, target_scale: float | None = None,
                      on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        return self.engine.upscale_array(pixels, self._target(target_scale), on_tile)

    def upscale_arrays(self, frames: list[np.ndarray], target_scale: float | None = None) -> list[np.ndarray]:
        return self.engine.upscale_arrays(frames, self._target(target_scale))

    def _target(self, target_scale: float | None) -> float:
        return self.scale if target_scale is None else check_scale(target_scale)

    # ---- adapters ------------------------------------------------------------------
    def _numpy(self, arr: np.ndarray, bgr: bool, scale: float) -> np.ndarray:
        if bgr and arr.ndim == 3 and arr.shape[2] >= 3:
            arr = _swap_rb(arr)
        out = self.engine.upscale_array(arr, scale)
        return _swap_rb(out) if bgr and out.ndim == 3 and out.shape[2] >= 3 else out

    def _tensor(self, t: torch.Tensor, scale: float) -> torch.Tensor:
        if t.ndim not in (3, 4):
            raise ValueError(f"expected a (C,H,W) or (N,C,H,W) tensor, got shape {tuple(t.shape)}")
        if t.dtype != torch.uint8 and t.dtype != getattr(torch, "uint16", None) \
                and not t.dtype.is_floating_point:
            raise ValueError(f"unsupported tensor dtype {t.dtype}: give uint8 (0-255), uint16 (0-65535) "
                             "or float (0-1), e.g. t.float() / 255")
        batch = t[None] if t.ndim == 3 else t
        if batch.shape[0] == 0:  # an empty batch: nothing to run, but the right output shape
            _, c, h, w = batch.shape
            if c not in (1, 2, 3, 4) or min(h, w) < 1:
                raise ValueError(f"expected (N,C,H,W) with C in 1..4, got shape {tuple(t.shape)}")
            self.engine.check_size(h, w, scale)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            return t.new_empty((0, c, *size))
        outs = []
        for item in batch:
            hwc = item.detach().permute(1, 2, 0).cpu()
            arr = hwc.numpy() if not hwc.dtype.is_floating_point else hwc.float().numpy()
            up = self.engine.upscale_array(np.ascontiguousarray(arr), scale)
            outs.append(torch.from_numpy(np.ascontiguousarray(up)).permute(2, 0, 1))
        res = torch.stack(outs).to(device=t.device, dtype=t.dtype)
        return res[0] if t.ndim == 3 else res

    def _pil(self, img: Any, scale: float) -> Any:
        from PIL import Image

        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img)
            if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError(f'mode "I" image has values {arr.min()}..{arr.max()}; only 0..65535 '
                                 "(16-bit) is taken: scale or clip it first")
            arr = arr.astype(np.uint16)
            return Image.fromarray(self.engine.upscale_array(arr, scale))  # uint16 -> "I;16"
        work = {"P": "RGBA" if "transparency" in img.info else "RGB", "LA": "RGBA",
                "CMYK": "RGB", "1": "L"}.get(mode, mode)
        arr = np.asarray(img.convert(work) if work != mode else img)
        out = Image.fromarray(self.engine.upscale_array(arr, scale), mode=work)
        if (icc := img.info.get("icc_profile")) is not None:
            out.info["icc_profile"] = icc
        return out


def _swap_rb(arr: np.ndarray) -> np.ndarray:
    idx = [2, 1, 0, *range(3, arr.shape[2])]
    return np.ascontiguousarray(arr[:, :, idx])


def load(name_or_path: str | Path = DEFAULT_MODEL, *, device: str | torch.device | None = "auto",
         **options: Any) -> Upscaler:
    """Load a zoo model by name or a weight file by path; options as for ``Upscaler``
    (``backend="openvino", precision="int8"`` for the quantised model, ``backend="auto"``)."""
    return Upscaler(model=name_or_path, device=device, **options)
