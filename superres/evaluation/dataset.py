"""Benchmark data sets: find the HR/LR pairs of a folder and decode them for scoring.

* ``discover``: a folder of HR images (the LR is made on the fly with the exact MATLAB
  ``imresize(modcrop(HR, s), 1/s)`` on uint8), a Set5-style folder with ``HR/`` and
  ``LR_bicubic/X{s}/`` (LR named ``<stem>x{s}.png`` or ``<stem>.png``), or explicit HR and LR
  folders.
* ``load_sample``: one pair as uint8 arrays in the same layout (RGB or gray), sizes checked.

Used by ``superres eval`` (through :mod:`superres.evaluation.evaluate`) and by training's
validation set, so both read a data set the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from superres.metrics.protocol import crop_hr_to
from superres.metrics.resize import imresize, modcrop

# Folder names tried inside --data DIR (first match wins); {s} is the scale.
HR_DIRS = ("HR", "GTmod12", "GT")
LR_DIRS = ("LR_bicubic/X{s}", "LR_bicubic/x{s}", "LRbicx{s}", "LR/X{s}", "LR/x{s}", "LR_bicubic")
_SSIM_MIN = 11


class EvalError(Exception):
    """A data set or model problem; the message names the file (or folder) and the reason."""


# ------------------------------------------------------------------------------ data set


@dataclass(frozen=True)
class ImagePair:
    """One benchmark image: its HR file and, when the data set has one, its LR file."""

    name: str
    hr_path: Path
    lr_path: Path | None  # None: made from the HR with MATLAB bicubic


@dataclass
class Dataset:
    name: str
    root: Path
    hr_dir: Path
    lr_dir: Path | None
    scale: int
    pairs: list[ImagePair]
    notes: list[str] = field(default_factory=list)

    @property
    def lr_source(self) -> str:
        """``given`` (LR files), ``generated`` (MATLAB bicubic from HR) or ``mixed``."""
        given = sum(p.lr_path is not None for p in self.pairs)
        if given == len(self.pairs):
            return "given"
        return "generated" if given == 0 else "mixed"


def _images_in(folder: Path) -> list[Path]:
    from superres.io import SUPPORTED_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                  and not p.name.startswith("."))


def _lr_index(folder: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for p in _images_in(folder):
        index.setdefault(p.stem, p)
    return index


def _lr_candidates(stem: str, scale: int) -> tuple[str, ...]:
    return (f"{stem}x{scale}", f"{stem}X{scale}", f"{stem}_x{scale}", f"{stem}_X{scale}", stem)


def _first_dir(root: Path, names: Sequence[str], scale: int) -> Path | None:
    for name in names:
        cand = root / name.format(s=scale)
        if cand.is_dir():
            return cand
    return None


def discover(
    scale: int,
    *,
    data: str | Path | None = None,
    hr: str | Path | None = None,
    lr: str | Path | None = None,
) -> Dataset:
    """The image pairs of a data set, in file-name order.

    ``data``: a folder with ``HR/`` (or ``GTmod12/``, ``GT/``) and optionally
    ``LR_bicubic/X{s}/`` (or ``LRbicx{s}/``, ``LR/X{s}/``), else a folder of HR images.
    ``hr`` (+ optional ``lr``): explicit folders. ``lr`` may also override the LR folder of
    ``data``. Without an LR folder every LR is generated from the HR. Raises ``EvalError``.
    """
    if not isinstance(scale, int) or scale < 1:
        raise EvalError(f"--scale must be a positive integer, got {scale!r}")
    if (data is None) == (hr is None):
        raise EvalError("give either --data DIR or --hr DIR (with optional --lr DIR)")
    notes: list[str] = []
    if data is not None:
        root = Path(data)
        if not root.is_dir():
            raise EvalError(f"{root}: no such folder")
        hr_dir = _first_dir(root, HR_DIRS, scale)
        if hr_dir is None:  # a plain folder of HR images
            hr_dir, lr_dir = root, None
        else:
            lr_dir = _first_dir(root, LR_DIRS, scale)
            if lr_dir is not None and lr_dir.name == "LR_bicubic" and any(
                (lr_dir / d).is_dir() for d in (f"X{k}" for k in (2, 3, 4, 8))
            ):
                lr_dir = None  # LR_bicubic/ holds other scales only
            if lr_dir is None:
                notes.append(f"no LR folder for x{scale} under {root}: LR made from HR with "
                             f"MATLAB bicubic imresize(modcrop(HR, {scale}), 1/{scale})")
    else:
        assert hr is not None
        hr_dir, root = Path(hr), Path(hr)
        if not hr_dir.is_dir():
            raise EvalError(f"{hr_dir}: no such folder (--hr)")
        lr_dir = None
    name = root.resolve().name
    if name in HR_DIRS and root.resolve().parent.name:  # .../Set5/HR -> "Set5"
        name = root.resolve().parent.name
    if lr is not None:
        lr_dir = Path(lr)
        if not lr_dir.is_dir():
            raise EvalError(f"{lr_dir}: no such folder (--lr)")

    hr_files = _images_in(hr_dir)
    if not hr_files:
        hint = "" if data is None else f" (expected image files, or HR/ and LR_bicubic/X{scale}/)"
        raise EvalError(f"{hr_dir}: no images found{hint}")
    pairs: list[ImagePair] = []
    if lr_dir is None:
        pairs = [ImagePair(p.stem, p, None) for p in hr_files]
    else:
        index = _lr_index(lr_dir)
        if not index:
            raise EvalError(f"{lr_dir}: no LR images found")
        used: set[str] = set()
        for p in hr_files:
            cands = _lr_candidates(p.stem, scale)
            match = next((index[c] for c in cands if c in index), None)
            if match is None:
                raise EvalError(f"{p}: no LR image in {lr_dir} (looked for {cands[0]}.* and {p.stem}.*)")
            used.add(match.stem)
            pairs.append(ImagePair(p.stem, p, match))
        extra = sorted(set(index) - used)
        if extra:
            notes.append(f"{len(extra)} LR image(s) in {lr_dir} without an HR image ignored "
                         f"(e.g. {index[extra[0]].name})")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise EvalError(f"{hr_dir}: two HR images named {dup!r} (different extensions)")
    return Dataset(name, root, hr_dir, lr_dir, scale, pairs, notes)


# ------------------------------------------------------------------------------ images


@dataclass
class Sample:
    """Decoded pair: uint8 HR (full size) and uint8 LR, both HxWx3 RGB or both HxW gray."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    lr_generated: bool
    notes: list[str] = field(default_factory=list)

    @property
    def is_gray(self) -> bool:
        return self.hr.ndim == 2


