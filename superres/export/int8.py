"""INT8 with a quality guarantee: OpenVINO + NNCF post-training quantisation, accuracy-aware.

A plain post-training quantisation of a super-resolution network can be visibly off (34 dB from
the fp32 output for RRDB x4plus), because a few layers carry most of the error. So quantisation
here is judged, not trusted: the INT8 output is compared with the fp32 output on held-out images
(never used for calibration) and, while the PSNR is under the budget (45 dB by default), the
convolutions where the error grows most are put back in fp32, a few at a time, and the model is
quantised again. The layers kept in fp32 and the PSNR achieved are stored in the IR (rt_info)
and come back with :func:`read_int8_report`. Quantised models are built at first use and cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from superres.export.backends import MissingBackendError, require
from superres.export.calibration import CalibrationSet, calibration_set
from superres.export.convert import to_openvino
from superres.io.atomic import atomic_path
from superres.zoo.cache import cache_dir, tensors_sha256
from superres.zoo.loader import LoadedModel

# Bump when the algorithm could give a different IR for the same model, budget and images.
ALGORITHM_VERSION = "3"
RT_KEY = "superres_int8"
MAX_ROUNDS = 12  # quantise-and-measure rounds before giving up on the budget
LEAVE_ONE_OUT = 48  # up to this many activation quantisers, each is measured alone
CONV_KINDS = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData"})
LOW_BITS = ("i8", "u8", "i4", "u4")
PSNR_CAP = 100.0  # identical outputs

log = logging.getLogger(__name__)
_builds = 0  # models quantised by this process (int8_model_path's cache misses), for tests


class Int8UnavailableError(MissingBackendError):
    """OpenVINO or NNCF is not installed; the message names the extra to install."""


@dataclass
class Int8Report:
    """What the quantisation achieved: PSNR of the INT8 output vs fp32 on held-out images."""

    psnr_db: float  # the worst held-out image's
    budget_db: float
    fp32_layers: list[str] = field(default_factory=list)
    int8_layers: int = 0
    calib_images: int = 0
    seconds: float = 0.0
    model: str = ""
    held_images: int = 0
    plain_psnr_db: float = 0.0  # NNCF plain PTQ, before anything went back to fp32
    rounds: int = 0
    calib: str = ""
    versions: str = ""

    @property
    def met(self) -> bool:
        return self.psnr_db >= self.budget_db

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Int8Report:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _require() -> tuple[Any, Any]:
    """``(openvino, nncf)``, or Int8UnavailableError naming the extra."""
    try:
        require("int8")
    except MissingBackendError as exc:
        raise Int8UnavailableError("INT8 quantisation", exc.module, exc.extra) from None
    import nncf
    import openvino as ov

    return ov, nncf


def versions() -> str:
    ov, nncf = _require()
    return f"openvino {ov.get_version()}; nncf {nncf.__version__}; superres-int8 {ALGORITHM_VERSION}"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two outputs clipped to [0, 1] (what an image file would hold)."""
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else 10 * math.log10(1 / mse)


