"""Fit the pristine NIQE model that superres ships (``superres/metrics/data/niqe_pristine_superres.npz``).

Data: the 200 BSD200 training photographs (``../shared/data/train/BSD200``, the Berkeley
segmentation train split: natural scenes, all 481x321 here, original JPEGs). NIQE's own
pristine corpus was natural photographs of this kind (Flickr and the Berkeley database).
T91 is left out: its images are small (390 patches of 96x96 from 91 images, one image below
96 px), and the per-image selection "sharpness > 0.75 x the image's sharpest patch" means
little with one to four patches per image (the single patch of a small image is always kept).

Per image (sorted by name): decode with Pillow to RGB, BT.601 Y (``rgb_to_y``, float,
the conversion ``niqe`` applies by default), crop to a multiple of 96, 36 features per
96x96 patch, keep the patches whose sharpness (mean of the local deviation map) exceeds
0.75 x the image's sharpest patch. Model: mean and covariance of all kept patches.

    .venv/bin/python benchmarks/fit_niqe.py                      # writes the shipped file
    .venv/bin/python benchmarks/fit_niqe.py --data DIR -o model.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

import superres
from superres.metrics.colour import rgb_to_y
from superres.metrics.niqe import (
    MODEL_PATH,
    PATCH_SIZE,
    SHARPNESS_THRESHOLD,
    feature_mean_cov,
    pristine_patch_features,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train" / "BSD200"
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA], help="image folder(s)")
    parser.add_argument("-o", "--output", type=Path, default=MODEL_PATH)
    parser.add_argument("--threshold", type=float, default=SHARPNESS_THRESHOLD)
    args = parser.parse_args(argv)

    paths = sorted(p for d in args.data for p in d.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not paths:
        parser.error(f"no images under {args.data}")
    start = time.perf_counter()
    kept, names, n_total, n_kept, skipped = [], [], 0, 0, []
    for path in paths:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if min(rgb.shape[:2]) < PATCH_SIZE:
            skipped.append(path.name)
            continue
        feats, total = pristine_patch_features(rgb_to_y(rgb), threshold=args.threshold)
        kept.append(feats)
        names.append(f"{path.parent.name}/{path.name}")
        n_total += total
        n_kept += feats.shape[0]
    all_feats = np.concatenate(kept, axis=0)
    n_finite = int(np.all(np.isfinite(all_feats), axis=1).sum())
    mu, cov = feature_mean_cov(all_feats)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        mu=mu,
        cov=cov,
        images=np.array(names),
        patch_size=np.int64(PATCH_SIZE),
        sharpness_threshold=np.float64(args.threshold),
        n_images=np.int64(len(names)),
        n_patches_total=np.int64(n_total),
        n_patches_kept=np.int64(n_kept),
        n_patches_used=np.int64(n_finite),
        colour=np.array("BT.601 Y, float (superres.metrics.colour.rgb_to_y), 0..255 scale"),
        decoder=np.array(f"Pillow {PIL.__version__}"),
        superres_version=np.array(superres.__version__),
        script=np.array("benchmarks/fit_niqe.py"),
    )
    eig = np.linalg.eigvalsh(cov)
    print(f"images: {len(names)} used, {len(skipped)} skipped (smaller than 96 px): {skipped}")
    print(f"patches: {n_total} total, {n_kept} kept (sharpness > {args.threshold} x max), {n_finite} finite")
    print(f"cov eigenvalues: min {eig.min():.3e}, max {eig.max():.3e}")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
