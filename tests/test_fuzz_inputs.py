"""Fuzzed inputs through the real ``superres upscale`` (issue 17): a few hundred seeded cases.

Every class of tests/fuzz_cases.py (flipped bytes, truncations, enlarged headers, a deflate
bomb, sparse multi-GiB files, odd TIFF tags and EXIF, empty and text files, odd names,
symlinks, FIFOs, a nested folder with --recursive, good files in every batch) goes through
the CLI in a few processes (start-up dominates: a tiny image takes milliseconds). The
invariants are those of tests/fuzz_harness.py: no traceback, no stray stderr line, one error
line per refused file, every good file written at the right size, the exit code, no
temporary left, peak memory under 1 GiB, no hang. ``benchmarks/fuzz_inputs.py`` runs the
same checker on 10,000 cases; docs/fuzzing.md has the classes and the results.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import fuzz_harness as harness
from tests.fuzz_cases import generate

SEED = 17
CASES = 260  # plus the bomb, 2 sparse files and 14 tree entries
MEM_BOUND_MIB = 1024  # every input is tiny: the CLI's baseline is ~300 MiB


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /proc are POSIX/Linux")
def test_fuzzed_inputs(tmp_path: Path) -> None:
    cases = generate(tmp_path, CASES, SEED)
    assert {c.cls.split(":")[0] for c in cases} >= {
        "good", "flip", "trunc", "huge-header", "bomb", "huge-file", "tiff-tag", "exif", "empty",
        "text", "odd-name", "symlink", "fifo", "recursive"}
    t0 = time.monotonic()
    res = harness.fuzz(tmp_path, cases, batch=150, mem_bound_mib=MEM_BOUND_MIB, stall=30.0)
    bad = harness.violations(res)
    lines = [f"{len(cases)} cases in {time.monotonic() - t0:.0f} s, runs: {res.runs}",
             harness.table(res, cases), "", "first violations (case, expected, observed: invariant: why):"]
    for name, rec in list(bad.items())[:40]:
        for inv, why in rec["violations"].items():
            lines.append(f"  {name} [{rec['cls']}] {rec['expect']}, {rec.get('observed')}: {inv}: {why}")
    lines += ["", "noise examples:", *(f"  {k}: {v[:2]}" for k, v in res.noise.items())]
    assert not bad and not res.noise, "\n".join(lines)