def held_psnr(compiled: Any, held: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """The worst PSNR over the held-out images, vs their fp32 outputs: the budget holds on each."""
    return min(psnr(np.asarray(compiled(x)[0]), r) for x, r in zip(held, reference, strict=True))


def compile_cpu(ovm: Any, *, threads: int | None = None, f32: bool = False) -> Any:
    """The model compiled for the CPU (latency hint); ``f32`` forbids bf16/f16 inference."""
    ov, _ = _require()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if f32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return ov.Core().compile_model(ovm, "CPU", config)


def conv_names(ovm: Any) -> list[str]:
    """Friendly names of the convolutions, in topological order."""
    return [op.get_friendly_name() for op in ovm.get_ordered_ops() if op.get_type_name() in CONV_KINDS]


def activation_quantizers(q: Any) -> list[str]:
    """Friendly names of the FakeQuantize nodes on activations (not on weights), in order."""
    return [op.get_friendly_name() for op in q.get_ordered_ops() if op.get_type_name() == "FakeQuantize"
            and op.input(0).get_source_output().get_node().get_type_name() != "Constant"]


def sensitivity(quantised: Any, held: list[np.ndarray]) -> dict[str, float]:
    """The relative noise each activation quantiser adds: |FQ(x) - x|^2 / |x|^2 on the held images.

    One pass with every quantiser's input and output exposed. A quantiser whose range had to
    stretch over rare outliers (or a signal that is mostly tiny values) rounds most values
    coarsely: its noise relative to its signal is high, and it is the first to go back to fp32.
    """
    names = activation_quantizers(quantised)
    m = quantised.clone()
    by_name = {op.get_friendly_name(): op for op in m.get_ordered_ops()}
    ports = []
    for n in names:
        fq = by_name[n]
        ports += [fq.input(0).get_source_output(), fq.output(0)]
    m.add_outputs(ports)
    compiled = compile_cpu(m)
    first = len(quantised.outputs)
    noise = np.zeros(len(names))
    power = np.zeros(len(names))
    for x in held:
        r = compiled(x)
        for i in range(len(names)):
            a, b = np.asarray(r[first + 2 * i]), np.asarray(r[first + 2 * i + 1])
            noise[i] += float(np.mean((b - a) ** 2))
            power[i] += float(np.mean(a**2))
    return {n: float(e / p) if p > 0 else 0.0 for n, e, p in zip(names, noise, power, strict=True)}


def _int8_convs(q: Any) -> int:
    """Convolutions whose weights are stored in 8 bits (NNCF compressed or fake-quantised)."""
    count = 0
    for name in conv_names(q):
        op = next(o for o in q.get_ordered_ops() if o.get_friendly_name() == name)
        node, depth = op.input(1).get_source_output().get_node(), 0
        while depth < 5:
            kind = node.get_type_name()
            low_bits = kind == "Constant" and node.get_element_type().get_type_name() in LOW_BITS
            if kind == "FakeQuantize" or low_bits:
                count += 1
                break
            if node.get_input_size() == 0:
                break
            node, depth = node.input(0).get_source_output().get_node(), depth + 1
    return count


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF's progress bars and info lines off: quantising is one step of a bigger command."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _quantise(ovm: Any, calib: list[np.ndarray]) -> Any:
    """One NNCF post-training quantisation of every convolution.

    Mixed preset (asymmetric activations: LeakyReLU/PReLU outputs are far from symmetric),
    per-channel weights, and activation ranges from the global min/max over the calibration crops:
    NNCF's default, the mean of per-crop min/max, suits classifiers that shrug off clipped outliers,
    but an upscaler's every output pixel counts, and clipped activations on a contrasty image
    (Set5 butterfly) cost up to 15 dB.
    """
    _, nncf = _require()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "subset_size": len(calib),
                              "fast_bias_correction": True, "advanced_parameters": advanced}
    with _quiet():
        return nncf.quantize(ovm, nncf.Dataset(calib), **kwargs)


# Ops that pass quantised values through unchanged: a FakeQuantize before them is really the
# quantiser of the convolution after them (NNCF moves it up, e.g. before a nearest resize or a concat).
TRANSPARENT = frozenset({"Concat", "Interpolate", "Reshape", "Transpose", "DepthToSpace", "Split",
                         "VariadicSplit", "StridedSlice", "Slice", "MaxPool", "Squeeze", "Unsqueeze"})


def _feeds_conv(target: Any) -> bool:
    """Whether a value read by ``target`` (an op input) reaches a convolution's data input unchanged."""
    stack, seen = [target], set()
    while stack:
        t = stack.pop()
        node = t.get_node()
        kind = node.get_type_name()
        if kind in CONV_KINDS:
            if t.get_index() == 0:
                return True
            continue
        if kind not in TRANSPARENT or node.get_friendly_name() in seen:
            continue
        seen.add(node.get_friendly_name())
        stack += [c for out in node.outputs() for c in out.get_target_inputs()]
    return False


def convs_only(quantised: Any) -> Any:
    """``quantised`` with INT8 activations only where a convolution reads them.

    NNCF also quantises the inputs of residual/skip additions, of the pixel shuffle after the last
    convolution and of the input image's resize; those cost quality (an 8-bit copy of the output
    before the pixel shuffle) and buy little speed, as such ops are memory-bound. Each of those
    edges gets the fp32 value; a quantiser that reaches a convolution through a resize or a
    concat stays.
    """
    q = quantised.clone()
    for fq in q.get_ordered_ops():
        if fq.get_type_name() != "FakeQuantize":
            continue
        source = fq.input(0).get_source_output()
        for target in list(fq.output(0).get_target_inputs()):
            if not _feeds_conv(target):
                target.replace_source_output(source)
    q.validate_nodes_and_infer_types()
    return q


def _consumers(node: Any) -> list[Any]:
    return [t.get_node() for out in node.outputs() for t in out.get_target_inputs()]


def _reads_quantised(conv: Any) -> bool:
    """Whether all of a convolution's data input is INT8: from FakeQuantize nodes, directly or
    through concats (every input quantised) and resizes; only then can it run in INT8."""

    def quantised(node: Any, depth: int) -> bool:
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return True
        if kind not in TRANSPARENT or depth > 16:
            return False
        sources = [i.get_source_output().get_node() for i in node.inputs()]
        if kind != "Concat":
            sources = sources[:1]  # the data input; the rest are shapes, axes, scales
        return all(quantised(n, depth + 1) for n in sources)

    return quantised(conv.input(0).get_source_output().get_node(), 0)


