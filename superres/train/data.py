"""Training and validation data: random patches, keyed randomness, resumable sampling.

Reproducibility does not depend on the number of DataLoader workers or on where a run was
resumed: every random choice is a pure function of the seed and a position.

* :class:`IterationBatchSampler` yields, for training iteration ``it``, the indices of the
  ``it``-th global batch of a per-epoch permutation drawn from ``(seed, epoch)``; a process
  of a DDP run takes its own contiguous slice of that global batch. The sampler position is
  therefore the iteration itself, and a resumed run starts the sampler there.
* :class:`TrainDataset` items are keyed ``(epoch, index)``; the crop position, flip and
  rotation come from a generator seeded with ``(seed, epoch, index)``.

Images are decoded once and kept in memory by default (the 291-image set is ~150 MB); with
``cache: false`` each worker decodes them when they are used (and keeps them too).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from superres.metrics.resize import imresize
from superres.train.config import ConfigError, TrainDataConfig, ValDataConfig

# Stream tags: keep the sample, permutation and degradation generators independent.
_SAMPLE, _PERM, _DEGRADE = 1, 2, 3


def images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, hidden files skipped."""
    from superres.io import SUPPORTED_EXTENSIONS

    found = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_rgb8(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of any supported image (gray expanded, alpha dropped, 16-bit reduced)."""
    from superres.io import read_image

    x = read_image(path).pixels
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] in (2, 4):
        x = x[:, :, : x.shape[2] - 1]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    if x.dtype == np.uint16:
        x = np.clip(np.floor(x.astype(np.float64) / 257.0 + 0.5), 0, 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        x = np.clip(np.floor(np.nan_to_num(x.astype(np.float64)) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the header only."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    return h, w


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (3,H,W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def _lr_for(hr: Path, index: dict[str, Path], scale: int) -> Path | None:
    for cand in (f"{hr.stem}x{scale}", f"{hr.stem}X{scale}", f"{hr.stem}_x{scale}", f"{hr.stem}_X{scale}",
                 hr.stem):
        if cand in index:
            return index[cand]
    return None


class TrainDataset(Dataset[dict[str, torch.Tensor]]):
    """Random HR patches (HR-only mode) or aligned LR/HR patches (paired mode).

    Items are keyed by ``(epoch, index)`` (a plain int means epoch 0); ``len`` is the number
    of images times ``repeat``. Returns ``{"hr": (3,P,P)}`` or ``{"hr": ..., "lr": (3,P/s,P/s)}``
    as float32 in [0, 1].
    """

    def __init__(self, cfg: TrainDataConfig, scale: int, seed: int = 0) -> None:
        self.scale = scale
        self.seed = seed
        self.patch = cfg.patch_size
        self.hflip = cfg.hflip
        self.rot90 = cfg.rot90
        self.repeat = cfg.repeat
        self.paired = cfg.lr is not None
        deg = cfg.degradation or {}
        self.whole_bicubic = (not self.paired and deg.get("type") == "bicubic"
                              and deg.get("whole_image") is True)
        files: list[Path] = []
        for i, folder in enumerate(cfg.hr):
            found = images_in(folder)
            if not found:
                raise ConfigError(f"data.train.hr[{i}]: no images found in {folder}")
            files += found
        self.lr_files: list[Path] = []
        if cfg.lr is not None:
            index: dict[str, Path] = {}
            for p in images_in(cfg.lr):
                index.setdefault(p.stem, p)
            for f in files:
                match = _lr_for(f, index, scale)
                if match is None:
                    raise ConfigError(f"data.train.lr: no LR image for {f.name} in {cfg.lr} "
                                      f"(looked for {f.stem}x{scale}.* and {f.stem}.*)")
                self.lr_files.append(match)
        # one item per (image, downscale factor); an item must still hold a whole patch
        factors = cfg.scale_augment
        sizes = [min(_image_size(f)) for f in files]
        self.items = [(i, f) for i in range(len(files)) for f in factors
                      if math.ceil(sizes[i] * f) >= self.patch]
        skipped = len(files) * len(factors) - len(self.items)
        if skipped:
            smallest = min(factors)
            small = files[next(i for i in range(len(files)) if math.ceil(sizes[i] * smallest) < self.patch)]
            counted = " (each scale_augment copy counted)" if len(factors) > 1 else ""
            warnings.warn(f"{skipped} training image(s){counted} smaller than the {self.patch} px patch "
                          f"skipped (e.g. {small})", stacklevel=2)
        if not self.items:
            raise ConfigError(f"data.train.patch_size: every training image is smaller than {self.patch} px")
        self.files = files
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        if cfg.cache:
            for i in range(len(self.items)):
                self._load(i)

    def __len__(self) -> int:
        return len(self.items) * self.repeat

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        got = self._cache.get(i)
        if got is None:
            k, factor = self.items[i]
            hr = read_rgb8(self.files[k])
            if factor != 1.0:
                hr = imresize(hr, scale=factor)
            lr = None
            if self.paired:
                lr = read_rgb8(self.lr_files[k])
                s = self.scale
                lh, lw = lr.shape[:2]
                if lh * s > hr.shape[0] or lw * s > hr.shape[1] or hr.shape[0] - lh * s >= s \
                        or hr.shape[1] - lw * s >= s:
                    raise ValueError(f"{self.lr_files[k]}: LR {lw}x{lh} does not match HR "
                                     f"{self.files[k].name} {hr.shape[1]}x{hr.shape[0]} at x{s}")
                hr = hr[: lh * s, : lw * s]
            elif self.whole_bicubic:  # the benchmark recipe: crop to the scale, resize the whole image
                s = self.scale
                hr = hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s]
                lr = imresize(hr, output_shape=(hr.shape[0] // s, hr.shape[1] // s))
            got = self._cache[i] = (hr, lr)
        return got

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (0, int(key))
        rng = np.random.default_rng([self.seed, _SAMPLE, epoch, index])
        hr, lr = self._load(index % len(self.items))
        s, p = self.scale, self.patch
        if lr is not None:
            q = p // s
            y = int(rng.integers(0, lr.shape[0] - q + 1))
            x = int(rng.integers(0, lr.shape[1] - q + 1))
            lr = lr[y : y + q, x : x + q]
            hr = hr[y * s : (y + q) * s, x * s : (x + q) * s]
        else:
            y = int(rng.integers(0, hr.shape[0] - p + 1))
            x = int(rng.integers(0, hr.shape[1] - p + 1))
            hr = hr[y : y + p, x : x + p]
        flip = bool(rng.random() < 0.5) and self.hflip
        k = int(rng.integers(0, 4)) if self.rot90 else 0
        out = {"hr": to_tensor(_augment(hr, flip, k))}
        if lr is not None:
            out["lr"] = to_tensor(_augment(lr, flip, k))
        return out


def _augment(img: np.ndarray, flip: bool, k: int) -> np.ndarray:
    if flip:
        img = img[:, ::-1]
    if k:
        img = np.rot90(img, k, axes=(0, 1))
    return img


class IterationBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` keys for iterations ``start .. total - 1``.

    Iteration ``it`` uses the ``it % B``-th global batch (``B`` = items // global batch,
    remainder dropped) of epoch ``it // B``'s permutation; process ``rank`` of ``world`` takes
    the ``rank``-th slice of ``global_batch / world`` keys, so the union over processes is the
    single-process batch.
    """

    def __init__(self, n_items: int, global_batch: int, seed: int, start: int, total: int,
                 rank: int = 0, world: int = 1) -> None:
        if global_batch % world:
            raise ConfigError(f"data.train.batch_size: the global batch {global_batch} must be divisible "
                              f"by the number of processes ({world})")
        if n_items < global_batch:
            raise ConfigError(f"data.train.batch_size: {global_batch} is more than the {n_items} training "
                              f"items per epoch; raise data.train.repeat or lower the batch size")
        self.n_items = n_items
        self.global_batch = global_batch
        self.local_batch = global_batch // world
        self.seed, self.start, self.total, self.rank = seed, start, total, rank
        self.batches_per_epoch = n_items // global_batch
        self._perm: tuple[int, np.ndarray] | None = None

    def position(self, iteration: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) used by ``iteration``."""
        return divmod(iteration, self.batches_per_epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERM, epoch])
            self._perm = (epoch, rng.permutation(self.n_items))
        return self._perm[1]

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        epoch, k = self.position(iteration)
        perm = self.permutation(epoch)
        first = k * self.global_batch + self.rank * self.local_batch
        return [(epoch, int(i)) for i in perm[first : first + self.local_batch]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.total):
            yield self.batch(it)

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def degradation_rng(seed: int, rank: int, iteration: int) -> np.random.Generator:
    """The generator handed to the degradation for one iteration of one process."""
    return np.random.default_rng([seed, _DEGRADE, rank, iteration])


class ValDataset:
    """Validation pairs in memory: uint8 RGB ``(name, lr, hr)``; LR made with MATLAB bicubic if absent."""

    def __init__(self, cfg: ValDataConfig, scale: int) -> None:
        from superres.evaluation.dataset import EvalError, discover, load_sample

        try:
            ds = discover(scale, hr=cfg.hr, lr=cfg.lr)
            samples = [load_sample(p, scale) for p in ds.pairs]
        except EvalError as exc:
            raise ConfigError(f"data.val: {exc}") from None
        self.items: list[tuple[str, np.ndarray, np.ndarray]] = []
        for smp in samples:
            lr, hr = smp.lr, smp.hr
            if hr.ndim == 2:
                hr, lr = np.repeat(hr[:, :, None], 3, axis=2), np.repeat(lr[:, :, None], 3, axis=2)
            self.items.append((smp.name, np.ascontiguousarray(lr), np.ascontiguousarray(hr)))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        return iter(self.items)
