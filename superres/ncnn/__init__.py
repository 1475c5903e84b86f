"""The ncnn importer: ``.param``/``.bin`` models of the carrier wheels -> superres state dicts.

``reader`` parses the files, ``trace`` proves that a graph computes an architecture, and one
module per family (``waifu2x``, ``realcugan``, ``span``, ``realesrgan``) exposes
``recognise(layers)`` and ``convert(layers, bin_data, source, bin_source)``. ``CONVERTERS`` is
the one list of them, tried in order; adding a family = one module plus a line here.
"""

from __future__ import annotations

from pathlib import Path

from superres.ncnn import realcugan, realesrgan, span, waifu2x
from superres.ncnn.reader import NcnnFormatError, parse_param
from superres.ncnn.trace import ConvertedModel

# Tried in order: the U-Net graphs are told apart by their input blob names, SPAN by its layer
# types; Real-ESRGAN comes last and accepts anything, explaining why a graph is none of them.
CONVERTERS = (waifu2x, realcugan, span, realesrgan)

__all__ = ["CONVERTERS", "ConvertedModel", "NcnnFormatError", "convert_files", "convert_ncnn"]


def _labels(source: str, bin_source: str | None) -> tuple[str, str]:
    """Names of the .param and .bin for messages; ``source`` may name either file or their stem."""
    for suffix in (".param", ".bin"):
        if source.endswith(suffix):
            stem = source[: -len(suffix)]
            break
    else:
        stem = source
    param_label = stem + ".param" if source.endswith(".bin") else source
    return param_label, bin_source or stem + ".bin"


def convert_ncnn(param_text: str, bin_data: bytes, source: str, *, bin_source: str | None = None
                 ) -> ConvertedModel:
    """Convert a Real-ESRGAN, SPAN, waifu2x or Real-CUGAN ncnn model after validating its graph.

    ``source`` names the model in error messages: the .param or .bin path, or their common
    stem; the other file's name is derived by swapping the suffix unless ``bin_source`` is given.
    """
    source, bin_source = _labels(source, bin_source)
    layers = parse_param(param_text, source)
    family = next(f for f in CONVERTERS if f.recognise(layers))
    return family.convert(layers, bin_data, source, bin_source)


def convert_files(param_path: str | Path, bin_path: str | Path) -> ConvertedModel:
    """:func:`convert_ncnn` on a ``.param``/``.bin`` pair on disk."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    try:
        text = param_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NcnnFormatError(f"{param_path}: not a text .param file "
                              f"(undecodable byte at {exc.start})") from None
    return convert_ncnn(text, bin_path.read_bytes(), str(param_path), bin_source=str(bin_path))