def revert(fp32: Any, quantised: Any, quantizers: list[str]) -> tuple[Any, list[str]]:
    """A copy of ``quantised`` with the named activation quantisers removed, and the convolutions
    left without an INT8 input back to fp32 weights and bias; also returns those convolutions.

    No recalibration: the rest of the model keeps its ranges. A convolution's weights and bias go
    back to the fp32 originals (bias correction had tuned the bias for the INT8 weights).
    """
    _require()
    from openvino import opset13 as ops

    q = quantised.clone()
    by_q = {op.get_friendly_name(): op for op in q.get_ordered_ops()}
    by_f = {op.get_friendly_name(): op for op in fp32.get_ordered_ops()}
    for name in quantizers:
        fq = by_q.get(name)
        if fq is not None and fq.get_type_name() == "FakeQuantize":
            source = fq.input(0).get_source_output()
            for target in list(fq.output(0).get_target_inputs()):
                target.replace_source_output(source)
    restored = []
    for conv in [op for op in q.get_ordered_ops() if op.get_type_name() in CONV_KINDS]:
        orig = by_f.get(conv.get_friendly_name())
        if orig is None or _reads_quantised(conv):
            continue
        restored.append(conv.get_friendly_name())
        weights = orig.input(1).get_source_output().get_node()
        conv.input(1).replace_source_output(ops.constant(_constant_value(weights)).output(0))
        for add in _consumers(conv):
            twin = by_f.get(add.get_friendly_name())
            if add.get_type_name() != "Add" or twin is None:
                continue
            for i in range(add.get_input_size()):
                bias = twin.input(i).get_source_output().get_node()
                if bias.get_type_name() == "Constant":
                    add.input(i).replace_source_output(ops.constant(_constant_value(bias)).output(0))
    q.validate_nodes_and_infer_types()
    return q, restored


def _constant_value(node: Any) -> np.ndarray:
    """The float32 value behind a Constant, or behind a Convert of a (f16) Constant."""
    while node.get_type_name() == "Convert":
        node = node.input(0).get_source_output().get_node()
    return np.asarray(node.get_data(), dtype=np.float32).copy()


def ranking(fp32: Any, base: Any, held: list[np.ndarray], reference: list[np.ndarray]) -> list[str]:
    """Activation quantisers, the one costing the most quality first.

    A small model (up to ``LEAVE_ONE_OUT`` quantisers) is measured: each quantiser is left alone
    in an otherwise fp32 model and the held-out PSNR it reaches ranks it, lowest first (removing
    one quantiser at a time from the INT8 model measures little: the others' error masks it).
    For a big model that costs too many compilations, so the ends go first (the input of the
    first convolution and the last four quantisers: the upsampler and the output convolution,
    whose error reaches the output undamped), then the rest by the relative noise each adds
    (:func:`sensitivity`).
    """
    names = activation_quantizers(base)
    if len(names) <= LEAVE_ONE_OUT:
        alone = {}
        for n in names:
            only_n, _ = revert(fp32, base, [m for m in names if m != n])
            alone[n] = held_psnr(compile_cpu(only_n), held, reference)
        return sorted(names, key=alone.__getitem__)
    noise = sensitivity(base, held)
    ends = [*reversed(names[-4:]), names[0]]
    return ends + sorted((n for n in names if n not in ends), key=noise.__getitem__, reverse=True)


