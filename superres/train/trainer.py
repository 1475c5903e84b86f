"""The training loop: iterations, checkpoints and exact resume, logs, validation, plots, DDP.

One :class:`Trainer` per run. The networks, losses, optimisers, EMA and the optimiser step are
the model half (:class:`superres.train.model.SRModel`, BasicSR's model/loop split); the trainer
drives it. ``Trainer(cfg).run()`` trains for ``cfg.train.iterations`` optimiser steps,
validating every ``data.val.every`` steps (and at step 0 of a fresh run), writing into
``cfg.output``:

* ``checkpoint.pt``: everything needed to continue exactly (model, EMA, optimisers, GradScaler,
  discriminator, iteration, best score, the python/numpy/torch RNG states and the sampler
  position). Written atomically (:mod:`superres.io.atomic`) and read back with
  ``torch.load(weights_only=True)``: it holds tensors, numbers, strings and lists only.
* ``best.safetensors`` / ``last.safetensors``: the EMA weights (the raw weights without EMA)
  with ``superres.arch`` / ``superres.kwargs`` in the header, so ``superres.load(path)`` runs them.
* ``log.jsonl``: one JSON object per log step and per validation; ``loss.png`` / ``val.png``.

Exact resume: every random choice in the data pipeline is a pure function of the seed and the
iteration (see :mod:`superres.train.data`), the learning rate is a pure function of the
iteration, and the global RNG states are saved and restored; on CPU a run stopped at N and
resumed to 2N has bit-identical weights to an uninterrupted 2N run (tested).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the generator (and discriminator) are
wrapped in DistributedDataParallel (gloo on CPU, nccl on CUDA); ``data.train.batch_size`` is the
GLOBAL batch, each process takes its slice of it; only rank 0 logs, validates and saves.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.archs.luma import LumaOnly
from superres.io.atomic import atomic_path, atomic_write_text
from superres.train.config import Config, ConfigError
from superres.train.data import IterationBatchSampler, TrainDataset, ValDataset, to_tensor
from superres.train.model import SRModel

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "superres-train-checkpoint-1"


class TrainError(RuntimeError):
    """A run that cannot start or continue (e.g. an existing run without ``--resume``)."""


# ------------------------------------------------------------------------------ small helpers


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from the ``torchrun`` environment (1 process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch global RNG states as plain tensors/lists (``weights_only``-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [str(np_state[0]), [int(v) for v in np_state[1]], int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def sr_to_uint8(y: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) float -> HxWx3 uint8, clipped and rounded half up (as the upscale engine)."""
    arr = y[0].detach().float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy().astype(np.float64)
    return np.floor(arr * 255.0 + 0.5).astype(np.uint8)


