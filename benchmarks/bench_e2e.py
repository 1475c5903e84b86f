"""End to end: ``superres upscale`` of a 1080p photo to 8K, against the model alone and ncnn.

Issue 18's target: the whole file-to-file upscale (read, model, resize, write) within 1.3x of the
model-only time for the same pixels. Three measurements on one engine, same tiles, same threads:

- ``e2e``: ``superres.batch.upscale_files`` (what the CLI runs): PNG in, PNG out, overlapped;
- ``model``: the same runner on the same tiles of the same image, no I/O (``tiled_forward``);
- ``ncnn``: the ncnn runtime (``superres.runtimes.ncnn.NcnnRunner``, the carrier's own .param/.bin)
  running the same tiling, through a small Runner adapter, taking turns with the same torch runner
  tile by tile (so their ratio holds on a machine whose load changes).

End-to-end over model-only is given two ways: against the separate model-only run, and against the
model stage of the end-to-end run itself (the second is what to read on a busy machine).

The input is ``examples/chelsea.png`` resized (bicubic) and centre-cropped to 1920x1080, written as
PNG, so every run sees the same pixels. The tile is what the engine chooses (engine.tilespeed;
measured once and cached, its cost is printed apart) unless ``--tile`` is given.

    python benchmarks/bench_e2e.py                      # 1080p -> 8K, realesr-animevideov3, 2 threads
    python benchmarks/bench_e2e.py --quick              # 480x270 -> 1920x1080, a smoke run
    python benchmarks/bench_e2e.py --backend openvino   # another runner (superres.runtimes)

Timings on a shared machine move with the load: read the ratios, taken side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from superres import batch  # noqa: E402
from superres.engine.runners import Runner  # noqa: E402
from superres.engine.tiling import tiled_forward  # noqa: E402
from superres.engine.upscaler import TileSettings, UpscaleEngine  # noqa: E402
from superres.zoo.loader import load_model  # noqa: E402


def ncnn_tiles(model: str, threads: int) -> Runner:
    """The ncnn runtime on the model's own .param/.bin as an engine Runner (fp32, CPU)."""
    from superres.runtimes.ncnn import NcnnRunner

    return NcnnRunner.for_model(load_model(model), device="cpu", threads=threads)


def paired_tiles(runners: dict[str, object], x: torch.Tensor, *, tile: int, pad: int,
                 multiple: int) -> dict[str, float]:
    """Seconds per runner over the same windows, taking turns window by window (the order
    alternating), so a change in the machine's load hits every runner alike."""
    from superres.engine.tiling import iter_tiles

    _, h, w = x.shape
    total = dict.fromkeys(runners, 0.0)
    for i, (r, c) in enumerate(iter_tiles(h, w, tile, pad, multiple)):
        window = x[:, r.win0:r.win1, c.win0:c.win1][None].contiguous()
        for label in list(runners)[:: 1 if i % 2 == 0 else -1]:
            t0 = time.perf_counter()
            runners[label].run(window)  # type: ignore[attr-defined]
            total[label] += time.perf_counter() - t0
    return total


def photo(width: int, height: int) -> np.ndarray:
    """The sample photo resized to cover ``width`` x ``height`` and centre-cropped (RGB uint8)."""
    import cv2

    bgr = cv2.imread(str(REPO / "examples" / "chelsea.png"))
    f = max(width / bgr.shape[1], height / bgr.shape[0])
    big = cv2.resize(bgr, (round(bgr.shape[1] * f + 0.5), round(bgr.shape[0] * f + 0.5)),
                     interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width, ::-1])


