"""`superres export` and superres.export.files: every format is written, loads in its own runtime
(onnxruntime, torch.jit, OpenVINO), reproduces PyTorch at sizes other than the export example's,
and carries its metadata; the CLI's exit codes for what can go wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from superres.cli.main import main
from superres.export.convert import runner_network
from superres.export.files import (
    ExportCheckError,
    ExportError,
    check_export,
    export_model,
    probe_image,
    read_metadata,
    verify_export,
)
from superres.zoo.loader import LoadedModel, load_model
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMPACT = "realesr-animevideov3"
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "openvino": ".xml"}


def run_file(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """The written file run by its own runtime, as a deployer would."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": x.numpy()})[0]
    if fmt == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled(x.numpy())[0])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream
        return torch.jit.load(str(path)).eval()(x).float().numpy()


def reference(model: LoadedModel, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return runner_network(model)(x).numpy()


@pytest.fixture(scope="module")
def compact() -> LoadedModel:
    return load_model(COMPACT)


@pytest.fixture(scope="module")
def compact_files(compact: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("export")
    return {fmt: export_model(compact, out / f"compact{SUFFIX[fmt]}", fmt=fmt).path for fmt in SUFFIX}


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_each_format_reproduces_pytorch_at_other_sizes_and_batches(fmt: str, compact: LoadedModel,
                                                                   compact_files: dict[str, Path]) -> None:
    path = compact_files[fmt]
    assert verify_export(path, compact) <= 1e-4  # 48x80 photo crop; the export example was 64x64
    # another size and a batch of two, neither seen at export
    x = torch.cat([probe_image(compact, (36, 52)), probe_image(compact, (36, 52)).flip(3)])
    out, ref = run_file(path, fmt, x), reference(compact, x)
    assert out.shape == ref.shape == (2, 3, 144, 208)
    assert np.abs(out - ref).max() <= 1e-4


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_metadata_round_trips_in_the_file(fmt: str, compact: LoadedModel,
                                          compact_files: dict[str, Path]) -> None:
    md = read_metadata(compact_files[fmt])
    assert md["model"] == COMPACT and md["arch"] == "srvgg" and md["scale"] == "4" and md["net_scale"] == "4"
    assert md["input"] == "RGB float32 NCHW in [0,1]" and md["licence"] == compact.licence
    assert md["precision"] == "fp32" and md["format"] == fmt and md["superres_version"]
    assert ("opset" in md) == (fmt == "onnx")
    import json

    assert json.loads(md["arch_kwargs"]) == json.loads(json.dumps(compact.kwargs))


def test_metadata_names_the_resize_after_the_network() -> None:
    """Upstream's animevideov3 x2 is the x4 network then a x0.5 resize, which the file does not do."""
    from superres.export.metadata import build_metadata

    md = build_metadata(load_model("realesr-animevideov3-x2"), fmt="onnx", precision="fp16", opset=17)
    assert (md["scale"], md["output_resize"], md["net_scale"]) == ("4", "0.5", "2")
    assert "bicubic resize by 0.5" in md["output"] and md["opset"] == "17"


def test_writes_leave_no_temporaries_and_ir_is_a_pair(compact_files: dict[str, Path]) -> None:
    folder = compact_files["onnx"].parent
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["compact.bin", "compact.onnx", "compact.pt", "compact.xml"]


def test_fsrcnn_deconvolution_is_right_at_two_sizes_in_onnx(tmp_path: Path) -> None:
    """Tracing warns about FSRCNN's tap index tensor; it depends on stride and kernel only, not the size."""
    model = load_model("fsrcnn-x2")
    path = export_model(model, tmp_path / "f.onnx", fmt="onnx").path
    for size in ((24, 40), (57, 31)):
        x = probe_image(model, size)
        out, ref = run_file(path, "onnx", x), reference(model, x)
        assert out.shape == (1, 3, 2 * size[0], 2 * size[1])
        assert np.abs(out - ref).max() <= 1e-4


def test_realcugan_pads_by_the_input_size_in_the_file(tmp_path: Path) -> None:
    """Real-CUGAN pads to its side multiple from the input's size: odd sizes and the stored least side."""
    model = load_model("realcugan-se-x3-conservative")
    res = export_model(model, tmp_path / "c.onnx", fmt="onnx")
    least = int(res.metadata["min_side"])
    for size in ((45, 77), (least, least + 1)):
        x = probe_image(model, size)
        out, ref = run_file(res.path, "onnx", x), reference(model, x)
        assert out.shape == ref.shape == (1, 3, 3 * size[0], 3 * size[1])
        assert np.abs(out - ref).max() <= 1e-4


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_fp16_files_keep_float32_input_and_are_close(fmt: str, tmp_path: Path) -> None:
    model = load_model("espcn-x3")
    res = export_model(model, tmp_path / f"e{SUFFIX[fmt]}", fmt=fmt, precision="fp16")
    check = check_export(res.path, model)
    assert check.passed and check.tolerance == 1e-2 and 0 < check.max_diff <= 1e-2
    assert read_metadata(res.path)["precision"] == "fp16"
    fp32 = export_model(model, tmp_path / f"e32{SUFFIX[fmt]}", fmt=fmt)
    assert res.size_bytes < fp32.size_bytes  # half-size weights


def test_a_user_weight_file_exports_with_its_name(tmp_path: Path, compact: LoadedModel) -> None:
    weights = tmp_path / "my_compact_x4.pth"
    torch.save(compact.module.state_dict(), weights)
    model = load_model(weights)
    res = export_model(model, tmp_path / "user.onnx", fmt="onnx")
    assert verify_export(res.path, model) <= 1e-4
    md = read_metadata(res.path)
    assert md["model"] == "my_compact_x4.pth" and md["licence"] == "unknown (user file)"


def test_a_check_past_its_tolerance_raises(compact: LoadedModel, compact_files: dict[str, Path]) -> None:
    with pytest.raises(ExportCheckError, match="FAILED"):
        verify_export(compact_files["openvino"], compact, tolerance=1e-12)


def test_requests_that_cannot_be_met(compact: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="OpenVINO IR only"):
        export_model(compact, tmp_path / "m.onnx", fmt="onnx", precision="int8")
    with pytest.raises(ExportError, match=r"\.xml"):
        export_model(compact, tmp_path / "m.ir", fmt="openvino")
    assert list(tmp_path.iterdir()) == []


def test_int8_export_meets_its_stored_budget(tmp_path: Path) -> None:
    model = load_model(COMPACT)
    res = export_model(model, tmp_path / "q.xml", fmt="openvino", precision="int8", budget_db=40.0)
    md = read_metadata(res.path)
    assert md["precision"] == "int8" and float(md["int8_budget_db"]) == 40.0
    assert float(md["int8_psnr_db"]) >= 40.0
    check = check_export(res.path, model)
    assert check.budget_db == 40.0 and check.passed, check.describe()


# --- the command line ---------------------------------------------------------------------------


def test_cli_exports_to_the_default_name_and_prints_the_check(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "espcn-x3", "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "espcn-x3-fp32.pt").is_file()
    assert "wrote espcn-x3-fp32.pt" in out and "max |diff|" in out and ": ok" in out
    assert "licence MIT" in out and "RGB float32 NCHW in [0,1]" in out


def test_cli_no_check_and_an_ir_pair(tmp_path: Path, capsys) -> None:
    args = ["export", "fsrcnn-x2", "--format", "openvino", "--no-check", "-o", str(tmp_path / "f.xml")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "f.xml + " in out and "f.bin" in out and "check skipped" in out
    assert read_metadata(tmp_path / "f.xml")["model"] == "fsrcnn-x2"


def test_cli_check_failure_exits_1(tmp_path: Path, capsys) -> None:
    code = main(["export", "espcn-x3", "--format", "onnx", "--precision", "fp16", "--tolerance", "1e-9",
                 "-o", str(tmp_path / "e.onnx")])
    assert code == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["no-such-model", "--format", "onnx"],
    ["espcn-x3", "--format", "onnx", "--precision", "int8"],
    ["espcn-x3", "--format", "onnx", "--calib", "."],
])
def test_cli_bad_requests_exit_2(args: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", *args]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_weight_file_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a weight file at all")
    assert main(["export", str(bad), "--format", "onnx", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "cannot load model" in err and "broken.pth" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("tolerance", ["-1", "0", "nan", "big"])
def test_cli_bad_tolerance_is_an_argument_error(tolerance: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "espcn-x3", "--format", "onnx", "--tolerance", tolerance])
    assert exc.value.code == 2
    assert "--tolerance" in capsys.readouterr().err


BLOCKER = """
import sys
BLOCKED = {blocked!r}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.parametrize(("blocked", "fmt", "extra"), [
    ("onnxruntime", "onnx", "superres[onnx]"),
    ("openvino", "openvino", "superres[openvino]"),
])
def test_cli_missing_backend_names_the_extra(blocked: str, fmt: str, extra: str, tmp_path: Path) -> None:
    """A real process in which the package cannot be imported (as if not installed)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCKER.format(blocked=[blocked]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "superres", "export", "espcn-x3", "--format", fmt,
                           "-o", str(tmp_path / f"m{SUFFIX[fmt]}")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"pip install '{extra}'" in proc.stderr and blocked in proc.stderr
    assert not list(tmp_path.glob("m*"))
