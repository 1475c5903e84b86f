"""``superres models``: the named models with scale, size, licence and availability."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list the named models, their licences and availability",
                       description="List the named models: scale, architecture, parameters, "
                                   "MFLOP per input pixel, licence, purpose and whether their "
                                   "weights are available offline right now.")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table (used for docs/models.md)")
    p.set_defaults(func=run)


def rows() -> list[dict[str, Any]]:
    from superres.weights.carriers import missing_message
    from superres.zoo.cache import is_available
    from superres.zoo.catalogue import unique_models

    out = []
    for m in unique_models():
        native = m.scale
        chained = [native**k for k in (2, 3)] if native > 1 else []
        available = is_available(m)
        out.append({
            "name": m.name, "scale": m.scale, "arch": m.arch, "params": m.params,
            "mflop_per_px": round(m.mflop_per_input_pixel, 3), "licence": m.licence,
            "purpose": m.purpose, "carrier": m.carrier.package, "extra": m.carrier.extra,
            "available": available,
            "aliases": list(m.aliases), "description": m.description, "licence_note": m.licence_note,
            # native factor; exact chained factors (repeated passes); anything else = passes + resize
            "factors": {"native": native, "chained": chained, "any_via_resize": True},
            **({} if available else {"how_to_get": missing_message(m.carrier, m.name)}),
        })
    return out


def run(args: argparse.Namespace) -> int:
    data = rows()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if args.markdown:
        print(markdown(data))
        return 0
    head = ("name", "scale", "chained", "arch", "params", "MFLOP/px", "licence", "purpose", "weights")
    table = [head] + [
        (r["name"], f"x{r['scale']}", ",".join(f"x{f}" for f in r["factors"]["chained"]) or "-", r["arch"],
         f"{r['params'] / 1e6:.2f}M", f"{r['mflop_per_px']:g}",
         r["licence"], r["purpose"], "available" if r["available"] else f"missing ({r['carrier']})")
        for r in data
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print("\nOther --scale values: model passes (one more only when the rest would need a >1.5x "
          "upscale), then a bicubic resize. Licence details: superres models --json.")
    missing = [r for r in data if not r["available"]]
    if missing:
        print(f"\n{missing[0]['how_to_get']}")
    return 0


def markdown(data: list[dict[str, Any]]) -> str:
    """The listing as a Markdown table (without the availability column, which is per machine)."""
    lines = ["| name | scale | architecture | params | MFLOP/px | purpose | licence | carrier (extra) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data:
        alias = f" (alias {', '.join(r['aliases'])})" if r["aliases"] else ""
        lines.append(f"| `{r['name']}`{alias} | x{r['scale']} | {r['arch']} | {r['params']:,} | "
                     f"{r['mflop_per_px']:g} | {r['purpose']} | {r['licence']} | {r['carrier']}"
                     + (f" (`superres[{r['extra']}]`)" if r["extra"] else " (core)") + " |")
    return "\n".join(lines)
