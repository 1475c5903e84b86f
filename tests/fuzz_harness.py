"""Run the real ``superres upscale`` on fuzzed cases and check what it did against each case.

One CLI process takes a batch of cases (start-up costs seconds, a tiny image milliseconds).
A watchdog polls the child: over the memory bound, or past the time limit, or silent for too
long, it is killed, the case it was on (the first with neither an output nor a line) is
charged with it, and the rest of the batch goes to a fresh process. Then the invariants:

  a  no Python traceback on stderr
  b  every stderr line is ``error|warning|note: PATH: ...`` naming an input (as given, or its
     absolute path), and nothing else (no library noise)
  c  a refused file has exactly one ``error: PATH:`` line and no output; nothing is dropped silently
  d  every good file is written, decodes, and is twice its upright size
  e  exit code 1 if any file failed, else 0
  f  no temporary (``*.part``) left in the output folder
  g  peak memory (RSS) of the CLI under the bound
  h  finished in time (a FIFO must not block it)
  i  a file that must fail was written as a success (damaged data, bombs, Compression=9999)
  j  a damaged file that was written decodes at a plausible size

Noise (a, b) names no file: it is charged to the cases between the named lines around it,
narrowed to the case whose path the line contains (a raw Python warning) or to those for
which the decoders printed that very message when the case was made
(``Case.diag``); when the suspects are all of one class the charge is sure, else the table
shows it as ``N?`` (N sure charges, ``?``: also suspected in ambiguous windows).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.fuzz_cases import REPO, Case
from tests.fuzz_oracle import header_size, norm_diag

INVARIANTS = "abcdefghij"
MODEL = "fsrcnn-x2"
SCALE = 2
_NAMED = re.compile(r"(error|warning|note): (.*)", re.DOTALL)
_TEMP = re.compile(r"^\.(.*)\.[0-9a-f]{8}\.part$")


@dataclass
class Run:
    """One CLI process: what it printed, how it ended, how much memory it took."""

    cases: list[Case]
    root: Path | None = None  # the folder the names are relative to (the CLI's working folder)
    rc: int | None = None
    stdout: str = ""
    stderr: list[str] = field(default_factory=list)
    peak_kib: int = 0
    killed: str | None = None  # "memory" | "timeout" | "stall"
    wall: float = 0.0


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process in KiB; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def _count_files(out: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(out))


def run_cli(root: Path, out: Path, cases: list[Case], *, mem_bound_mib: int, timeout: float,
            stall: float, extra: tuple[str, ...] = ()) -> Run:
    """``python -m superres upscale`` on ``cases`` (by name, or the tree with --recursive)."""
    recursive = any(c.recursive for c in cases)
    inputs = ["tree"] if recursive else [c.name for c in cases]
    cmd = [sys.executable, "-m", "superres", "upscale", "-o", str(out), "--model", MODEL, *extra]
    cmd += ["--recursive"] if recursive else []
    cmd += ["--", *inputs]
    env = dict(os.environ)
    env.pop("SUPERRES_MAX_PIXELS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    run = Run(cases, root)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out_chunks: list[bytes] = []
    err_lines: list[bytes] = []

    def pump(stream: Any, sink: list[bytes]) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_lines), daemon=True)]
    for t in threads:
        t.start()
    last_progress, progress, next_scan = t0, -1, 0.0
    status = 0
    usage = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        rss, hwm = _rss_kib(proc.pid)
        run.peak_kib = max(run.peak_kib, hwm)
        reason = None
        if rss > mem_bound_mib * 1024:
            reason = "memory"
        elif now - t0 > timeout:
            reason = "timeout"
        if now >= next_scan:
            seen = len(err_lines) + (_count_files(out) if out.exists() else 0)
            if seen != progress:
                progress, last_progress = seen, now
            elif now - last_progress > stall:
                reason = "stall"
            next_scan = now + 0.5
        if reason and run.killed is None:
            run.killed = reason
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.03)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(timeout=5)
    run.wall = time.monotonic() - t0
    run.rc = proc.returncode
    run.peak_kib = max(run.peak_kib, usage.ru_maxrss if usage else 0)
    run.stdout = b"".join(out_chunks).decode("utf-8", "replace")
    run.stderr = [ln.decode("utf-8", "replace").rstrip("\n") for ln in err_lines]
    return run


# --------------------------------------------------------------------------------------------
# checking one run


@dataclass
class Result:
    """Per-case outcome and violations, plus run-level facts, accumulated over runs."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    noise: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # class -> lines
    ambiguous: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # class -> invs

    def violate(self, case: Case | None, inv: str, why: str) -> None:
        key = case.name if case else "(run)"
        rec = self.cases.setdefault(key, {"cls": case.cls if case else "(run)", "expect":
                                          case.expect if case else "", "violations": {}})
        rec["violations"].setdefault(inv, why)
        if case is not None:
            rec.setdefault("what", case.what)


