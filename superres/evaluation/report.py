"""The offline report of an ``EvalResult``: HTML/Markdown pages and per-image crop strips.

The report folder (``ReportWriter``) holds ``index.html`` and ``report.md`` (same content,
relative links only), ``results.csv`` / ``results.json``, ``crops/<image>.png`` (one strip
per image: HR overview with the crop box | bicubic | model(s) | HR, nearest-neighbour
zoom, labels drawn with ``cv2.putText``) and ``charts/*.svg`` (written as text).

Crops are written while the evaluation runs (``ReportWriter.add`` per image), so no SR
output outlives its image.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superres.evaluation.charts import FONT, axis_note, bar_chart_svg, colours
from superres.evaluation.evaluate import BICUBIC, EvalResult, ImageOutcome
from superres.evaluation.tables import (
    HIGHER_IS_BETTER,
    format_value,
    means_rows,
    per_image_rows,
    write_csv,
    write_json,
)
from superres.metrics.protocol import crop_hr_to

# ------------------------------------------------------------------------------ crops


def detail_map(img: np.ndarray) -> np.ndarray:
    """Gradient energy |dI/dx|^2 + |dI/dy|^2 of the (luma of the) image, float64."""
    x = img.astype(np.float64)
    if x.ndim == 3:
        x = x @ np.array([0.299, 0.587, 0.114])
    gx = cv2.Sobel(x, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(x, cv2.CV_64F, 0, 1, ksize=3)
    return gx * gx + gy * gy


def select_crop(hr: np.ndarray, scale: int, size: int = 96) -> tuple[int, int, int]:
    """(y, x, side) of the square window with the most gradient energy in ``hr``.

    The window avoids the ``scale``-pixel border (not scored) and sits on the LR pixel grid
    (y, x and side multiples of ``scale``), so every LR pixel maps to whole HR blocks.
    """
    h, w = hr.shape[:2]
    side = min(size, h - 2 * scale, w - 2 * scale)
    side = max(scale, side - side % scale)
    energy = detail_map(hr)
    integral = cv2.integral(energy, sdepth=cv2.CV_64F)
    best, pos = -1.0, (scale, scale)
    ys = range(scale, max(scale, h - scale - side) + 1, scale)
    xs = np.arange(scale, max(scale, w - scale - side) + 1, scale)
    for y in ys:
        y2 = min(y + side, h)
        x2 = np.minimum(xs + side, w)
        sums = integral[y2, x2] - integral[y, x2] - integral[y2, xs] + integral[y, xs]
        i = int(np.argmax(sums))
        if sums[i] > best:
            best, pos = float(sums[i]), (y, int(xs[i]))
    return pos[0], pos[1], side


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _put_text(canvas: np.ndarray, text: str, x: int, baseline: int, max_w: int, scale: float,
              colour: tuple[int, int, int], thickness: int = 1) -> None:
    """Anti-aliased Hershey text, shrunk (then shortened) to fit ``max_w`` pixels."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    s = scale
    while s > 0.36 and cv2.getTextSize(text, font, s, thickness)[0][0] > max_w:
        s -= 0.04
    while len(text) > 4 and cv2.getTextSize(text, font, s, thickness)[0][0] > max_w:
        text = text[:-3] + ".."
    cv2.putText(canvas, text, (x, baseline), font, s, colour, thickness, cv2.LINE_AA)


STRIP = 46  # label strip height in pixels
GAP = 6


def _panel(img: np.ndarray, title: str, line2: str, colour: str, strong: bool = False) -> np.ndarray:
    """A labelled panel: a colour bar, two lines of text, then the image."""
    h, w = img.shape[:2]
    out = np.full((STRIP + h, w, 3), 255, np.uint8)
    out[0:4, :] = _hex_rgb(colour)
    _put_text(out, title, 6, 22, w - 10, 0.55, (30, 30, 30), 2 if strong else 1)
    _put_text(out, line2, 6, 40, w - 10, 0.45, (70, 70, 70))
    out[STRIP:] = img
    return out


