"""GAN discriminators for training: ESRGAN's VGG-style and Real-ESRGAN's U-Net with spectral norm.

Plain ``nn.Module``s with BasicSR's key names (``discriminator_arch.py``), so discriminator
checkpoints from BasicSR / Real-ESRGAN (``net_d`` / ``params`` of e.g.
``RealESRGAN_x4plus_netD.pth``) load with ``load_state_dict``. They are not upscalers and
are not registered in ``superres.archs.ARCHS``. Both return logits (no sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

__all__ = ["UNetDiscriminatorSN", "VGGStyleDiscriminator"]


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's discriminator: (N, C, S, S) -> (N, 1) logits, S = ``input_size``.

    Stage ``i`` is ``conv{i}_0`` (3x3, stride 1) and ``conv{i}_1`` (4x4, stride 2), each
    followed by batch norm (``bn{i}_*``, none after ``conv0_0``) and LeakyReLU(0.2); channels
    ``num_feat * (1, 2, 4, 8, 8, 8, ...)``. Five stages take S = 128 to 4x4 (BasicSR's
    layout); a larger S gets further stages (``conv5_*`` ...) while the side halves to at
    least 4, as BasicSR's 256 variant does. Then ``linear1`` (to 100) + LeakyReLU and
    ``linear2`` (to 1). ``input_size`` must be a multiple of 32.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32:
            raise ValueError(f"VGGStyleDiscriminator: input_size must be a positive multiple of 32 "
                             f"(five stride-2 stages), got {input_size}")
        self.input_size = input_size
        side = input_size // 32
        stages = 5
        while side % 2 == 0 and side // 2 >= 4:
            side //= 2
            stages += 1
        self.num_stages = stages
        self.out_side = side
        cin = num_in_ch
        for i in range(stages):
            cout = num_feat * min(2**i, 8)
            if i == 0:
                self.conv0_0 = nn.Conv2d(cin, cout, 3, 1, 1, bias=True)
            else:
                setattr(self, f"conv{i}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
                setattr(self, f"bn{i}_0", nn.BatchNorm2d(cout, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(cout, affine=True))
            cin = cout
        self.linear1 = nn.Linear(cin * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"VGGStyleDiscriminator: expected (N, C, {self.input_size}, {self.input_size}) "
                             f"input, got {tuple(x.shape)}")
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation: (N, C, H, W) -> (N, 1, H, W).

    ``conv0`` (3x3) then three 4x4 stride-2 downsampling convs ``conv1..3`` (channels x2, x4,
    x8), three bilinear x2 upsampling steps each followed by a 3x3 conv ``conv4..6`` (with
    U-Net skip additions of ``conv2``/``conv1``/``conv0`` outputs when ``skip_connection``),
    two more 3x3 convs ``conv7..8`` and ``conv9`` to one channel: a logit per pixel.
    ``conv1..8`` are spectrally normalised with ``torch.nn.utils.spectral_norm`` (keys
    ``weight_orig``/``weight_u``/``weight_v``, as in Real-ESRGAN's files) and have no bias;
    LeakyReLU(0.2) after every conv but the last. H and W must be multiples of 8.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        nf = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"UNetDiscriminatorSN: expected (N, C, H, W) input with H and W multiples "
                             f"of 8, got {tuple(x.shape)}")

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