def _outputs(out: Path) -> tuple[dict[Path, list[Path]], list[Path]]:
    """Output files by (folder, stem) relative to ``out``, and the temporaries among them."""
    by_stem: dict[Path, list[Path]] = defaultdict(list)
    temps = []
    for dirpath, _, files in os.walk(out):
        for f in files:
            p = Path(dirpath) / f
            if f.endswith(".part"):
                temps.append(p)
            elif not f.startswith("."):
                rel = p.relative_to(out)
                by_stem[rel.parent / rel.stem].append(p)
    return by_stem, temps


def _check_output(path: Path, size: tuple[int, int] | None, exact: bool) -> str | None:
    """Why the output at ``path`` is not what ``size`` (upright input) promises, or None."""
    data = path.read_bytes()
    hs = header_size(data)
    if hs is None:
        return "output does not parse"
    if hs[0] * hs[1] <= 64_000_000:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            return "output does not decode"
        hs = (arr.shape[1], arr.shape[0])
    if size is None:
        return None
    want = (size[0] * SCALE, size[1] * SCALE)
    if hs == want or (not exact and hs == want[::-1]):
        return None
    return f"output is {hs[0]}x{hs[1]}, expected {want[0]}x{want[1]}"


def _said(case: Case, line: str) -> bool:
    """Whether the decoders printed ``line`` when the case was made (see Case.diag)."""
    text = norm_diag(line)
    return any(text == d or (d.startswith("py:") and d[3:] in line) for d in case.diag)


def _culprit(run: Run, named: dict[str, int], by_stem: dict[Path, list[Path]]) -> int:
    """Index of the case the killed process was on: the first with neither a line nor an output."""
    for i, c in enumerate(run.cases):
        if c.expect in ("skip", "ignored"):
            continue
        if not named.get(c.name) and not by_stem.get(c.out_rel):
            return i
    return len(run.cases) - 1


