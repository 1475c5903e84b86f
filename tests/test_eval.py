"""`superres eval` end to end on Set5 (real animevideov3 weights), plus its report and error paths."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from superres.cli.main import main
from superres.evaluation.charts import bar_chart_svg
from superres.evaluation.report import select_crop

COMPACT = "realesr-animevideov3"
SET5 = ("baby", "bird", "butterfly", "head", "woman")
# benchmarks.md §3: official LR PNG + MATLAB bicubic up, float Y, border 4 (modern protocol)
BICUBIC_X4 = {"baby": (31.784, 0.8575), "bird": (30.181, 0.8736), "butterfly": (22.100, 0.7375),
              "head": (31.613, 0.7546), "woman": (26.467, 0.8325)}


def run_eval(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["eval", *args])
    return rc, out.getvalue(), err.getvalue()


def by_key(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["image"], r["model"]): r for r in data["rows"]}


@pytest.fixture(scope="module")
def set5_run(shared_data: Path, realesrgan_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("eval")
    rc, stdout, stderr = run_eval(
        "--data", str(shared_data / "Set5"), "--scale", "4", "--model", COMPACT, "--rgb",
        "--csv", str(out / "set5.csv"), "--json", str(out / "set5.json"), "--report", str(out / "report"),
    )
    assert rc == 0, stderr
    return {"dir": out, "stdout": stdout, "stderr": stderr,
            "json": json.loads((out / "set5.json").read_text(encoding="utf-8"))}


def test_bicubic_baseline_is_the_modern_protocol_number(set5_run: dict[str, Any]) -> None:
    data = set5_run["json"]
    mean = data["means"]["bicubic"]
    assert (round(mean["psnr_y"], 3), round(mean["ssim_y"], 4)) == (28.429, 0.8111)
    rows = by_key(data)
    for name, (p, s) in BICUBIC_X4.items():
        row = rows[name, "bicubic"]
        assert (round(row["psnr_y"], 3), round(row["ssim_y"], 4)) == (p, s)
    assert data["protocol"]["summary"] == "Y channel BT.601, border = 4, MATLAB bicubic LR"
    assert data["protocol"]["lr_source"] == "given"
    # the model beats bicubic where it should (butterfly edges), and everything is finite
    assert rows["butterfly", COMPACT]["psnr_y"] > rows["butterfly", "bicubic"]["psnr_y"] + 0.5
    assert all(math.isfinite(r["psnr_rgb"]) and 0 < r["ssim_rgb"] < 1 for r in data["rows"])


def test_bicubic_from_regenerated_lr_equals_official_lr(shared_data: Path, set5_run: dict[str, Any],
                                                        tmp_path: Path) -> None:
    rc, _, err = run_eval("--hr", str(shared_data / "Set5" / "HR"), "--scale", "4",
                          "--json", str(tmp_path / "gen.json"))
    assert rc == 0, err
    gen = json.loads((tmp_path / "gen.json").read_text(encoding="utf-8"))
    assert gen["protocol"]["lr_source"] == "generated" and gen["dataset"] == "Set5"
    official = by_key(set5_run["json"])
    for (image, model), row in by_key(gen).items():
        assert model == "bicubic"
        assert row["psnr_y"] == official[image, "bicubic"]["psnr_y"]
        assert row["ssim_y"] == official[image, "bicubic"]["ssim_y"]
    assert (round(gen["means"]["bicubic"]["psnr_y"], 3), round(gen["means"]["bicubic"]["ssim_y"], 4)) == (
        28.429, 0.8111)


def test_csv_and_json_hold_every_image_and_model(set5_run: dict[str, Any]) -> None:
    with (set5_run["dir"] / "set5.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    per_image = [r for r in rows if r["image"] != "mean"]
    means = {r["model"]: r for r in rows if r["image"] == "mean"}
    assert len(per_image) == 10 and set(means) == {"bicubic", COMPACT}
    pairs = {(i, m) for i in SET5 for m in ("bicubic", COMPACT)}
    assert {(r["image"], r["model"]) for r in per_image} == pairs
    assert {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "seconds", "protocol"} <= set(rows[0])
    assert all("Y channel BT.601, border = 4, MATLAB bicubic LR" in r["protocol"] for r in rows)
    for m in ("bicubic", COMPACT):
        vals = [float(r["psnr_y"]) for r in per_image if r["model"] == m]
        assert float(means[m]["psnr_y"]) == pytest.approx(np.mean(vals), abs=1e-9)
    data = set5_run["json"]
    assert len(data["rows"]) == 10 and data["images"] == list(SET5)
    assert [m["label"] for m in data["models"]] == ["bicubic", COMPACT]
    assert data["means"][COMPACT]["psnr_y"] == pytest.approx(float(means[COMPACT]["psnr_y"]), abs=1e-9)


def test_terminal_table(set5_run: dict[str, Any]) -> None:
    out = set5_run["stdout"]
    assert "Set5 x4" in out and "Y channel BT.601, border = 4, MATLAB bicubic LR" in out
    mean_line = next(line for line in out.splitlines() if line.startswith("mean"))
    assert "28.429 / 0.8111" in mean_line
    assert re.search(rf"^{COMPACT}\s+\d\d\.\d{{3}}\s+0\.\d{{4}}", out, re.M)


def _links(text: str, pattern: str) -> list[str]:
    return re.findall(pattern, text)


def test_report_folder_is_complete_and_offline(set5_run: dict[str, Any]) -> None:
    rep = set5_run["dir"] / "report"
    assert (rep / "index.html").is_file() and (rep / "report.md").is_file()
    crops = sorted((rep / "crops").glob("*.png"))
    assert [p.stem for p in crops] == list(SET5)
    for p in crops:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        # overview + bicubic + model + HR panels of a 96 px crop shown x3, plus the label strip
        assert img is not None and img.shape[0] > 288 and img.shape[1] > 3 * 288
    charts = sorted((rep / "charts").glob("*.svg"))
    assert {p.name for p in charts} == {"mean_psnr.svg", f"psnr_{COMPACT}.svg"}
    for p in charts:
        root = ET.fromstring(p.read_text(encoding="utf-8"))
        assert root.tag.endswith("svg")
        texts = "".join(root.itertext())
        assert "PSNR (dB, Y)" in texts and "28.43" in texts
    html_text = (rep / "index.html").read_text(encoding="utf-8")
    refs = _links(html_text, r'(?:src|href)="([^"]+)"')
    assert len(refs) >= 5 + 2 + 2
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (rep / ref).is_file(), ref
    md_refs = _links((rep / "report.md").read_text(encoding="utf-8"), r"\]\(([^)\s]+)\)")
    assert len(md_refs) >= 5 + 2 + 2 and all((rep / r).is_file() for r in md_refs)
    assert "28.429" in html_text and "MATLAB bicubic LR" in html_text


def test_hr_only_folder_makes_lr_on_the_fly(shared_data: Path, set5_run: dict[str, Any],
                                            tmp_path: Path) -> None:
    hr = tmp_path / "two"
    hr.mkdir()
    for name in ("bird", "head"):
        shutil.copy(shared_data / "Set5" / "HR" / f"{name}.png", hr)
    rc, out, err = run_eval("--data", str(hr), "--scale", "4", "-m", COMPACT, "--niqe",
                            "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["images"] == ["bird", "head"] and data["protocol"]["lr_source"] == "generated"
    assert all(math.isfinite(r["niqe"]) and r["niqe"] > 0 for r in data["rows"])
    assert "NIQE" in out
    official = by_key(set5_run["json"])
    for key, row in by_key(data).items():  # regenerated LR == official LR, so identical outputs
        assert row["psnr_y"] == pytest.approx(official[key]["psnr_y"], abs=1e-9)
        assert row["ssim_y"] == pytest.approx(official[key]["ssim_y"], abs=1e-9)
    assert "mean" in out


def test_gray_mode_raw_vs_y(shared_data: Path, tmp_path: Path) -> None:
    gray = cv2.imread(str(shared_data / "Set5" / "HR" / "bird.png"), cv2.IMREAD_GRAYSCALE)
    (tmp_path / "g").mkdir()
    cv2.imwrite(str(tmp_path / "g" / "bird.png"), gray)
    res = {}
    for mode in ("raw", "y"):
        rc, _, err = run_eval("--data", str(tmp_path / "g"), "--scale", "4", "--gray-mode", mode,
                              "--json", str(tmp_path / f"{mode}.json"))
        assert rc == 0, err
        res[mode] = json.loads((tmp_path / f"{mode}.json").read_text(encoding="utf-8"))["means"]["bicubic"]
    # Y = 16 + 219/255 g is linear: the error shrinks by 219/255 exactly
    assert res["y"]["psnr_y"] - res["raw"]["psnr_y"] == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_broken_image_is_named_and_fails(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "Set5" / "HR" / "bird.png", tmp_path / "bird.png")
    data = (shared_data / "Set5" / "HR" / "head.png").read_bytes()
    (tmp_path / "head.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    rc, _, err = run_eval("--data", str(tmp_path), "--scale", "4")
    assert rc != 0
    assert "head.png" in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1


def test_data_errors_are_clear(shared_data: Path, tmp_path: Path) -> None:
    rc, _, err = run_eval("--data", str(tmp_path / "missing"), "--scale", "4")
    assert rc == 1 and "missing: no such folder" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run_eval("--data", str(tmp_path / "empty"), "--scale", "4")
    assert rc == 1 and "no images found" in err
    # Set5 layout whose X4 folder holds x3 images: size mismatch names the LR file
    s = tmp_path / "set"
    (s / "HR").mkdir(parents=True)
    (s / "LR_bicubic" / "X4").mkdir(parents=True)
    shutil.copy(shared_data / "Set5" / "HR" / "bird.png", s / "HR")
    wrong = shared_data / "Set5" / "LR_bicubic" / "X3" / "birdx3.png"
    shutil.copy(wrong, s / "LR_bicubic" / "X4" / "birdx4.png")
    rc, _, err = run_eval("--data", str(s), "--scale", "4")
    assert rc == 1 and "birdx4.png" in err and "does not match" in err
    rc, _, err = run_eval("--data", str(s), "--scale", "4", "--no-baseline")
    assert rc == 2 and "nothing to evaluate" in err


def test_lpips_unavailable_exits_2(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "superres.metrics.lpips", None)  # import fails
    rc, _, err = run_eval("--data", str(shared_data / "Set5"), "--scale", "4", "--lpips")
    assert rc == 2 and "LPIPS" in err and len(err.strip().splitlines()) == 1


def test_crop_goes_where_the_detail_is() -> None:
    rng = np.random.default_rng(0)
    img = np.full((200, 240, 3), 128, np.uint8)
    img[120:170, 150:210] = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    y, x, side = select_crop(img, 4, 48)
    assert side == 48 and y % 4 == 0 and x % 4 == 0
    assert y >= 120 - 4 and y + side <= 170 + 4
    assert x >= 150 - 4 and x + side <= 210 + 4


def test_bar_chart_is_valid_svg_with_values() -> None:
    series = [("bicubic", "#999999", [28.4, 22.1]), ("m", "#3366cc", [29.0, None])]
    svg = bar_chart_svg("t <&>", ["a", "b"], series, y_label="PSNR (dB, Y)")
    root = ET.fromstring(svg)
    texts = list(root.itertext())
    assert "t <&>" in texts and "28.40" in texts and "29.00" in texts and "PSNR (dB, Y)" in texts
    assert len(root.findall("{http://www.w3.org/2000/svg}rect")) == 1 + 3 + 2  # background, bars, legend