def make_engine(model_name: str, backend: str | None, threads: int, tile: int | None) -> UpscaleEngine:
    model = load_model(model_name)
    runner = None
    if backend and backend != "torch":
        from superres.runtimes import make_runner  # the runtimes package (issue 18, H3)

        runner = make_runner(model, backend, device="cpu", threads=threads)
    return UpscaleEngine(model, device="cpu", runner=runner, tiles=TileSettings(tile=tile))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="realesr-animevideov3")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=None, help="force a tile (default: the engine's choice)")
    ap.add_argument("--backend", default=None, help="a superres.runtimes backend instead of torch")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds (median reported)")
    ap.add_argument("--no-ncnn", action="store_true")
    ap.add_argument("--quick", action="store_true", help="480x270 input, one round")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.width, args.height, args.repeat = 480, 270, 1
    torch.set_num_threads(args.threads)

    engine = make_engine(args.model, args.backend, args.threads, args.tile)
    t0 = time.perf_counter()
    tile = engine.tile_for(args.height, args.width)  # measures once (cached) before any timing
    tune_s = time.perf_counter() - t0
    speed = engine.speed
    runner = getattr(engine.runner, "name", type(engine.runner).__name__)
    print(f"{args.model}: {args.width}x{args.height} -> x{args.scale:g}, {args.threads} threads, "
          f"runner {runner}, tile {tile}, pad {engine.pad} (tile choice {tune_s:.2f} s"
          + (f", measured windows {sorted(speed.seconds)}" if speed is not None else ", no profile") + ")")
    ncnn = None
    if not args.no_ncnn:
        try:
            ncnn = ncnn_tiles(args.model, args.threads)
        except Exception as exc:  # not installed, or no carrier files for this model
            print(f"  ncnn skipped: {type(exc).__name__}: {exc}")

    rows: dict[str, list[float]] = {"e2e": [], "model": [], "ncnn": [], "model_paired": []}
    profiles = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        src = Path(tmp) / "photo.png"
        import cv2

        rgb = photo(args.width, args.height)
        cv2.imwrite(str(src), np.ascontiguousarray(rgb[:, :, ::-1]))
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255
        s = engine.model.scale
        for r in range(args.repeat):
            out = Path(tmp) / f"out{r}"
            res = batch.upscale_files(src, out, model=engine, scale=args.scale, overwrite=True)
            if not res.ok:
                print("e2e failed:", res.errors)
                return 1
            rows["e2e"].append(res.seconds)
            profiles.append(res.profile)
            t = time.perf_counter()
            tiled_forward(engine.runner, x, s, tile=tile, pad=engine.pad, multiple=engine.model.size_multiple)
            rows["model"].append(time.perf_counter() - t)
            if ncnn is not None:  # torch and ncnn taking turns tile by tile: their ratio survives load
                paired = paired_tiles({"model": engine.runner, "ncnn": ncnn}, x, tile=tile, pad=engine.pad,
                                      multiple=engine.model.size_multiple)
                rows["ncnn"].append(paired["ncnn"])
                rows["model_paired"].append(paired["model"])
            print(f"  round {r + 1}: e2e {rows['e2e'][-1]:.2f} s, model only {rows['model'][-1]:.2f} s"
                  + (f"; taking turns per tile: model {rows['model_paired'][-1]:.2f} s, ncnn "
                     f"{rows['ncnn'][-1]:.2f} s" if rows["ncnn"] else ""), flush=True)
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    best = min(profiles, key=lambda p: p.total)
    stages = best.stages()
    print(f"end to end {med['e2e']:.2f} s: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    print(best.summary())
    summary = {
        "model": args.model, "size": [args.width, args.height], "scale": args.scale, "threads": args.threads,
        "backend": args.backend or "torch", "tile": tile, "pad": engine.pad, "tile_choice_s": tune_s,
        "seconds": med, "stages": stages, "read_busy": best.read, "write_busy": best.write,
        "e2e_over_model": med["e2e"] / med["model"],
    }
    own = summary["e2e_over_own_model_stage"] = best.total / best.model
    print(f"ratio end-to-end / model-only: {summary['e2e_over_model']:.2f} (goal <= 1.3); within the same "
          f"run (total / its model stage, immune to load drift between runs): {own:.2f}")
    if "ncnn" in med:
        summary["model_over_ncnn"] = statistics.median(
            m / n for m, n in zip(rows["model_paired"], rows["ncnn"], strict=True))
        summary["e2e_over_ncnn"] = summary["e2e_over_own_model_stage"] * summary["model_over_ncnn"]
        print(f"ratio model / ncnn on the same tiles, taking turns: {summary['model_over_ncnn']:.2f}; "
              f"end-to-end / ncnn model-only (the two ratios multiplied): {summary['e2e_over_ncnn']:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