def check_run(run: Run, out: Path, res: Result, mem_bound_mib: int) -> list[Case]:
    """Charge ``run``'s violations to its cases; returns the cases still to do (after a kill)."""
    cases = run.cases
    names = {c.name: c for c in cases}
    if run.root is not None:  # a line may name the input by its absolute path too
        names.update({str(run.root.absolute() / c.name): c for c in cases})
    errors: dict[str, int] = defaultdict(int)
    named: dict[str, int] = defaultdict(int)
    order = {c.name: i for i, c in enumerate(cases)}
    events: list[tuple[str, int | str]] = []  # ("named", case index) | ("a"/"b", line)
    lines, j = run.stderr, 0
    while j < len(lines):
        line = lines[j]
        j += 1
        if line.startswith("Traceback (most recent call last)"):
            while j < len(lines) and lines[j].startswith(" "):
                j += 1
            events.append(("a", lines[j] if j < len(lines) else line))
            j += 1
            continue
        m = _NAMED.match(line)
        hit = None
        if m:
            rest = m.group(2)
            for k in [k.start() for k in re.finditer(": ", rest)][::-1]:
                if rest[:k] in names:
                    hit = names[rest[:k]]
                    break
        if hit is None:
            if line[:1].isspace() and events and events[-1][0] == "b":
                continue  # the source line Python prints under a warning: part of the one before
            events.append(("b", line))
            continue
        named[hit.name] += 1
        if m and m.group(1) == "error":
            errors[hit.name] += 1
        events.append(("named", order[hit.name]))
    by_stem, temps = _outputs(out)

    done = len(cases)
    rest: list[Case] = []
    if run.killed:
        k = _culprit(run, named, by_stem)
        culprit = cases[k]
        inv = "g" if run.killed == "memory" else "h"
        res.violate(culprit, inv, f"killed by the harness ({run.killed}) after {run.wall:.0f} s, "
                                  f"peak {run.peak_kib >> 10} MiB")
        res.cases[culprit.name]["observed"] = f"killed ({run.killed})"
        done, rest = k, cases[k + 1 :]
    elif run.peak_kib > mem_bound_mib * 1024:
        res.violate(None, "g", f"peak {run.peak_kib >> 10} MiB over {mem_bound_mib} MiB")

    # noise: charge to the cases between the named lines around it
    named_idx = [i for i, (kind, _) in enumerate(events) if kind == "named"]
    for e, (kind, line) in enumerate(events):
        if kind == "named":
            continue
        prev = max((int(events[i][1]) for i in named_idx if i < e), default=-1)
        nxt = min((int(events[i][1]) for i in named_idx if i > e), default=min(done, len(cases) - 1))
        window = cases[prev + 1 : nxt + 1] or cases[max(0, prev) : prev + 1]
        suspects = [c for c in window if c.expect != "ok"] or window
        said = [c for c in suspects if _said(c, str(line))]
        suspects = [c for c in cases if f"{Path(c.name).name}: " in str(line)] or said or suspects
        classes = {c.cls for c in suspects}
        for c in suspects:
            if len(classes) == 1:
                res.violate(c, kind, str(line)[:300])
            else:
                res.ambiguous[c.cls].add(kind)
        for cls in classes:
            if len(res.noise[cls]) < 5:
                res.noise[cls].append(str(line)[:300])

    any_failed = False
    for c in cases[:done]:
        rec = res.cases.setdefault(c.name, {"cls": c.cls, "expect": c.expect, "violations": {}})
        rec["what"] = c.what
        n_err, outs = errors.get(c.name, 0), by_stem.get(c.out_rel, [])
        any_failed |= n_err > 0
        rec["observed"] = "written" if outs and not n_err else "failed" if n_err and not outs else \
            "both" if outs else "nothing"
        if n_err > 1:
            res.violate(c, "c", f"{n_err} error lines")
        if outs and n_err:
            res.violate(c, "c", "an error line and an output")
        if c.expect == "ok":
            if n_err or not outs:
                res.violate(c, "d", "good file not written")
            else:
                why = _check_output(outs[0], c.size, exact=True)
                if why:
                    res.violate(c, "d", why)
        elif c.expect == "fail":
            if outs and not n_err:
                res.violate(c, "i", "written as a success")
            elif not outs and not n_err:
                res.violate(c, "c", "no output and no error line")
        elif c.expect == "any":
            if not outs and not n_err:
                res.violate(c, "c", "no output and no error line")
            elif outs and not n_err:
                why = _check_output(outs[0], c.size, exact=False)
                if why:
                    res.violate(c, "j", why)
        elif c.expect in ("skip", "ignored") and outs:
            res.violate(c, "i", "an output for a non-image entry")
        elif c.expect == "ignored" and n_err:
            res.violate(c, "c", "error line for a file the scan should pass over")
    killed_stems = {cases[done].out_rel} if run.killed and done < len(cases) else set()
    for t in temps:
        m = _TEMP.match(t.name)
        inner = m.group(1) if m else t.name
        rel = t.relative_to(out).parent
        owner = next((c for c in cases if c.out_rel.parent == rel and inner.startswith(c.out_rel.name)), None)
        if owner is not None and owner.out_rel in killed_stems:
            continue  # our own SIGKILL left it
        res.violate(owner, "f", f"temporary left: {t.name[:80]}")
    if not run.killed and run.rc != (1 if any_failed else 0):
        res.violate(None, "e", f"exit code {run.rc} with {'some' if any_failed else 'no'} failed files")
    res.runs.append({"cases": len(cases), "checked": done, "rc": run.rc, "killed": run.killed,
                     "peak_mib": run.peak_kib >> 10, "wall_s": round(run.wall, 1),
                     "stderr_lines": len(run.stderr)})
    return rest


