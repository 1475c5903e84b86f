"""SUPIR restoration of one image: resize, stage-1 denoise, restoration-guided sampling, colour fix.

Order of operations as upstream's ``test.py`` (reference §3): the input is scaled by ``scale``, then
enlarged so its short side is at least ``min_size``, rounded to multiples of 64 (bicubic); then

1. ``z_lq = 0.13025 * mode(E_dr(x))`` with the degradation-robust encoder (the control input);
2. ``x_stage1 = D(z_lq)``: the stage-1 image, colour reference for the fix;
3. ``z_center = 0.13025 * sample(E(x_stage1))``: the restoration-guidance target;
4. sampling from pure noise with CFG (positive prompt vs negative prompt), adaptor control on both;
5. decode, colour fix against ``x_stage1``, resize to ``scale`` x the input size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from superres.engine.devices import free_memory
from superres.restore.colour import colour_fix
from superres.restore.configs import VAE_SCALING_FACTOR
from superres.restore.loader import SupirModels
from superres.restore.sampler import (
    ConstantSchedule,
    LinearSchedule,
    RestoreEDMSampler,
    Window,
    quantize_sigma,
)
from superres.restore.settings import PRESETS, RestoreSettings
from superres.restore.text import Tokenizers
from superres.restore.tiling import TiledSampler, tiled_decode, tiled_encode

__all__ = ["PRESETS", "RestoreMemoryError", "RestoreSettings", "SupirPipeline", "estimate_memory"]


_PARAMS = {
    "unet": 2.567e9,
    "control": 1.243e9,
    "connectors": 0.055e9,
    "vae": 0.084e9,
    "denoise": 0.034e9,
    "text": 0.818e9,
}


class RestoreMemoryError(MemoryError):
    """The estimate says the run will not fit; carries the advice."""


def estimate_memory(
    height: int, width: int, settings: RestoreSettings, dtype: torch.dtype, offload: bool
) -> int:
    """Rough peak bytes on the compute device for an image of (height, width) *diffusion* pixels.

    Weights at their dtypes (all resident, or the largest one under offload) plus activations: the
    UNet + adaptor on a CFG batch of 2 (about 6 kB per latent pixel per batch item at 2 bytes,
    an estimate scaled from SDXL's layer widths) and the VAE at full resolution (about 2 kB per
    pixel untiled). An estimate, not a measurement.
    """
    wb = torch.finfo(dtype).bits // 8
    diffusion = (_PARAMS["unet"] + _PARAMS["control"] + _PARAMS["connectors"]) * wb
    vae = (_PARAMS["vae"] + _PARAMS["denoise"]) * 2
    text = _PARAMS["text"] * wb
    weights = max(diffusion, vae, text) if offload else diffusion + vae + text
    lat = height * width / 64
    if settings.tile_size:
        t = settings.tile_size / 8
        lat = min(lat, t * t)
    unet_act = lat * 2 * 6e3 * wb / 2
    pixels = height * width
    if settings.tile_vae:
        pixels = min(
            pixels, (settings.vae_encoder_tile + 160) ** 2, (settings.vae_decoder_tile * 8 + 256) ** 2
        )
    vae_act = pixels * 2e3
    return int(weights + max(unet_act, vae_act))


class SupirPipeline:
    """The loaded networks plus tokenizers, on a device, with dtypes and optional CPU offload."""

    def __init__(
        self,
        models: SupirModels,
        tokenizers: Tokenizers,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        offload: bool = False,
    ) -> None:
        self.device = torch.device(device)
        on_cpu = self.device.type == "cpu"
        self.dtype = dtype or (torch.float32 if on_cpu else torch.float16)
        # fp16 gives NaNs in the SDXL VAE (upstream refuses it); bf16 where supported, else fp32
        self.vae_dtype = torch.bfloat16 if not on_cpu and self.dtype != torch.float32 else torch.float32
        self.models = models
        self.tokenizers = tokenizers
        self.offload = offload
        models.unet.to(self.dtype)
        models.control.to(self.dtype)
        models.text.to(self.dtype)
        models.vae.to(self.vae_dtype)
        models.denoise_encoder.to(self.vae_dtype)
        if not offload:
            for m in models.modules().values():
                m.to(self.device)
        self.train_sigmas = None

    @contextlib.contextmanager
    def _using(self, *modules: nn.Module) -> Iterator[None]:
        """Model-level CPU offload: a network sits on the device only while it runs."""
        if self.offload:
            for m in modules:
                m.to(self.device)
        try:
            yield
        finally:
            if self.offload:
                for m in modules:
                    m.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    # -- VAE --------------------------------------------------------------------------------------

    def _encode(self, encoder: nn.Module, x: Tensor, s: RestoreSettings) -> Tensor:
        """Posterior moments (after quant_conv)."""
        vae: Any = self.models.vae
        with self._using(encoder, vae):
            x = x.to(self.device, self.vae_dtype)
            h = tiled_encode(encoder, x, tile=s.vae_encoder_tile) if s.tile_vae else encoder(x)
            return vae.quant_conv(h).float()

    def _decode(self, z: Tensor, s: RestoreSettings) -> Tensor:
        vae: Any = self.models.vae
        with self._using(vae):
            z = vae.post_quant_conv((z / VAE_SCALING_FACTOR).to(self.device, self.vae_dtype))
            out = tiled_decode(vae.decoder, z, tile=s.vae_decoder_tile) if s.tile_vae else vae.decoder(z)
            return out.float()

    # -- one image ----------------------------------------------------------------------------------

    @torch.no_grad()
    def restore_tensor(self, x: Tensor, settings: RestoreSettings) -> Tensor:
        """[1, 3, H, W] in [-1, 1] (sides multiples of 64) -> restored, same size, [-1, 1]."""
        s = settings
        g = torch.Generator(device=self.device).manual_seed(s.seed)
        moments = self._encode(self.models.denoise_encoder, x, s)
        z_lq = moments.chunk(2, dim=1)[0] * VAE_SCALING_FACTOR  # posterior mode
        x_stage1 = self._decode(z_lq, s)
        mean, logvar = self._encode(self.models.vae.encoder, x_stage1, s).chunk(2, dim=1)  # type: ignore[union-attr]
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        z_center = (
            mean + std * torch.randn(mean.shape, generator=g, device=self.device)
        ) * VAE_SCALING_FACTOR

        ids = self.tokenizers([s.negative_prompt, s.prompt])  # uncond first, as upstream's batch
        with self._using(self.models.text):
            context, added = self.models.text(ids[0].to(self.device), ids[1].to(self.device))

        sampler = RestoreEDMSampler(
            steps=s.steps,
            cfg=LinearSchedule(start=s.cfg_start, end=s.cfg),
            control=(
                ConstantSchedule(s.control_scale)
                if s.control_scale_start is None
                else LinearSchedule(start=s.control_scale_start, end=s.control_scale)
            ),
            restoration_scale=s.restoration_scale,
            s_churn=s.s_churn,
            s_noise=s.s_noise,
        )
        from superres.restore.sampler import discrete_sigmas

        train_sigmas = discrete_sigmas()
        unet, control = self.models.unet, self.models.control
        dtype = self.dtype

        def denoise(
            xw: Tensor, sigma: float, control_scale: float, window: Window | None
        ) -> tuple[Tensor, Tensor]:
            index, sigma_q = quantize_sigma(sigma, train_sigmas)
            lq = z_lq if window is None else z_lq[:, :, window[0] : window[1], window[2] : window[3]]
            x_in = (xw / math.sqrt(sigma_q**2 + 1)).to(dtype).repeat(2, 1, 1, 1)
            t = torch.full((2,), index, device=self.device, dtype=torch.long)
            feats = control(lq.to(dtype).repeat(2, 1, 1, 1), x_in, t, context, added)
            eps = unet(x_in, t, context, added, feats, control_scale).float()
            x0 = xw - sigma_q * eps
            return x0[:1], x0[1:]

        latent_shape = z_lq.shape
        x_t = sampler.initial_noise(tuple(latent_shape), generator=g, device=self.device)
        runner: Any = sampler
        if s.tile_size:
            tile = max(1, s.tile_size // 8)
            stride = max(1, (s.tile_stride or s.tile_size // 2) // 8)
            runner = TiledSampler(sampler, tile, min(stride, tile))
        with self._using(unet, control):
            z = runner.sample(denoise, x_t, z_center=z_center, generator=g)
        out = self._decode(z, s)
        return colour_fix(out, x_stage1, s.color_fix).clamp(-1, 1)

    def check_memory(self, height: int, width: int, settings: RestoreSettings) -> None:
        need = estimate_memory(height, width, settings, self.dtype, self.offload)
        have = free_memory(self.device)
        if have is not None and need > have:
            raise RestoreMemoryError(
                f"a {width}x{height} run needs about {need / 2**30:.1f} GiB on {self.device} (estimate), "
                f"{have / 2**30:.1f} GiB is free. Try --tile-vae, --tile-size 1024, --offload, a lower "
                "--min-size, or --dtype fp16/bf16."
            )

    def restore(
        self, image: np.ndarray, settings: RestoreSettings | None = None, **overrides: Any
    ) -> np.ndarray:
        """HxWx3 (uint8/uint16/float in [0, 1]) -> restored HxWx3 float32 in [0, 1] at ``scale`` x size."""
        s = replace(settings or RestoreSettings(), **overrides)
        h0, w0 = image.shape[:2]
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("restore expects an RGB image (HxWx3)")
        scale_max = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else 1.0
        x = torch.from_numpy(image.astype(np.float32) / scale_max).permute(2, 0, 1)[None]
        w, h = w0 * s.scale, h0 * s.scale
        if min(w, h) < s.min_size:
            grow = s.min_size / min(w, h)
            w, h = w * grow, h * grow
        w, h = max(64, round(w / 64) * 64), max(64, round(h / 64) * 64)
        self.check_memory(h, w, s)
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
        out = self.restore_tensor(x, s)
        size = (max(1, round(h0 * s.scale)), max(1, round(w0 * s.scale)))
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False, antialias=True)
        return ((out[0].permute(1, 2, 0).cpu().numpy() + 1) / 2).clip(0, 1).astype(np.float32)
