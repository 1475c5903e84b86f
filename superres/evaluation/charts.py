"""Hand-written SVG bar charts (no plotting library) and the colour of each method.

The y axis starts above 0 where that shows the differences (PSNR); ``axis_note`` says so
in a chart's subtitle.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from superres.evaluation.evaluate import BICUBIC

BASELINE_COLOUR = "#9aa0a6"
PALETTE = ("#3b78c2", "#e8762c", "#3a9a5b", "#d2424b", "#8a63b8", "#1a9fa8", "#c4a000", "#b55a8a")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def colours(methods: Sequence[str]) -> dict[str, str]:
    """A stable colour per method: bicubic grey, models from the palette in order."""
    out: dict[str, str] = {}
    k = 0
    for m in methods:
        if m == BICUBIC:
            out[m] = BASELINE_COLOUR
        else:
            out[m] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw - 1e-12:
            return m * mag
    return 10 * mag


def _axis(values: Sequence[float]) -> tuple[float, float, float]:
    """(low, high, step) of a y axis that shows the differences (PSNR does not start at 0)."""
    vmin, vmax = min(values), max(values)
    # At least a quarter of the largest value: small differences stay small on the chart.
    span = max(vmax - vmin, abs(vmax) * 0.25, 1e-3)
    step = _nice_step(span * 1.5)
    lo = math.floor((vmin - 0.35 * span) / step) * step
    if vmin >= 0 > lo or (vmin >= 0 and lo < 0.25 * vmin):
        lo = 0.0
    hi = math.ceil((vmax + 0.15 * span) / step) * step
    return lo, hi, step


def _t(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text_w(s: str, px: float) -> float:
    return 0.58 * px * len(s)


def bar_chart_svg(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, str | Sequence[str], Sequence[float | None]]],
    *,
    y_label: str,
    value_fmt: str = "{:.2f}",
    subtitle: str = "",
    group_notes: Sequence[str] | None = None,
    highlight: Sequence[bool] | None = None,
) -> str:
    """Grouped vertical bar chart as SVG text: ticks, axis labels, values on the bars.

    ``series``: (legend label, colour or one colour per group, value per group; None = no bar).
    ``highlight``: per group, draw its label bold (e.g. the ``mean`` group).
    """
    n_s = max(1, len(series))
    many = len(groups) * n_s > 40  # a big data set: thin bars, no values, slanted labels
    bar_w = 12 if many else (52 if n_s == 1 else 36 if n_s == 2 else 30)
    label_px = 12
    longest = max((_text_w(g, label_px) for g in groups), default=0)
    group_w = n_s * bar_w + (6 if many else 22)
    if not many:
        group_w = max(group_w, longest + 14)
    rotate = many and longest > group_w - 4
    values_on = not many
    left, right, top = 74, 24, 70 if subtitle else 52
    bottom = 34 + (18 if group_notes else 0) + (30 if len(series) > 1 else 0)
    bottom += int(longest * 0.7) if rotate else 0
    plot_w = group_w * len(groups)
    legend_w = sum(_text_w(s[0], 12) + 34 for s in series) if len(series) > 1 else 0
    width = int(max(left + plot_w + right, 480, left + legend_w + right, left + _text_w(title, 16) + right,
                    left + _text_w(subtitle, 12) * 0.92 + right))
    group_w = max(group_w, (width - left - right) / max(1, len(groups)))  # fill the width
    plot_w = group_w * len(groups)
    plot_h = 250
    height = top + plot_h + bottom
    vals = [v for _, _, vs in series for v in vs if v is not None and math.isfinite(v)]
    lo, hi, step = _axis(vals or [0.0, 1.0])

    def ypos(v: float) -> float:
        return top + plot_h - (min(max(v, lo), hi) - lo) / (hi - lo) * plot_h

    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{e(FONT)}" role="img" aria-label="{e(title)}">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="26" font-size="16" font-weight="600" fill="#1f2328">{e(title)}</text>']
    if subtitle:
        out.append(f'<text x="{left}" y="46" font-size="12" fill="#57606a">{e(subtitle)}</text>')
    # grid + ticks
    k = 0
    while lo + k * step <= hi + 1e-9:
        v = lo + k * step
        y = ypos(v)
        out.append(f'<line x1="{left}" y1="{_t(y)}" x2="{left + plot_w}" y2="{_t(y)}" '
                   f'stroke="{"#d0d7de" if k else "#57606a"}" stroke-width="1"/>')
        out.append(f'<text x="{left - 8}" y="{_t(y + 4)}" font-size="11" fill="#57606a" '
                   f'text-anchor="end">{e(_tick(v, step))}</text>')
        k += 1
    cy = top + plot_h / 2
    out.append(f'<text x="18" y="{_t(cy)}" font-size="12" fill="#1f2328" text-anchor="middle" '
               f'transform="rotate(-90 18 {_t(cy)})">{e(y_label)}</text>')
    # bars
    for gi, g in enumerate(groups):
        gx = left + gi * group_w + (group_w - n_s * bar_w) / 2
        for si, (label, colour, vs) in enumerate(series):
            v = vs[gi]
            if v is None or not math.isfinite(v):
                continue
            c = colour if isinstance(colour, str) else colour[gi]
            x = gx + si * bar_w
            y = ypos(v)
            out.append(f'<rect x="{_t(x + 2)}" y="{_t(y)}" width="{bar_w - 4}" '
                       f'height="{_t(top + plot_h - y)}" fill="{c}" rx="2"><title>{e(label)} {e(g)}: '
                       f'{e(value_fmt.format(v))}</title></rect>')
            if values_on:
                out.append(f'<text x="{_t(x + bar_w / 2)}" y="{_t(y - 5)}" font-size="11" fill="#1f2328" '
                           f'text-anchor="middle">{e(value_fmt.format(v))}</text>')
        cx = left + gi * group_w + group_w / 2
        ly = top + plot_h + 18
        weight = ' font-weight="600"' if highlight and highlight[gi] else ""
        if rotate:
            out.append(f'<text x="{_t(cx)}" y="{_t(ly)}" font-size="{label_px}" fill="#1f2328"{weight} '
                       f'text-anchor="end" transform="rotate(-40 {_t(cx)} {_t(ly)})">{e(g)}</text>')
        else:
            out.append(f'<text x="{_t(cx)}" y="{_t(ly)}" font-size="{label_px}" fill="#1f2328"{weight} '
                       f'text-anchor="middle">{e(g)}</text>')
        if group_notes:
            out.append(f'<text x="{_t(cx)}" y="{_t(ly + 17)}" font-size="11" fill="#57606a" '
                       f'text-anchor="middle">{e(group_notes[gi])}</text>')
    # legend
    if len(series) > 1:
        lx = left
        ly = height - 16
        for label, colour, _ in series:
            c = colour if isinstance(colour, str) else colour[0]
            out.append(f'<rect x="{_t(lx)}" y="{_t(ly - 10)}" width="12" height="12" fill="{c}" rx="2"/>')
            out.append(f'<text x="{_t(lx + 18)}" y="{_t(ly)}" font-size="12" '
                       f'fill="#1f2328">{e(label)}</text>')
            lx += _text_w(label, 12) + 34
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else (1 if step % 1 else 0)
    return f"{v:.{decimals}f}"


def axis_note(values: Sequence[float | None]) -> str:
    """Where the y axis of a chart of ``values`` starts, for its subtitle (empty when at 0)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    lo, _, step = _axis(vals)
    return f" (y axis from {_tick(lo, step)} dB)" if lo > 0 else ""


__all__ = [
    "BASELINE_COLOUR",
    "FONT",
    "PALETTE",
    "axis_note",
    "bar_chart_svg",
    "colours",
]
