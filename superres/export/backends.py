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


def install_hint(module: str, extra: str | None) -> str:
    """The one way superres words what to install: the extra when there is one."""
    return f"pip install 'superres[{extra}]'" if extra else f"pip install {module}"


class MissingBackendError(RuntimeError):
    """An optional package is not installed; the message says which extra installs it.

    The root of every "this runtime is not here" error (export, INT8, the runtimes' backends),
    so front ends catch one class.
    """

    def __init__(self, what: str, module: str, extra: str | None, detail: str = "") -> None:
        self.what, self.module, self.extra = what, module, extra
        more = f" ({detail})" if detail else ""
        super().__init__(f"{what} needs the {module} package, which is not installed{more}: "
                         f"{install_hint(module, extra)}")


def require(what: str) -> None:
    """Import what ``what`` needs now, or raise ``MissingBackendError`` (a broken install too)."""
    modules, extra = NEEDS[what]
    for name in modules:
        try:
            importlib.import_module(name)
        except (ImportError, OSError) as exc:  # OSError: one of the package's shared libraries
            raise MissingBackendError(what, name, extra, str(exc)) from None
