"""`superres bench`: rows for superres and ncnn on the same weights, files written, outputs agree."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from superres.cli.main import main


def test_bench_writes_rows_json_csv_and_plot(tmp_path: Path, realesrgan_models_dir: Path) -> None:
    pytest.importorskip("ncnn", reason="the ncnn runtime comes with the [test] extra")
    js, cs, svg = tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "b.svg"
    code = main(
        [
            "bench",
            "--models",
            "realesr-animevideov3",
            "--sizes",
            "16",
            "--tiles",
            "0,8",
            "--threads",
            "1",
            "--repeat",
            "1",
            "--json",
            str(js),
            "--csv",
            str(cs),
            "--plot",
            str(svg),
        ]
    )
    assert code == 0
    rows = json.loads(js.read_text())["rows"]
    runtimes = sorted(r["runtime"] for r in rows)
    assert runtimes == ["ncnn", "superres", "superres"]  # ncnn once: it does not tile
    for r in rows:
        assert r["seconds"] > 0 and r["gflops"] > 0 and r["ms_per_output_mp"] > 0
        assert r["ms_per_output_mp"] == pytest.approx(r["seconds"] * 1e3 / (64 * 64 / 1e6))
    for r in rows:
        if r["runtime"] == "ncnn":
            assert r["max_abs_diff_vs_superres"] < 1e-4  # same weights, same answer
    assert len(list(csv.DictReader(cs.open()))) == 3
    assert svg.read_text().startswith("<svg") and "ncnn" in svg.read_text()


def test_bench_unknown_model_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
