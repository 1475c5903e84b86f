"""Training losses: pixel (L1, MSE, Charbonnier), VGG19 perceptual/style, GAN; and a factory.

The definitions and option names follow BasicSR (``basicsr/losses``), so its YAML loss blocks
translate directly, e.g. Real-ESRGAN's GAN stage::

    build_losses([
        {"type": "l1", "weight": 1.0},
        {"type": "perceptual", "weight": 1.0, "vgg19": "vgg19-dcbb9e9d.pth",
         "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}},
        {"type": "gan", "gan_type": "vanilla", "weight": 0.1},
    ])

Every loss is an ``nn.Module`` whose ``weight`` is already applied to what it returns.
The perceptual loss needs torchvision's ImageNet VGG19 file (``vgg19-dcbb9e9d.pth``); superres
ships no weights and downloads nothing. The file is read safely (``torch.load`` with
``weights_only=True``, or ``.safetensors``), without torchvision. See ``find_vgg19_weights``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.weights import ModelFileError, read_state_dict

__all__ = [
    "GAN_TYPES",
    "LOSS_TYPES",
    "REAL_ESRGAN_LAYER_WEIGHTS",
    "VGG19_LAYERS",
    "CharbonnierLoss",
    "GANLoss",
    "L1Loss",
    "MSELoss",
    "PerceptualLoss",
    "PerceptualWeightsError",
    "PerceptualWeightsMissing",
    "VGG19Features",
    "build_losses",
    "find_vgg19_weights",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _check_pair(pred: torch.Tensor, target: torch.Tensor, who: str) -> None:
    # Broadcasting (N,3,H,W) against (3,H,W) or (N,1,H,W) would silently compute something else.
    if pred.shape != target.shape:
        raise ValueError(f"{who}: prediction and target differ in shape: {tuple(pred.shape)} vs "
                         f"{tuple(target.shape)}")


def _check_weight(value: float, what: str) -> float:
    value = float(value)
    if not value >= 0.0:  # also refuses NaN
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


# --- pixel losses -------------------------------------------------------------------------------

class _PixelLoss(nn.Module):
    def __init__(self, weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {', '.join(_REDUCTIONS)}, "
                             f"not {reduction!r}")
        self.weight = _check_weight(weight, f"{type(self).__name__} weight")
        self.reduction = reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target, type(self).__name__)
        return self.weight * _reduce(self.elementwise(pred, target), self.reduction)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, reduction={self.reduction!r}"


class L1Loss(_PixelLoss):
    """``weight * mean(|pred - target|)`` (``reduction`` "mean", "sum" or "none")."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


