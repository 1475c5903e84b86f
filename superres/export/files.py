"""Exported files: ONNX, TorchScript and OpenVINO IR (fp32, fp16; INT8 for OpenVINO), and their check.

Every file runs the same network as the PyTorch runner (:func:`runner_network`: RGB in [0, 1],
NCHW float32 in and out, in every precision; Y-only models convert colour inside the graph),
with dynamic batch, height and width, and carries its metadata (:mod:`superres.export.metadata`).
Writes are atomic. :func:`check_export` loads the written file with its real runtime and compares
it with PyTorch on a crop of a real photo, because random noise drives some networks (SPAN,
Real-CUGAN pro) far outside their range, where float32 itself is ill-conditioned (docs/export.md).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.export.backends import MissingBackendError, require
from superres.export.convert import ONNX_OPSET, example_input, runner_network, to_onnx_bytes, to_openvino
from superres.export.metadata import (
    TORCHSCRIPT_FILE,
    build_metadata,
    read_metadata,
    set_ir_metadata,
    set_onnx_metadata,
    sniff_format,
)
from superres.io.atomic import atomic_path, fsync_dir, temp_name
from superres.io.sample import sample_crop, sample_rgb
from superres.zoo.loader import LoadedModel

__all__ = ["FORMATS", "PRECISIONS", "SUFFIXES", "TOLERANCES", "ExportCheck", "ExportCheckError",
           "ExportError", "ExportResult", "MissingBackendError", "check_export", "default_output",
           "export_model", "probe_image", "read_metadata", "verify_export"]

FORMATS = ("onnx", "torchscript", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "openvino": ".xml"}
RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torch.jit", "openvino": "openvino"}
# max |output - PyTorch fp32 output| on the photo probe (outputs ~[0, 1]). fp32: measured 5e-7 to
# 1e-5 on every catalogue model; fp16: 2e-4 to 1.5e-3. INT8 is held to its PSNR budget instead.
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2}
PROBE = (48, 80)  # not the export example's 64x64: the check also proves the shapes are dynamic
INT8_PROBE = (96, 96)  # bottom right: outside the left 2/3 the INT8 calibration crops come from


class ExportError(ValueError):
    """An export that cannot be made as asked (format/precision mismatch, bad output name)."""


class ExportCheckError(ValueError):
    """The written file does not reproduce PyTorch within its tolerance (``.check`` has the figures)."""

    def __init__(self, check: ExportCheck) -> None:
        self.check = check
        super().__init__(check.describe())


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: the main file, every file (IR: .xml and .bin), metadata."""

    path: Path
    files: tuple[Path, ...]
    fmt: str
    precision: str
    metadata: dict[str, str]
    int8_report: Any = None

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


@dataclass(frozen=True)
class ExportCheck:
    """The file's output against PyTorch fp32 on the probe; INT8 is judged by PSNR, others by max |diff|."""

    runtime: str
    precision: str
    probe: tuple[int, int]
    max_diff: float
    psnr_db: float
    tolerance: float | None
    budget_db: float | None
    passed: bool
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        h, w = self.probe
        what = f"{self.runtime} on a {h}x{w} photo crop: max |diff| {self.max_diff:.2e}, PSNR " \
               f"{self.psnr_db:.2f} dB vs PyTorch fp32"
        if self.budget_db is not None:
            limit = f"budget {self.budget_db:g} dB"
            if self.tolerance is not None:
                limit += f", tolerance {self.tolerance:g}"
        else:
            limit = f"tolerance {self.tolerance:g}"
        return f"{what} ({limit}): {'ok' if self.passed else 'FAILED'}"


def default_output(model: LoadedModel, fmt: str, precision: str = "fp32") -> Path:
    """``<model>-<precision>.onnx|.pt|.xml`` in the current folder (a weight file: its stem)."""
    stem = Path(model.name).stem if Path(model.name).suffix else Path(model.name).name
    return Path(f"{stem}-{precision}{SUFFIXES[fmt]}")


