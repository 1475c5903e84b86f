"""LPIPS without torchvision: weight routes, errors, and the definition re-computed independently.

No real LPIPS weights are available offline, so the weights here are random tensors written in
torchvision's (backbone) and the lpips package's (heads) key layouts.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superres.metrics.lpips import LPIPS, LPIPSWeightsError, LPIPSWeightsMissing, lpips_distance

_REAL_FIND_SPEC = importlib.util.find_spec

# The published architectures, written out independently of superres.metrics.lpips:
# torchvision `features` index -> (out, in, kernel, stride, padding), then "relu"/"pool" steps.
ALEX = [("conv", 0, 64, 3, 11, 4, 2), ("relu",), ("pool", 3),
        ("conv", 3, 192, 64, 5, 1, 2), ("relu",), ("pool", 3),
        ("conv", 6, 384, 192, 3, 1, 1), ("relu",),
        ("conv", 8, 256, 384, 3, 1, 1), ("relu",),
        ("conv", 10, 256, 256, 3, 1, 1), ("relu",)]
VGG16 = [("conv", 0, 64, 3, 3, 1, 1), ("relu",), ("conv", 2, 64, 64, 3, 1, 1), ("relu",), ("pool", 2),
         ("conv", 5, 128, 64, 3, 1, 1), ("relu",), ("conv", 7, 128, 128, 3, 1, 1), ("relu",), ("pool", 2),
         ("conv", 10, 256, 128, 3, 1, 1), ("relu",), ("conv", 12, 256, 256, 3, 1, 1), ("relu",),
         ("conv", 14, 256, 256, 3, 1, 1), ("relu",), ("pool", 2),
         ("conv", 17, 512, 256, 3, 1, 1), ("relu",), ("conv", 19, 512, 512, 3, 1, 1), ("relu",),
         ("conv", 21, 512, 512, 3, 1, 1), ("relu",), ("pool", 2),
         ("conv", 24, 512, 512, 3, 1, 1), ("relu",), ("conv", 26, 512, 512, 3, 1, 1), ("relu",),
         ("conv", 28, 512, 512, 3, 1, 1), ("relu",)]
ARCH = {"alex": ALEX, "vgg": VGG16}
# LPIPS taps: AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the ReLU
# right after these convs).
TAP_AFTER_CONV = {"alex": (0, 3, 6, 8, 10), "vgg": (2, 7, 14, 21, 28)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
TV_FILE = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
HEADS_FILE = {"alex": "alex.pth", "vgg": "vgg.pth"}
NETS = ("alex", "vgg")


def random_backbone(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """He-initialised `features.*` plus some `classifier.*` tensors (of arbitrary shapes)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for step in ARCH[net]:
        if step[0] == "conv":
            _, idx, cout, cin, k, _, _ = step
            std = (2.0 / (cin * k * k)) ** 0.5
            sd[f"features.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=g) * std
            sd[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.01
    sd["classifier.1.weight"] = torch.randn(7, 5, generator=g)
    sd["classifier.1.bias"] = torch.randn(7, generator=g)
    return sd


def random_heads(net: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """Non-negative heads in the lpips `weights/v0.1/*.pth` layout."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) * 0.1
            for k, c in enumerate(CHANNELS[net])}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Files: `full/` (backbones + heads, as SUPERRES_LPIPS_DIR), `bb/` (backbones only), a fake wheel."""
    root = tmp_path_factory.mktemp("lpips-weights")
    full, bb = root / "full", root / "bb"
    full.mkdir()
    bb.mkdir()
    wheel = root / "lpips-0.1.4-py3-none-any.whl"
    out: dict[str, object] = {"root": root, "full": full, "bb": bb, "wheel": wheel}
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("lpips/__init__.py", "raise ImportError('the lpips package must not be imported')\n")
        for net in NETS:
            b, h = random_backbone(net), random_heads(net)
            out[f"{net}_bb"], out[f"{net}_heads"] = b, h
            torch.save(b, full / TV_FILE[net])
            torch.save(h, full / HEADS_FILE[net])
            (bb / TV_FILE[net]).hardlink_to(full / TV_FILE[net])
            zf.write(full / HEADS_FILE[net], f"lpips/weights/v0.1/{HEADS_FILE[net]}")
    return out


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No lookup escapes the test: no env routes, an empty torch hub, no installed lpips."""
    monkeypatch.delenv("SUPERRES_LPIPS_DIR", raising=False)
    monkeypatch.delenv("SUPERRES_CARRIERS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lpips" else _REAL_FIND_SPEC(name, *a))


@pytest.fixture(scope="module")
def models(weights: dict[str, object]) -> dict[str, LPIPS]:
    full = weights["full"]
    assert isinstance(full, Path)
    return {net: LPIPS(net, backbone=full / TV_FILE[net], heads=full / HEADS_FILE[net]) for net in NETS}


def photo(size: int = 96) -> np.ndarray:
    bgr = cv2.imread(str(Path(__file__).resolve().parents[1] / "examples" / "chelsea.png"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[40 : 40 + size, 110 : 110 + size, ::-1])


def reference(net: str, bb: dict[str, torch.Tensor], heads: dict[str, torch.Tensor],
              a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 straight from the definition, with the file tensors and torch.functional only."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=a.dtype).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=a.dtype).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - shift) / scale
        taps, last_conv = [], None
        for step in ARCH[net]:
            if step[0] == "conv":
                _, idx, _, _, _, stride, pad = step
                w, bias = bb[f"features.{idx}.weight"], bb[f"features.{idx}.bias"]
                x = F.conv2d(x, w.to(x.dtype), bias.to(x.dtype), stride=stride, padding=pad)
                last_conv = idx
            elif step[0] == "relu":
                x = F.relu(x)
                if last_conv in TAP_AFTER_CONV[net]:
                    taps.append(x)
            else:
                x = F.max_pool2d(x, kernel_size=step[1], stride=2)
        return taps

    total = torch.zeros(a.shape[0], dtype=a.dtype)
    for k, (fa, fb) in enumerate(zip(features(a), features(b), strict=True)):
        na = fa / (torch.sqrt((fa**2).sum(dim=1, keepdim=True)) + 1e-10)
        nb = fb / (torch.sqrt((fb**2).sum(dim=1, keepdim=True)) + 1e-10)
        w = heads[f"lin{k}.model.1.weight"].reshape(-1).to(a.dtype)
        total += torch.einsum("nchw,c->nhw", (na - nb) ** 2, w).mean(dim=(1, 2))
    return total


def pair(seed: int = 0, n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return a, torch.rand(n, 3, size, size, generator=g) * 2 - 1


# --- the metric -------------------------------------------------------------------------------

@pytest.mark.parametrize("net", NETS)
def test_matches_independent_recomputation(net: str, models: dict[str, LPIPS],
                                           weights: dict[str, object]) -> None:
    model = models[net]
    bb, heads = weights[f"{net}_bb"], weights[f"{net}_heads"]
    assert isinstance(bb, dict) and isinstance(heads, dict)
    a, b = pair(1)
    with torch.no_grad():
        got = model(a, b)
        ref = reference(net, bb, heads, a, b)
        got64 = model.double()(a.double(), b.double())
        model.float()
        ref64 = reference(net, bb, heads, a.double(), b.double())
    assert got.shape == (2,)
    # float64 agrees to rounding; the residue is the float32 scaling constants (as in lpips itself)
    assert torch.allclose(got64, ref64, rtol=0, atol=1e-9), (got64 - ref64)
    assert torch.allclose(got, ref, rtol=0, atol=1e-6), (got, ref)
    assert torch.allclose(got.double(), ref64, rtol=0, atol=1e-6)


@pytest.mark.parametrize("net", NETS)
def test_identity_symmetry_and_positivity(net: str, models: dict[str, LPIPS]) -> None:
    model = models[net]
    a, b = pair(2)
    with torch.no_grad():
        assert torch.all(model(a, a) == 0)
        assert torch.equal(model(a, b), model(b, a))
        assert torch.all(model(a, b) > 0)
    img = photo()
    assert lpips_distance(img, img, model) == 0.0
    assert lpips_distance(img, img[:, ::-1], model) > 0


@pytest.mark.parametrize("net", NETS)
def test_stronger_noise_on_a_photo_is_farther(net: str, models: dict[str, LPIPS]) -> None:
    img = photo()
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(img.shape)
    dists = [lpips_distance(img, np.clip(img + s * noise, 0, 255).round().astype(np.uint8), models[net])
             for s in (3, 10, 30, 80)]
    assert all(x < y for x, y in itertools.pairwise(dists)), dists
    assert dists[0] > 0


def test_gradients_reach_the_inputs(models: dict[str, LPIPS]) -> None:
    a, b = pair(3, n=1)
    a.requires_grad_(True)
    models["alex"](a, b).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in models["alex"].parameters())


def test_bad_inputs_are_refused(models: dict[str, LPIPS]) -> None:
    a, _ = pair(4, size=30)
    with pytest.raises(ValueError, match="at least 31x31"):
        models["alex"](a, a)
    a, b = pair(4, size=32)
    with pytest.raises(ValueError, match="differ in shape"):
        models["alex"](a, b[:, :, :31])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        models["alex"](a[:, :1], b[:, :1])
    img = photo(40)
    with pytest.raises(ValueError, match="RGB uint8"):
        lpips_distance(img.astype(np.float32), img, models["alex"])


# --- where the weights come from --------------------------------------------------------------

def distance_of(model: LPIPS) -> torch.Tensor:
    a, b = pair(5, n=1)
    with torch.no_grad():
        return model(a, b)


@pytest.mark.parametrize("net", NETS)
def test_every_route_loads_the_same_weights(net: str, weights: dict[str, object], models: dict[str, LPIPS],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    full, bb_dir, wheel = weights["full"], weights["bb"], weights["wheel"]
    assert isinstance(full, Path) and isinstance(bb_dir, Path) and isinstance(wheel, Path)
    expected = distance_of(models[net])
    assert models[net].sources == {"backbone": str(full / TV_FILE[net]), "heads": str(full / HEADS_FILE[net])}

    # SUPERRES_LPIPS_DIR holding torchvision's file and lpips' heads file.
    monkeypatch.setenv("SUPERRES_LPIPS_DIR", str(full))
    m = LPIPS(net)
    assert m.sources == {"backbone": str(full / TV_FILE[net]), "heads": str(full / HEADS_FILE[net])}
    assert torch.equal(distance_of(m), expected)

    # Backbone from the folder, heads from a downloaded lpips wheel (read as a zip, not imported).
    monkeypatch.setenv("SUPERRES_LPIPS_DIR", str(bb_dir))
    monkeypatch.setenv("SUPERRES_CARRIERS", str(wheel))
    m = LPIPS(net)
    assert m.sources["heads"] == f"{wheel}!lpips/weights/v0.1/{HEADS_FILE[net]}"
    assert torch.equal(distance_of(m), expected)
    assert "lpips" not in sys.modules

    # Explicit backbone path; heads from an "installed" lpips package found with find_spec.
    monkeypatch.delenv("SUPERRES_LPIPS_DIR")
    monkeypatch.delenv("SUPERRES_CARRIERS")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(importlib.util, "find_spec", _REAL_FIND_SPEC)
    m = LPIPS(net, backbone=bb_dir / TV_FILE[net])
    assert m.sources["heads"] == str(site / "lpips" / "weights" / "v0.1" / HEADS_FILE[net])
    assert torch.equal(distance_of(m), expected)
    assert "lpips" not in sys.modules

    # The torch hub cache, where torchvision keeps the file it downloads.
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / TV_FILE[net]).hardlink_to(full / TV_FILE[net])
    m = LPIPS(net, heads=full / HEADS_FILE[net])
    assert m.sources["backbone"] == str(hub / TV_FILE[net])
    assert torch.equal(distance_of(m), expected)


@pytest.mark.parametrize("net", NETS)
def test_combined_files(net: str, weights: dict[str, object], models: dict[str, LPIPS],
                        tmp_path: Path) -> None:
    bb, heads = weights[f"{net}_bb"], weights[f"{net}_heads"]
    assert isinstance(bb, dict) and isinstance(heads, dict)
    expected = distance_of(models[net])
    # torchvision keys + heads in one file, given as either argument
    combined = tmp_path / "combined.pth"
    torch.save({**bb, **heads}, combined)
    for kwargs in ({"backbone": combined}, {"heads": combined}):
        m = LPIPS(net, **kwargs)
        assert m.sources == {"backbone": str(combined), "heads": str(combined)}
        assert torch.equal(distance_of(m), expected)
    # the lpips module's own state dict: net.sliceK.N.*, lin{k} and lins.{k}, scaling buffers
    slices = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}[net]
    module_sd: dict[str, torch.Tensor] = {"scaling_layer.shift": torch.zeros(1, 3, 1, 1),
                                          "scaling_layer.scale": torch.ones(1, 3, 1, 1)}
    for key, v in bb.items():
        if key.startswith("features."):
            idx = int(key.split(".")[1])
            k = next(i for i, end in enumerate(slices) if idx < end) + 1
            module_sd[f"net.slice{k}.{key[len('features.'):]}"] = v
    for key, v in heads.items():
        module_sd[key] = v
        module_sd["lins." + key[3:]] = v
    module_file = tmp_path / "lpips_module.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in module_sd.items()}}, module_file)
    assert torch.equal(distance_of(LPIPS(net, backbone=module_file)), expected)


def test_safetensors_files(weights: dict[str, object], models: dict[str, LPIPS], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bb, heads = weights["alex_bb"], weights["alex_heads"]
    assert isinstance(bb, dict) and isinstance(heads, dict)
    save_file(bb, tmp_path / "alexnet.safetensors")
    save_file(heads, tmp_path / "alex.safetensors")
    m = LPIPS("alex", backbone=tmp_path / "alexnet.safetensors", heads=tmp_path / "alex.safetensors")
    assert torch.equal(distance_of(m), distance_of(models["alex"]))


def test_classifier_keys_are_ignored(weights: dict[str, object]) -> None:
    full = weights["full"]
    assert isinstance(full, Path)
    on_disk = torch.load(full / TV_FILE["alex"], weights_only=True)
    assert "classifier.1.weight" in on_disk  # arbitrary shapes, yet the file loads
    m = LPIPS("alex", backbone=full / TV_FILE["alex"], heads=full / HEADS_FILE["alex"])
    assert not any(k.startswith("classifier") for k in m.state_dict())


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("net", NETS)
def test_missing_backbone_names_the_file_and_how_to_get_it(net: str, weights: dict[str, object],
                                                           tmp_path: Path) -> None:
    full = weights["full"]
    assert isinstance(full, Path)
    with pytest.raises(LPIPSWeightsMissing) as exc:
        LPIPS(net, heads=full / HEADS_FILE[net])
    msg = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert TV_FILE[net] in msg and "SUPERRES_LPIPS_DIR" in msg
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in msg  # where it looked
    assert "backbone=PATH" in msg


@pytest.mark.parametrize("net", NETS)
def test_missing_heads_names_the_file_and_how_to_get_it(net: str, weights: dict[str, object],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bb_dir = weights["bb"]
    assert isinstance(bb_dir, Path)
    monkeypatch.setenv("SUPERRES_LPIPS_DIR", str(bb_dir))
    with pytest.raises(LPIPSWeightsMissing) as exc:
        LPIPS(net)
    msg = str(exc.value)
    assert f"lpips/weights/v0.1/{HEADS_FILE[net]}" in msg
    assert str(bb_dir) in msg and "SUPERRES_CARRIERS (not set)" in msg and "not installed" in msg
    assert "pip download --no-deps lpips" in msg and "SUPERRES_CARRIERS=" in msg


def test_missing_explicit_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(LPIPSWeightsMissing, match=r"nope\.pth"):
        LPIPS("alex", backbone=tmp_path / "nope.pth")


def test_wrong_network_file_names_the_file_and_key(weights: dict[str, object]) -> None:
    full = weights["full"]
    assert isinstance(full, Path)
    with pytest.raises(ValueError, match=r"alex\.pth: key 'lin1\.model\.1\.weight' has shape "
                                         r"\(1, 192, 1, 1\)"):
        LPIPS("vgg", backbone=full / TV_FILE["vgg"], heads=full / HEADS_FILE["alex"])
    with pytest.raises(LPIPSWeightsError, match=r"alexnet-owt-7be5be79\.pth: key 'features\.0\.weight' "
                                                 r"has shape \(64, 3, 11, 11\), expected \(64, 3, 3, 3\)"):
        LPIPS("vgg", backbone=full / TV_FILE["alex"], heads=full / HEADS_FILE["vgg"])


def test_bad_shape_and_missing_key(weights: dict[str, object], tmp_path: Path) -> None:
    bb, heads = weights["alex_bb"], weights["alex_heads"]
    assert isinstance(bb, dict) and isinstance(heads, dict)
    bad = tmp_path / "bad.pth"
    torch.save({**bb, "features.3.weight": torch.zeros(192, 64, 3, 3)}, bad)
    with pytest.raises(ValueError, match=r"bad\.pth: key 'features\.3\.weight' has shape \(192, 64, 3, 3\), "
                                         r"expected \(192, 64, 5, 5\)"):
        LPIPS("alex", backbone=bad, heads=weights["full"] / HEADS_FILE["alex"])  # type: ignore[operator]
    short = tmp_path / "short.pth"
    torch.save({k: v for k, v in heads.items() if not k.startswith("lin4")}, short)
    with pytest.raises(ValueError, match=r"short\.pth: key 'lin4\.model\.1\.weight' is missing"):
        LPIPS("alex", backbone=weights["full"] / TV_FILE["alex"], heads=short)  # type: ignore[operator]
    with pytest.raises(LPIPSWeightsError, match="no LPIPS head tensors"):
        LPIPS("alex", heads=weights["full"] / TV_FILE["alex"])  # type: ignore[operator]
    with pytest.raises(ValueError, match="net must be one of"):
        LPIPS("squeeze")


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "alex.pth"
    torch.save({"lin0.model.1.weight": _Payload()}, evil)
    with pytest.raises(LPIPSWeightsError, match="refused to load"):
        LPIPS("alex", heads=evil)


def test_lazy_export_from_superres_metrics() -> None:
    import superres.metrics as metrics

    assert metrics.LPIPS is LPIPS
    assert metrics.LPIPSWeightsMissing is LPIPSWeightsMissing
    with pytest.raises(AttributeError):
        _ = metrics.NotAThing  # type: ignore[attr-defined]