class MSELoss(_PixelLoss):
    """``weight * mean((pred - target)^2)`` (``reduction`` "mean", "sum" or "none")."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target) ** 2


class CharbonnierLoss(_PixelLoss):
    """``weight * mean(sqrt((pred - target)^2 + eps^2))``: a smooth L1, equal to it as eps -> 0.

    ``eps`` is squared here, as in LapSRN and most papers (eps = 1e-3). BasicSR's
    ``CharbonnierLoss`` adds its ``eps`` unsquared (default 1e-12, i.e. 1e-6 here).
    """

    def __init__(self, weight: float = 1.0, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.eps = _check_weight(eps, "CharbonnierLoss eps")

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps * self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"


# --- VGG19 features -----------------------------------------------------------------------------

ENV_VGG19 = "SUPERRES_VGG19"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
_VGG19_FILE_NAMES = (VGG19_FILE, "vgg19.pth", "vgg19.safetensors")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # (channels, convs) per block


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, (_, n) in enumerate(_VGG19_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


# Position in the tuple = index in torchvision's ``vgg19().features`` (conv1_1 = 0, conv5_4 = 34).
VGG19_LAYERS: tuple[str, ...] = _vgg19_layer_names()

# Real-ESRGAN / BasicSR ESRGAN-style recipe: weights on the conv outputs (before their ReLU).
REAL_ESRGAN_LAYER_WEIGHTS: dict[str, float] = {
    "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0,
}


class PerceptualWeightsMissing(FileNotFoundError):
    """The VGG19 weight file was not found; the message says which, where we looked, how to get it."""


class PerceptualWeightsError(ValueError):
    """A VGG19 weight file that cannot be used (unsafe pickle, missing key, wrong shape)."""


def _how_to_provide() -> str:
    return (f"superres ships no weights and downloads nothing (there is no download here). Get "
            f"torchvision's ImageNet VGG19 file '{VGG19_FILE}' ({VGG19_URL}, the file "
            f"torchvision's vgg19(weights='IMAGENET1K_V1') downloads) on any machine, copy it here, "
            f"then pass PerceptualLoss(vgg19=PATH) (in a loss spec: `vgg19: PATH`), or set "
            f"{ENV_VGG19}=PATH (the file, or its folder), or put it in "
            f"{_hub_checkpoints()}. A .safetensors file with the same 'features.N.weight' keys works "
            f"too.")


def _hub_checkpoints() -> Path:
    # $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), where torchvision keeps it.
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_vgg19_weights(path: str | Path | None = None) -> Path:
    """The VGG19 weight file to use, or ``PerceptualWeightsMissing``.

    In order: ``path`` if given (never silently replaced by another file); else ``$SUPERRES_VGG19``
    if set (a file, or a folder holding ``vgg19-dcbb9e9d.pth`` / ``vgg19.pth`` /
    ``vgg19.safetensors``); else ``vgg19-dcbb9e9d.pth`` (or those names) in
    ``$TORCH_HOME/hub/checkpoints``.
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise PerceptualWeightsMissing(f"VGG19 weights for the perceptual loss not found: the given "
                                       f"file {p} does not exist. {_how_to_provide()}")
    looked: list[str] = []
    env = os.environ.get(ENV_VGG19)
    if env:
        p = Path(env).expanduser()
        if p.is_file():
            return p
        if p.is_dir():
            for name in _VGG19_FILE_NAMES:
                if (p / name).is_file():
                    return p / name
            raise PerceptualWeightsMissing(
                f"VGG19 weights for the perceptual loss not found: {ENV_VGG19}={env} is a folder "
                f"without {' / '.join(_VGG19_FILE_NAMES)}. {_how_to_provide()}")
        raise PerceptualWeightsMissing(f"VGG19 weights for the perceptual loss not found: {ENV_VGG19}="
                                       f"{env} does not exist. {_how_to_provide()}")
    looked.append(f"${ENV_VGG19} (not set)")
    hub = _hub_checkpoints()
    for name in _VGG19_FILE_NAMES:
        if (hub / name).is_file():
            return hub / name
    looked.append(f"{hub} (no {' / '.join(_VGG19_FILE_NAMES)})")
    raise PerceptualWeightsMissing(f"VGG19 weights for the perceptual loss not found: the file "
                                   f"'{VGG19_FILE}' is needed; looked in {'; '.join(looked)}. "
                                   f"{_how_to_provide()}")


def _read_vgg19(path: Path) -> dict[str, torch.Tensor]:
    try:
        sd = read_state_dict(path)
    except ModelFileError as exc:
        raise PerceptualWeightsError(str(exc)) from None
    return {k: v for k, v in sd.items() if k.startswith("features.")}  # classifier.* not needed


