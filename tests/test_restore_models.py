"""SUPIR on diffusers at tiny size: official-layout loading, the custom UNet forward, errors, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from superres.restore.convert import CheckpointError
from superres.restore.loader import build_models, load_models
from superres.restore.tiny import TinySpec, sdxl_state_dict, supir_state_dict, write_tiny_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_tiny_files(tmp_path_factory.mktemp("supir"))


@pytest.fixture(scope="module")
def models(tiny_files):
    return load_models(tiny_files[0], tiny_files[1])


def test_official_layout_loads_with_nothing_missing_or_unexpected(models, tiny_files):
    report = models.report
    assert report.clean, report.summary()
    assert set(report.missing) >= {
        "unet",
        "vae",
        "clip_l",
        "clip_g",
        "control",
        "connectors",
        "denoise_encoder",
    }
    assert all(not v for v in report.missing.values()) and all(not v for v in report.unexpected.values())
    # every tensor of both files ended up in a module: count parameters against the files
    sdxl = torch.load(tiny_files[1], weights_only=True)["state_dict"]
    supir_numel = sum(v.numel() for v in sdxl.values())
    got = (
        sum(p.numel() for p in models.control.parameters())
        + sum(p.numel() for p in models.unet.project_modules.parameters())
        + sum(p.numel() for p in models.denoise_encoder.parameters())
    )
    assert got == supir_numel
    assert len(models.unet.project_modules) == 12


def test_control_scale_zero_is_vanilla_sdxl_and_control_features_have_the_documented_shapes(models):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, 4, 8, 8), generator=g)
    z_lq = torch.randn((2, 4, 8, 8), generator=g)
    t = torch.tensor([999, 500])
    context = torch.randn((2, 77, 64), generator=g)
    added = {
        "text_embeds": torch.randn((2, 32), generator=g),
        "time_ids": torch.tensor([[1024.0] * 2 + [0.0] * 2 + [1024.0] * 2] * 2),
    }
    with torch.no_grad():
        feats = models.control(z_lq, x, t, context, added)
        assert [f.shape[1:] for f in feats] == [
            (32, 8, 8),
            (32, 8, 8),
            (32, 8, 8),
            (32, 4, 4),
            (32, 4, 4),
            (32, 4, 4),
            (32, 2, 2),
            (64, 2, 2),
            (64, 2, 2),
            (64, 2, 2),
        ]
        net = models.control.net
        emb_free = net.conv_in(x) + net.controlnet_cond_embedding(z_lq)  # h0 = conv_in(xt) + hint(z_lq)
        torch.testing.assert_close(feats[0], emb_free)
        eps0 = models.unet(x, t, context, added, feats, control_scale=0.0)
        vanilla = models.unet.unet(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
        torch.testing.assert_close(eps0, vanilla, rtol=1e-5, atol=1e-5)
        eps1 = models.unet(x, t, context, added, feats, control_scale=1.0)
        assert float((eps1 - vanilla).abs().max()) > 1e-3  # the connectors act


def test_wrong_files_say_what_was_found_and_where_to_get_the_right_ones(tmp_path, tiny_files):
    from safetensors.torch import save_file

    sd15 = tmp_path / "v1-5-pruned.safetensors"
    save_file(
        {
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(4, 2),
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 4, 3, 3),
        },
        str(sd15),
    )
    with pytest.raises(CheckpointError, match=r"Stable Diffusion 1\.x.*SDXL base 1\.0.*stabilityai"):
        load_models(sd15, tiny_files[1])
    with pytest.raises(CheckpointError, match=r"--sdxl: .*SUPIR adaptor checkpoint"):
        load_models(tiny_files[1], tiny_files[1])
    with pytest.raises(CheckpointError, match=r"--supir: .*SDXL base checkpoint.*non-commercial"):
        load_models(tiny_files[0], tiny_files[0])
    with pytest.raises(CheckpointError, match=r"--supir: no such file .*SUPIR-v0Q\.ckpt"):
        load_models(tiny_files[0], tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_models(tiny_files[0], junk)


def test_cli_names_a_missing_checkpoint_before_asking_for_the_tokenizer(tmp_path, capsys, monkeypatch):
    from superres.cli.main import main

    monkeypatch.delenv("SUPERRES_CLIP_TOKENIZER", raising=False)
    supir = tmp_path / "SUPIR-v0Q.ckpt"
    supir.write_bytes(b"")
    rc = main(["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"),
               "--sdxl", str(tmp_path / "typo.safetensors"), "--supir", str(supir)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--sdxl: no such file" in err and "typo.safetensors" in err and "tokenizer" not in err.lower()
    assert not (tmp_path / "out").exists()


def test_checkpoints_of_different_sizes_are_refused():
    wide = TinySpec(widths=(64, 64, 64))
    with pytest.raises(CheckpointError, match="does not match the SDXL UNet"):
        build_models(sdxl_state_dict(), supir_state_dict(wide))


def test_cli_restores_end_to_end_from_files(tiny_files, tmp_path, capsys):
    import cv2

    from superres.cli.main import main

    src = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src), (rng.random((32, 24, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out.png"
    argv = [
        "restore",
        str(src),
        "-o",
        str(out),
        "--sdxl",
        str(tiny_files[0]),
        "--supir",
        str(tiny_files[1]),
        "--tokenizer",
        str(tiny_files[2]),
        "--steps",
        "2",
        "--min-size",
        "64",
        "--scale",
        "2",
        "--restoration-scale",
        "4",
        "--preset",
        "quality",
        "--tile-vae",
        "--tile-size",
        "64",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    img = cv2.imread(str(out))
    assert img.shape == (64, 48, 3)
    # wrong file: clear error, exit code 2
    bad = [*argv[:4], "--sdxl", str(tiny_files[1]), *argv[6:]]
    assert main(bad) == 2
    assert "SUPIR adaptor checkpoint" in capsys.readouterr().err


def test_settings_presets_and_memory_estimate():
    from superres.cli.main import build_parser
    from superres.cli.restore import settings_from_args
    from superres.restore.pipeline import estimate_memory
    from superres.restore.settings import A_PROMPT, N_PROMPT, RestoreSettings

    args = build_parser().parse_args(
        ["restore", "x.png", "-o", "o", "--sdxl", "a", "--supir", "b", "--preset", "quality", "--cfg", "6"]
    )
    s = settings_from_args(args)
    assert (s.cfg, s.cfg_start, s.s_noise, s.steps, s.s_churn, s.restoration_scale) == (
        6.0,
        4.0,
        1.003,
        50,
        5.0,
        -1.0,
    )
    assert (
        s.prompt == A_PROMPT and s.negative_prompt == N_PROMPT and s.color_fix == "wavelet" and s.seed == 1234
    )
    d = RestoreSettings()
    full = estimate_memory(1024, 1024, d, torch.float16, offload=False)
    assert 9 * 2**30 < full < 30 * 2**30  # 4.6 B parameters in fp16 plus activations
    assert estimate_memory(1024, 1024, d, torch.float16, offload=True) < full
    assert estimate_memory(4096, 4096, d, torch.float16, False) > estimate_memory(
        4096, 4096, RestoreSettings(tile_vae=True, tile_size=1024), torch.float16, False
    )
