"""Long fuzz runs of ``superres upscale``: thousands of seeded cases, the invariant table per class.

The same cases and checker as tests/test_fuzz_inputs.py (tests/fuzz_cases.py,
tests/fuzz_oracle.py, tests/fuzz_harness.py), at scale. Cases are batched by class
(``--mixed`` shuffles them like the test does), so stderr noise, which names no file, is
charged to the right class. Batches run in a seeded random order. Each
batch runs in one CLI process; a process over the memory bound or stuck is killed, the case
it was on is charged, and the rest of its batch goes on in a fresh process.

    .venv/bin/python benchmarks/fuzz_inputs.py --cases 10000 --seed 1 --json out/fuzz.json
    .venv/bin/python benchmarks/fuzz_inputs.py --cases 1000 --minutes 10   # stop after 10 min

Results and what they mean: docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import fuzz_harness as harness
from tests.fuzz_cases import generate


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _commit() -> str:
    """HEAD, and the last commit that changed superres/ (what was fuzzed), "+dirty" if edited since."""
    dirty = "+dirty" if _git("status", "--porcelain", "--", "superres") else ""
    return f"HEAD {_git('rev-parse', '--short', 'HEAD')}, superres/ as of " \
           f"{_git('log', '-1', '--format=%h', '--', 'superres')}{dirty}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000, help="about this many cases (default: 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=250, help="cases per CLI process (default: 250)")
    ap.add_argument("--mem-bound", type=int, default=2048, metavar="MIB",
                    help="peak RSS allowed to the CLI; a process above it is killed (default: 2048)")
    ap.add_argument("--stall", type=float, default=60.0, help="seconds without progress = hung (default: 60)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop starting batches after this long (the table covers the cases done)")
    ap.add_argument("--mixed", action="store_true", help="mix classes in a batch, as the test does")
    ap.add_argument("--tree", type=int, default=None, help="entries in the --recursive tree (default: 0.5%%)")
    ap.add_argument("--json", type=Path, default=None, help="write every case's verdict here")
    ap.add_argument("--keep", action="store_true", help="keep the case folder (printed)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="superres-fuzz-"))
    t0 = time.monotonic()
    tree = args.tree if args.tree is not None else max(14, args.cases // 200)
    cases = generate(root, args.cases, args.seed, tree=tree)
    code = _commit()  # before the run: what was fuzzed
    print(f"code: {code}")
    print(f"{len(cases)} cases (seed {args.seed}) made in {time.monotonic() - t0:.1f} s under {root}")
    print("classes:", dict(sorted(Counter(c.cls.split(":")[0] for c in cases).items())))
    res = harness.Result()
    groups = harness.batches(cases, args.batch, by_class=not args.mixed)
    # the tree first, then the batches in a seeded random order: a --minutes cut keeps a sample of
    # every class rather than dropping the classes that sort last
    flat = [g for g in groups if not g[0].recursive]
    groups = [g for g in groups if g[0].recursive] + random.Random(args.seed).sample(flat, k=len(flat))
    deadline = t0 + args.minutes * 60 if args.minutes else None
    done: list = []
    for b, group in enumerate(groups):
        if deadline and time.monotonic() > deadline:
            print(f"time is up: {len(groups) - b} of {len(groups)} batches not run")
            break
        out = root / "out" / f"batch{b:04d}"
        todo = group
        while todo:
            run = harness.run_cli(root, out, todo, mem_bound_mib=args.mem_bound,
                                  timeout=120 + 2.0 * len(todo), stall=args.stall)
            todo = harness.check_run(run, out, res, args.mem_bound)
            r = res.runs[-1]
            print(f"batch {b + 1}/{len(groups)} ({group[-1].cls}): {r['checked']}/{r['cases']} checked, "
                  f"rc {r['rc']}, {r['wall_s']} s, peak {r['peak_mib']} MiB"
                  + (f", KILLED ({r['killed']})" if r["killed"] else ""), flush=True)
        done += group
    wall = time.monotonic() - t0
    print()
    print(f"{len(done)} cases checked in {wall / 60:.1f} min, {len(res.runs)} CLI processes")
    print(harness.table(res, done))
    bad = harness.violations(res)
    print(f"\n{len(bad)} cases violate an invariant; first of each class and invariant:")
    seen: set[tuple[str, str]] = set()
    for name, rec in bad.items():
        for inv, why in rec["violations"].items():
            if (rec["cls"], inv) not in seen:
                seen.add((rec["cls"], inv))
                print(f"  {inv} {rec['cls']}: {name} ({rec.get('what', '')}): {why}")
    if args.json:
        meta = {"seed": args.seed, "cases": len(cases), "checked": len(done), "wall_s": round(wall),
                "commit": code, "python": platform.python_version(), "mem_bound_mib": args.mem_bound,
                "batch": args.batch, "mixed": args.mixed}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        harness.to_json(res, done, args.json, meta)
        print(f"verdicts: {args.json}")
    if args.keep:
        print(f"cases kept under {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad or res.noise else 0


if __name__ == "__main__":
    sys.exit(main())
