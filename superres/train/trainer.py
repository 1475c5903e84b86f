"""The training loop: pixel / perceptual / GAN losses, distillation, EMA, AMP, DDP, exact resume.

One :class:`Trainer` per run. ``Trainer(cfg).run()`` trains for ``cfg.train.iterations``
optimiser steps, validating every ``data.val.every`` steps (and at step 0 of a fresh run),
writing into ``cfg.output``:

* ``checkpoint.pt``: everything needed to continue exactly (model, EMA, optimisers, GradScaler,
  discriminator, iteration, best score, the python/numpy/torch RNG states and the sampler
  position). Written atomically (temporary file + ``os.replace``) and read back with
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

import contextlib
import copy
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.archs import ARCHS
from superres.archs.luma import LumaOnly, is_rgb_input, luma_state_dict, rgb_to_y
from superres.train.config import Config, ConfigError
from superres.train.data import (
    IterationBatchSampler,
    TrainDataset,
    ValDataset,
    degradation_rng,
    to_tensor,
)

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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then ``os.replace(tmp, path)``: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def learning_rate(cfg: Config, base: float, iteration: int) -> float:
    """Learning rate of the step taken at ``iteration`` (0-based): a pure function, nothing to save."""
    sc = cfg.schedule
    if sc.type == "multistep":
        return base * sc.gamma ** sum(iteration >= m for m in sc.milestones)
    if sc.type == "cosine":
        t = min(iteration, cfg.train.iterations) / cfg.train.iterations
        return sc.min_lr + (base - sc.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
    return base


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def enable_grad_checkpointing(module: nn.Module, trunk_name: str | None) -> int:
    """Recompute the blocks of the model's trunk in the backward pass instead of storing them.

    ``trunk_name`` is the architecture spec's ``trunk``: the attribute holding its
    ``nn.Sequential``/``nn.ModuleList`` of blocks (``body`` of RRDBNet, SRVGGNetCompact, EDSR,
    RCAN; ``layers`` of SwinIR). Each block with parameters runs under
    ``torch.utils.checkpoint`` (non-reentrant) while training. Parameter names do not change.
    Returns the number of wrapped blocks (0: not supported, nothing changed).
    """
    from torch.utils.checkpoint import checkpoint

    count = 0
    trunk = getattr(module, trunk_name) if trunk_name is not None else None
    if isinstance(trunk, (nn.Sequential, nn.ModuleList)):
        for block in trunk:
            if not any(True for _ in block.parameters()):
                continue
            inner = block.forward

            def forward(*args: Any, _inner: Callable[..., Any] = inner, _block: nn.Module = block,
                        **kwargs: Any) -> Any:
                if _block.training and torch.is_grad_enabled():
                    return checkpoint(_inner, *args, use_reentrant=False, **kwargs)
                return _inner(*args, **kwargs)

            block.forward = forward  # type: ignore[method-assign]
            count += 1
    return count


class _L1Fallback(nn.Module):
    """Used only while ``superres.train.losses`` is absent: weighted mean absolute error."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * (pred - target).abs().mean()


