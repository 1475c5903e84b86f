"""The code base stays ruff-clean (style is part of the definition of done)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(REPO / ".venv" / "bin"))
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the [test] extra)")
    res = subprocess.run([ruff, "check", "superres", "tests", "benchmarks", "tools"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_package_imports_without_torch_for_metrics() -> None:
    code = "import sys, superres.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
