"""Check a weight file's container before its tensors are read: nothing here allocates more than the header.

A small hostile file can make a loader allocate gigabytes: a ``.pth`` zip whose entries declare
gigabytes of deflated zeros (a 285 KB file took 2.9 GB and 267 s), a ``.safetensors`` header
whose shapes do not match its byte ranges. These checks read only the headers (the safetensors
JSON, the zip's central directory) and compare what they declare with the file's size and the
limits of :class:`~superres.weights.limits.WeightLimits`.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path

from superres.weights.errors import ModelFileError
from superres.weights.limits import WeightLimits

# Bytes per element of each safetensors dtype (their names as in the format's spec).
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def check_container(path: Path, limits: WeightLimits) -> None:
    """Refuse (``ModelFileError``) a file whose size or declared contents break the limits."""
    size = path.stat().st_size
    if size > limits.max_weight_file_bytes:
        raise ModelFileError(f"{path}: {size} bytes is over the weight-file limit of "
                             f"{limits.max_weight_file_bytes} (SUPERRES_MAX_WEIGHT_FILE_BYTES)")
    with path.open("rb") as f:
        if path.suffix.lower() == ".safetensors":
            head = f.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                head += f.read(min(n, limits.max_weight_header_bytes))
            check_safetensors_header(head, size, path, limits)
        elif f.read(4) == _ZIP_LOCAL:  # how torch.load tells a zip from a legacy pickle
            check_zip(path, size, limits)


def check_safetensors_header(head: bytes, size: int, path: Path, limits: WeightLimits) -> None:
    """The JSON header is sane and its tensors tile the data section exactly (``head``: the file's start)."""
    if len(head) < 8:
        raise ModelFileError(f"{path}: not a readable weight file (safetensors: {size} bytes, too short "
                             f"for a header)")
    (n,) = struct.unpack("<Q", head[:8])
    if n > limits.max_weight_header_bytes or 8 + n > size:
        raise ModelFileError(f"{path}: not a readable weight file (safetensors: its header claims {n} "
                             f"bytes; the file has {size}, the limit is {limits.max_weight_header_bytes})")
    try:
        header = json.loads(head[8:8 + n])
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: not a readable weight file (safetensors: bad JSON header: "
                             f"{exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a readable weight file (safetensors: its header is not a "
                             f"JSON object)")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelFileError(f"{path}: safetensors metadata must map names to strings")
    if len(header) > limits.max_weight_tensors:
        raise ModelFileError(f"{path}: {len(header)} tensors is over the limit of "
                             f"{limits.max_weight_tensors} (SUPERRES_MAX_WEIGHT_TENSORS)")
    data = size - 8 - n
    spans = []
    for name, entry in header.items():
        spans.append(_safetensors_span(name, entry, data, path))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise ModelFileError(f"{path}: not a readable weight file (safetensors: tensor byte ranges "
                                 f"overlap or leave a gap at byte {covered} of the data)")
        covered = end
    if covered != data:
        raise ModelFileError(f"{path}: not a readable weight file (safetensors: its tensors hold "
                             f"{covered} bytes, the data section has {data}: truncated or padded)")


def _safetensors_span(name: str, entry: object, data: int, path: Path) -> tuple[int, int]:
    """(begin, end) of one tensor's bytes after checking its dtype, shape and offsets agree."""
    bad = f"{path}: not a readable weight file (safetensors: tensor {name!r}: "  # + reason + ")"
    if not isinstance(entry, dict):
        raise ModelFileError(bad + "entry is not an object)")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPES:
        raise ModelFileError(bad + f"unknown dtype {dtype!r})")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise ModelFileError(bad + f"bad shape {shape!r})")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1] <= data):
        raise ModelFileError(bad + f"byte range {offsets!r} outside the {data}-byte data section)")
    nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise ModelFileError(bad + f"shape {shape} of {dtype} needs {nbytes} bytes, its range holds "
                             f"{offsets[1] - offsets[0]})")
    return offsets[0], offsets[1]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def zip_entry_count(path: Path, size: int) -> int:
    """Entries the zip's end record declares, read before the central directory is parsed."""
    with path.open("rb") as f:
        tail_len = min(size, 22 + 65535)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        at = tail.rfind(_ZIP_EOCD)
        if at < 0 or len(tail) < at + 22:
            raise ModelFileError(f"{path}: not a readable weight file (no zip end record)")
        count = int.from_bytes(tail[at + 10:at + 12], "little")
        if count != 0xFFFF or at < 20 or tail[at - 20:at - 16] != _ZIP64_LOCATOR:
            return count
        offset = int.from_bytes(tail[at - 12:at - 4], "little")  # of the zip64 end record
        if offset + 56 > size:
            raise ModelFileError(f"{path}: not a readable weight file (bad zip64 end record)")
        f.seek(offset)
        rec = f.read(56)
        if rec[:4] != _ZIP64_EOCD:
            raise ModelFileError(f"{path}: not a readable weight file (bad zip64 end record)")
        return int.from_bytes(rec[32:40], "little")


def check_zip(path: Path, size: int, limits: WeightLimits) -> None:
    """A ``torch.save`` zip: entry count and declared unpacked sizes bounded by the limits and the file."""
    count = zip_entry_count(path, size)
    if count > limits.max_weight_tensors + 16:
        raise ModelFileError(f"{path}: its zip declares {count} entries, over the limit of "
                             f"{limits.max_weight_tensors} (SUPERRES_MAX_WEIGHT_TENSORS)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable weight file (bad zip: {exc})") from None
    unpacked = sum(i.file_size for i in infos)
    allowed = min(limits.max_weight_file_bytes, int(limits.max_weight_zip_ratio * size) + 1024**2)
    if unpacked > allowed:
        raise ModelFileError(
            f"{path}: its zip entries unpack to {unpacked} bytes from a {size}-byte file, over the "
            f"limit of {allowed} (a compression bomb? SUPERRES_MAX_WEIGHT_ZIP_RATIO, "
            f"SUPERRES_MAX_WEIGHT_FILE_BYTES)")
    odd = [i.filename for i in infos if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
    if odd:
        raise ModelFileError(f"{path}: not a readable weight file (zip entry {odd[0]!r} uses an "
                             f"unsupported compression)")
