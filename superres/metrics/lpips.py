"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features"), v0.1, no torchvision.

The distance between two images in [-1, 1] is

    d(x, y) = sum_l  mean_hw  w_l . (n(f_l(s(x))) - n(f_l(s(y))))^2

with ``s`` the fixed input scaling, ``f_l`` the ReLU outputs of an ImageNet backbone (AlexNet
relu1..relu5 or VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), ``n`` the unit-normalisation
over channels (eps 1e-10) and ``w_l >= 0`` the learned 1x1 linear heads.

No weights ship with superres. Two files are needed, both read safely (``torch.load`` with
``weights_only=True``, or ``.safetensors``):

* the backbone, in torchvision's key layout (``features.N.weight``), e.g. torchvision's own
  ImageNet file ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` (``classifier.*`` ignored);
* the heads, in the layout of the ``lpips`` package's ``weights/v0.1/{alex,vgg}.pth``
  (``lin{k}.model.1.weight``, shape (1, C_k, 1, 1)).

A single file holding both (torchvision keys, or the ``lpips`` module's own ``net.sliceK.N``
keys, plus ``lin{k}``) works too. See ``LPIPS`` for where the files are looked for.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.weights import ModelFileError, read_state_dict, unwrap_state_dict
from superres.weights.carriers import Carrier, find_carrier

__all__ = ["LPIPS", "LPIPSWeightsError", "LPIPSWeightsMissing", "lpips_distance"]

ENV_DIR = "SUPERRES_LPIPS_DIR"
EPS = 1e-10
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# The lpips wheel carries the heads in lpips/weights/v0.1/; it is located, never imported
# (its __init__ imports torchvision).
LPIPS_CARRIER = Carrier("lpips", "lpips", "weights/v0.1", "any Python (pure-Python wheel)")


@dataclass(frozen=True)
class _NetSpec:
    name: str  # "alex" | "vgg"
    layers: tuple[tuple[Any, ...], ...]  # torchvision `features` layout: ("conv", cin, cout, k, s, p) ...
    taps: tuple[int, ...]  # indices in `features` of the ReLUs whose outputs LPIPS uses
    channels: tuple[int, ...]  # channels at the taps
    backbone_files: tuple[str, ...]  # names looked for in SUPERRES_LPIPS_DIR / the torch hub cache
    heads_file: str  # name inside lpips/weights/v0.1/
    min_side: int  # smallest input side the backbone accepts


def _alex_layers() -> tuple[tuple[Any, ...], ...]:
    return (
        ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool",),
        ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool",),
        ("conv", 192, 384, 3, 1, 1), ("relu",),
        ("conv", 384, 256, 3, 1, 1), ("relu",),
        ("conv", 256, 256, 3, 1, 1), ("relu",),
    )


def _vgg16_layers() -> tuple[tuple[Any, ...], ...]:
    out: list[tuple[Any, ...]] = []
    cin = 3
    for block, (cout, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if block:
            out.append(("pool",))
        for _ in range(n):
            out += [("conv", cin, cout, 3, 1, 1), ("relu",)]
            cin = cout
    return tuple(out)


NETS: dict[str, _NetSpec] = {
    "alex": _NetSpec("alex", _alex_layers(), (1, 4, 7, 9, 11), (64, 192, 384, 256, 256),
                     ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth", "alexnet.pth",
                      "alexnet.safetensors"), "alex.pth", 31),
    "vgg": _NetSpec("vgg", _vgg16_layers(), (3, 8, 15, 22, 29), (64, 128, 256, 512, 512),
                    ("vgg16-397923af.pth", "vgg16.pth", "vgg16.safetensors"), "vgg.pth", 16),
}
_ALIASES = {"alexnet": "alex", "vgg16": "vgg"}


class LPIPSWeightsMissing(FileNotFoundError):
    """An LPIPS weight file was not found; the message says which, where we looked, how to get it."""


class LPIPSWeightsError(ValueError):
    """An LPIPS weight file that cannot be used (missing key, wrong shape, unreadable)."""


class Backbone(nn.Module):
    """AlexNet or VGG16 ``features`` with torchvision's module indices; returns the tapped ReLUs."""

    def __init__(self, spec: _NetSpec) -> None:
        super().__init__()
        self.taps = spec.taps
        mods: list[nn.Module] = []
        for layer in spec.layers:
            if layer[0] == "conv":
                _, cin, cout, k, s, p = layer
                mods.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif layer[0] == "relu":
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.MaxPool2d(kernel_size=3 if spec.name == "alex" else 2, stride=2))
        self.features = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in self.taps:
                outs.append(x)
        return outs


class ScalingLayer(nn.Module):
    """``(x - shift) / scale`` per channel: LPIPS v0.1's input normalisation for x in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class LinearHead(nn.Module):
    """A 1x1 conv to one channel, no bias; ``model.1`` so the lpips key layout loads as is."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))  # 0: dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def normalize_channels(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Unit L2 norm over the channel axis (LPIPS's ``normalize_tensor``)."""
    return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance; ``forward(a, b)`` takes (N, 3, H, W) in [-1, 1] and returns shape (N,).

    Weights, each looked for in this order (the first that exists is used):

    * backbone: ``backbone=PATH``; else a file in ``$SUPERRES_LPIPS_DIR`` named like torchvision's
      (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, see ``NETS``); else the same names
      in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps them).
    * heads: ``heads=PATH``; else the ``lin*`` tensors of a combined backbone file; else
      ``$SUPERRES_LPIPS_DIR/{alex,vgg}.pth``; else ``lpips/weights/v0.1/{alex,vgg}.pth`` of the
      ``lpips`` wheel, given in ``SUPERRES_CARRIERS`` or installed (found, not imported).

    A combined file may be given as ``backbone`` or ``heads``. The module is in eval mode with
    frozen parameters; gradients still flow to the inputs, so it can serve as a loss.
    """

    def __init__(self, net: str = "alex", backbone: str | Path | None = None,
                 heads: str | Path | None = None) -> None:
        super().__init__()
        key = _ALIASES.get(net, net)
        if key not in NETS:
            raise ValueError(f"LPIPS net must be one of {sorted(NETS)}, not {net!r}")
        self.spec = spec = NETS[key]
        self.net_name = key
        self.scaling_layer = ScalingLayer()
        self.net = Backbone(spec)
        self.lins = nn.ModuleList(LinearHead(c) for c in spec.channels)
        self.sources: dict[str, str] = {}  # "backbone"/"heads" -> where the tensors came from

        # A file given for one part may also hold the other; it serves that part only when the
        # other part was not given a file of its own.
        given = {"backbone": backbone, "heads": heads}
        sds: dict[str, dict[str, torch.Tensor]] = {}
        for part, path in given.items():
            if path is None:
                continue
            other_part = _OTHER_PART[part]
            sds[part], extra = _read_part(Path(path), part)
            self.sources[part] = str(path)
            if given[other_part] is None and extra:
                sds[other_part] = extra
                self.sources[other_part] = str(path)
        for part, find in (("backbone", _find_backbone), ("heads", _find_heads)):
            if part not in sds:
                sds[part], self.sources[part] = find(spec)

        _load_checked(self.net, sds["backbone"], self.sources["backbone"])
        _load_checked(self.lins, sds["heads"], self.sources["heads"])
        self.eval().requires_grad_(False)

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer terms, each of shape (N,); their sum is the distance."""
        _check_input(a, b, self.spec)
        fa = self.net(self.scaling_layer(a))
        fb = self.net(self.scaling_layer(b))
        out = []
        for lin, xa, xb in zip(self.lins, fa, fb, strict=True):
            diff = (normalize_channels(xa) - normalize_channels(xb)) ** 2
            out.append(lin(diff).mean(dim=(1, 2, 3)))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(a, b), dim=0).sum(dim=0)


def lpips_distance(a_rgb_uint8: np.ndarray, b_rgb_uint8: np.ndarray, model: LPIPS) -> float:
    """LPIPS between two HxWx3 RGB uint8 images (mapped to [-1, 1] as ``x / 127.5 - 1``)."""
    tensors = []
    p = next(model.parameters())
    for name, img in (("a", a_rgb_uint8), ("b", b_rgb_uint8)):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"lpips_distance: {name} must be an HxWx3 RGB uint8 array, got "
                             f"{img.dtype} {img.shape}")
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
        tensors.append(t.to(device=p.device, dtype=p.dtype) / 127.5 - 1.0)
    if tensors[0].shape != tensors[1].shape:
        raise ValueError(f"lpips_distance: shapes differ: {a_rgb_uint8.shape} vs {b_rgb_uint8.shape}")
    with torch.no_grad():
        return float(model(tensors[0], tensors[1])[0])


# --- weight files -------------------------------------------------------------------------------

def _read_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise LPIPSWeightsMissing(f"LPIPS {what} file not found: {path}")
    try:
        return read_state_dict(path)
    except ModelFileError as exc:
        raise LPIPSWeightsError(str(exc)) from None


def _read_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise LPIPSWeightsError(f"{where}: refused to load: the file holds pickled Python objects other "
                                f"than tensors ({str(exc).splitlines()[0][:160]})") from None
    except Exception as exc:
        raise LPIPSWeightsError(f"{where}: not a readable weight file "
                                f"({type(exc).__name__}: {exc})") from None
    try:
        return unwrap_state_dict(obj, where)
    except ModelFileError as exc:
        raise LPIPSWeightsError(str(exc)) from None


_OTHER_PART = {"backbone": "heads", "heads": "backbone"}
_PART_KEYS = {"backbone": "backbone tensors ('features.N.weight')",
              "heads": "LPIPS head tensors ('lin0.model.1.weight' ...)"}


def _read_part(path: Path, part: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(tensors of ``part``, tensors of the other part) of a file given as ``part``; it must hold ``part``."""
    sd = _read_file(path, part)
    bb, hd = _split(sd)
    own, other = (bb, hd) if part == "backbone" else (hd, bb)
    if not own:
        raise LPIPSWeightsError(f"{path}: no {_PART_KEYS[part]} in this file "
                                f"(first keys: {', '.join(sorted(sd)[:6])})")
    return own, other


def _split(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone, heads) tensors of a state dict; other keys (``classifier.*``, buffers) dropped.

    Accepts torchvision keys (``features.N.*``), the lpips module's (``net.sliceK.N.*``, which keep
    torchvision's N) and heads as ``lin{k}.model.1.weight`` or ``lins.{k}.model.1.weight``.
    """
    bb: dict[str, torch.Tensor] = {}
    hd: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "features" and len(parts) == 3:
            bb[k] = v
        elif parts[0] == "net" and len(parts) == 4 and parts[1].startswith("slice"):
            bb[f"features.{parts[2]}.{parts[3]}"] = v
        elif parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[1:] == ["model", "1", "weight"]:
            hd[f"{parts[0][3:]}.model.1.weight"] = v
        elif parts[0] == "lins" and len(parts) == 5 and parts[2:] == ["model", "1", "weight"]:
            hd.setdefault(f"{parts[1]}.model.1.weight", v)
    return bb, hd


def _load_checked(module: nn.Module, sd: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` after checking every key and shape, naming the file and key on failure."""
    expected = module.state_dict()
    shown = {k: (f"lin{k.split('.')[0]}.model.1.weight" if isinstance(module, nn.ModuleList) else k)
             for k in expected}
    for k, ref in expected.items():
        if k not in sd:
            raise LPIPSWeightsError(f"{where}: key '{shown[k]}' is missing (expected shape "
                                    f"{tuple(ref.shape)}; the file has {len(sd)} usable tensors)")
        if tuple(sd[k].shape) != tuple(ref.shape):
            raise LPIPSWeightsError(f"{where}: key '{shown[k]}' has shape {tuple(sd[k].shape)}, expected "
                                    f"{tuple(ref.shape)} — is this the right network's file?")
    module.load_state_dict({k: sd[k].to(ref.dtype) for k, ref in expected.items()}, strict=True)


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _find_backbone(spec: _NetSpec) -> tuple[dict[str, torch.Tensor], str]:
    looked: list[str] = []
    folders: list[Path] = []
    if env := os.environ.get(ENV_DIR):
        folders.append(Path(env).expanduser())
    else:
        looked.append(f"${ENV_DIR} (not set)")
    folders.append(_hub_checkpoints())
    for folder in folders:
        for name in spec.backbone_files:
            path = folder / name
            if path.is_file():
                bb, _ = _split(_read_file(path, "backbone"))
                return bb, str(path)
        looked.append(str(folder))
    wanted = spec.backbone_files[0]
    raise LPIPSWeightsMissing(
        f"LPIPS-{spec.name} backbone weights not found: no {' / '.join(spec.backbone_files)} in "
        f"{'; '.join(looked)}. superres ships no weights. Get torchvision's ImageNet file "
        f"'{wanted}' (the file torchvision's {_TV_NAME[spec.name]}(weights='IMAGENET1K_V1') "
        f"downloads, {_TV_URL[spec.name]}) on any machine, copy it here and set {ENV_DIR} to its "
        f"folder, or pass LPIPS(net='{spec.name}', backbone=PATH)."
    )


_TV_NAME = {"alex": "alexnet", "vgg": "vgg16"}
_TV_URL = {"alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
           "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth"}


def _find_heads(spec: _NetSpec) -> tuple[dict[str, torch.Tensor], str]:
    looked: list[str] = []
    if env := os.environ.get(ENV_DIR):
        folder = Path(env).expanduser()
        for name in (spec.heads_file, spec.heads_file.replace(".pth", ".safetensors")):
            path = folder / name
            if path.is_file():
                _, hd = _split(_read_file(path, "heads"))
                return hd, str(path)
        looked.append(str(folder))
    else:
        looked.append(f"${ENV_DIR} (not set)")
    src = find_carrier(LPIPS_CARRIER, spec.heads_file)
    if src is not None:
        where = f"{src.describe()}/{spec.heads_file}"
        _, hd = _split(_read_bytes(src.read(spec.heads_file), where))
        return hd, where
    carriers = os.environ.get("SUPERRES_CARRIERS", "")
    looked.append(f"SUPERRES_CARRIERS ({carriers or 'not set'})")
    looked.append("the installed 'lpips' package (" + ("found, but without the file" if
                  importlib.util.find_spec("lpips") is not None else "not installed") + ")")
    raise LPIPSWeightsMissing(
        f"LPIPS-{spec.name} linear heads not found: no {spec.heads_file} (lpips/weights/v0.1/"
        f"{spec.heads_file}) in {'; '.join(looked)}. superres ships no weights. They come with the "
        f"PyPI package 'lpips' (BSD-2-Clause): on any machine `pip download --no-deps lpips`, then "
        f"SUPERRES_CARRIERS=/path/to/lpips-0.1.4-py3-none-any.whl (no install needed), or copy "
        f"lpips/weights/v0.1/{spec.heads_file} out of the wheel (a zip) into ${ENV_DIR}, or pass "
        f"LPIPS(net='{spec.name}', heads=PATH)."
    )


def _check_input(a: torch.Tensor, b: torch.Tensor, spec: _NetSpec) -> None:
    if a.shape != b.shape:
        raise ValueError(f"LPIPS: inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"LPIPS: expected (N, 3, H, W) tensors in [-1, 1], got {tuple(a.shape)}")
    if min(a.shape[2:]) < spec.min_side:
        raise ValueError(f"LPIPS-{spec.name}: images must be at least {spec.min_side}x{spec.min_side} "
                         f"pixels, got {a.shape[3]}x{a.shape[2]}")