def _zoom(img: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def crop_strip(outcome: ImageOutcome, methods: Sequence[str], scale: int, *, size: int = 96,
               display: int = 288) -> tuple[np.ndarray, dict[str, Any]]:
    """The side-by-side image of one outcome (RGB uint8) and where its crop is."""
    first = outcome.outputs[methods[0]]
    hr = _rgb(crop_hr_to(outcome.sample.hr, first.shape, scale))
    y, x, side = select_crop(hr, scale, size)
    zoom = max(1, display // side)
    px = side * zoom
    cols = colours(methods)
    scores = {s.model: s for s in outcome.scores}
    best = max(methods, key=lambda m: scores[m].psnr)

    # Overview: the whole HR, fitted into the panel, with the crop box.
    h, w = hr.shape[:2]
    f = min(px / h, 1.5 * px / w, 1.0)
    ov = cv2.resize(hr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    ov = np.ascontiguousarray(ov)
    cv2.rectangle(ov, (round(x * f), round(y * f)), (round((x + side) * f) - 1, round((y + side) * f) - 1),
                  (230, 30, 30), 2)
    ov_pad = np.full((px, ov.shape[1], 3), 255, np.uint8)
    ov_pad[: ov.shape[0]] = ov
    panels = [_panel(ov_pad, outcome.sample.name, f"HR {w}x{h}, box {side}x{side}", "#444444")]
    for m in methods:
        sr = _rgb(outcome.outputs[m])[y : y + side, x : x + side]
        s = scores[m]
        line2 = f"PSNR {format_value('psnr', s.psnr)} dB  SSIM {format_value('ssim', s.ssim)}"
        panels.append(_panel(_zoom(sr, zoom), m, line2, cols[m], strong=(m == best and len(methods) > 1)))
    panels.append(_panel(_zoom(hr[y : y + side, x : x + side], zoom), "HR (ground truth)",
                         f"crop x{zoom} nearest", "#222222"))
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + GAP * (len(panels) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    cx = 0
    for p in panels:
        canvas[: p.shape[0], cx : cx + p.shape[1]] = p
        cx += p.shape[1] + GAP
    info = {"x": x, "y": y, "side": side, "zoom": zoom}
    return canvas, info


# ------------------------------------------------------------------------------ report


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


class ReportWriter:
    """Writes crops as images arrive (``add``), then charts, tables and pages (``finish``)."""

    def __init__(self, folder: str | Path, scale: int, methods: Sequence[str], *, crop: int = 96,
                 display: int = 288) -> None:
        self.folder = Path(folder)
        self.scale = scale
        self.methods = list(methods)
        self.crop = crop
        self.display = display
        self.crops: dict[str, tuple[str, dict[str, Any]]] = {}  # image -> (relative path, box)
        self._used: set[str] = set()
        (self.folder / "crops").mkdir(parents=True, exist_ok=True)
        (self.folder / "charts").mkdir(parents=True, exist_ok=True)

    def _unique(self, stem: str) -> str:
        base, k = _safe(stem), 2
        name = base
        while name.lower() in self._used:
            name, k = f"{base}-{k}", k + 1
        self._used.add(name.lower())
        return name

    def add(self, outcome: ImageOutcome) -> None:
        img, info = crop_strip(outcome, self.methods, self.scale, size=self.crop, display=self.display)
        rel = f"crops/{self._unique(outcome.sample.name)}.png"
        ok = cv2.imwrite(str(self.folder / rel), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"{self.folder / rel}: cannot write PNG")
        self.crops[outcome.sample.name] = (rel, info)

    # ---- charts ---------------------------------------------------------------------
    def charts(self, result: EvalResult) -> list[tuple[str, str]]:
        """Write the SVG charts; (title, relative path) of each."""
        out: list[tuple[str, str]] = []
        means = result.means()
        cols = colours(result.methods)
        proto = f"{result.dataset} x{result.scale}, {result.protocol()['summary']}"
        mean_vals = [means[m]["psnr"] for m in result.methods]
        svg = bar_chart_svg(
            f"Mean PSNR on {result.dataset} x{result.scale}", result.methods,
            [("mean PSNR", [cols[m] for m in result.methods], mean_vals)],
            y_label="PSNR (dB, Y)", value_fmt="{:.2f}", subtitle=proto + axis_note(mean_vals),
            group_notes=[f"SSIM {format_value('ssim', means[m]['ssim'])}" for m in result.methods],
        )
        out.append(("Mean PSNR / SSIM of all methods", self._write_chart("mean_psnr.svg", svg)))
        models = [m for m in result.methods if m != BICUBIC] or list(result.methods)
        groups = [*result.images, "mean"]
        for m in models:
            shown = [result.baseline] if result.baseline is not None and m != result.baseline else []
            series = [(k, cols[k], [*(result.score(i, k).psnr for i in result.images), means[k]["psnr"]])
                      for k in [*shown, m]]
            vals = [v for _, _, vs in series for v in vs if v is not None]
            svg = bar_chart_svg(
                f"{m}: PSNR per image", groups, series, y_label="PSNR (dB, Y)",
                subtitle=proto + axis_note(vals), highlight=[False] * len(result.images) + [True],
            )
            out.append((f"{m}: PSNR per image", self._write_chart(f"psnr_{_safe(m)}.svg", svg)))
        return out

    def _write_chart(self, name: str, svg: str) -> str:
        rel = f"charts/{name}"
        (self.folder / rel).write_text(svg, encoding="utf-8")
        return rel

    # ---- pages ----------------------------------------------------------------------
    def finish(self, result: EvalResult) -> Path:
        """Charts, results.csv/json, index.html and report.md; returns the index path."""
        charts = self.charts(result)
        write_csv(result, self.folder / "results.csv")
        write_json(result, self.folder / "results.json")
        (self.folder / "report.md").write_text(render_markdown(result, charts, self.crops), encoding="utf-8")
        index = self.folder / "index.html"
        index.write_text(render_html(result, charts, self.crops), encoding="utf-8")
        return index


def _best(result: EvalResult, metric: str) -> str | None:
    means = result.means()
    vals = [(means[m][metric], m) for m in result.methods if means[m][metric] is not None]
    if len(vals) < 2:
        return None
    better = max if HIGHER_IS_BETTER.get(metric, True) else min
    return better(vals)[1]


_LEGEND = "Bold: best mean. Higher PSNR/SSIM is better; lower NIQE/LPIPS is better."


def _means_rows(result: EvalResult) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """The means table with a bold flag per cell: the best mean of each metric."""
    head, rows = means_rows(result, ("method", "PSNR vs bicubic", "s / image"), 2)
    metrics = result.metrics()
    best = {k: _best(result, k) for k in metrics}
    rest = [False] * (len(head) - 1 - len(metrics))  # baseline and seconds columns: never bold
    bold = [[False, *[best[k] == m for k in metrics], *rest] for m in result.methods]
    return head, rows, bold


def _per_image_rows(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    return ["image", *result.methods], per_image_rows(result)


def _protocol_lines(result: EvalResult) -> list[tuple[str, str]]:
    p = result.protocol()
    items = [("metric", p["summary"]), ("Y", p["y"]), ("HR crop", p["hr_crop"]), ("LR", p["lr"]),
             ("bicubic", p["bicubic"]), ("PSNR", p["psnr"]), ("SSIM", p["ssim"]), ("gray", p["gray"])]
    for key in ("rgb", "niqe", "lpips"):
        if key in p:
            items.append((key.upper() if key != "rgb" else "RGB", p[key]))
    return items


def _subtitle(result: EvalResult) -> str:
    from superres import __version__

    when = _dt.datetime.now().strftime("%Y-%m-%d")
    return (f"{len(result.images)} images, {len(result.methods)} method(s), x{result.scale}, "
            f"superres {__version__}, {when}")


_CSS = """
body{font-family:FONT;color:#1f2328;max-width:1180px;margin:2em auto;padding:0 1.2em;line-height:1.45}
h3{font-size:1.05em}
h1{font-size:1.7em;margin-bottom:.1em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #d0d7de;
padding-bottom:.2em}.meta{color:#57606a;margin-top:0}table{border-collapse:collapse;margin:.6em 0;
font-variant-numeric:tabular-nums}th,td{border:1px solid #d0d7de;padding:.3em .7em}th{background:#f6f8fa;
text-align:left}td.n{text-align:right}td.best{font-weight:700}dl.proto{display:grid;
grid-template-columns:max-content 1fr;gap:.15em 1em;font-size:.93em}dl.proto dt{font-weight:600;color:#57606a}
dl.proto dd{margin:0}pre{background:#f6f8fa;padding:.6em .8em;border-radius:6px;overflow-x:auto;
font-size:.88em}figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9em}.charts img{max-width:100%;height:auto;margin:.4em 0;display:block}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
ul.notes{color:#57606a;font-size:.9em}
""".replace("FONT", FONT.replace("'", '"'))


def render_html(result: EvalResult, charts: Sequence[tuple[str, str]],
                crops: dict[str, tuple[str, dict[str, Any]]]) -> str:
    e = html.escape
    cols = colours(result.methods)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>superres eval: {e(result.dataset)} x{result.scale}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(result.dataset)} &times;{result.scale}</h1>",
             f'<p class="meta">{e(_subtitle(result))} &middot; '
             '<a href="results.csv">results.csv</a> &middot; <a href="results.json">results.json</a></p>']
    parts.append("<h2>Mean scores</h2>")
    head, rows, bold = _means_rows(result)
    parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for row, flags in zip(rows, bold, strict=True):
        cells = [f'<td><span class="swatch" style="background:{cols[row[0]]}"></span>{e(row[0])}</td>']
        cells += [f'<td class="n{" best" if f else ""}">{e(c)}</td>'
                  for c, f in zip(row[1:], flags[1:], strict=True)]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(f'<p class="meta">{e(_LEGEND)}</p>')
    parts.append('<div class="charts">')
    for title, rel in charts:
        parts.append(f'<img src="{e(rel)}" alt="{e(title)}">')
    parts.append("</div>")
    parts.append("<h2>Protocol</h2><dl class=\"proto\">")
    for k, v in _protocol_lines(result):
        parts.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
    parts.append("</dl><h3>Methods</h3><dl class=\"proto\">")
    for m in result.methods:
        parts.append(f"<dt>{e(m)}</dt><dd>{e(result.sources.get(m, m))}</dd>")
    parts.append("</dl>")
    if result.command:
        parts.append(f"<pre>{e(result.command)}</pre>")
    parts.append("<h2>Per image (PSNR / SSIM, Y)</h2>")
    head, rows = _per_image_rows(result)
    parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for row in rows:
        tag = "th" if row[0] == "mean" else "td"
        cells = "".join(f'<td class="n">{e(c)}</td>' for c in row[1:])
        parts.append(f"<tr><{tag}>{e(row[0])}</{tag}>{cells}</tr>")
    parts.append("</tbody></table>")
    if crops:
        parts.append("<h2>Crops</h2>")
        parts.append('<p class="meta">Per image: the HR with the crop box, then the same region of every '
                     "method and the HR, enlarged with nearest neighbour. The region is the window with "
                     "the most gradient energy in the HR.</p>")
        for img in result.images:
            if img not in crops:
                continue
            rel, info = crops[img]
            parts.append(f'<figure><img src="{e(rel)}" alt="{e(img)} crops" loading="lazy">'
                         f"<figcaption>{e(img)}: {info['side']}&times;{info['side']} px at "
                         f"x={info['x']}, y={info['y']}, shown &times;{info['zoom']}</figcaption></figure>")
    if result.notes:
        parts.append("<h2>Notes</h2><ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in result.notes)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def render_markdown(result: EvalResult, charts: Sequence[tuple[str, str]],
                    crops: dict[str, tuple[str, dict[str, Any]]]) -> str:
    lines = [f"# {result.dataset} x{result.scale}", "", f"{_subtitle(result)}. Data: "
             "[results.csv](results.csv), [results.json](results.json).", "", "## Mean scores", ""]
    head, rows, bold = _means_rows(result)
    rows_b = [[f"**{c}**" if f else c for c, f in zip(row, flags, strict=True)]
              for row, flags in zip(rows, bold, strict=True)]
    lines += _md_table(head, rows_b, [False, *([True] * (len(head) - 1))])
    lines += ["", _LEGEND, ""]
    for title, rel in charts:
        lines += [f"![{title}]({rel})", ""]
    lines += ["## Protocol", ""]
    lines += [f"- **{k}**: {v}" for k, v in _protocol_lines(result)]
    lines += ["", "Methods:", ""] + [f"- **{m}**: {result.sources.get(m, m)}" for m in result.methods]
    if result.command:
        lines += ["", "```bash", result.command, "```"]
    lines += ["", "## Per image (PSNR / SSIM, Y)", ""]
    head, rows = _per_image_rows(result)
    lines += _md_table(head, rows, [False, *([True] * (len(head) - 1))])
    if crops:
        lines += ["", "## Crops", "", "Per image: the HR with the crop box, then the same region of every "
                  "method and the HR, enlarged with nearest neighbour (the window with the most gradient "
                  "energy in the HR).", ""]
        for img in result.images:
            if img in crops:
                rel, info = crops[img]
                lines += [f"![{img}]({rel})", "",
                          f"*{img}: {info['side']}x{info['side']} px at x={info['x']}, y={info['y']}, "
                          f"shown x{info['zoom']}*", ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "ReportWriter",
    "crop_strip",
    "detail_map",
    "render_html",
    "render_markdown",
    "select_crop",
]
