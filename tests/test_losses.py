"""Training losses and GAN discriminators, on tiny tensors.

No real VGG19 weights are available offline, so the perceptual tests use random tensors saved
in torchvision's ``vgg19().features`` key layout; the architecture is written out here
independently of ``superres.train.losses``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from superres.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from superres.train.losses import (
    CharbonnierLoss,
    GANLoss,
    L1Loss,
    MSELoss,
    PerceptualLoss,
    PerceptualWeightsError,
    PerceptualWeightsMissing,
    VGG19Features,
    build_losses,
)

TV_FILE = "vgg19-dcbb9e9d.pth"
# torchvision vgg19().features: index of each 3x3 conv -> (out, in); ReLU at index + 1, 2x2 max
# pools at 4, 9, 18, 27, 36.
VGG19_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128),
               10: (256, 128), 12: (256, 256), 14: (256, 256), 16: (256, 256),
               19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512),
               28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512)}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SHALLOW = {"conv1_2": 0.1, "conv2_2": 1.0}


class _NotATensor:
    """Pickled into a weight file to check that such files are refused, not executed."""


def random_vgg19(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-initialised ``features.*`` plus a (small, arbitrary) ``classifier.*`` entry."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for idx, (cout, cin) in VGG19_CONVS.items():
        sd[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (cin * 9)) ** 0.5
        sd[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.01
    sd["classifier.0.weight"] = torch.randn(4, 3, generator=g)
    return sd


@pytest.fixture(scope="module")
def vgg19_sd() -> dict[str, torch.Tensor]:
    return random_vgg19()


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory: pytest.TempPathFactory, vgg19_sd: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("vgg19") / TV_FILE
    torch.save(vgg19_sd, path)
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No lookup escapes the test: SUPERRES_VGG19 unset, an empty torch hub."""
    monkeypatch.delenv("SUPERRES_VGG19", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(scope="module")
def shallow_loss(vgg19_file: Path) -> PerceptualLoss:
    return PerceptualLoss(vgg19=vgg19_file, layer_weights=SHALLOW)


def images(n: int = 2, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth image batch in [0, 1] and a noisy copy of it."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None].repeat(n, 1, 1, 1)
    noisy = (base + 0.1 * torch.randn(base.shape, generator=g)).clamp(0, 1)
    return base, noisy


# --- pixel losses -------------------------------------------------------------------------------

def test_pixel_losses_known_values() -> None:
    pred = torch.tensor([[0.0, 1.0], [2.0, -3.0]]).view(1, 1, 2, 2)
    zero = torch.zeros_like(pred)
    assert L1Loss()(pred, zero).item() == pytest.approx(1.5)
    assert L1Loss(weight=2.0)(pred, zero).item() == pytest.approx(3.0)
    assert MSELoss()(pred, zero).item() == pytest.approx(3.5)
    assert MSELoss(weight=0.5)(pred, zero).item() == pytest.approx(1.75)
    assert L1Loss(reduction="sum")(pred, zero).item() == pytest.approx(6.0)
    assert torch.equal(MSELoss(reduction="none")(pred, zero), pred**2)
    eps = 1e-3
    expected = sum(math.sqrt(v * v + eps * eps) for v in (0.0, 1.0, 2.0, 3.0)) / 4
    assert CharbonnierLoss()(pred, zero).item() == pytest.approx(expected, rel=1e-6)
    assert CharbonnierLoss(eps=0.5, weight=3.0)(zero, zero).item() == pytest.approx(1.5)  # sqrt(eps^2)
    with pytest.raises(ValueError, match="differ in shape"):
        L1Loss()(pred, zero[0])
    with pytest.raises(ValueError, match="reduction"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=">= 0"):
        L1Loss(weight=-1)


def test_charbonnier_tends_to_l1() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    l1 = L1Loss()(a, b).item()
    gaps = [CharbonnierLoss(eps=e)(a, b).item() - l1 for e in (1e-1, 1e-2, 1e-3, 1e-5)]
    assert all(gap >= -1e-7 for gap in gaps)  # sqrt(d^2 + eps^2) >= |d|
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-5
    assert CharbonnierLoss(eps=0.0)(a, b).item() == pytest.approx(l1, rel=1e-6)


# --- VGG19 / perceptual -------------------------------------------------------------------------

def test_vgg19_taps_and_shapes(vgg19_file: Path, vgg19_sd: dict[str, torch.Tensor]) -> None:
    layers = ["conv1_1", "conv1_2", "relu2_1", "conv2_2", "conv3_4", "conv4_4", "conv5_4", "pool5"]
    vgg = VGG19Features(layers, weights=vgg19_file)
    assert len(vgg.features) == 37  # up to pool5: all of torchvision's vgg19().features
    assert set(vgg.state_dict()) == {f"features.{i}.{p}" for i in VGG19_CONVS for p in ("weight", "bias")}
    x, _ = images(1, 64)
    out = vgg(x)
    assert list(out) == layers
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"conv1_1": (1, 64, 64, 64), "conv1_2": (1, 64, 64, 64), "relu2_1": (1, 128, 32, 32),
                      "conv2_2": (1, 128, 32, 32), "conv3_4": (1, 256, 16, 16), "conv4_4": (1, 512, 8, 8),
                      "conv5_4": (1, 512, 4, 4), "pool5": (1, 512, 2, 2)}
    # Independent recomputation of the first taps from the file's tensors.
    def conv(t: torch.Tensor, i: int) -> torch.Tensor:
        return F.conv2d(t, vgg19_sd[f"features.{i}.weight"], vgg19_sd[f"features.{i}.bias"], padding=1)

    c11 = conv((x - MEAN) / STD, 0)
    c12 = conv(F.relu(c11), 2)
    r21 = F.relu(conv(F.max_pool2d(F.relu(c12), 2), 5))
    torch.testing.assert_close(out["conv1_1"], c11, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["conv1_2"], c12, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["relu2_1"], r21, rtol=1e-5, atol=1e-5)
    assert (out["conv1_2"] < 0).any()  # conv taps are taken before their ReLU
    # range_norm: [-1, 1] input gives what [0, 1] gives without it.
    vgg_r = VGG19Features(["conv1_1"], weights=vgg19_sd, range_norm=True)
    torch.testing.assert_close(vgg_r(x * 2 - 1)["conv1_1"], c11, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="conv6_1"):
        VGG19Features(["conv6_1"], weights=vgg19_sd)
    with pytest.raises(ValueError, match="at least 16x16"):  # four pools before conv5_1
        VGG19Features(["conv5_1"], weights=vgg19_sd)(torch.zeros(1, 3, 8, 8))


def test_perceptual_zero_positive_and_gradients(shallow_loss: PerceptualLoss) -> None:
    base, noisy = images()
    assert shallow_loss(base, base.clone()).item() == pytest.approx(0.0, abs=1e-6)
    pred = noisy.clone().requires_grad_(True)
    loss = shallow_loss(pred, base)
    assert loss.item() > 0
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    for p in shallow_loss.parameters():
        assert not p.requires_grad and p.grad is None
    shallow_loss.train()
    assert not shallow_loss.vgg.training  # a frozen extractor stays in eval mode


def test_perceptual_value_matches_definition(vgg19_sd: dict[str, torch.Tensor]) -> None:
    base, noisy = images(1, 32)
    vgg = VGG19Features(SHALLOW, weights=vgg19_sd)
    fa, fb = vgg(noisy), vgg(base)

    def gram(t: torch.Tensor) -> torch.Tensor:
        f = t.flatten(2)
        return f @ f.transpose(1, 2) / f[0].numel()

    def fro(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).sum().sqrt()

    for criterion, crit in (("l1", F.l1_loss), ("l2", F.mse_loss), ("fro", fro)):
        loss = PerceptualLoss(vgg19_sd, SHALLOW, criterion=criterion, perceptual_weight=2.0, style_weight=3.0)
        comps = loss.components(noisy, base)
        want_p = 2.0 * sum(w * crit(fa[k], fb[k]) for k, w in SHALLOW.items())
        want_s = 3.0 * sum(w * crit(gram(fa[k]), gram(fb[k])) for k, w in SHALLOW.items())
        torch.testing.assert_close(comps["perceptual"], want_p, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(comps["style"], want_s, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(loss(noisy, base), want_p + want_s, rtol=1e-5, atol=1e-7)
    only_p = PerceptualLoss(vgg19_sd, SHALLOW)
    assert set(only_p.components(noisy, base)) == {"perceptual"}
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss(vgg19_sd, SHALLOW, criterion="l3")


def test_perceptual_weight_routes(vgg19_file: Path, shallow_loss: PerceptualLoss,
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base, noisy = images()
    want = shallow_loss(noisy, base)
    assert shallow_loss.vgg.source == str(vgg19_file)
    # $SUPERRES_VGG19 as the file, then as its folder.
    for env in (vgg19_file, vgg19_file.parent):
        monkeypatch.setenv("SUPERRES_VGG19", str(env))
        loss = PerceptualLoss(layer_weights=SHALLOW)
        assert loss.vgg.source == str(vgg19_file)
        torch.testing.assert_close(loss(noisy, base), want)
    monkeypatch.delenv("SUPERRES_VGG19")
    # $TORCH_HOME/hub/checkpoints, where torchvision keeps its downloads.
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / TV_FILE).symlink_to(vgg19_file)
    loss = PerceptualLoss(layer_weights=SHALLOW)
    assert loss.vgg.source == str(hub / TV_FILE)
    torch.testing.assert_close(loss(noisy, base), want)


def test_perceptual_weights_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(PerceptualWeightsMissing) as info:
        PerceptualLoss(layer_weights=SHALLOW)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for part in (TV_FILE, "SUPERRES_VGG19", str(tmp_path / "torch-home" / "hub" / "checkpoints"),
                 "download", "vgg19=PATH"):
        assert part in msg, part
    with pytest.raises(PerceptualWeightsMissing, match=r"nowhere\.pth"):
        PerceptualLoss(vgg19=tmp_path / "nowhere.pth", layer_weights=SHALLOW)
    monkeypatch.setenv("SUPERRES_VGG19", str(tmp_path / "gone.pth"))
    with pytest.raises(PerceptualWeightsMissing, match=r"gone\.pth"):
        PerceptualLoss(layer_weights=SHALLOW)


def test_perceptual_bad_files(tmp_path: Path, vgg19_sd: dict[str, torch.Tensor]) -> None:
    wrong = {k: vgg19_sd[k] for k in ("features.0.weight", "features.0.bias", "features.2.bias")}
    wrong["features.2.weight"] = torch.zeros(32, 64, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(PerceptualWeightsError, match=r"features\.2\.weight"):
        PerceptualLoss(vgg19=tmp_path / "wrong.pth", layer_weights=SHALLOW)
    torch.save({"features.0.weight": vgg19_sd["features.0.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(PerceptualWeightsError, match=r"features\.0\.bias"):
        PerceptualLoss(vgg19=tmp_path / "partial.pth", layer_weights=SHALLOW)
    evil = {"features.0.weight": vgg19_sd["features.0.weight"], "x": _NotATensor()}
    torch.save(evil, tmp_path / "evil.pth")
    with pytest.raises(PerceptualWeightsError, match="refused"):
        PerceptualLoss(vgg19=tmp_path / "evil.pth", layer_weights=SHALLOW)


# --- GAN losses ---------------------------------------------------------------------------------

def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_gan_losses_known_values() -> None:
    big, t = torch.full((4, 1), 30.0), torch.tensor
    vanilla = GANLoss("vanilla", weight=0.1)
    assert vanilla.d_loss(big, -big).item() < 1e-6  # perfectly separated
    assert vanilla.d_loss(-big, big).item() == pytest.approx(60.0, rel=1e-4)
    assert vanilla.d_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(2 * math.log(2))
    assert vanilla.g_loss(None, torch.zeros(3)).item() == pytest.approx(0.1 * math.log(2))  # weighted
    assert vanilla(torch.zeros(3), True, is_disc=True).item() == pytest.approx(math.log(2))
    lsgan = GANLoss("lsgan")
    assert lsgan.d_loss(t([1.0, 1.0]), t([0.0, 0.0])).item() == 0.0
    assert lsgan.d_loss(t([0.0]), t([1.0])).item() == pytest.approx(2.0)
    assert lsgan.g_loss(None, t([0.0, 0.5])).item() == pytest.approx((1 + 0.25) / 2)
    smooth = GANLoss("lsgan", real_label=0.9, fake_label=0.1)
    assert smooth.d_loss(t([0.9]), t([0.1])).item() == pytest.approx(0.0, abs=1e-12)
    hinge = GANLoss("hinge")
    assert hinge.d_loss(t([2.0, 1.0]), t([-1.0, -3.0])).item() == 0.0
    assert hinge.d_loss(t([0.0]), t([0.5])).item() == pytest.approx(1.0 + 1.5)
    assert hinge.g_loss(None, t([1.0, 3.0])).item() == pytest.approx(-2.0)
    wgan = GANLoss("wgan")
    assert wgan.d_loss(t([1.0, 3.0]), t([0.5])).item() == pytest.approx(-2.0 + 0.5)
    assert wgan.g_loss(None, t([0.5])).item() == pytest.approx(-0.5)
    sp = GANLoss("wgan_softplus")
    assert sp.d_loss(t([1.0]), t([2.0])).item() == pytest.approx(_softplus(-1.0) + _softplus(2.0))
    assert sp.g_loss(None, t([2.0])).item() == pytest.approx(_softplus(-2.0))
    # RaGAN by hand: r - E f = [1, 3], f - E r = [-2, -2]; BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x).
    ragan = GANLoss("ragan")
    r, f = t([1.0, 3.0]), t([0.0, 0.0])
    d = 0.5 * ((_softplus(-1) + _softplus(-3)) / 2 + _softplus(-2))
    g = 0.5 * ((_softplus(1) + _softplus(3)) / 2 + _softplus(2))
    assert ragan.d_loss(r, f).item() == pytest.approx(d)
    assert ragan.g_loss(r, f).item() == pytest.approx(g)
    with pytest.raises(ValueError, match="real logits"):
        ragan.g_loss(None, f)
    with pytest.raises(ValueError, match="vanilla, lsgan, hinge, ragan"):
        GANLoss("wasserstein")


def test_ragan_swap_symmetry_and_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    torch.testing.assert_close(GANLoss("ragan").g_loss(r, f), GANLoss("ragan").d_loss(f, r))
    torch.testing.assert_close(GANLoss("ragan", weight=0.1).g_loss(r, f), 0.1 * GANLoss("ragan").d_loss(f, r))
    for gan_type in ("vanilla", "lsgan", "hinge", "ragan", "wgan", "wgan_softplus"):
        loss = GANLoss(gan_type)
        rr, ff = r.clone().requires_grad_(True), (f + 0.5).requires_grad_(True)
        loss.d_loss(rr, ff).backward()
        assert rr.grad is not None and ff.grad is not None, gan_type
        assert rr.grad.abs().sum() > 0 and ff.grad.abs().sum() > 0, gan_type
        ff2 = f.clone().requires_grad_(True)
        loss.g_loss(r, ff2).backward()
        assert ff2.grad is not None and ff2.grad.abs().sum() > 0, gan_type


# --- discriminators -----------------------------------------------------------------------------

def _train_two_steps(net: torch.nn.Module, gan: GANLoss, real: torch.Tensor,
                     fake: torch.Tensor, sn_warmup: int = 0) -> list[float]:
    """d_loss before, after one and after two Adam steps on D.

    ``sn_warmup`` forwards first let spectral norm's power iteration (one step per training
    forward) settle, so the measured change is the optimiser's, not the sigma estimate's.
    """
    with torch.no_grad():
        for _ in range(sn_warmup):
            net(real)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(3):
        loss = gan.d_loss(net(real), net(fake))
        losses.append(loss.item())
        if step < 2:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return losses


def test_vgg_style_discriminator() -> None:
    torch.manual_seed(0)
    net = VGGStyleDiscriminator(num_in_ch=3, num_feat=4, input_size=128)
    tops = {k.split(".")[0] for k in net.state_dict()}
    assert tops == {"conv0_0", "conv0_1", "bn0_1", "linear1", "linear2",
                    *(f"{m}{i}_{j}" for m in ("conv", "bn") for i in range(1, 5) for j in (0, 1))}
    assert net.linear1.in_features == 4 * 8 * 4 * 4
    assert net(images(2, 128)[0]).shape == (2, 1)
    big = VGGStyleDiscriminator(3, 4, 256)  # BasicSR's 256 variant: one more stage, still 4x4
    assert hasattr(big, "conv5_1") and big.linear1.in_features == 4 * 8 * 4 * 4
    small = VGGStyleDiscriminator(3, 4, 64)  # 2x2 after the five stages
    assert small.linear1.in_features == 4 * 8 * 2 * 2
    real, _ = images(2, 64)
    fake = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    losses = _train_two_steps(small, GANLoss("vanilla"), real, fake)
    assert losses[2] < losses[1] < losses[0], losses
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGStyleDiscriminator(input_size=100)
    with pytest.raises(ValueError, match="128"):
        net(torch.zeros(1, 3, 64, 64))


def test_unet_discriminator_sn() -> None:
    torch.manual_seed(0)
    net = UNetDiscriminatorSN(num_in_ch=3, num_feat=8)
    keys = set(net.state_dict())
    for i in range(1, 9):
        assert {f"conv{i}.weight_orig", f"conv{i}.weight_u", f"conv{i}.weight_v"} <= keys
        assert f"conv{i}.bias" not in keys
    assert {"conv0.weight", "conv0.bias", "conv9.weight", "conv9.bias"} <= keys
    twin = UNetDiscriminatorSN(num_in_ch=3, num_feat=8)
    twin.load_state_dict(net.state_dict(), strict=True)  # the upstream layout round-trips
    real, _ = images(2, 32)
    fake = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert net(real).shape == (2, 1, 32, 32)  # a logit per pixel
    assert UNetDiscriminatorSN(1, 4, skip_connection=False)(torch.zeros(1, 1, 16, 24)).shape == (1, 1, 16, 24)
    losses = _train_two_steps(net, GANLoss("vanilla"), real, fake, sn_warmup=10)
    assert losses[2] < losses[1] < losses[0], losses
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 20, 32))


# --- factory ------------------------------------------------------------------------------------

def test_build_losses(vgg19_file: Path) -> None:
    lw = {"conv1_2": 0.1, "conv2_2": 0.1}
    losses = build_losses([
        {"type": "l1", "weight": 1.0},
        {"type": "perceptual", "weight": 0.5, "layer_weights": lw, "vgg19": str(vgg19_file)},
        {"type": "gan", "gan_type": "ragan", "weight": 0.1},
    ])
    assert list(losses) == ["l1", "perceptual", "gan"]
    assert isinstance(losses["l1"], L1Loss) and losses["l1"].weight == 1.0
    perc = losses["perceptual"]
    assert isinstance(perc, PerceptualLoss) and perc.perceptual_weight == 0.5 and perc.layer_weights == lw
    gan = losses["gan"]
    assert isinstance(gan, GANLoss) and gan.gan_type == "ragan" and gan.weight == 0.1
    # BasicSR spellings, and two losses of one type under distinct names.
    more = build_losses([{"type": "L1Loss", "loss_weight": 2.0},
                         {"type": "CharbonnierLoss", "eps": 1e-6, "name": "charb"},
                         {"type": "l2", "name": "mse2", "reduction": "sum"},
                         {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 0.9}])
    assert more["l1"].weight == 2.0 and more["charb"].eps == 1e-6
    assert isinstance(more["mse2"], MSELoss) and more["gan"].real_label == 0.9


@pytest.mark.parametrize(("specs", "match"), [
    ([{"type": "ssim"}], r"unknown loss type 'ssim'; valid types: l1, mse \(l2\), charbonnier, perceptual"),
    ([{"weight": 1.0}], "missing 'type'"),
    ([{"type": "l1", "eps": 1e-3}], r"unknown option 'eps'; valid options: name, weight, reduction"),
    ([{"type": "perceptual", "vgg": "x"}], "valid options: .*vgg19.*layer_weights"),
    ([{"type": "gan", "gan_type": "ragan", "weight": 0.1, "loss_weight": 0.1}], "given twice"),
    ([{"type": "l1"}, {"type": "l1"}], "distinct 'name'"),
    ([{"type": "gan", "gan_type": "nope"}], "gan_type must be one of"),
    ({"type": "l1"}, "list of loss specs"),
    (["l1"], "expected a mapping"),
])
def test_build_losses_errors(specs: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_losses(specs)  # type: ignore[arg-type]