def build_loss_modules(specs: list[dict[str, Any]]) -> dict[str, nn.Module]:
    try:
        from superres.train.losses import build_losses
    except ModuleNotFoundError as exc:
        if exc.name != "superres.train.losses" or any(s["type"] not in ("l1", "l1loss") for s in specs):
            raise
        return {s.get("name", "l1"): _L1Fallback(float(s.get("weight", 1.0))) for s in specs}
    try:
        return build_losses(specs)
    except FileNotFoundError as exc:  # e.g. the VGG19 weights of the perceptual loss
        raise ConfigError(f"losses: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"losses: {exc}") from None


def is_gan_loss(loss: nn.Module) -> bool:
    return callable(getattr(loss, "g_loss", None)) and callable(getattr(loss, "d_loss", None))


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


class Trainer:
    """Builds everything from a validated :class:`Config`; :meth:`run` trains."""

    def __init__(self, cfg: Config, *, device: str = "auto", resume: bool = False,
                 progress: bool = True, echo: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.resume = resume
        self.progress = progress
        self.dist = dist_info()
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr))
        self.out = Path(cfg.output)
        self.device = self._setup_device(device)
        amp = cfg.train.amp
        if amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp: fp16 needs a CUDA device; use bf16 or none on CPU")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda" if self.device.type == "cuda" else "cpu",
                                           enabled=amp == "fp16")

        seed_everything(cfg.seed)  # the same on every process: identical initial weights
        self.init_report: dict[str, Any] | None = None
        net_g, self.arch, self.kwargs = self._build_generator()
        # A one-channel network is trained on the rgb2ycbcr Y it will be fed at inference.
        self.spec = ARCHS[self.arch]
        self.luma = self.spec.luma_only(**self.kwargs)
        self.size_multiple = self.spec.size_multiple(**self.kwargs)
        lr_patch = cfg.data.train.patch_size // cfg.scale
        if lr_patch % self.size_multiple:
            raise ConfigError(f"data.train.patch_size: the LR patch ({lr_patch} px) must be a multiple of "
                              f"{self.size_multiple} for this {self.arch}")
        net_g.to(self.device).train()
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        net_g.to(memory_format=self.memory_format)
        self.ema = None
        if cfg.train.ema is not None:
            self.ema = copy.deepcopy(net_g).requires_grad_(False).eval()
        if cfg.train.grad_checkpoint and enable_grad_checkpointing(net_g, self.spec.trunk) == 0:
            warnings.warn(f"train.grad_checkpoint: not supported for {self.arch}; training without it",
                          stacklevel=2)
        self.teacher = self._build_teacher()

        self.losses = {k: v.to(self.device) for k, v in build_loss_modules(cfg.losses).items()}
        gan = [k for k, v in self.losses.items() if is_gan_loss(v)]
        if self.luma and (gan or any(k.startswith("perceptual") for k in self.losses)):
            raise ConfigError(f"losses: this {self.arch} is Y-only (num_channels: 1); perceptual and GAN "
                              f"losses need RGB output: use num_channels: 3 or pixel losses only")
        self.gan_name = gan[0] if gan else None
        self.net_d: nn.Module | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        if self.gan_name is not None:
            self.net_d = self._build_discriminator().to(self.device).train()
        self.degrade = None
        if cfg.data.train.lr is None:
            from superres.train.degradations import build_degradation

            try:
                self.degrade = build_degradation(cfg.data.train.degradation, scale=cfg.scale)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"data.train.degradation: {exc}") from None

        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            net_g = DDP(net_g, device_ids=ids)
            if self.net_d is not None:
                self.net_d = DDP(self.net_d, device_ids=ids)
        self.net_g = net_g
        self.opt_g = self._optimizer(self.net_g.parameters(), cfg.optim)
        if self.net_d is not None:
            self.opt_d = self._optimizer(self.net_d.parameters(), cfg.optim_d)

        self.dataset = TrainDataset(cfg.data.train, cfg.scale, cfg.seed)
        self.val = None
        if cfg.data.val is not None and self.dist.main:
            self.val = ValDataset(cfg.data.val, cfg.scale)
        self.iteration = 0
        self.best: dict[str, Any] = {"psnr": None, "ssim": None, "iteration": None}
        self._consistent = True

    # ---- construction ---------------------------------------------------------------
    def _setup_device(self, device: str) -> torch.device:
        from superres.engine.devices import resolve_device

        if self.dist.enabled:
            import torch.distributed as dist

            use_cuda = torch.cuda.is_available() and str(device) in ("auto", "cuda")
            if use_cuda:
                torch.cuda.set_device(self.dist.local_rank)
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            return torch.device("cuda", self.dist.local_rank) if use_cuda else torch.device("cpu")
        try:
            dev = resolve_device(device)
        except ValueError as exc:
            raise ConfigError(f"--device: {exc}") from None
        return torch.device("cuda", torch.cuda.current_device()) if dev.type == "cuda" and dev.index is None \
            else dev

    def _build_generator(self) -> tuple[nn.Module, str, dict[str, Any]]:
        from superres.archs import build

        mc, scale = self.cfg.model, self.cfg.scale
        if mc.pretrained is not None:
            lm = self._load("model.pretrained", mc.pretrained)
            if lm.output_resize or lm.scale != scale:
                raise ConfigError(f"model.pretrained: {mc.pretrained} upscales x{lm.net_scale:g}, "
                                  f"but scale is {scale}")
            if mc.arch is not None and mc.arch != lm.arch:
                raise ConfigError(f"model.arch: {mc.arch}, but model.pretrained is a {lm.arch}")
            for key, value in mc.options.items():
                if lm.kwargs.get(key) != value:
                    raise ConfigError(f"model.options.{key}: {value!r}, but model.pretrained has "
                                      f"{lm.kwargs.get(key)!r}")
            module = lm.module.requires_grad_(True).train()
            return module, lm.arch, dict(lm.kwargs)
        assert mc.arch is not None
        kwargs = dict(mc.options)
        key = ARCHS[mc.arch].scale_key
        if kwargs.get(key) is not None and kwargs[key] != scale:
            raise ConfigError(f"model.options.{key}: {kwargs[key]!r} differs from scale ({scale})")
        kwargs[key] = scale
        try:
            module = build(mc.arch, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.options: cannot build {mc.arch}: {exc}") from None
        if mc.init is not None:
            self._init_matching(module, mc.init, kwargs)
        return module, mc.arch, kwargs

    def _init_matching(self, module: nn.Module, ref: str, kwargs: dict[str, Any]) -> None:
        """Copy the tensors of ``ref`` whose name and shape match; the rest keep their fresh init."""
        from superres.weights import read_state_dict
        from superres.zoo import catalogue
        from superres.zoo.loader import load_model

        try:
            source = load_model(ref).module.state_dict() if ref in catalogue.MODELS else read_state_dict(ref)
        except Exception as exc:
            raise ConfigError(f"model.init: cannot load {ref}: {exc}") from None
        own = module.state_dict()
        spec = ARCHS[self.cfg.model.arch or ""]
        if spec.luma_only(**kwargs) and is_rgb_input(spec, source):
            try:
                source = luma_state_dict(spec, source)
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"model.init: {ref} is RGB and this model is Y-only: {exc}") from None
        taken = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        if not taken:
            raise ConfigError(f"model.init: {ref} has no tensor matching this {self.cfg.model.arch} "
                              f"by name and shape")
        module.load_state_dict(taken, strict=False)
        self.init_report = {"from": ref, "copied": sorted(taken), "fresh": sorted(set(own) - set(taken))}

    def _load(self, key: str, ref: str) -> Any:
        from superres.zoo.loader import load_model

        try:
            return load_model(ref, scale=self.cfg.scale)
        except Exception as exc:  # unknown name, missing carrier, bad file: one clear line
            raise ConfigError(f"{key}: cannot load {ref}: {exc}") from None

    def _build_teacher(self) -> nn.Module | None:
        ref = self.cfg.model.teacher
        if ref is None:
            return None
        lm = self._load("model.teacher", ref)
        if lm.output_resize or lm.scale != self.cfg.scale:
            raise ConfigError(f"model.teacher: {ref} upscales x{lm.net_scale:g}, "
                              f"but scale is {self.cfg.scale}")
        lr_patch = self.cfg.data.train.patch_size // self.cfg.scale
        if lr_patch % lm.size_multiple:
            raise ConfigError(f"data.train.patch_size: the LR patch ({lr_patch} px) must be a multiple of "
                              f"{lm.size_multiple} for the teacher")
        teacher = LumaOnly(lm.module) if lm.luma_only else lm.module
        return teacher.to(self.device).eval().requires_grad_(False)

    def _build_discriminator(self) -> nn.Module:
        import inspect

        from superres.archs import discriminators

        dc = self.cfg.discriminator
        assert dc is not None
        cls: Any = discriminators.VGGStyleDiscriminator
        if dc.arch == "unet":
            cls = discriminators.UNetDiscriminatorSN
        options = dict(dc.options)
        if "input_size" in inspect.signature(cls).parameters and "input_size" not in options:
            options["input_size"] = self.cfg.data.train.patch_size
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"discriminator.options: {exc}") from None

    def _optimizer(self, params: Any, oc: Any) -> torch.optim.Optimizer:
        cls = torch.optim.AdamW if oc.type == "adamw" else torch.optim.Adam
        return cls(params, lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay)

    # ---- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sampler = IterationBatchSampler(len(self.dataset), self.cfg.data.train.batch_size, self.cfg.seed,
                                        self.iteration, self.cfg.train.iterations)
        epoch, batch = sampler.position(self.iteration)
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "arch": self.arch,
            "kwargs": json.dumps(self.kwargs),
            "config": json.dumps(self.cfg.raw, default=str),
            "world_size": self.dist.world,
            "model": unwrap(self.net_g).state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optim": self.opt_g.state_dict(),
            "net_d": None if self.net_d is None else unwrap(self.net_d).state_dict(),
            "optim_d": None if self.opt_d is None else self.opt_d.state_dict(),
            # the schedules are pure functions of the iteration: nothing else to keep
            "schedule": {"type": self.cfg.schedule.type, "iteration": self.iteration},
            "scaler": self.scaler.state_dict(),
            "best": dict(self.best),
            "rng": rng_state(),
            "sampler": {"epoch": epoch, "batch": batch, "iteration": self.iteration},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainError(f"{self.out / CHECKPOINT}: not a superres training checkpoint")
        if state["arch"] != self.arch or json.loads(state["kwargs"]) != self.kwargs:
            raise TrainError(f"{self.out / CHECKPOINT}: holds a {state['arch']} {state['kwargs']}, but the "
                             f"config builds a {self.arch} {json.dumps(self.kwargs)}")
        unwrap(self.net_g).load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state["ema"] is not None else state["model"])
        self.opt_g.load_state_dict(state["optim"])
        if self.net_d is not None:
            if state["net_d"] is None:
                raise TrainError(f"{self.out / CHECKPOINT}: has no discriminator, "
                                 f"but the config trains a GAN")
            unwrap(self.net_d).load_state_dict(state["net_d"])
            assert self.opt_d is not None
            self.opt_d.load_state_dict(state["optim_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.best = dict(state["best"])
        self.iteration = int(state["iteration"])
        set_rng_state(state["rng"])

    def save_checkpoint(self) -> Path:
        path = self.out / CHECKPOINT
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        self.save_weights(self.out / "last.safetensors")
        return path

    def eval_model(self) -> nn.Module:
        return self.ema if self.ema is not None else unwrap(self.net_g)

    def save_weights(self, path: Path, extra: dict[str, str] | None = None) -> None:
        from safetensors.torch import save_file

        sd = {k: v.detach().cpu().contiguous() for k, v in self.eval_model().state_dict().items()}
        meta = {"superres.arch": self.arch, "superres.kwargs": json.dumps(self.kwargs),
                "superres.scale": str(self.cfg.scale), "superres.iteration": str(self.iteration),
                "superres.name": self.cfg.name, "superres.weights": "ema" if self.ema is not None else "raw",
                **(extra or {})}
        atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))

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
        text = "".join(ln + "\n" for ln in keep)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

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
        model = self.eval_model()
        was_training = model.training
        model.eval()
        try:
            return score_pairs(model, self.val, self.cfg.scale, luma=self.luma, device=self.device,
                               size_multiple=self.size_multiple)
        finally:
            model.train(was_training)

    def _validate_and_record(self) -> None:
        res = self.validate()
        if res is None:
            return
        improved = self.best["psnr"] is None or res["psnr"] > self.best["psnr"]
        if improved:
            self.best = {**res, "iteration": self.iteration}
            self.save_weights(self.out / "best.safetensors",
                              {"superres.psnr": f"{res['psnr']:.4f}", "superres.ssim": f"{res['ssim']:.5f}"})
        self._log({"iteration": self.iteration, "val": res, "best": dict(self.best)})
        self.write_plots()

    # ---- one step -------------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
        cfg = self.cfg
        hr = batch["hr"].to(self.device, non_blocking=True)
        if "lr" in batch:
            lr = batch["lr"].to(self.device, non_blocking=True)
        else:
            assert self.degrade is not None
            lr = self.degrade(hr, degradation_rng(cfg.seed, self.dist.rank, iteration)).to(self.device)
        lr = lr.contiguous(memory_format=self.memory_format)
        for group in self.opt_g.param_groups:
            group["lr"] = learning_rate(cfg, cfg.optim.lr, iteration)
        if self.opt_d is not None:
            for group in self.opt_d.param_groups:
                group["lr"] = learning_rate(cfg, cfg.optim_d.lr, iteration)
        target = hr
        if self.teacher is not None:
            with torch.no_grad(), self._autocast():
                target = self.teacher(lr).float().clamp_(0.0, 1.0)
        if self.luma:
            lr, target = rgb_to_y(lr).contiguous(memory_format=self.memory_format), rgb_to_y(target)

        # generator
        with self._autocast():
            sr = self.net_g(lr)
        sr = sr.float()
        terms: dict[str, torch.Tensor] = {}
        b = cfg.train.loss_border  # the GAN loss below still sees the whole patch
        sr_in, target_in = (sr[..., b:-b, b:-b], target[..., b:-b, b:-b]) if b else (sr, target)
        for name, loss in self.losses.items():
            if name == self.gan_name:
                continue
            with self._autocast() if name.startswith("perceptual") else contextlib.nullcontext():
                terms[name] = loss(sr_in, target_in).float()
        if self.gan_name is not None:
            assert self.net_d is not None
            d = unwrap(self.net_d)  # no DDP sync: D is not updated in this step
            d.requires_grad_(False)
            gan_loss = self.losses[self.gan_name]
            relativistic = getattr(gan_loss, "gan_type", "ragan") == "ragan"  # needs D(real) too
            with self._autocast():
                logits = d(torch.cat([target, sr]) if relativistic else sr).float()
            fake = logits[len(sr):] if relativistic else logits
            real = logits[: len(sr)].detach() if relativistic else None
            terms[self.gan_name] = gan_loss.g_loss(real, fake).float()
        total = torch.stack(list(terms.values())).sum()
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if cfg.train.grad_clip is not None:
            self.scaler.unscale_(self.opt_g)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), cfg.train.grad_clip)
        self.scaler.step(self.opt_g)
        out = {k: float(v.detach()) for k, v in terms.items()}

        # discriminator: real and fake in one forward, so DDP sees one forward per backward
        if self.net_d is not None:
            assert self.opt_d is not None and self.gan_name is not None
            unwrap(self.net_d).requires_grad_(True)
            with self._autocast():
                logits = self.net_d(torch.cat([target, sr.detach()])).float()
            l_d = self.losses[self.gan_name].d_loss(logits[: len(sr)], logits[len(sr):])
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(l_d).backward()
            self.scaler.step(self.opt_d)
            out["d_loss"] = float(l_d.detach())
        self.scaler.update()

        if self.ema is not None:
            decay = cfg.train.ema
            assert decay is not None
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), unwrap(self.net_g).parameters(), strict=True):
                    e.lerp_(p.detach(), 1.0 - decay)
                for e, b in zip(self.ema.buffers(), unwrap(self.net_g).buffers(), strict=True):
                    e.copy_(b)
        out["total"] = float(total.detach())
        return out

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
        if self.iteration == 0 and self.dist.main and self.init_report is not None:
            self._log({"iteration": 0, "init": self.init_report})
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
                losses = self.train_step(batch, it)
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
                               "lr": self.opt_g.param_groups[0]["lr"],
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