def _check_request(fmt: str, precision: str, out: Path, calib: Path | None) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and fmt != "openvino":
        raise ExportError(f"int8 is exported as OpenVINO IR only (--format openvino), not {fmt}")
    if calib is not None and precision != "int8":
        raise ExportError("calibration images (--calib) are only used for --precision int8")
    if fmt == "openvino" and out.suffix.lower() != ".xml":
        raise ExportError(f"{out}: an OpenVINO IR is a .xml file (its weights go to the .bin beside it)")


def export_model(model: LoadedModel, out: Path, *, fmt: str, precision: str = "fp32",
                 calib: Path | None = None, budget_db: float = 45.0) -> ExportResult:
    """Write ``model`` as ``fmt`` at ``precision`` to ``out`` atomically (an IR: ``out`` and its .bin).

    Raises ``ExportError`` for a request that cannot be met and ``MissingBackendError`` (naming
    the extra to install) when the format's package is missing, before anything is written.
    """
    out = Path(out)
    _check_request(fmt, precision, out, calib)
    require("int8" if precision == "int8" else fmt)
    if fmt == "onnx":
        md = build_metadata(model, fmt=fmt, precision=precision, opset=ONNX_OPSET)
        _write_onnx(model, out, precision, md)
        return ExportResult(out, (out,), fmt, precision, md)
    if fmt == "torchscript":
        md = build_metadata(model, fmt=fmt, precision=precision)
        _write_torchscript(model, out, precision, md)
        return ExportResult(out, (out,), fmt, precision, md)
    report = None
    if precision == "int8":
        from superres.export.int8 import quantize  # heavy (nncf); only for INT8

        ovm, report = quantize(model, budget_db=budget_db, calib=calib)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter, as in to_onnx_bytes (checked after writing)
            ovm = to_openvino(model)
    md = build_metadata(model, fmt=fmt, precision=precision, int8_report=report)
    set_ir_metadata(ovm, md)
    files = _write_ir(ovm, out, compress_to_fp16=precision == "fp16")
    return ExportResult(out, files, fmt, precision, md, report)


def _write_onnx(model: LoadedModel, out: Path, precision: str, md: dict[str, str]) -> None:
    """fp16 is the whole graph in half precision with float32 input and output (casts at the edges),
    so every file takes the same input. ONNX Runtime's CPU provider runs it, casting to float32
    where it lacks half kernels: fp16 ONNX is for GPUs (CUDA / TensorRT providers) and size."""
    import onnx

    proto = onnx.load_from_string(to_onnx_bytes(model))
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
    set_onnx_metadata(proto, md)
    data = proto.SerializeToString()
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)