def batches(cases: list[Case], size: int, by_class: bool) -> list[list[Case]]:
    """Cases in CLI-sized batches (the recursive tree is one batch); each gets good files."""
    tree = [c for c in cases if c.recursive]
    flat = [c for c in cases if not c.recursive]
    good = [c for c in flat if c.cls == "good"]
    rest = [c for c in flat if c.cls != "good"]
    if by_class:
        rest.sort(key=lambda c: (c.cls.split(":")[0], c.cls))
    groups = [rest[i : i + size] for i in range(0, len(rest), size)] or [[]]
    for i, g in enumerate(good):
        groups[i % len(groups)].insert((i * 7919) % (len(groups[i % len(groups)]) + 1), g)
    return [g for g in groups if g] + ([tree] if tree else [])


def fuzz(root: Path, cases: list[Case], *, batch: int = 150, mem_bound_mib: int = 2048,
         stall: float = 30.0, by_class: bool = False, log: Any = None) -> Result:
    """Every case through the CLI in batches; the Result holds each case's verdict."""
    res = Result()
    for b, group in enumerate(batches(cases, batch, by_class)):
        out = root / "out" / f"batch{b:04d}"
        todo = group
        while todo:
            run = run_cli(root, out, todo, mem_bound_mib=mem_bound_mib, timeout=120 + 2.0 * len(todo),
                          stall=stall)
            todo = check_run(run, out, res, mem_bound_mib)
            if log:
                r = res.runs[-1]
                log(f"batch {b}: {r['checked']}/{r['cases']} cases, rc {r['rc']}, {r['wall_s']} s, "
                    f"peak {r['peak_mib']} MiB" + (f", KILLED ({r['killed']})" if r["killed"] else ""))
    return res


def table(res: Result, cases: list[Case]) -> str:
    """Violations per case class (cases violating each invariant); ``N?`` = ambiguous noise."""
    classes = [*sorted({c.cls for c in cases}), "(run)"]
    counts: dict[str, dict[str, int]] = {k: defaultdict(int) for k in classes}
    n = defaultdict(int)
    for c in cases:
        n[c.cls] += 1
    for rec in res.cases.values():
        for inv in rec["violations"]:
            counts[rec["cls"]][inv] += 1
    head = f"{'class':<24}{'cases':>6} " + " ".join(f"{i:>4}" for i in INVARIANTS)
    rows = [head, "-" * len(head)]
    for k in classes:
        cells = []
        for inv in INVARIANTS:
            v = counts[k].get(inv, 0)
            amb = "?" if inv in res.ambiguous.get(k, ()) else ""
            cells.append(f"{(str(v) if v else '.') + amb:>4}")
        if k == "(run)" and not any(counts[k].values()):
            continue
        rows.append(f"{k:<24}{n.get(k, ''):>6} " + " ".join(cells))
    return "\n".join(rows)


def violations(res: Result) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in res.cases.items() if v["violations"]}


def to_json(res: Result, cases: list[Case], path: Path, meta: dict[str, Any]) -> None:
    data = {"meta": meta, "table": table(res, cases), "runs": res.runs,
            "noise_examples": dict(res.noise), "ambiguous": {k: sorted(v) for k, v in res.ambiguous.items()},
            "cases": res.cases}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