def _as_uint8(pixels: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """uint8 HxWx3 RGB or HxW gray; alpha dropped, 16-bit / float reduced, with a note."""
    x = pixels
    if x.ndim == 3 and x.shape[2] == 4:
        notes.append(f"{path}: alpha channel ignored (colour is evaluated)")
        x = x[:, :, :3]
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.dtype == np.uint16:
        notes.append(f"{path}: 16-bit image reduced to 8 bits for the metrics")
        x = np.clip(np.floor(x.astype(np.float64) / 257.0 + 0.5), 0, 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        notes.append(f"{path}: float image converted to 8 bits for the metrics")
        x = np.clip(np.floor(np.nan_to_num(x.astype(np.float64)) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


def _read(path: Path) -> tuple[np.ndarray, list[str]]:
    from superres.io import ImageError, read_image

    notes: list[str] = []
    try:
        img = read_image(path)
    except ImageError as exc:
        raise EvalError(str(exc)) from None
    except Exception as exc:  # anything a decoder may throw: name the file
        raise EvalError(f"{path}: cannot read image: {type(exc).__name__}: {exc}") from None
    return _as_uint8(img.pixels, path, notes), notes


def _match_layout(lr: np.ndarray, gray: bool) -> np.ndarray:
    """LR in the HR's layout (gray HR -> gray LR; RGB HR -> RGB LR)."""
    if gray and lr.ndim == 3:
        if np.array_equal(lr[..., 0], lr[..., 1]) and np.array_equal(lr[..., 0], lr[..., 2]):
            return np.ascontiguousarray(lr[..., 0])
        y = lr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    if not gray and lr.ndim == 2:
        return np.repeat(lr[:, :, None], 3, axis=2)
    return lr


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR: MATLAB ``imresize(modcrop(HR, s), 1/s, 'bicubic')`` on uint8."""
    return imresize(modcrop(np.asarray(hr), scale), 1.0 / scale)


def load_sample(pair: ImagePair, scale: int) -> Sample:
    """Read (or make) one pair and check that the sizes fit; raises ``EvalError``."""
    hr, notes = _read(pair.hr_path)
    h, w = hr.shape[:2]
    mh, mw = h - h % scale, w - w % scale
    if mh - 2 * scale < _SSIM_MIN or mw - 2 * scale < _SSIM_MIN:
        raise EvalError(f"{pair.hr_path}: {w}x{h} is too small for x{scale} (SSIM needs "
                        f"{_SSIM_MIN}x{_SSIM_MIN} px after cropping {scale} px borders)")
    if pair.lr_path is None:
        return Sample(pair.name, hr, make_lr(hr, scale), True, notes)
    lr, lr_notes = _read(pair.lr_path)
    lr = _match_layout(lr, hr.ndim == 2)
    lh, lw = lr.shape[:2]
    try:
        crop_hr_to(hr, (lh * scale, lw * scale), scale)
    except ValueError:
        raise EvalError(
            f"{pair.lr_path}: LR {lw}x{lh} does not match HR {pair.hr_path.name} {w}x{h} at x{scale} "
            f"(expected LR {w // scale}x{h // scale})"
        ) from None
    return Sample(pair.name, hr, lr, False, notes + lr_notes)


def check_dataset(dataset: Dataset) -> list[str]:
    """Read every pair once (fail fast, before any model runs); returns the notes."""
    notes: list[str] = []
    for pair in dataset.pairs:
        notes.extend(load_sample(pair, dataset.scale).notes)
    return notes