def quantize(model: LoadedModel, *, budget_db: float = 45.0, calib: Path | None = None,
             max_calib: int = 64) -> tuple[Any, Int8Report]:
    """``model`` quantised to INT8 with its output within ``budget_db`` PSNR of fp32 on held images.

    Layers go back to fp32 in the order of the error they add (see :func:`sensitivity`), in
    growing steps (1, 2, 4, ...), then the smallest passing count is narrowed down, so that as
    few layers as needed lose their INT8 speed. If even the last round misses the budget, the
    best model found comes back with a report saying so (``report.met`` is False) and a warning.
    """
    _require()
    t0 = time.perf_counter()
    cs: CalibrationSet = calibration_set(calib, multiple=model.size_multiple, max_calib=max_calib)
    ovm = to_openvino(model)
    reference = [np.asarray(compile_cpu(ovm, f32=True)(x)[0]) for x in cs.held]
    nncf_plain = _quantise(ovm, cs.calib)
    plain = held_psnr(compile_cpu(nncf_plain), cs.held, reference)
    base = convs_only(nncf_plain)
    score = held_psnr(compile_cpu(base), cs.held, reference)
    log.info("%s: NNCF INT8 %.2f dB from fp32, INT8 convolutions only %.2f dB (budget %g)",
             model.name, plain, score, budget_db)
    best: tuple[Any, float, list[str]] = (base, score, [])
    rounds = 2
    if score < budget_db:
        order = ranking(ovm, base, cs.held, reference)
        failed, passed = 0, None
        size = 1
        while rounds < MAX_ROUNDS:
            q, fp32_convs = revert(ovm, base, order[:size])
            score = held_psnr(compile_cpu(q), cs.held, reference)
            rounds += 1
            log.info("%s: %d activation quantisers removed (%d convolutions fp32): %.2f dB",
                     model.name, size, len(fp32_convs), score)
            if score >= budget_db:
                passed = size
                if best[1] < budget_db or len(fp32_convs) <= len(best[2]):
                    best = (q, score, fp32_convs)
            else:
                failed = size
                if score > best[1] and best[1] < budget_db:
                    best = (q, score, fp32_convs)
            if passed is None:
                if size >= len(order):
                    break
                size = min(len(order), 2 * size)
            else:
                if passed - failed <= max(1, passed // 8):
                    break
                size = (failed + passed) // 2
    q, score, kept = best
    report = Int8Report(
        psnr_db=round(score, 3), budget_db=budget_db, fp32_layers=list(kept), int8_layers=_int8_convs(q),
        calib_images=len(cs.calib), seconds=round(time.perf_counter() - t0, 2), model=model.name,
        held_images=len(cs.held), plain_psnr_db=round(plain, 3), rounds=rounds, calib=cs.identity,
        versions=versions())
    if not report.met:
        warnings.warn(f"{model.name}: INT8 reaches {score:.2f} dB from the fp32 output, under the "
                      f"{budget_db:g} dB budget, after {rounds} rounds", stacklevel=2)
    q.set_rt_info(report.to_json(), [RT_KEY])
    return q, report


def read_int8_report(xml_path: Path) -> Int8Report:
    """The report stored in an INT8 IR's rt_info by :func:`quantize`."""
    ov, _ = _require()
    ovm = ov.Core().read_model(str(xml_path))
    if not ovm.has_rt_info([RT_KEY]):
        raise ValueError(f"{xml_path}: no superres INT8 report in this IR")
    return Int8Report.from_json(ovm.get_rt_info([RT_KEY]).astype(str))


def build_count() -> int:
    """How many INT8 models :func:`int8_model_path` has built in this process (cache misses)."""
    return _builds


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(model: LoadedModel, *, budget_db: float, calib: Path | None, max_calib: int) -> str:
    """Weights, budget, calibration images and versions: anything that changes the INT8 IR."""
    identity = calibration_set(calib, multiple=model.size_multiple, max_calib=max_calib).identity
    parts = [tensors_sha256(model.module.state_dict()), model.name, str(model.luma_only),
             f"{budget_db:.4f}", identity, versions()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _valid(xml: Path, meta: Path) -> bool:
    """The cached IR is whole: both files present and matching the hashes written after them."""
    try:
        stored = json.loads(meta.read_text())
        return (stored.get("xml_sha256") == _sha(xml) and stored.get("versions") == versions()
                and stored.get("bin_sha256") == _sha(xml.with_suffix(".bin")))
    except (OSError, ValueError):
        return False


def int8_model_path(model: LoadedModel, *, budget_db: float = 45.0, calib: Path | None = None,
                    max_calib: int = 64) -> Path:
    """The cached INT8 IR (.xml) for ``model``, quantised at first use; a corrupt entry is rebuilt.

    The .bin and .xml are written atomically, then a small .json with their hashes; an entry
    whose files do not match it (truncated, bit-flipped, half-written) is built again.
    """
    global _builds
    ov, _ = _require()
    key = cache_key(model, budget_db=budget_db, calib=calib, max_calib=max_calib)
    folder = cache_dir() / "int8"
    xml = folder / f"{model.name}-{key}.xml"
    meta = xml.with_suffix(".json")
    if xml.is_file() and meta.is_file() and _valid(xml, meta):
        return xml
    if meta.exists():
        warnings.warn(f"{xml}: INT8 cache entry is corrupt or stale; rebuilding it", stacklevel=2)
    q, report = quantize(model, budget_db=budget_db, calib=calib, max_calib=max_calib)
    _builds += 1
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(xml) as tmp_xml:
        staged = tmp_xml.with_name(tmp_xml.name + ".ir.xml")
        try:
            ov.save_model(q, str(staged), compress_to_fp16=False)
            with atomic_path(xml.with_suffix(".bin")) as tmp_bin:
                os.replace(staged.with_suffix(".bin"), tmp_bin)
            os.replace(staged, tmp_xml)
        finally:
            for leftover in (staged, staged.with_suffix(".bin")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    digest = {"xml_sha256": _sha(xml), "bin_sha256": _sha(xml.with_suffix(".bin")), "versions": versions(),
              "psnr_db": report.psnr_db}
    with atomic_path(meta) as tmp_meta:
        tmp_meta.write_text(json.dumps(digest, sort_keys=True))
    return xml