class VGG19Features(nn.Module):
    """VGG19 ``features`` (torchvision key layout ``features.N.weight``), returning named taps.

    ``forward(x)`` takes (N, 3, H, W) images in [0, 1] (in [-1, 1] with ``range_norm=True``,
    which maps them to [0, 1] first) and returns ``{layer: tensor}`` for the requested layers
    (names in ``VGG19_LAYERS``: ``conv1_1`` ... ``conv5_4``, ``relu1_1`` ... ``relu5_4``,
    ``pool1`` ... ``pool5``; conv taps are taken before their ReLU). With ``use_input_norm``
    the input is normalised with the ImageNet mean/std first. Only the layers up to the
    deepest tap are built and loaded.

    ``weights`` is a file path, a state dict, or None (see ``find_vgg19_weights``). The
    parameters are frozen and the module stays in eval mode (``train()`` is a no-op);
    gradients still flow to the input.
    """

    def __init__(self, layers: Iterable[str], weights: str | Path | Mapping[str, torch.Tensor] | None = None,
                 use_input_norm: bool = True, range_norm: bool = False) -> None:
        super().__init__()
        names = list(dict.fromkeys(layers))
        if not names:
            raise ValueError("VGG19Features: no layers requested")
        unknown = [n for n in names if n not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"VGG19Features: unknown layer(s) {', '.join(map(repr, unknown))}; valid: "
                             f"{', '.join(VGG19_LAYERS)}")
        last = max(VGG19_LAYERS.index(n) for n in names)
        mods: list[nn.Module] = []
        cin = 3
        for name in VGG19_LAYERS[: last + 1]:
            if name.startswith("conv"):
                cout = _VGG19_BLOCKS[int(name[4]) - 1][0]
                mods.append(nn.Conv2d(cin, cout, 3, 1, 1))
                cin = cout
            elif name.startswith("relu"):
                mods.append(nn.ReLU(inplace=False))  # conv taps must not be overwritten
            else:
                mods.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*mods)
        self.layers = tuple(names)
        self.use_input_norm = bool(use_input_norm)
        self.range_norm = bool(range_norm)
        self._taps = {VGG19_LAYERS.index(n): n for n in names}
        self._min_side = 2 ** sum(n.startswith("pool") for n in VGG19_LAYERS[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        if isinstance(weights, Mapping):
            sd, where = dict(weights), "<state dict>"
        else:
            path = find_vgg19_weights(weights)
            sd, where = _read_vgg19(path), str(path)
        self.source = where
        self._load(sd, where)
        self.requires_grad_(False)
        super().train(False)

    def _load(self, sd: dict[str, torch.Tensor], where: str) -> None:
        expected = self.state_dict()
        for k, ref in expected.items():
            if k not in sd:
                raise PerceptualWeightsError(
                    f"{where}: key '{k}' is missing (expected shape {tuple(ref.shape)}); a VGG19 file in "
                    f"torchvision's layout ('features.N.weight', e.g. '{VGG19_FILE}') is needed")
            if tuple(sd[k].shape) != tuple(ref.shape):
                raise PerceptualWeightsError(
                    f"{where}: key '{k}' has shape {tuple(sd[k].shape)}, expected {tuple(ref.shape)} — "
                    f"is this a VGG19 file (not VGG16 or a batch-norm variant)?")
        self.load_state_dict({k: sd[k].to(ref.dtype) for k, ref in expected.items()}, strict=True)

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode (a frozen feature extractor)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features: expected (N, 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[2:]) < self._min_side:
            raise ValueError(f"VGG19Features: for layer(s) {', '.join(self.layers)} images must be at "
                             f"least {self._min_side}x{self._min_side}, got {x.shape[3]}x{x.shape[2]}")
        if self.range_norm:
            x = (x + 1.0) / 2.0
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in self._taps:
                out[self._taps[i]] = x
        return out


_CRITERIA = ("l1", "l2", "fro")


def _gram(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class PerceptualLoss(nn.Module):
    """VGG19 perceptual (and optional style) loss, as BasicSR's ``PerceptualLoss``.

    ``forward(pred, target)`` returns ``perceptual_weight * sum_k w_k * crit(f_k(pred), f_k(target))
    + style_weight * sum_k w_k * crit(G(f_k(pred)), G(f_k(target)))`` over the layers ``k`` of
    ``layer_weights`` (default ``REAL_ESRGAN_LAYER_WEIGHTS``), with ``crit`` the mean absolute
    ("l1") or squared ("l2") difference or the Frobenius norm of the difference ("fro"), and
    ``G`` the Gram matrix divided by C*H*W. The target's features are computed without gradient;
    ``components()`` gives the two terms separately.

    Inputs are images in [0, 1] (``range_norm=True``: [-1, 1]). ``vgg19`` is the weight file
    (see ``find_vgg19_weights`` for where it is looked for when None) or a state dict.
    """

    def __init__(self, vgg19: str | Path | Mapping[str, torch.Tensor] | None = None,
                 layer_weights: Mapping[str, float] | None = None, use_input_norm: bool = True,
                 range_norm: bool = False, criterion: str = "l1", perceptual_weight: float = 1.0,
                 style_weight: float = 0.0) -> None:
        super().__init__()
        lw = dict(REAL_ESRGAN_LAYER_WEIGHTS if layer_weights is None else layer_weights)
        if not lw:
            raise ValueError("PerceptualLoss: layer_weights is empty")
        self.layer_weights = {k: _check_weight(v, f"PerceptualLoss layer weight {k!r}")
                              for k, v in lw.items()}
        if criterion not in _CRITERIA:
            raise ValueError(f"PerceptualLoss: criterion must be one of {', '.join(_CRITERIA)}, "
                             f"not {criterion!r}")
        self.criterion = criterion
        self.perceptual_weight = _check_weight(perceptual_weight, "PerceptualLoss perceptual_weight")
        self.style_weight = _check_weight(style_weight, "PerceptualLoss style_weight")
        self.vgg = VGG19Features(self.layer_weights, weights=vgg19, use_input_norm=use_input_norm,
                                 range_norm=range_norm)

    @property
    def weight(self) -> float:
        return self.perceptual_weight

    def _crit(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l1":
            return F.l1_loss(a, b)
        if self.criterion == "l2":
            return F.mse_loss(a, b)
        return torch.linalg.vector_norm(a - b)

    def components(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"perceptual": ..., "style": ...}``, each weighted; a term whose weight is 0 is absent."""
        _check_pair(pred, target, "PerceptualLoss")
        out: dict[str, torch.Tensor] = {}
        if not (self.perceptual_weight or self.style_weight):
            return out
        fp = self.vgg(pred)
        with torch.no_grad():
            ft = self.vgg(target.detach())
        if self.perceptual_weight:
            terms = [w * self._crit(fp[k], ft[k]) for k, w in self.layer_weights.items()]
            out["perceptual"] = self.perceptual_weight * torch.stack(terms).sum()
        if self.style_weight:
            terms = [w * self._crit(_gram(fp[k]), _gram(ft[k])) for k, w in self.layer_weights.items()]
            out["style"] = self.style_weight * torch.stack(terms).sum()
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        comps = self.components(pred, target)
        if not comps:
            return pred.new_zeros(())
        return torch.stack(list(comps.values())).sum()

    def extra_repr(self) -> str:
        return (f"layer_weights={self.layer_weights}, criterion={self.criterion!r}, "
                f"perceptual_weight={self.perceptual_weight}, style_weight={self.style_weight}")


# --- GAN ----------------------------------------------------------------------------------------

GAN_TYPES = ("vanilla", "lsgan", "hinge", "ragan", "wgan", "wgan_softplus")


class GANLoss(nn.Module):
    """Adversarial losses on discriminator logits (raw scores, no sigmoid).

    With ``r`` = D(real), ``f`` = D(fake) logits, ``BCE`` = binary cross-entropy with logits,
    ``t_r`` / ``t_f`` the ``real_label`` / ``fake_label`` targets and ``E`` the mean:

    * ``vanilla``: D: BCE(r, t_r) + BCE(f, t_f); G: BCE(f, t_r) (the non-saturating form).
    * ``lsgan``: D: E(r - t_r)^2 + E(f - t_f)^2; G: E(f - t_r)^2.
    * ``hinge``: D: E relu(1 - r) + E relu(1 + f); G: -E f (labels unused).
    * ``ragan``: D: (BCE(r - E f, t_r) + BCE(f - E r, t_f)) / 2;
      G: (BCE(r - E f, t_f) + BCE(f - E r, t_r)) / 2.
    * ``wgan``: D: -E r + E f; G: -E f.
    * ``wgan_softplus``: D: E softplus(-r) + E softplus(f); G: E softplus(-f).

    ``ragan`` is ESRGAN's relativistic average GAN: D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)]),
    D_Ra(x_f, x_r) = sigmoid(C(x_f) - E[C(x_r)]); D learns real as "more real than the average
    fake", G the reverse, so its ``g_loss(r, f)`` equals ``d_loss(f, r)`` (times ``weight``) and
    uses the real logits too (compute them with D frozen in the generator step). For the other
    types ``g_loss`` ignores ``r`` (may be None). Real-ESRGAN trains with ``vanilla`` on the
    per-pixel logits of ``UNetDiscriminatorSN`` (the means are over all elements).

    As in BasicSR, ``weight`` scales the generator's loss only; ``d_loss`` is unweighted.
    ``forward(logits, target_is_real, is_disc)`` is BasicSR's single-term call.
    """

    def __init__(self, gan_type: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0,
                 weight: float = 1.0) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"GANLoss: gan_type must be one of {', '.join(GAN_TYPES)}, not {gan_type!r}")
        self.gan_type = gan_type
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)
        self.weight = _check_weight(weight, "GANLoss weight")

    def forward(self, logits: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        """One term: the loss of ``logits`` judged as real/fake; weighted unless ``is_disc``.

        For ``hinge`` the generator's term (``is_disc=False``) is ``-mean(logits)``.
        """
        t = self.gan_type
        if t in ("vanilla", "ragan", "lsgan"):
            label = self.real_label if target_is_real else self.fake_label
            target = torch.full_like(logits, label)
            if t == "lsgan":
                loss = F.mse_loss(logits, target)
            else:
                loss = F.binary_cross_entropy_with_logits(logits, target)
        elif t == "wgan":
            loss = -logits.mean() if target_is_real else logits.mean()
        elif t == "wgan_softplus":
            loss = F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()
        elif is_disc:  # hinge
            loss = F.relu(1.0 - logits).mean() if target_is_real else F.relu(1.0 + logits).mean()
        else:
            loss = -logits.mean()
        return loss if is_disc else loss * self.weight

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss (unweighted); ``fake_logits`` should come from a detached G output."""
        if self.gan_type == "ragan":
            r = real_logits - fake_logits.mean()
            f = fake_logits - real_logits.mean()
            return 0.5 * (self(r, True, is_disc=True) + self(f, False, is_disc=True))
        return self(real_logits, True, is_disc=True) + self(fake_logits, False, is_disc=True)

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss, times ``weight``; ``real_logits`` is needed for ``ragan`` only."""
        if self.gan_type == "ragan":
            if real_logits is None:
                raise ValueError("GANLoss(ragan).g_loss needs the real logits too")
            r = real_logits - fake_logits.mean()
            f = fake_logits - real_logits.mean()
            return 0.5 * (self(r, False) + self(f, True))
        return self(fake_logits, True)

    def extra_repr(self) -> str:
        return (f"gan_type={self.gan_type!r}, real_label={self.real_label}, fake_label={self.fake_label}, "
                f"weight={self.weight}")


# --- factory ------------------------------------------------------------------------------------

LOSS_TYPES: dict[str, type[nn.Module]] = {
    "l1": L1Loss,
    "mse": MSELoss,
    "charbonnier": CharbonnierLoss,
    "perceptual": PerceptualLoss,
    "gan": GANLoss,
}
# Other spellings accepted for ``type`` (BasicSR class names, case-insensitive).
_TYPE_ALIASES = {"l2": "mse", "l1loss": "l1", "mseloss": "mse", "charbonnierloss": "charbonnier",
                 "perceptualloss": "perceptual", "ganloss": "gan"}
# The constructor argument a spec's ``weight`` goes to (BasicSR spells it ``loss_weight``).
_WEIGHT_ARG = {"perceptual": "perceptual_weight"}
_OPTION_ALIASES = {"loss_weight": "weight", "real_label_val": "real_label", "fake_label_val": "fake_label"}


def _options(kind: str) -> list[str]:
    params = [p for p in inspect.signature(LOSS_TYPES[kind].__init__).parameters if p != "self"]
    return ["name", "weight", *(p for p in params if p != "weight")]


def build_losses(specs: Sequence[Mapping[str, Any]]) -> dict[str, nn.Module]:
    """Loss modules from YAML-style specs, keyed by ``name`` (default: the canonical type).

    Each spec is ``{type: l1|mse|charbonnier|perceptual|gan, weight: ..., <options>}``; the
    options are the constructor's arguments (``weight`` is ``perceptual_weight`` for
    ``perceptual``; BasicSR's ``loss_weight``, ``real_label_val``, ``fake_label_val`` and class
    names such as ``L1Loss`` are accepted too). Unknown types or options raise ``ValueError``
    listing the valid ones; two specs with the same name need distinct ``name`` keys.
    """
    if isinstance(specs, (Mapping, str)) or not isinstance(specs, Sequence):
        raise ValueError(f"build_losses: expected a list of loss specs, got {type(specs).__name__}")
    valid_types = ", ".join(f"{k} (l2)" if k == "mse" else k for k in LOSS_TYPES)
    out: dict[str, nn.Module] = {}
    for i, raw in enumerate(specs):
        if not isinstance(raw, Mapping):
            raise ValueError(f"loss spec #{i}: expected a mapping like {{type: l1, weight: 1.0}}, "
                             f"got {raw!r}")
        spec = dict(raw)
        kind_raw = spec.pop("type", None)
        if not isinstance(kind_raw, str):
            raise ValueError(f"loss spec #{i}: missing 'type' (one of {valid_types})")
        kind = _TYPE_ALIASES.get(kind_raw.lower(), kind_raw.lower())
        if kind not in LOSS_TYPES:
            raise ValueError(f"loss spec #{i}: unknown loss type {kind_raw!r}; valid types: {valid_types}")
        name = str(spec.pop("name", kind))
        params = set(inspect.signature(LOSS_TYPES[kind].__init__).parameters) - {"self"}
        kwargs: dict[str, Any] = {}
        for opt, value in spec.items():
            arg = _OPTION_ALIASES.get(opt, opt)
            if arg == "weight":
                arg = _WEIGHT_ARG.get(kind, "weight")
            if arg not in params:
                raise ValueError(f"loss spec #{i} ({kind}): unknown option {opt!r}; valid options: "
                                 f"{', '.join(_options(kind))}")
            if arg in kwargs:
                raise ValueError(f"loss spec #{i} ({kind}): {arg!r} given twice (as {opt!r} and an alias)")
            kwargs[arg] = value
        if name in out:
            raise ValueError(f"loss spec #{i}: a loss named {name!r} already exists; give the specs "
                             f"distinct 'name' keys")
        try:
            out[name] = LOSS_TYPES[kind](**kwargs)
        except TypeError as exc:  # e.g. a YAML value of the wrong kind
            raise ValueError(f"loss spec #{i} ({kind}): {exc}") from None
    return out
