"""`superres train`: configs, data, the loop, exact resume, DDP, checkpoints, example configs.

Every run is tiny (ESPCN/SRVGG/FSRCNN with 8 features, 16 px HR patches, a handful of
iterations) on crops of the bundled photo, so the whole file takes seconds on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from superres.metrics import imresize
from superres.train.config import ConfigError, load_config, parse_config
from superres.train.data import IterationBatchSampler
from superres.train.trainer import CHECKPOINT, Trainer, TrainError
from tests.conftest import REPO, SHARED_DATA
from tests.helpers import photo, save_rgb

TRAIN_CROPS = [(10, 10), (10, 120), (100, 40), (140, 200), (60, 250)]  # (y, x) of 40x40 crops
VAL_CROPS = [(120, 100), (20, 200)]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """These models are tiny: one intra-op thread is faster (and steady on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HR train crops, their MATLAB-bicubic x2 LR (paired mode), and HR validation crops."""
    root = tmp_path_factory.mktemp("data")
    dirs = {k: root / k for k in ("hr", "lr", "val")}
    for d in dirs.values():
        d.mkdir()
    for i, (y, x) in enumerate(TRAIN_CROPS):
        hr = photo(40, 40, y, x)
        save_rgb(dirs["hr"] / f"img{i}.png", hr)
        save_rgb(dirs["lr"] / f"img{i}x2.png", imresize(hr, 0.5))
    for i, (y, x) in enumerate(VAL_CROPS):
        save_rgb(dirs["val"] / f"val{i}.png", photo(40, 40, y, x))
    return dirs


def raw_config(dirs: dict[str, Path], out: Path, *, paired: bool = True, **sections: Any) -> dict[str, Any]:
    data = dirs
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "scale": 2,
        "model": {"arch": "espcn", "options": {"num_channels": 3, "n1": 8, "n2": 8}},
        "data": {
            "train": {"hr": str(data["hr"]), "lr": str(data["lr"]) if paired else None, "patch_size": 16,
                      "batch_size": 4, "workers": 0, "repeat": 4},
            "val": {"hr": str(data["val"]), "every": 4},
        },
        "losses": [{"type": "l1", "weight": 1.0}],
        "optim": {"type": "adam", "lr": 5e-3, "betas": [0.9, 0.99]},
        "schedule": {"type": "cosine", "min_lr": 1e-4},
        "train": {"iterations": 12, "ema": 0.9, "checkpoint_every": 4, "log_every": 2},
        "output": str(out),
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def train(raw: dict[str, Any], base: Path, *, resume: bool = False, stop_at: int | None = None) -> Trainer:
    trainer = Trainer(parse_config(raw, base), device="cpu", resume=resume, progress=False,
                      echo=lambda _msg: None)
    trainer.run(stop_at=stop_at)
    return trainer


def log_records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def tensors(out: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint: model, EMA, optimiser state(s), discriminator."""
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            flat[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}[{i}]", v)

    for key in ("model", "ema", "optim", "net_d", "optim_d"):
        walk(key, state[key])
    return flat


# ------------------------------------------------------------------------------ (a) it learns


def test_tiny_run_lowers_loss_and_raises_val_psnr(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    raw = raw_config(data, out, train={"iterations": 40, "ema": None, "checkpoint_every": 40, "log_every": 5},
                     data={"train": raw_config(data, out)["data"]["train"],
                           "val": {"hr": str(data["val"]), "every": 20}})
    train(raw, tmp_path)
    recs = log_records(out)
    losses = [r["losses"]["l1"] for r in recs if "losses" in r]
    vals = [(r["iteration"], r["val"]["psnr"]) for r in recs if "val" in r]
    assert [it for it, _ in vals] == [0, 20, 40]
    assert losses[-1] < 0.5 * losses[0], losses
    assert vals[-1][1] > vals[0][1] + 3.0, vals
    first = next(r for r in recs if "losses" in r)
    for key in ("iteration", "losses", "lr", "it_per_s"):
        assert key in first
    for name in ("checkpoint.pt", "best.safetensors", "last.safetensors", "log.jsonl", "loss.png", "val.png"):
        assert (out / name).is_file(), name
    assert (out / "val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from superres.train.plots import compare_runs  # the docs figure of several runs

    fig = compare_runs({"tiny": out / "log.jsonl"}, tmp_path / "cmp.png", targets={"tiny": 30.0})
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 10_000
    from superres.train.plots import _stages  # a run in two stages is drawn end to end

    records, starts = _stages([out / "log.jsonl", out / "log.jsonl"])
    assert starts == [40] and [r["iteration"] for r in records if "val" in r] == [0, 20, 40, 40, 60, 80]
    staged = compare_runs({"two stages": [out / "log.jsonl"] * 2}, tmp_path / "staged.png")
    assert staged.stat().st_size > 10_000


# ------------------------------------------------------------------------------ (b) exact resume


@pytest.mark.parametrize("variant", ["paired-workers0", "bicubic-workers2", "gan"])
def test_stop_and_resume_is_bit_identical(data: dict[str, Path], tmp_path: Path, variant: str) -> None:
    extra: dict[str, Any] = {}
    if variant == "bicubic-workers2":
        extra["data"] = {"train": {**raw_config(data, tmp_path, paired=False)["data"]["train"], "workers": 2},
                         "val": {"hr": str(data["val"]), "every": 4}}
    if variant == "gan":
        extra["losses"] = [{"type": "l1", "weight": 1.0}, {"type": "gan", "gan_type": "ragan", "weight": 0.1}]
        extra["discriminator"] = {"arch": "unet", "options": {"num_feat": 8}}
        extra["model"] = {"arch": "srvgg", "options": {"num_feat": 8, "num_conv": 2}}
        extra["schedule"] = {"type": "multistep", "milestones": [5, 9], "gamma": 0.5}
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(raw_config(data, straight, **extra), tmp_path)
    first = train(raw_config(data, interrupted, **extra), tmp_path, stop_at=6)
    assert first.iteration == 6
    assert torch.load(interrupted / CHECKPOINT, weights_only=True)["iteration"] == 6
    train(raw_config(data, interrupted, **extra), tmp_path, resume=True)

    a, b = tensors(straight), tensors(interrupted)
    assert a.keys() == b.keys() and len(a) > 4
    for key in a:
        assert torch.equal(a[key], b[key]), key
    wa, wb = load_file(straight / "last.safetensors"), load_file(interrupted / "last.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the log of the resumed run reads like the uninterrupted one
    strip = [{k: v for k, v in r.items() if k != "it_per_s"} for r in log_records(straight)]
    strip_b = [{k: v for k, v in r.items() if k != "it_per_s"} for r in log_records(interrupted)]
    assert strip == strip_b


def test_existing_run_needs_resume(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(raw_config(data, out, train={"iterations": 2}), tmp_path)
    with pytest.raises(TrainError, match="--resume"):
        train(raw_config(data, out, train={"iterations": 2}), tmp_path)


# ------------------------------------------------------------------------------ (c) DDP


def test_two_process_ddp_matches_one_process(data: dict[str, Path], tmp_path: Path) -> None:
    """2 gloo processes x 2 samples == 1 process x 4 samples (the same global batch).

    DDP averages the two per-process mean gradients, which equals the one-process mean up to
    float rounding (summation order); Adam then turns ~1e-8 gradient differences into weight
    differences of the same tiny order, hence allclose rather than equal.
    """
    raw = raw_config(data, tmp_path / "ddp", train={"iterations": 6, "checkpoint_every": 6})
    cfg = write_config(tmp_path / "ddp.yaml", raw)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: no dependence on the host name
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "superres", "train", str(cfg), "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # one thread, as each torchrun process (fixture one_thread)
    train(raw_config(data, tmp_path / "single", train={"iterations": 6, "checkpoint_every": 6}), tmp_path)
    a, b = tensors(tmp_path / "ddp"), tensors(tmp_path / "single")
    assert a.keys() == b.keys()
    for key in a:
        if key.startswith(("model", "ema")):
            assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), (key, (a[key] - b[key]).abs().max())
    assert torch.load(tmp_path / "ddp" / CHECKPOINT, weights_only=True)["world_size"] == 2
    # only rank 0 logged: one record per log step
    its = [r["iteration"] for r in log_records(tmp_path / "ddp") if "losses" in r]
    assert its == [2, 4, 6]


def test_ranks_split_the_global_batch() -> None:
    whole = IterationBatchSampler(40, 8, seed=3, start=0, total=12)
    parts = [IterationBatchSampler(40, 8, seed=3, start=0, total=12, rank=r, world=2) for r in (0, 1)]
    for it in range(12):
        assert whole.batch(it) == parts[0].batch(it) + parts[1].batch(it)
    # an epoch visits every item once; epochs differ
    seen = [k for it in range(5) for k in whole.batch(it)]
    assert sorted(i for _, i in seen) == list(range(40))
    assert whole.batch(0) != whole.batch(5)
    with pytest.raises(ConfigError, match="divisible"):
        IterationBatchSampler(40, 7, seed=3, start=0, total=1, rank=0, world=2)


# ------------------------------------------------------------------------------ (d) bad configs


def _error(raw: dict[str, Any], base: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base)
    return str(info.value)


def test_bad_configs_name_the_key(data: dict[str, Path], tmp_path: Path) -> None:
    good = raw_config(data, tmp_path / "out")
    parse_config(good, tmp_path)  # the base is valid

    bad = raw_config(data, tmp_path / "out", optim={"lrr": 1e-3})
    assert _error(bad, tmp_path) == "unknown key 'optim.lrr' (did you mean 'lr'?)"

    bad = raw_config(data, tmp_path / "out", optim={"lr": "fast"})
    assert _error(bad, tmp_path) == "optim.lr: expected a number, got 'fast'"
    ok = raw_config(data, tmp_path / "out", optim={"lr": "1e-4"})  # PyYAML reads 1e-4 as a string
    assert parse_config(ok, tmp_path).optim.lr == 1e-4

    bad = raw_config(data, tmp_path / "out", train={"iterations": "ten"})
    assert _error(bad, tmp_path) == "train.iterations: expected an integer, got 'ten'"

    bad = raw_config(data, tmp_path / "out")
    bad["data"]["train"]["hr"] = [str(data["hr"]), "no/such/folder"]
    msg = _error(bad, tmp_path)
    assert msg == f"data.train.hr[1]: folder not found: {(tmp_path / 'no/such/folder').resolve()}"

    gan = {"type": "gan", "gan_type": "ragan", "weight": 0.1}
    bad = raw_config(data, tmp_path / "out", losses=[{"type": "l1", "weight": 1.0}, gan])
    assert _error(bad, tmp_path).startswith("discriminator: required because losses[1] is a gan loss")

    bad = raw_config(data, tmp_path / "out", discriminator={"arch": "unet"})
    assert _error(bad, tmp_path).startswith("discriminator: given but no loss has type 'gan'")

    bad = raw_config(data, tmp_path / "out")
    bad["data"]["train"]["patch_size"] = 15
    assert _error(bad, tmp_path).startswith("data.train.patch_size: must be a multiple of the scale (2)")

    bad = raw_config(data, tmp_path / "out", model={"arch": "espcnn"})
    assert _error(bad, tmp_path) == "model.arch: unknown architecture 'espcnn' (did you mean 'espcn'?)"

    bad = raw_config(data, tmp_path / "out", model={"arch": "espcn", "pretrained": "no-such-model"})
    assert _error(bad, tmp_path).startswith("model.pretrained: 'no-such-model' is neither a zoo model")


def test_relative_paths_resolve_against_the_config_file(data: dict[str, Path], tmp_path: Path) -> None:
    sub = tmp_path / "cfgs"
    sub.mkdir()
    raw = raw_config(data, tmp_path / "out")
    raw["data"]["train"]["hr"] = os.path.relpath(data["hr"], sub)
    raw["data"]["train"]["lr"] = os.path.relpath(data["lr"], sub)
    raw["output"] = "../runs/x"
    cfg = load_config(write_config(sub / "c.yaml", raw))
    assert cfg.data.train.hr == [data["hr"].resolve()] and cfg.output == (tmp_path / "runs" / "x").resolve()


def test_cli_config_error_is_one_line_exit_2(data: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from superres.cli.main import main

    cfg = write_config(tmp_path / "bad.yaml", raw_config(data, tmp_path / "out", optim={"lrr": 1e-3}))
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err == "error: unknown key 'optim.lrr' (did you mean 'lr'?)\n"
    cfg = write_config(tmp_path / "ok.yaml", raw_config(data, tmp_path / "out"))
    assert main(["train", str(cfg), "--iterations", "0"]) == 2
    assert capsys.readouterr().err == "error: train.iterations: must be >= 1, got 0\n"


def test_cli_trains_and_resumes(data: dict[str, Path], tmp_path: Path) -> None:
    from superres.cli.main import main

    cfg = write_config(tmp_path / "c.yaml", raw_config(data, tmp_path / "out"))
    assert main(["train", str(cfg), "--iterations", "4", "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "out" / CHECKPOINT, weights_only=True)["iteration"] == 4
    assert main(["train", str(cfg), "--device", "cpu"]) == 2  # exists: --resume needed
    assert main(["train", str(cfg), "--resume", "--iterations", "6", "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "out" / CHECKPOINT, weights_only=True)["iteration"] == 6


# ------------------------------------------------------------------------------ (e) checkpoints


def test_checkpoint_writes_are_atomic(data: dict[str, Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    trainer = train(raw_config(data, out, train={"iterations": 4}), tmp_path)
    before = (out / CHECKPOINT).read_bytes()

    def failing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(before[: len(before) // 3])  # half-written, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    trainer.iteration = 5
    with pytest.raises(OSError, match="No space"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert (out / CHECKPOINT).read_bytes() == before
    assert torch.load(out / CHECKPOINT, weights_only=True)["iteration"] == 4
    assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".part"))]


@pytest.mark.parametrize("arch,options", [("espcn", {"num_channels": 3, "n1": 8, "n2": 8}),
                                          ("fsrcnn", {"num_channels": 3, "d": 8, "s": 4, "m": 1})])
def test_best_weights_load_with_superres_load(data: dict[str, Path], tmp_path: Path, arch: str,
                                              options: dict[str, Any]) -> None:
    import superres

    out = tmp_path / "run"
    trainer = train(raw_config(data, out, model={"arch": arch, "options": options}, train={"iterations": 4}),
                    tmp_path)
    up = superres.load(out / "best.safetensors", device="cpu")
    assert up.model.arch == arch and up.scale == 2  # FSRCNN's scale is only in the header
    img = photo(20, 24)
    res = up.upscale(img)
    assert res.shape == (40, 48, 3) and res.dtype == np.uint8
    # the file holds the EMA weights of the best validation
    best = trainer.best
    assert best["psnr"] is not None and best["iteration"] in (0, 4)


# ------------------------------------------------------------------------------ modes


def test_distillation_and_fine_tuning(data: dict[str, Path], tmp_path: Path) -> None:
    teacher_run = tmp_path / "teacher"
    train(raw_config(data, teacher_run, train={"iterations": 4}), tmp_path)
    teacher = str(teacher_run / "best.safetensors")
    # distillation: SRVGG student learns the frozen ESPCN teacher's outputs
    out = tmp_path / "student"
    trainer = Trainer(parse_config(raw_config(data, out, model={"arch": "srvgg", "teacher": teacher,
                                                                "options": {"num_feat": 8, "num_conv": 2}},
                                              train={"iterations": 4}), tmp_path),
                      device="cpu", progress=False, echo=lambda _m: None)
    before = {k: v.clone() for k, v in trainer.model.teacher.state_dict().items()}  # type: ignore[union-attr]
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.teacher.state_dict().items())  # type: ignore[union-attr]
    assert all(np.isfinite(r["losses"]["l1"]) for r in log_records(out) if "losses" in r)
    # fine-tuning: start from the teacher's weights (arch detected from the file)
    out2 = tmp_path / "finetune"
    ft = Trainer(parse_config(raw_config(data, out2, model={"pretrained": teacher}, train={"iterations": 2}),
                              tmp_path), device="cpu", progress=False, echo=lambda _m: None)
    start = {k: v.clone() for k, v in ft.model.net_g.state_dict().items()}
    assert ft.model.arch == "espcn"
    from superres.weights import read_state_dict

    assert all(torch.equal(start[k], v) for k, v in read_state_dict(teacher).items())
    ft.run()


def test_grad_checkpointing_gives_the_same_weights(data: dict[str, Path], tmp_path: Path) -> None:
    model = {"arch": "srvgg", "options": {"num_feat": 8, "num_conv": 2}}
    train(raw_config(data, tmp_path / "plain", model=model, train={"iterations": 3}), tmp_path)
    train(raw_config(data, tmp_path / "ckpt", model=model, train={"iterations": 3, "grad_checkpoint": True}),
          tmp_path)
    a, b = tensors(tmp_path / "plain"), tensors(tmp_path / "ckpt")
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-7), key


def test_bf16_autocast_on_cpu_trains(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(raw_config(data, out, train={"iterations": 3, "amp": "bf16"}), tmp_path)
    assert all(np.isfinite(r["losses"]["total"]) for r in log_records(out) if "losses" in r)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Trainer(parse_config(raw_config(data, out, train={"amp": "fp16"}), tmp_path), device="cpu")


def test_channels_last_trains_the_same_weights(data: dict[str, Path], tmp_path: Path) -> None:
    model = {"arch": "fsrcnn", "options": {"num_channels": 3, "d": 8, "s": 4, "m": 1}}
    train(raw_config(data, tmp_path / "nchw", model=model, train={"iterations": 4}), tmp_path)
    train(raw_config(data, tmp_path / "nhwc", model=model, train={"iterations": 4, "channels_last": True}),
          tmp_path)
    a, b = tensors(tmp_path / "nchw"), tensors(tmp_path / "nhwc")
    assert a.keys() == b.keys()
    for key in a:  # oneDNN sums in another order for NHWC: equal up to float rounding
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key


def test_whole_image_bicubic_patches_are_crops_of_the_benchmark_lr(data: dict[str, Path]) -> None:
    from superres.train.config import TrainDataConfig
    from superres.train.data import TrainDataset

    cfg = TrainDataConfig(hr=[data["hr"]], degradation={"type": "bicubic", "whole_image": True},
                          patch_size=12, batch_size=2, workers=0, hflip=False, rot90=False)
    ds = TrainDataset(cfg, scale=3, seed=1)
    for i in range(len(ds)):
        hr_full = ds._load(i)[0]
        lr_full = imresize(hr_full, output_shape=(hr_full.shape[0] // 3, hr_full.shape[1] // 3))
        assert hr_full.shape[:2] == (39, 39)  # cropped to a multiple of the scale
        item = ds[i]
        lr = (item["lr"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        hr = (item["hr"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        hits = [(y, x) for y in range(lr_full.shape[0] - 3) for x in range(lr_full.shape[1] - 3)
                if np.array_equal(lr_full[y : y + 4, x : x + 4], lr)]
        assert hits, "the LR patch is not a crop of the whole-image bicubic LR"
        y, x = hits[0]
        assert np.array_equal(hr_full[3 * y : 3 * y + 12, 3 * x : 3 * x + 12], hr)
    bad = raw_config(data, Path("out"), paired=False)
    bad["data"]["train"]["degradation"] = {"type": "bicubic", "whole_image": 1}
    with pytest.raises(ConfigError, match=r"data\.train\.degradation: whole_image: expected true or false"):
        Trainer(parse_config(bad, Path(".")), device="cpu")


def test_scale_augment_adds_downscaled_copies_of_each_image(data: dict[str, Path], tmp_path: Path) -> None:
    from superres.train.config import TrainDataConfig
    from superres.train.data import TrainDataset, read_rgb8

    cfg = TrainDataConfig(hr=[data["hr"]], degradation={"type": "bicubic", "whole_image": True},
                          patch_size=24, batch_size=2, workers=0, hflip=False, rot90=False,
                          scale_augment=[1.0, 0.7, 0.5])
    with pytest.warns(UserWarning, match=r"5 training image\(s\) .*smaller than the 24 px patch"):
        ds = TrainDataset(cfg, scale=3, seed=1)  # 40 px * 0.5 = 20 px < 24: every 0.5 copy is skipped
    assert len(ds) == 5 * 2
    files = sorted(data["hr"].iterdir())
    for i, (k, factor) in enumerate(ds.items):
        hr, lr = ds._load(i)
        source = read_rgb8(files[k])
        expect = source if factor == 1.0 else imresize(source, scale=factor)  # 40 -> 28 px at 0.7
        expect = expect[: expect.shape[0] // 3 * 3, : expect.shape[1] // 3 * 3]
        assert np.array_equal(hr, expect)
        assert lr is not None and np.array_equal(lr, imresize(hr, output_shape=(hr.shape[0] // 3,
                                                                                 hr.shape[1] // 3)))
    assert sorted({f for _, f in ds.items}) == [0.7, 1.0]

    for value, msg in [([], r"scale_augment: expected a non-empty list of downscale factors"),
                       (0.9, r"scale_augment: expected a non-empty list of downscale factors"),
                       ([1.0, 1.5], r"scale_augment\[1\]: must be <= 1"),
                       ([0.0], r"scale_augment\[0\]: must be > 0"),
                       ([0.8, 0.8], r"scale_augment: factors repeat")]:
        bad = raw_config(data, tmp_path / "out", paired=False)
        bad["data"]["train"]["scale_augment"] = value
        with pytest.raises(ConfigError, match=r"data\.train\." + msg):
            parse_config(bad, tmp_path)
    bad = raw_config(data, tmp_path / "out")  # paired: the LR folder cannot follow a downscale
    bad["data"]["train"]["scale_augment"] = [1.0, 0.9]
    with pytest.raises(ConfigError, match=r"scale_augment: not possible in paired mode"):
        parse_config(bad, tmp_path)


def test_init_copies_the_matching_layers_of_another_scale(data: dict[str, Path], tmp_path: Path) -> None:
    """The FSRCNN paper's transfer: an x2 net starts from the x3 net's layers, but its own tail
    where the shapes differ (ESPCN's last conv has 3 * s^2 outputs; FSRCNN's deconv keeps its shape)."""
    model = {"arch": "espcn", "options": {"num_channels": 3, "n1": 8, "n2": 8}}
    src = tmp_path / "x3"
    raw3 = raw_config(data, src, model=model, scale=3, paired=False, train={"iterations": 2, "ema": None})
    raw3["data"]["train"]["patch_size"] = 15
    raw3["data"]["val"]["every"] = 100
    train(raw3, tmp_path)
    weights = str(src / "last.safetensors")
    source = load_file(weights)
    t = Trainer(parse_config(raw_config(data, tmp_path / "x2", model={**model, "init": weights},
                                        train={"iterations": 1}), tmp_path),
                device="cpu", progress=False, echo=lambda _msg: None)
    own = t.model.net_g.state_dict()
    assert t.model.init_report is not None
    fresh, copied = set(t.model.init_report["fresh"]), t.model.init_report["copied"]
    assert len(fresh) == 2 and all(own[k].shape != source[k].shape for k in fresh)  # last conv + bias
    assert len(copied) == 4
    for key in copied:
        assert torch.equal(own[key], source[key]), key
    t.run()
    assert log_records(tmp_path / "x2")[0]["init"]["fresh"] == sorted(fresh)
    with pytest.raises(ConfigError, match="not both"):
        both = {**model, "init": weights, "pretrained": weights}
        parse_config(raw_config(data, tmp_path / "y", model=both), tmp_path)
    fsrcnn = {"arch": "fsrcnn", "options": {"num_channels": 3, "d": 16, "s": 4, "m": 1}, "init": weights}
    with pytest.raises(ConfigError, match="no tensor matching"):
        Trainer(parse_config(raw_config(data, tmp_path / "z", model=fsrcnn), tmp_path), device="cpu")


def test_y_only_model_starts_from_rgb_weights_and_trains_on_y(data: dict[str, Path], tmp_path: Path) -> None:
    """num_channels: 1 trains on rgb2ycbcr Y (as the papers and the Set5 protocol); model.init of an RGB
    file converts it (input conv summed over colours, output the luma of the three colours)."""
    from superres.archs import ARCHS
    from superres.archs.luma import luma_state_dict
    from superres.zoo.loader import load_model

    rgb = {"arch": "espcn", "options": {"num_channels": 3, "n1": 8, "n2": 8}}
    src = tmp_path / "rgb"
    train(raw_config(data, src, model=rgb, train={"iterations": 4, "ema": None}), tmp_path)
    weights = str(src / "last.safetensors")
    y_model = {"arch": "espcn", "options": {"num_channels": 1, "n1": 8, "n2": 8}, "init": weights}
    out = tmp_path / "y"
    raw = raw_config(data, out, model=y_model,
                     train={"iterations": 40, "ema": None, "checkpoint_every": 40, "log_every": 5},
                     data={"train": raw_config(data, out)["data"]["train"],
                           "val": {"hr": str(data["val"]), "every": 20}})
    t = Trainer(parse_config(raw, tmp_path), device="cpu", progress=False, echo=lambda _msg: None)
    assert t.model.luma and t.model.init_report is not None and not t.model.init_report["fresh"]
    converted = luma_state_dict(ARCHS["espcn"], load_file(weights))
    for key, value in t.model.net_g.state_dict().items():
        assert torch.equal(value, converted[key]), key
    t.run()
    recs = log_records(out)
    losses = [r["losses"]["l1"] for r in recs if "losses" in r]
    vals = [r["val"]["psnr"] for r in recs if "val" in r]
    assert losses[-1] < losses[0] and vals[-1] > vals[0] + 1.0, (losses, vals)
    lm = load_model(out / "last.safetensors")
    assert lm.kwargs["num_channels"] == 1 and lm.arch == "espcn"
    gan = [{"type": "l1", "weight": 1.0}, {"type": "gan", "gan_type": "ragan", "weight": 0.1}]
    with pytest.raises(ConfigError, match=r"Y-only .*perceptual and GAN losses need RGB"):
        Trainer(parse_config(raw_config(data, tmp_path / "g", model=y_model, losses=gan,
                                        discriminator={"arch": "vgg"}), tmp_path), device="cpu")


# ------------------------------------------------------------------------------ (f) example configs


@pytest.mark.parametrize("name", sorted(p.relative_to(REPO / "configs").as_posix()
                                         for p in (REPO / "configs").rglob("*.yaml")))
def test_example_configs_validate(name: str) -> None:
    if not (SHARED_DATA / "train" / "T91").is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA} (the configs point there)")
    cfg = load_config(REPO / "configs" / name)
    assert cfg.output.parent == (REPO / "runs").resolve()
    assert all(p.is_dir() for p in cfg.data.train.hr)
    assert cfg.data.val is not None and cfg.data.val.hr.is_dir()


def test_the_four_example_configs_exist() -> None:
    names = {p.name for p in (REPO / "configs").glob("*.yaml")}
    assert names >= {"fsrcnn_x2_291.yaml", "espcn_x3_291.yaml", "realesrgan_x4plus_finetune.yaml",
                     "distill_compact_from_x4plus.yaml"}


def test_loss_border_ignores_the_patch_edge(data: dict[str, Path], tmp_path: Path) -> None:
    """``train.loss_border``: pixel losses see only the patch's inside, so HR targets that differ only
    in the border give the same loss and train identical weights, and a difference inside does not."""
    raw = raw_config(data, tmp_path / "out", train={"iterations": 2, "ema": None, "loss_border": 4})
    cfg = parse_config(raw, tmp_path)
    gen = torch.Generator().manual_seed(0)
    lr, hr = torch.rand(4, 3, 8, 8, generator=gen), torch.rand(4, 3, 16, 16, generator=gen)
    edge, inside = hr.clone(), hr.clone()
    edge[..., :4, :] = torch.rand(4, 3, 4, 16, generator=gen)
    edge[..., :, -4:] = 0.0
    inside[..., 8, 8] += 0.5

    def step(target: torch.Tensor) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        trainer = Trainer(cfg, device="cpu", progress=False, echo=lambda _msg: None)
        losses = trainer.model.train_step({"lr": lr, "hr": target}, 0)
        return losses, {k: v.detach().clone() for k, v in trainer.model.net_g.state_dict().items()}

    base_loss, base = step(hr)
    edge_loss, edge_weights = step(edge)
    assert edge_loss == base_loss and all(torch.equal(base[k], v) for k, v in edge_weights.items())
    assert step(inside)[0]["l1"] != base_loss["l1"]  # the same net, a target changed inside

    bad = raw_config(data, tmp_path / "out", train={"iterations": 2, "loss_border": 8})
    assert _error(bad, tmp_path) == ("train.loss_border: 8 px off each side leaves nothing of the 16 px "
                                     "patch (data.train.patch_size)")
