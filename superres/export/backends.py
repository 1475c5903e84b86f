"""The optional packages an export needs, and one clear error naming the extra that installs them."""

from __future__ import annotations

import importlib

# format (or runtime) -> (modules it imports, the extra that installs them)
NEEDS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "onnx": (("onnx", "onnxruntime"), "onnx"),  # writing (fp16 uses onnxruntime's converter), checking
    "onnx-metadata": (("onnx",), "onnx"),  # reading a file's metadata
    "openvino": (("openvino",), "openvino"),
    "int8": (("openvino", "nncf"), "openvino"),
    "torchscript": ((), None),
}


class MissingBackendError(RuntimeError):
    """An optional package is not installed; the message says which extra installs it."""

    def __init__(self, what: str, module: str, extra: str | None) -> None:
        self.what, self.module, self.extra = what, module, extra
        hint = f"pip install 'superres[{extra}]'" if extra else f"pip install {module}"
        super().__init__(f"{what} needs the {module} package, which is not installed: {hint}")


def require(what: str) -> None:
    """Import what ``what`` needs now, or raise ``MissingBackendError`` (a broken install too)."""
    modules, extra = NEEDS[what]
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MissingBackendError(what, name, extra) from None
