"""Scores as text and data: the terminal table, ``results.csv`` and ``results.json``.

Column names and number formats are defined once here (``COLUMNS``) and shared by the
HTML/Markdown report (:mod:`superres.evaluation.report`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superres.evaluation.evaluate import EvalResult, Score

# Column names and how values are printed (CSV/JSON use the raw floats).
COLUMNS = {
    "psnr": ("psnr_y", "PSNR-Y", "{:.3f}"),
    "ssim": ("ssim_y", "SSIM-Y", "{:.4f}"),
    "psnr_rgb": ("psnr_rgb", "PSNR-RGB", "{:.3f}"),
    "ssim_rgb": ("ssim_rgb", "SSIM-RGB", "{:.4f}"),
    "niqe": ("niqe", "NIQE", "{:.3f}"),
    "lpips": ("lpips", "LPIPS", "{:.4f}"),
    "seconds": ("seconds", "s/img", "{:.2f}"),
}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "psnr_rgb": True, "ssim_rgb": True,
                    "niqe": False, "lpips": False}


# ------------------------------------------------------------------------------ values


def _finite(x: float | None) -> float | None:
    """JSON-safe number: inf/NaN (identical images) become None."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def format_value(metric: str, value: float | None) -> str:
    """A metric as printed in tables: its column format, ``-`` when absent, ``inf`` for identical images."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return COLUMNS[metric][2].format(value)


def psnr_ssim_text(psnr: float | None, ssim: float | None) -> str:
    """``PSNR / SSIM`` as one table cell."""
    return f"{format_value('psnr', psnr)} / {format_value('ssim', ssim)}"


def _row_dict(result: EvalResult, r: Score) -> dict[str, Any]:
    d: dict[str, Any] = {"image": r.image, "model": r.model}
    for k in [*result.metrics(), "seconds"]:
        d[COLUMNS[k][0]] = _finite(getattr(r, k))
    return d


# ------------------------------------------------------------------------------ CSV / JSON


def write_csv(result: EvalResult, path: str | Path) -> Path:
    """Per-image rows, then one ``mean`` row per model; every row names the protocol."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [COLUMNS[k][0] for k in [*result.metrics(), "seconds"]]
    fields = ["dataset", "scale", "image", "model", *keys, "protocol"]
    proto = result.protocol()["summary"] + f", LR {result.lr_source}"
    means = result.means()
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in result.rows:
            d = _row_dict(result, r)
            w.writerow({"dataset": result.dataset, "scale": result.scale, **d, "protocol": proto})
        for m in result.methods:
            mean = {COLUMNS[k][0]: _finite(means[m][k]) for k in [*result.metrics(), "seconds"]}
            w.writerow({"dataset": result.dataset, "scale": result.scale, "image": "mean", "model": m,
                        **mean, "protocol": proto})
    return path


def result_dict(result: EvalResult) -> dict[str, Any]:
    """Everything of a run as plain JSON-able data."""
    from superres import __version__

    means = result.means()
    return {
        "tool": f"superres {__version__}",
        "command": result.command,
        "dataset": result.dataset,
        "data_root": result.data_root,
        "scale": result.scale,
        "protocol": result.protocol(),
        "models": [{"label": m, "source": result.sources.get(m, m)} for m in result.methods],
        "images": result.images,
        "metrics": [COLUMNS[k][0] for k in result.metrics()],
        "rows": [_row_dict(result, r) for r in result.rows],
        "means": {m: {COLUMNS[k][0]: _finite(means[m][k]) for k in [*result.metrics(), "seconds"]}
                  for m in result.methods},
        "notes": result.notes,
    }


def write_json(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result_dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ terminal


def _grid(rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if right[i] else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return out


def per_image_rows(result: EvalResult) -> list[list[str]]:
    """PSNR / SSIM text per image (rows) and method (columns), then the row of means."""
    rows = [[img, *[psnr_ssim_text(s.psnr, s.ssim) for s in (result.score(img, m) for m in result.methods)]]
            for img in result.images]
    means = result.means()
    rows.append(["mean", *[psnr_ssim_text(means[m]["psnr"], means[m]["ssim"]) for m in result.methods]])
    return rows


def means_rows(result: EvalResult, labels: tuple[str, str, str], delta_digits: int
               ) -> tuple[list[str], list[list[str]]]:
    """(header, a row per method) of the means table: each metric's mean, the PSNR gain over the
    bicubic baseline (a column only when there is one; ``delta_digits`` decimals) and seconds per
    image. ``labels`` head the method, baseline and seconds columns (the text table and the
    report word them differently)."""
    means = result.means()
    metrics = result.metrics()
    head = [labels[0], *[COLUMNS[k][1] for k in metrics]]
    base = result.baseline
    if base is not None:
        head.append(labels[1])
    head.append(labels[2])
    rows = []
    for m in result.methods:
        row = [m, *[format_value(k, means[m][k]) for k in metrics]]
        if base is not None:
            p, b = means[m]["psnr"], means[base]["psnr"]
            row.append("-" if m == base or p is None or b is None else f"{p - b:+.{delta_digits}f} dB")
        row.append(format_value("seconds", means[m]["seconds"]))
        rows.append(row)
    return head, rows


def format_table(result: EvalResult) -> str:
    """Per-image PSNR/SSIM (images x models) and the means table, as plain text."""
    proto = result.protocol()
    lines = [f"{result.dataset} x{result.scale}: {len(result.images)} images, {proto['summary']} "
             f"(LR {result.lr_source}, gray {result.options.gray_mode})", ""]
    rows = [["PSNR / SSIM (Y)", *result.methods], *per_image_rows(result)]
    lines += _grid(rows, [False, *([True] * len(result.methods))])
    lines.append("")
    head, means = means_rows(result, ("model", "vs bicubic", "s/img"), 3)
    lines += _grid([head, *means], [False, *([True] * (len(head) - 1))])
    return "\n".join(lines)


__all__ = [
    "COLUMNS",
    "HIGHER_IS_BETTER",
    "format_table",
    "format_value",
    "means_rows",
    "per_image_rows",
    "psnr_ssim_text",
    "result_dict",
    "write_csv",
    "write_json",
]
