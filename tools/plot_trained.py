"""Training curves of the shipped FSRCNN/ESPCN models for docs/training.md.

    python tools/plot_trained.py          # reads docs/training-logs/*.jsonl, writes docs/training-*.png

The logs are the runs' ``log.jsonl`` files, copied into docs/ so the figures can be redrawn
from a fresh clone: ``NAME-rgb.jsonl`` (stage 1, RGB), ``NAME-y.jsonl`` (stage 2, Y only, 32 px patches) and
``NAME.jsonl`` (the last stage: Y only, 16 px patches), drawn end to end; ESPCN has one more stage
before its last, ``NAME-s3.jsonl`` (the same patches at half the learning rate). The dashed lines are
the published FSRCNN Set5 Y-PSNR for each scale; the dotted ones mark where each later stage starts.
"""

from __future__ import annotations

from pathlib import Path

from superres.train.plots import compare_runs
from superres.zoo.trained import PUBLISHED_FSRCNN_SET5

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    logs = DOCS / "training-logs"
    for arch in ("fsrcnn", "espcn"):
        runs: dict[str, Path | list[Path]] = {}
        for s in (2, 3, 4):
            stages = [logs / f"{arch}-x{s}{part}.jsonl" for part in ("-rgb", "-y", "-s3", "")]
            if any(p.is_file() for p in stages):
                runs[f"{arch}-x{s}"] = [p for p in stages if p.is_file()]
        targets = {k: PUBLISHED_FSRCNN_SET5[int(k[-1])] for k in runs}
        out = compare_runs(runs, DOCS / f"training-{arch}.png", targets=targets,
                           title=f"{arch.upper()} on 291 images, CPU: training loss and Set5 Y-PSNR (EMA "
                                 "weights; dotted: start of each later stage; dashed: published FSRCNN)")
        print(out)


if __name__ == "__main__":
    main()
