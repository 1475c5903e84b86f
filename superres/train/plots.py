"""PNG training curves from ``log.jsonl``: ``loss.png`` and ``val.png`` (matplotlib, Agg).

Figures are drawn on an explicit Agg canvas (no global backend switch, no display needed) and
written atomically, so a viewer never sees half a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from superres.io.atomic import atomic_path


def read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def write_plots(log_path: Path, out_dir: Path) -> list[Path]:
    """Draw the curves that have data; returns the files written."""
    records = read_log(log_path)
    written: list[Path] = []
    steps = [r for r in records if "losses" in r]
    if steps:
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        names = sorted({k for r in steps for k in r["losses"]})
        positive = True
        for name in names:
            pts = [(r["iteration"], r["losses"][name]) for r in steps if name in r["losses"]]
            positive &= all(v > 0 for _, v in pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, linewidth=1.2)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.96)
        _save(fig, out_dir / "loss.png")
        written.append(out_dir / "loss.png")
    vals = [r for r in records if "val" in r]
    if vals:
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        its = [r["iteration"] for r in vals]
        ax.plot(its, [r["val"]["psnr"] for r in vals], "o-", color="tab:blue", label="PSNR (Y)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB, Y, border = scale)", color="tab:blue")
        ax.grid(True, alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(its, [r["val"]["ssim"] for r in vals], "s--", color="tab:orange", label="SSIM (Y)")
        ax2.set_ylabel("SSIM", color="tab:orange")
        fig.subplots_adjust(left=0.1, right=0.88, bottom=0.13, top=0.96)
        _save(fig, out_dir / "val.png")
        written.append(out_dir / "val.png")
    return written


def _stages(paths: Path | list[Path]) -> tuple[list[dict[str, Any]], list[int]]:
    """Records of consecutive runs (stages) on one iteration axis, and where stages 2.. start."""
    records: list[dict[str, Any]] = []
    starts: list[int] = []
    offset = 0
    for i, path in enumerate([paths] if isinstance(paths, Path) else paths):
        stage = read_log(path)
        if i:
            starts.append(offset)
        records += [{**r, "iteration": r["iteration"] + offset} for r in stage if "iteration" in r]
        offset = max((r["iteration"] for r in records), default=offset)
    return records, starts


def compare_runs(runs: dict[str, Path | list[Path]], out: Path, *, targets: dict[str, float] | None = None,
                 title: str = "") -> Path:
    """One figure of several runs: training loss (left) and validation Y-PSNR (right).

    ``runs`` maps a label to its ``log.jsonl``, or to a list of them for a run made in stages (each
    continuing from the previous one's weights): they are drawn end to end, a dotted line marking where
    each later stage starts. ``targets`` draws a dashed line per label (e.g. the published PSNR a run
    must reach), in the run's colour. Used for docs/training.md.
    """
    fig = Figure(figsize=(11, 4.2))
    ax_loss, ax_val = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (label, log_paths) in enumerate(runs.items()):
        colour = f"C{i}"
        records, starts = _stages(log_paths)
        steps = [r for r in records if "losses" in r]
        if steps:
            ax_loss.plot([r["iteration"] for r in steps], [r["losses"]["total"] for r in steps],
                         color=colour, linewidth=1.0, label=label)
        vals = [r for r in records if "val" in r and r["iteration"] > 0]
        if vals:
            ax_val.plot([r["iteration"] for r in vals], [r["val"]["psnr"] for r in vals], ".-",
                        color=colour, linewidth=1.0, label=label)
        for start in starts:
            for ax in (ax_loss, ax_val):
                ax.axvline(start, color=colour, linestyle=":", linewidth=0.9, alpha=0.8)
        if targets and label in targets:
            ax_val.axhline(targets[label], color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss")
    if targets:  # the early climb from ~10 dB would squash the part that matters
        ax_val.set_ylim(bottom=min(targets.values()) - 3.0, top=max(targets.values()) + 0.5)
    ax_val.set_xlabel("iteration")
    ax_val.set_ylabel("validation PSNR (dB, Y, border = scale)")
    for ax in (ax_loss, ax_val):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9 if title else 0.96, wspace=0.25)
    _save(fig, out)
    return out
