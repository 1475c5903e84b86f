"""INT8 with a quality guarantee: the cached IR loads, keeps its stored budget on a held-out image,
is reused, is rebuilt when corrupt, and a missing OpenVINO/NNCF names the extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from superres.export import int8
from superres.export.calibration import GAP, calibration_set
from superres.io.sample import sample_rgb
from superres.zoo.loader import load_model

MODEL = "realesr-animevideov3"
CALIB = 12  # a smaller calibration set than the default 64 crops: a fast test
BUDGET = 40.0  # at 45 dB this small calibration set leaves (almost) nothing in INT8
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SUPERRES_CACHE")
    os.environ["SUPERRES_CACHE"] = str(folder)
    yield folder
    if old is None:
        del os.environ["SUPERRES_CACHE"]
    else:
        os.environ["SUPERRES_CACHE"] = old


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model(MODEL)


@pytest.fixture(scope="module")
def built(cache: Path, model) -> Path:  # type: ignore[no-untyped-def]
    before = int8.build_count()
    xml = int8.int8_model_path(model, budget_db=BUDGET, max_calib=CALIB)
    assert int8.build_count() == before + 1
    return xml


def _held_image() -> np.ndarray:
    """The sample's held-out part (never calibrated on), shrunk: not the crops quantize() measured."""
    import cv2

    rgb = sample_rgb().astype(np.float32) / 255
    right = rgb[:, (2 * rgb.shape[1]) // 3 + GAP:]
    small = cv2.resize(right, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1))[None]


def test_ir_loads_and_report_meets_budget(built: Path, cache: Path) -> None:
    import openvino as ov

    assert built.parent == cache / "int8" and built.with_suffix(".bin").is_file()
    rep = int8.read_int8_report(built)
    assert rep.model == MODEL and rep.budget_db == BUDGET and rep.calib_images == CALIB
    assert rep.met and rep.psnr_db >= rep.budget_db
    assert rep.int8_layers > 0 and rep.held_images >= 1
    ovm = ov.Core().read_model(str(built))
    out = int8.compile_cpu(ovm)(np.zeros((1, 3, 16, 24), np.float32))[0]
    assert out.shape == (1, 3, 64, 96)


def test_held_image_meets_stored_budget(built: Path, model) -> None:  # type: ignore[no-untyped-def]
    import openvino as ov
    import torch

    x = _held_image()
    calib = calibration_set(multiple=model.size_multiple, max_calib=CALIB).calib
    assert not any(c.shape == x.shape and np.array_equal(c, x) for c in calib)
    with torch.no_grad():
        ref = model.module.eval()(torch.from_numpy(x)).numpy()
    out = np.asarray(int8.compile_cpu(ov.Core().read_model(str(built)))(x)[0])
    assert int8.psnr(out, ref) >= int8.read_int8_report(built).budget_db


def test_cache_reused_then_corrupt_file_rebuilt(built: Path, model) -> None:  # type: ignore[no-untyped-def]
    before, stamp = int8.build_count(), built.stat().st_mtime_ns
    assert int8.int8_model_path(model, budget_db=BUDGET, max_calib=CALIB) == built
    assert int8.build_count() == before and built.stat().st_mtime_ns == stamp
    data = bytearray(built.with_suffix(".bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    built.with_suffix(".bin").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt or stale"):
        again = int8.int8_model_path(model, budget_db=BUDGET, max_calib=CALIB)
    assert again == built and int8.build_count() == before + 1
    assert int8.read_int8_report(again).met


def test_report_round_trip() -> None:
    rep = int8.Int8Report(psnr_db=46.5, budget_db=45.0, fp32_layers=["a", "b"], int8_layers=16,
                          calib_images=12, seconds=3.5, model="m")
    back = int8.Int8Report.from_json(rep.to_json())
    assert back == rep and back.met and not int8.Int8Report(psnr_db=44.0, budget_db=45.0).met


def test_missing_backend_names_the_extra(tmp_path: Path) -> None:
    for name in ("openvino", "nncf"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    code = textwrap.dedent("""
        from superres.export.int8 import Int8UnavailableError, quantize
        from superres.zoo.loader import load_model
        try:
            quantize(load_model("espcn-x4"))
        except Int8UnavailableError as exc:
            print("ERROR:", exc)
        else:
            raise SystemExit("no error")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "pip install 'superres[openvino]'" in run.stdout


def test_calibration_folder_split_and_identity(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), rng.integers(0, 256, (120, 180, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    cs = calibration_set(tmp_path, multiple=4, max_calib=16)
    assert cs.calib and cs.held and cs.identity.startswith("dir:")
    assert all(x.shape[2] % 4 == 0 and x.shape[3] % 4 == 0 for x in cs.calib + cs.held)
    cv2.imwrite(str(tmp_path / "img1.png"), rng.integers(0, 256, (120, 180, 3), dtype=np.uint8))
    assert calibration_set(tmp_path, multiple=4, max_calib=16).identity != cs.identity
    with pytest.raises(ValueError, match="no images"):
        calibration_set(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder
