"""What an exported file says about itself, stored inside the file in each format's own place.

A deployed file travels without superres, so what a consumer needs to use it right (the input
range, the scale, the resize after the network, the size multiple, the licence) is written into
it: ONNX ``metadata_props`` (keys prefixed ``superres.``), a ``superres.json`` extra file in a
TorchScript archive, OpenVINO ``rt_info`` under ``superres`` (saved in the ``.xml``).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

from superres import __version__
from superres.zoo.loader import LoadedModel

INPUT_DESC = "RGB float32 NCHW in [0,1]"
ONNX_PREFIX = "superres."
TORCHSCRIPT_FILE = "superres.json"
RT_INFO_KEY = "superres"
INT8_FIELDS = ("psnr_db", "budget_db", "fp32_layers", "int8_layers", "calib_images", "seconds",
               "held_images", "plain_psnr_db")  # the last two where the report has them


def build_metadata(model: LoadedModel, *, fmt: str, precision: str, opset: int | None = None,
                   int8_report: Any = None) -> dict[str, str]:
    """The key/value strings every exported file carries (the INT8 figures too when given)."""
    resize = model.output_resize
    out = f"RGB float32 NCHW, height and width x{model.scale}, not clamped (clamp to [0,1])"
    if resize:
        out += f", then a bicubic resize by {resize:g} (overall x{model.net_scale:g})"
    md = {
        "model": Path(model.name).name,  # a user file's name, not the folder it was on
        "arch": model.arch,
        "arch_kwargs": json.dumps(model.kwargs, sort_keys=True, default=str),
        "scale": str(model.scale),
        "output_resize": "" if not resize else repr(float(resize)),
        "net_scale": f"{model.net_scale:g}",
        "size_multiple": str(model.size_multiple),
        "input": INPUT_DESC,
        "output": out,
        "input_name": "input",
        "output_name": "output",
        "licence": model.licence,
        "format": fmt,
        "precision": precision,
        "superres_version": __version__,
    }
    if model.arch == "realcugan":
        md["min_side"] = str(_realcugan_min_side(model.scale))
    if opset is not None:
        md["opset"] = str(opset)
    if int8_report is not None:
        md.update(int8_metadata(int8_report))
    return md


def _realcugan_min_side(scale: int) -> int:
    """Real-CUGAN reflect-pads inside the network; PyTorch mirrors inputs smaller than the pad
    repeatedly, a size-dependent branch that a traced file does not keep, so sides must exceed it."""
    from superres.archs.realcugan import PADDING

    pad, multiple = PADDING[scale]
    return pad + multiple


def int8_metadata(report: Any) -> dict[str, str]:
    """The INT8 report's figures as ``int8_*`` strings (lists as JSON), whatever its class."""
    values = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else vars(report)
    md = {}
    for key in INT8_FIELDS:
        if key in values:
            v = values[key]
            md[f"int8_{key}"] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return md


def sniff_format(path: Path) -> str:
    """onnx, torchscript or openvino, from the file's first bytes (any file name works)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        return "torchscript"  # a zip archive
    if head.lstrip().startswith((b"<?xml", b"<net")):
        return "openvino"
    return "onnx"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``superres`` metadata of an exported file (ONNX, TorchScript or OpenVINO IR ``.xml``).

    Read without running anything: the ONNX protobuf, the TorchScript zip's extra file, the IR's
    XML ``rt_info``. An empty dict for a file that holds none.
    """
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "torchscript":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.split("/", 1)[-1] == f"extra/{TORCHSCRIPT_FILE}"]
            return json.loads(zf.read(names[0])) if names else {}
    if fmt == "openvino":
        return _read_ir_rt_info(path)
    from superres.export.backends import require

    require("onnx-metadata")
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(ONNX_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(ONNX_PREFIX)}


def _read_ir_rt_info(path: Path) -> dict[str, str]:
    """``<rt_info><superres><key value=.../>`` from the IR's XML (no OpenVINO needed to read it)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    node = root.find(f"rt_info/{RT_INFO_KEY}")
    if node is None:
        return {}
    return {child.tag: child.get("value", "") for child in node}


def set_onnx_metadata(proto: Any, md: dict[str, str]) -> None:
    """Replace our keys in an ``onnx.ModelProto``'s ``metadata_props`` (others' keys stay)."""
    keep = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith(ONNX_PREFIX)]
    del proto.metadata_props[:]
    for key, value in [*keep, *((ONNX_PREFIX + k, v) for k, v in md.items())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "superres"
    proto.producer_version = __version__
    proto.doc_string = (f"{md['model']} ({md['arch']}) x{md['net_scale']}, {md['precision']}; "
                        f"input {md['input']}")


def set_ir_metadata(ov_model: Any, md: dict[str, str]) -> None:
    """Put ``md`` in an ``openvino.Model``'s rt_info under ``superres`` (saved in the .xml)."""
    for key, value in md.items():
        ov_model.set_rt_info(value, [RT_INFO_KEY, key])
