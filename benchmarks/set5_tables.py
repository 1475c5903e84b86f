"""Re-run the Set5 commands of docs/benchmarks.md and check every table cell to the digit it shows.

Each ``superres eval --data ../shared/data/Set5 ...`` command in the "Set5" section is run as
written (``S`` expanded to 2, 3 and 4 where the command is a template), with ``--json``; every
model row of the table that follows it is compared with the run's mean PSNR-Y (3 decimals) and
SSIM-Y (4 decimals). Exit 0 when every cell reproduces, 1 otherwise; 2 without the data.

    python benchmarks/set5_tables.py                 # every table (about 10 minutes on 2 cores)
    python benchmarks/set5_tables.py --only fsrcnn   # commands naming a model that contains "fsrcnn"

Used to show that a refactoring changed no number (issue 16).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
DATA = REPO.parent / "shared" / "data" / "Set5"
_ROW = re.compile(r"^\|\s*([\w.-]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|")


def tables(text: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(command, {model: (psnr cell, ssim cell)}) for each Set5 command followed by a table."""
    section = text[text.index("## Set5"):]
    section = section[: section.find("\n## ", 4)] if "\n## " in section[4:] else section
    found = []
    for block in re.finditer(r"```bash\n(superres eval --data ../shared/data/Set5[^\n]*)\n```(.*?)(?=```|\Z)",
                             section, flags=re.S):
        command = block.group(1).split("#")[0].strip()
        rows = {m.group(1): (m.group(2), m.group(3))
                for line in block.group(2).splitlines() if (m := _ROW.match(line.strip()))}
        found.append((command, rows))
    return found


def expand(command: str) -> list[tuple[str, int]]:
    """The command per scale: a template with ``S`` (``--scale S -m fsrcnn-xS``) gives three."""
    if re.search(r"--scale S\b", command):
        return [(re.sub(r"\bS\b", str(s), command.replace("xS", f"x{s}")), s) for s in (2, 3, 4)]
    return [(command, int(re.search(r"--scale (\d)", command).group(1)))]  # type: ignore[union-attr]


def run(command: str, out: Path) -> dict[str, dict[str, float]]:
    args = [*shlex.split(command)[1:], "--json", str(out)]
    subprocess.run([sys.executable, "-m", "superres", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["means"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only commands naming a model containing this text")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"Set5 not found at {DATA} (../shared/data/Set5 beside the repo)", file=sys.stderr)
        return 2
    checked = wrong = 0
    with tempfile.TemporaryDirectory() as tmp:
        for template, rows in tables(DOC.read_text(encoding="utf-8")):
            if args.only not in template:
                continue
            for command, scale in expand(template):
                means = run(command, Path(tmp) / "r.json")
                for model, (psnr_cell, ssim_cell) in rows.items():
                    if model not in means:
                        continue  # a row of another scale of a template table
                    got = means[model]
                    psnr = f"{got['psnr_y']:.{len(psnr_cell.split('.')[1])}f}"
                    ssim = f"{got['ssim_y']:.{len(ssim_cell.split('.')[1])}f}"
                    checked += 1
                    ok = (psnr, ssim) == (psnr_cell, ssim_cell)
                    wrong += not ok
                    mark = "ok " if ok else "DIFF"
                    print(f"{mark} x{scale} {model:34s} docs {psnr_cell} / {ssim_cell}   now {psnr} / {ssim}")
    print(f"{checked} table rows checked, {wrong} differ")
    return 1 if wrong or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
