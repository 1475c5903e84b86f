"""The model half of training: networks, losses, optimisers, EMA and one optimiser step.

In the manner of BasicSR's model/loop split, :class:`SRModel` owns everything that changes with
the network: it builds the generator (fresh, ``model.init`` or ``model.pretrained``), the teacher
of a distillation, the discriminator of a GAN, the losses, the optimisers, the EMA copy and the
AMP GradScaler; it takes one optimiser step (:meth:`SRModel.train_step`), gives and takes its part
of a checkpoint (:meth:`SRModel.state_dict`) and writes the weights ``superres.load`` runs
(:meth:`SRModel.save_weights`). The loop around it (iterations, checkpoint files, resume, logs,
validation, plots, DDP barriers) is :class:`superres.train.trainer.Trainer`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.archs import ARCHS
from superres.archs.luma import LumaOnly, is_rgb_input, luma_state_dict, rgb_to_y
from superres.io.atomic import atomic_path
from superres.train.config import Config, ConfigError
from superres.train.data import degradation_rng

# ------------------------------------------------------------------------------ helpers


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (the module itself otherwise)."""
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


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch: the same seed on every process gives identical initial weights."""
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
    """The configured losses by name; a loss that cannot be built is a ``ConfigError``."""
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


# ------------------------------------------------------------------------------ the model


class SRModel:
    """The networks and optimisers of one run, built from a validated :class:`Config`.

    ``device`` is the one this process trains on; ``rank`` picks the process's degradation random
    stream and ``ddp`` wraps the generator (and discriminator) in DistributedDataParallel.
    The global RNGs are seeded with ``cfg.seed`` before the networks are built (identical initial
    weights on every process).
    """

    def __init__(self, cfg: Config, device: torch.device, *, rank: int = 0, ddp: bool = False) -> None:
        self.cfg = cfg
        self.device = device
        self.rank = rank
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
                          stacklevel=3)
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

        if ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            net_g = DDP(net_g, device_ids=ids)
            if self.net_d is not None:
                self.net_d = DDP(self.net_d, device_ids=ids)
        self.net_g = net_g
        self.opt_g = self._optimizer(self.net_g.parameters(), cfg.optim)
        if self.net_d is not None:
            self.opt_d = self._optimizer(self.net_d.parameters(), cfg.optim_d)

    # ---- construction ---------------------------------------------------------------
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
        """This model's part of a checkpoint: architecture, weights, EMA, optimisers, GradScaler."""
        return {
            "arch": self.arch,
            "kwargs": json.dumps(self.kwargs),
            "model": unwrap(self.net_g).state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optim": self.opt_g.state_dict(),
            "net_d": None if self.net_d is None else unwrap(self.net_d).state_dict(),
            "optim_d": None if self.opt_d is None else self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def mismatch(self, state: dict[str, Any]) -> str | None:
        """Why ``state`` (a checkpoint) cannot continue this model; None when it can."""
        if state["arch"] != self.arch or json.loads(state["kwargs"]) != self.kwargs:
            return (f"holds a {state['arch']} {state['kwargs']}, but the "
                    f"config builds a {self.arch} {json.dumps(self.kwargs)}")
        if self.net_d is not None and state["net_d"] is None:
            return "has no discriminator, but the config trains a GAN"
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (check it with :meth:`mismatch` first)."""
        why = self.mismatch(state)
        if why is not None:
            raise ValueError(why)
        unwrap(self.net_g).load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state["ema"] is not None else state["model"])
        self.opt_g.load_state_dict(state["optim"])
        if self.net_d is not None:
            unwrap(self.net_d).load_state_dict(state["net_d"])
            assert self.opt_d is not None
            self.opt_d.load_state_dict(state["optim_d"])
        self.scaler.load_state_dict(state["scaler"])

    def eval_model(self) -> nn.Module:
        """The network that is validated and saved: the EMA copy when there is one."""
        return self.ema if self.ema is not None else unwrap(self.net_g)

    def save_weights(self, path: Path, iteration: int, extra: dict[str, str] | None = None) -> None:
        """``eval_model``'s weights as safetensors, with the header ``superres.load`` needs."""
        from safetensors.torch import save_file

        sd = {k: v.detach().cpu().contiguous() for k, v in self.eval_model().state_dict().items()}
        meta = {"superres.arch": self.arch, "superres.kwargs": json.dumps(self.kwargs),
                "superres.scale": str(self.cfg.scale), "superres.iteration": str(iteration),
                "superres.name": self.cfg.name, "superres.weights": "ema" if self.ema is not None else "raw",
                **(extra or {})}
        with atomic_path(path) as tmp:
            save_file(sd, str(tmp), metadata=meta)

    # ---- one step -------------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
        """One optimiser step (generator, then discriminator, then EMA) on ``batch``; the loss values.

        Everything random in it is a function of the seed, the rank and ``iteration``, so a resumed
        run repeats it exactly.
        """
        cfg = self.cfg
        hr = batch["hr"].to(self.device, non_blocking=True)
        if "lr" in batch:
            lr = batch["lr"].to(self.device, non_blocking=True)
        else:
            assert self.degrade is not None
            lr = self.degrade(hr, degradation_rng(cfg.seed, self.rank, iteration)).to(self.device)
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
