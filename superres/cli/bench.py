"""``superres bench``: speed and memory per model, size, tile and thread count, vs ncnn."""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path
from typing import Any

from superres.cli.options import positive_int


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from None


def _backends(text: str) -> list[str]:
    from superres.runtimes import BACKENDS

    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(bad) or text!r}: choose from "
                                         f"{', '.join(BACKENDS)}")
    return names


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="time models (ms per output megapixel, GFLOP/s, peak memory) against ncnn",
        description="Benchmark models on square crops of the sample photo. Each setting: one "
        "warm-up, then the median of --repeat calls. The ncnn runtime runs the same "
        "weight files with the same thread count when the 'ncnn' package is installed.",
    )
    p.add_argument("--models", default="realesr-animevideov3", help="comma-separated model names")
    p.add_argument("--sizes", type=_ints, default=[64, 128], help="input sides, e.g. 64,128,256")
    p.add_argument("--tiles", type=_ints, default=[0], help="tile sizes; 0 = whole image")
    p.add_argument("--threads", type=_ints, default=[2], help="CPU thread counts, e.g. 1,2")
    p.add_argument("--backend", "--backends", dest="backends", type=_backends, default=["torch"],
                   metavar="LIST", help="superres backends to compare side by side, e.g. torch,openvino,"
                   "onnxruntime (default: torch; see docs/runtimes.md)")
    p.add_argument("--repeat", type=positive_int, default=3, help="timed calls per setting (median)")
    p.add_argument("--no-ncnn", action="store_true", help="skip the ncnn runtime")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    p.add_argument("--csv", type=Path, help="write the rows as CSV")
    p.add_argument("--plot", type=Path, help="write an SVG bar chart of ms per output megapixel")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from superres.evaluation.bench import run_config
    from superres.zoo import catalogue

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        for m in models:
            catalogue.get(m)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for model in models:
        for size in args.sizes:
            for tile in args.tiles:
                for threads in args.threads:
                    try:
                        ncnn_too = not args.no_ncnn and tile == args.tiles[0]  # ncnn has no tiles: once
                        got = run_config(model, size, tile, threads, args.repeat, ncnn_too,
                                         tuple(args.backends))
                    except Exception as exc:  # one bad setting must not lose the others
                        print(
                            f"error: {model} size {size} tile {tile} threads {threads}: {exc}",
                            file=sys.stderr,
                        )
                        continue
                    for r in got:
                        print(_line(r.as_dict()), flush=True)
                    rows.extend(r.as_dict() for r in got)
    if not rows:
        return 1
    _summary(rows)
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.plot:
        args.plot.write_text(_plot(rows))
    return 0


def _line(r: dict[str, Any]) -> str:
    rss = f"{r['peak_rss_mb']:.0f} MiB" if r["peak_rss_mb"] is not None else "n/a"
    diff = (
        f"  max|diff| {r['max_abs_diff_vs_superres']:.1e}"
        if r["max_abs_diff_vs_superres"] is not None
        else ""
    )
    return (
        f"{r['runtime']:20s} {r['model']:24s} {r['size']:5d}px tile {r['tile']:4d} t{r['threads']}  "
        f"{r['seconds'] * 1e3:9.1f} ms  {r['ms_per_output_mp']:9.1f} ms/MP  {r['gflops']:6.1f} GFLOP/s  "
        f"peak {rss}{diff}"
    )


def _summary(rows: list[dict[str, Any]]) -> None:
    """superres/ncnn time ratio per backend and matching setting (>1: superres slower)."""
    nc = {(r["model"], r["size"], r["threads"]): r for r in rows if r["runtime"] == "ncnn"}
    for r in rows:
        key = (r["model"], r["size"], r["threads"])
        if r["runtime"].startswith("superres") and key in nc:
            print(
                f"ratio {r['runtime']}/ncnn {r['model']} {r['size']}px tile {r['tile']} t{r['threads']}: "
                f"{r['seconds'] / nc[key]['seconds']:.2f}"
            )


_COLOURS = ("#3778c2", "#e07b39", "#3a9d5d", "#8e5ac8", "#c94f4f")


def _plot(rows: list[dict[str, Any]]) -> str:
    from superres.evaluation.charts import bar_chart_svg

    groups = sorted(
        {(r["model"], r["size"], r["tile"], r["threads"]) for r in rows if r["runtime"] != "ncnn"}
    )
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows if r["runtime"] != "ncnn"))
    runtimes += ["ncnn"] if any(r["runtime"] == "ncnn" for r in rows) else []
    labels = [f"{m} {s}px" + (f" t{t}" if t else "") + f" {n}thr" for m, s, t, n in groups]

    def series(runtime: str) -> list[float | None]:
        tiled = runtime != "ncnn"
        found = {
            (r["model"], r["size"], r["tile"] if tiled else None, r["threads"]): r
            for r in rows
            if r["runtime"] == runtime
        }
        return [
            (found.get((m, s, t if tiled else None, n)) or {}).get("ms_per_output_mp")
            for m, s, t, n in groups
        ]

    return bar_chart_svg(
        "Time per output megapixel (lower is better)",
        labels,
        [(name, "#9aa0a6" if name == "ncnn" else _COLOURS[i % len(_COLOURS)], series(name))
         for i, name in enumerate(runtimes)],
        y_label="ms / output MP",
        value_fmt="{:.0f}",
    )