@torch.no_grad()
def score_pairs(model: nn.Module, pairs: ValDataset, scale: int, *, luma: bool,
                device: torch.device | str = "cpu", size_multiple: int = 1) -> dict[str, float]:
    """Mean Y-PSNR / SSIM of ``model`` on uint8 RGB ``(name, lr, hr)`` pairs, by `superres eval`'s protocol.

    A Y-only model (``luma``) is scored on its RGB output (``LumaOnly``), as the engine runs it; the LR is
    padded (replicate) to ``size_multiple`` and the output cropped back.
    """
    from superres.metrics import evaluate_pair

    run = LumaOnly(model) if luma else model
    s, m = scale, size_multiple
    psnrs, ssims = [], []
    for _name, lr, hr in pairs:
        x = to_tensor(lr)[None].to(device)
        h, w = x.shape[2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        y = run(x)[..., : h * s, : w * s]
        p, q = evaluate_pair(sr_to_uint8(y), hr, s)
        psnrs.append(p)
        ssims.append(q)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


# ------------------------------------------------------------------------------ the trainer


# ------------------------------------------------------------------------------ the trainer


class Trainer:
    """Builds the model and the data from a validated :class:`Config`; :meth:`run` trains."""

    def __init__(self, cfg: Config, *, device: str = "auto", resume: bool = False,
                 progress: bool = True, echo: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.resume = resume
        self.progress = progress
        self.dist = dist_info()
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr))
        self.out = Path(cfg.output)
        self.device = self._setup_device(device)
        self.model = SRModel(cfg, self.device, rank=self.dist.rank, ddp=self.dist.enabled)
        self.dataset = TrainDataset(cfg.data.train, cfg.scale, cfg.seed)
        self.val = None
        if cfg.data.val is not None and self.dist.main:
            self.val = ValDataset(cfg.data.val, cfg.scale)
        self.iteration = 0
        self.best: dict[str, Any] = {"psnr": None, "ssim": None, "iteration": None}
        self._consistent = True

    def _setup_device(self, device: str) -> torch.device:
        """The engine's device choice; under DDP each process takes the GPU of its local rank."""
        from superres.engine.devices import resolve_device

        try:
            dev = resolve_device(device)
        except ValueError as exc:
            raise ConfigError(f"--device: {exc}") from None
        if self.dist.enabled:
            import torch.distributed as dist

            use_cuda = dev.type == "cuda"
            if use_cuda:
                torch.cuda.set_device(self.dist.local_rank)
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            return torch.device("cuda", self.dist.local_rank) if use_cuda else torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device()) if dev.type == "cuda" and dev.index is None \
            else dev

    # ---- checkpoint -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: the model's part plus the loop's position and RNGs."""
        sampler = IterationBatchSampler(len(self.dataset), self.cfg.data.train.batch_size, self.cfg.seed,
                                        self.iteration, self.cfg.train.iterations)
        epoch, batch = sampler.position(self.iteration)
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "config": json.dumps(self.cfg.raw, default=str),
            "world_size": self.dist.world,
            **self.model.state_dict(),
            # the schedules are pure functions of the iteration: nothing else to keep
            "schedule": {"type": self.cfg.schedule.type, "iteration": self.iteration},
            "best": dict(self.best),
            "rng": rng_state(),
            "sampler": {"epoch": epoch, "batch": batch, "iteration": self.iteration},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint read back from ``checkpoint.pt``; ``TrainError`` if it does not fit."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainError(f"{self.out / CHECKPOINT}: not a superres training checkpoint")
        why = self.model.mismatch(state)
        if why is not None:
            raise TrainError(f"{self.out / CHECKPOINT}: {why}")
        self.model.load_state_dict(state)
        self.best = dict(state["best"])
        self.iteration = int(state["iteration"])
        set_rng_state(state["rng"])

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint.pt`` and ``last.safetensors`` (each atomically); returns the checkpoint path."""
        path = self.out / CHECKPOINT
        state = self.state_dict()
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        self.model.save_weights(self.out / "last.safetensors", self.iteration)
        return path

    # ---- logging --------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _trim_log(self) -> None:
        """On resume: drop log lines written after the checkpoint (the run repeats those steps)."""
        path = self.out / "log.jsonl"
        if not self.dist.main or not path.is_file():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("iteration", 0) <= self.iteration:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))

    def write_plots(self) -> None:
        if not self.dist.main:
            return
        try:
            from superres.train.plots import write_plots
        except ImportError as exc:  # matplotlib is optional (the [train] extra)
            if not getattr(self, "_plot_warned", False):
                self.echo(f"note: no plots ({exc}); pip install 'superres[train]'")
                self._plot_warned = True
            return
        write_plots(self.out / "log.jsonl", self.out)

    # ---- validation -----------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        if self.val is None:
            return None
        model = self.model.eval_model()
        was_training = model.training
        model.eval()
        try:
            return score_pairs(model, self.val, self.cfg.scale, luma=self.model.luma,
                               device=self.device, size_multiple=self.model.size_multiple)
        finally:
            model.train(was_training)

    def _validate_and_record(self) -> None:
        res = self.validate()
        if res is None:
            return
        improved = self.best["psnr"] is None or res["psnr"] > self.best["psnr"]
        if improved:
            self.best = {**res, "iteration": self.iteration}
            scores = {"superres.psnr": f"{res['psnr']:.4f}", "superres.ssim": f"{res['ssim']:.5f}"}
            self.model.save_weights(self.out / "best.safetensors", self.iteration, scores)
        self._log({"iteration": self.iteration, "val": res, "best": dict(self.best)})
        self.write_plots()

    # ---- the loop -------------------------------------------------------------------
    def _prepare_output(self) -> None:
        ckpt = self.out / CHECKPOINT
        if self.resume:
            if ckpt.is_file():
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
                self.load_state_dict(state)
                if self.dist.main:
                    self.echo(f"resumed from {ckpt} at iteration {self.iteration}")
                self._trim_log()
                return
            if self.dist.main:
                self.echo(f"note: --resume: no {ckpt} yet; starting from iteration 0")
        elif ckpt.is_file():
            raise TrainError(f"{ckpt} exists: continue that run with --resume, or set another output folder")
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "log.jsonl").unlink(missing_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.cfg.raw, indent=2, default=str) + "\n")

    def _barrier(self) -> None:
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()

    def run(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``train.iterations`` (or stop after ``stop_at`` steps, checkpointed, as if
        interrupted); returns the iteration reached and the best validation scores."""
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        cfg = self.cfg
        total = cfg.train.iterations
        self._prepare_output()
        self._barrier()
        end = total if stop_at is None else min(stop_at, total)
        if self.iteration == 0 and self.dist.main and self.model.init_report is not None:
            self._log({"iteration": 0, "init": self.model.init_report})
        if self.iteration == 0 and self.dist.main and self.val is not None:
            self._validate_and_record()  # the untrained (or pretrained) score, for reference
        tc = cfg.data.train
        sampler = IterationBatchSampler(len(self.dataset), tc.batch_size, cfg.seed, self.iteration, end,
                                        self.dist.rank, self.dist.world)
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=tc.workers,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed))
        bar = tqdm(total=total, initial=self.iteration, unit="it", dynamic_ncols=True, file=sys.stderr,
                   disable=not (self.progress and self.dist.main) or None, desc=cfg.name)
        sums: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        try:
            for batch in loader:
                it = self.iteration
                self._consistent = False
                losses = self.model.train_step(batch, it)
                self.iteration = it + 1
                self._consistent = True
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses['total']:.4g}", refresh=False)
                done = self.iteration
                if done % cfg.train.log_every == 0 or done == total:
                    dt = time.perf_counter() - t0
                    self._log({"iteration": done, "losses": {k: v / count for k, v in sums.items()},
                               "lr": self.model.opt_g.param_groups[0]["lr"],
                               "it_per_s": count / dt if dt > 0 else None,
                               "epoch": sampler.position(it)[0]})
                    sums, count, t0 = {}, 0, time.perf_counter()
                if self.val is not None and (done % cfg.data.val.every == 0 or done == total):  # type: ignore[union-attr]
                    self._validate_and_record()
                if done % cfg.train.checkpoint_every == 0 or done in (total, end):
                    if self.dist.main:
                        self.save_checkpoint()
                    self._barrier()
        except KeyboardInterrupt:
            if self.dist.main and self._consistent and self.iteration > 0:
                path = self.save_checkpoint()
                self.echo(f"interrupted: saved {path} at iteration {self.iteration}; continue with --resume")
            raise
        finally:
            bar.close()
        if self.dist.main and self.iteration == total and self.val is None:
            self.write_plots()  # with validation they were drawn at the last one
        return {"iteration": self.iteration, "best": dict(self.best), "output": str(self.out)}

    def close(self) -> None:
        if self.dist.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