class _HalfInside(nn.Module):
    """A half-precision network behind float32 input and output (the interface of every export)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def _write_torchscript(model: LoadedModel, out: Path, precision: str, md: dict[str, str]) -> None:
    """Traced, not scripted (the architectures use Python freely); the check at a size other than
    the example's catches any shape the trace froze. fp16 traces on a small example because half
    convolutions are slow on CPU; the file is meant for a GPU (``torch.jit.load(map_location="cuda")``)."""
    net = copy.deepcopy(runner_network(model)).requires_grad_(False).eval()
    example = example_input(model)
    if precision == "fp16":
        net = _HalfInside(net).eval()
        example = example_input(model, 32)
    with torch.no_grad(), warnings.catch_warnings(), atomic_path(out) as tmp:
        # deprecated upstream in favour of torch.export, still what C++/libtorch deployments load;
        # tracer chatter about Python values (FSRCNN's tap index depends on stride/kernel only)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (example,), check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_FILE: json.dumps(md, sort_keys=True)})


def _write_ir(ov_model: Any, out: Path, *, compress_to_fp16: bool) -> tuple[Path, Path]:
    """The .xml and .bin pair, saved in a hidden folder beside ``out`` and moved in (.bin first, so a
    reader that finds the new .xml finds its weights); the folder is swept on any failure."""
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    work = temp_name(out)
    work.mkdir()
    try:
        xml = work / out.name
        ov.save_model(ov_model, str(xml), compress_to_fp16=compress_to_fp16)
        pairs = [(xml.with_suffix(".bin"), out.with_suffix(".bin")), (xml, out)]
        for src, _ in pairs:
            with open(src, "rb+") as f:
                os.fsync(f.fileno())
        for src, dst in pairs:
            os.replace(src, dst)
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, out.with_suffix(".bin")


def probe_image(model: LoadedModel, size: tuple[int, int] = PROBE, *, corner: bool = False) -> torch.Tensor:
    """A (1,3,h,w) crop of the bundled photo in [0, 1], sides cut to the model's size multiple;
    ``corner``: the bottom-right crop, which the bundled INT8 calibration never sees.

    Real content, not noise: noise is far outside what these networks were trained on and makes
    some of them (SPAN, Real-CUGAN pro) output values in the hundreds, where float32 rounding
    alone moves the output by 0.07 (docs/export.md).
    """
    m = model.size_multiple
    h, w = (max(m, s - s % m) for s in size)
    height, width = sample_rgb().shape[:2]
    top, left = (max(0, height - h), max(0, width - w)) if corner else (40, 100)
    return torch.from_numpy(sample_crop(h, w, top=top, left=left))[None]


def _file_runner(path: Path, fmt: str) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    """Run the written file with its own runtime: (NCHW float32 -> NCHW float32, notes)."""
    notes: list[str] = []
    threads = torch.get_num_threads()
    if fmt == "onnx":
        require("onnx")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # no warnings about constant folding of fp16 nodes
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return (lambda x: sess.run(None, {sess.get_inputs()[0].name: x})[0]), notes
    if fmt == "openvino":
        require("openvino")
        import openvino as ov

        # f32 inference: on CPUs with bf16/fp16 units OpenVINO would otherwise lower precision itself
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                             "INFERENCE_NUM_THREADS": threads})
        return (lambda x: np.asarray(compiled(x)[0])), notes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location=device).eval()
    notes.append(f"torch.jit on {device}")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run, notes


def check_export(path: Path, model: LoadedModel, *, tolerance: float | None = None) -> ExportCheck:
    """Load ``path`` with its runtime, run the photo probe, compare with PyTorch fp32 on ``model``.

    ``tolerance`` is the largest allowed max |diff| (default per precision, ``TOLERANCES``).
    INT8 files are held to the PSNR budget stored in them instead, and to ``tolerance`` only
    when it is given.
    """
    path = Path(path)
    fmt = sniff_format(path)
    md = read_metadata(path)
    precision = md.get("precision", "fp32")
    int8 = precision == "int8"
    x = probe_image(model, INT8_PROBE, corner=True) if int8 else probe_image(model)
    with torch.no_grad():
        ref = runner_network(model)(x).numpy()
    run, notes = _file_runner(path, fmt)
    out = run(x.numpy())
    probe = (int(x.shape[2]), int(x.shape[3]))
    if out.shape != ref.shape:
        notes.append(f"output shape {out.shape}, PyTorch {ref.shape}")
        return ExportCheck(RUNTIMES[fmt], precision, probe, math.inf, -math.inf, tolerance, None, False,
                           notes)
    diff = float(np.abs(out.astype(np.float64) - ref).max())
    mse = float(np.mean((np.clip(out, 0, 1).astype(np.float64) - np.clip(ref, 0, 1)) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
    budget = float(md.get("int8_budget_db", "45")) if int8 else None
    tol = tolerance if (tolerance is not None or int8) else TOLERANCES.get(precision, TOLERANCES["fp32"])
    passed = (tol is None or diff <= tol) and (budget is None or psnr >= budget)
    return ExportCheck(RUNTIMES[fmt], precision, probe, diff, psnr, tol, budget, passed, notes)


def verify_export(path: Path, model: LoadedModel, *, tolerance: float | None = None) -> float:
    """Max |diff| of the file vs PyTorch on the photo probe; ``ExportCheckError`` past the tolerance
    (INT8: below its stored PSNR budget). See :func:`check_export`."""
    check = check_export(path, model, tolerance=tolerance)
    if not check.passed:
        raise ExportCheckError(check)
    return check.max_diff
