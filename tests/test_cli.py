"""`superres upscale` / `superres models` end to end, with the real converted weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from superres.cli.main import main
from tests.helpers import bomb_png, photo, save_rgb

COMPACT = "realesr-animevideov3"

pytestmark = pytest.mark.usefixtures("realesrgan_models_dir")


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def run_cli(*args: str) -> int:
    return main(list(args))


def test_x4plus_on_a_real_photo_gives_4x_rgb(tmp_path: Path) -> None:
    src = save_rgb(tmp_path / "cat.png", photo(32, 40))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "out")) == 0
    out = read(tmp_path / "out" / "cat.png")
    assert out.shape == (128, 160, 3) and out.dtype == np.uint8


def test_rgba_alpha_upscaled_without_dark_halo(tmp_path: Path) -> None:
    rgb = photo(48, 64)
    alpha = np.zeros((48, 64), np.uint8)
    cv2.ellipse(alpha, (32, 24), (22, 15), 0, 0, 360, 255, -1)
    rgba = np.dstack([np.where(alpha[..., None] > 0, rgb, 0), alpha])  # black under transparency
    src = save_rgb(tmp_path / "cut.png", rgba)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    out = read(tmp_path / "o" / "cut.png")
    assert out.shape == (192, 256, 4) and out.dtype == np.uint8
    out_rgb, out_a = out[:, :, 2::-1].astype(float), out[:, :, 3]
    # reference: the same photo upscaled fully opaque; compare just inside the alpha edge
    import superres

    ref = superres.load(COMPACT).upscale(rgb).astype(float)
    inner = cv2.erode((out_a > 128).astype(np.uint8), np.ones((3, 3), np.uint8))
    band = ((out_a > 128) & (inner == 0)) | ((out_a > 128) & (cv2.erode(inner, np.ones((7, 7))) == 0))
    assert band.sum() > 100
    err_ours = np.abs(out_rgb - ref)[band].mean()
    naive = superres.load(COMPACT).upscale(np.where(alpha[..., None] > 0, rgb, 0).astype(np.uint8))
    err_naive = np.abs(naive.astype(float) - ref)[band].mean()
    assert err_ours < 4.0, err_ours
    assert err_naive > 3 * err_ours  # black under transparency would have darkened the edge
    assert out_a[96, 128] == 255 and out_a[2, 2] == 0


def test_16bit_rgba_stays_16bit(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 200, (24, 32, 3)).astype(np.uint16)
    rgb16 = photo(24, 32).astype(np.uint16) * 257 + noise
    a16 = np.zeros((24, 32), np.uint16)
    a16[4:20, 6:26] = 65535
    src = save_rgb(tmp_path / "deep.png", np.dstack([rgb16, a16]))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    out = read(tmp_path / "o" / "deep.png")
    assert out.dtype == np.uint16 and out.shape == (96, 128, 4)
    assert out[48, 64, 3] == 65535 and out[2, 2, 3] == 0
    assert len(np.unique(out[:, :, 0])) > 256  # real 16-bit precision, not 8-bit scaled


def test_bicubic_alpha_mode_keeps_flat_alpha_exact(tmp_path: Path) -> None:
    rgba = np.dstack([photo(16, 16).astype(np.uint16) * 257, np.full((16, 16), 40000, np.uint16)])
    src = save_rgb(tmp_path / "flat.png", rgba)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT, "--alpha", "bicubic") == 0
    alpha = read(tmp_path / "o" / "flat.png")[:, :, 3]
    assert alpha.shape == (64, 64) and np.abs(alpha.astype(int) - 40000).max() <= 1


def test_dark_16bit_is_not_mistaken_for_8bit(tmp_path: Path) -> None:
    dark = (photo(16, 16).astype(np.uint16) // 2).astype(np.uint16)  # max <= 128 but uint16
    src = save_rgb(tmp_path / "dark.png", dark)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    out = read(tmp_path / "o" / "dark.png")
    assert out.dtype == np.uint16 and out.max() < 1000


def test_gray_stays_gray(tmp_path: Path) -> None:
    gray = cv2.cvtColor(photo(24, 24), cv2.COLOR_RGB2GRAY)
    src = save_rgb(tmp_path / "g.png", gray)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    out = read(tmp_path / "o" / "g.png")
    assert out.shape == (96, 96) and out.dtype == np.uint8
    assert Image.open(tmp_path / "o" / "g.png").mode == "L"


def test_exif_rotated_jpeg_comes_out_upright_with_icc(tmp_path: Path) -> None:
    rgb = photo(24, 40)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    stored = img.transpose(Image.Transpose.ROTATE_90)  # what a camera stores for orientation 6
    src = tmp_path / "cam.jpg"
    stored.save(src, quality=95, exif=exif.tobytes(), icc_profile=icc)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    out = Image.open(tmp_path / "o" / "cam.jpg")
    assert out.size == (40 * 4, 24 * 4)  # upright: width 40, height 24, x4
    assert out.getexif().get(0x0112, 1) == 1
    assert out.info.get("icc_profile") == icc


def test_icc_profile_carried_to_png(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "p.png"
    Image.fromarray(photo(16, 16)).save(src, icc_profile=icc)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT, "-f", "webp") == 0
    assert Image.open(tmp_path / "o" / "p.webp").info.get("icc_profile") == icc


def test_batch_with_bad_files_reports_each_and_writes_the_good(tmp_path: Path, capsys) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    save_rgb(inp / "a_good.png", photo(16, 20))
    Image.fromarray(photo(20, 16)).save(inp / "b_good.jpg", quality=90)
    full = (inp / "a_good.png").read_bytes()
    (inp / "c_truncated.png").write_bytes(full[: len(full) // 2])
    (inp / "d_empty.png").write_bytes(b"")
    (inp / "e_text.png").write_text("this is not an image\n")
    bomb_png(inp / "f_bomb.png")
    save_rgb(inp / "g_good.png", photo(8, 8))
    code = run_cli("upscale", str(inp), "-o", str(tmp_path / "out"), "-m", COMPACT)
    err = capsys.readouterr()
    assert code == 1
    lines = [ln for ln in err.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 4
    for bad in ("c_truncated.png", "d_empty.png", "e_text.png", "f_bomb.png"):
        assert sum(bad in ln for ln in lines) == 1, (bad, lines)
    assert "Mpx" in next(ln for ln in lines if "f_bomb" in ln)
    assert "3 written, 0 skipped (already there), 4 failed" in err.out
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out == ["a_good.png", "b_good.jpg", "g_good.png"]  # no partial or temp files
    assert read(tmp_path / "out" / "a_good.png").shape == (64, 80, 3)


def test_single_truncated_png_among_good_ones(tmp_path: Path, capsys) -> None:
    good = [save_rgb(tmp_path / f"g{i}.png", photo(12, 12, x=100 + 20 * i)) for i in range(3)]
    data = good[0].read_bytes()
    bad = tmp_path / "broken.png"
    bad.write_bytes(data[:-40])
    code = run_cli("upscale", *map(str, [good[0], bad, *good[1:]]), "-o", str(tmp_path / "o"), "-m", COMPACT)
    err = capsys.readouterr().err
    assert code == 1
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        next(ln for ln in err.splitlines() if ln.startswith("error:"))
    ]
    assert str(bad) in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["g0.png", "g1.png", "g2.png"]


def test_skip_existing_by_default_and_overwrite(tmp_path: Path, capsys) -> None:
    src = save_rgb(tmp_path / "x.png", photo(8, 8))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    dst = tmp_path / "o" / "x.png"
    before = dst.stat().st_mtime_ns
    time.sleep(0.01)
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT) == 0
    assert "0 written, 1 skipped" in capsys.readouterr().out
    assert dst.stat().st_mtime_ns == before
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", COMPACT, "--overwrite") == 0
    assert dst.stat().st_mtime_ns != before


def test_recursive_keeps_tree_and_ignores_non_images(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    (inp / "sub" / "deeper").mkdir(parents=True)
    save_rgb(inp / "top.png", photo(8, 8))
    save_rgb(inp / "sub" / "deeper" / "low.png", photo(8, 8))
    (inp / "sub" / "notes.txt").write_text("hi")
    code = run_cli(
        "upscale", str(inp), "-o", str(tmp_path / "o"), "-m", COMPACT, "--recursive", "--suffix", "_x4"
    )
    assert code == 0
    assert (tmp_path / "o" / "top_x4.png").is_file()
    assert (tmp_path / "o" / "sub" / "deeper" / "low_x4.png").is_file()
    assert not (tmp_path / "o" / "sub" / "notes.txt").exists()


@pytest.mark.parametrize(("scale", "size"), [(2, (32, 40)), (2.5, (40, 50)), (3, (48, 60)), (8, (128, 160))])
def test_arbitrary_scale_output_size(tmp_path: Path, scale: float, size: tuple[int, int]) -> None:
    src = save_rgb(tmp_path / "s.png", photo(16, 20))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o.png"), "-m", COMPACT, "-s", str(scale)) == 0
    assert read(tmp_path / "o.png").shape[:2] == size


def test_missing_input_and_unknown_model(tmp_path: Path, capsys) -> None:
    assert run_cli("upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "-m", COMPACT) == 1
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    src = save_rgb(tmp_path / "x.png", photo(8, 8))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "-m", "no-such-model") == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_models_listing_shows_licences_and_availability(capsys) -> None:
    assert run_cli("models") == 0
    text = capsys.readouterr().out
    assert "realesrgan-x4plus" in text and "BSD-3-Clause" in text and "available" in text
    assert run_cli("models", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in rows}
    assert len(rows) >= 15
    assert names["realesrgan-x4plus"]["params"] == 16_697_987
    assert names["realesr-animevideov3"]["mflop_per_px"] == pytest.approx(1.238, abs=1e-3)
    assert all(r["licence"] and r["available"] for r in rows)


def test_killed_run_leaves_no_truncated_image_and_resumes(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(6):
        save_rgb(inp / f"img{i}.png", photo(40, 40, x=60 + 10 * i))
    out = tmp_path / "out"
    model = ["-m", "realesrgan-x4plus-anime"]
    cmd = [sys.executable, "-m", "superres", "upscale", str(inp), "-o", str(out), *model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(out.glob("img*.png"))):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("img*.png"))
    assert 1 <= len(done) < 6
    for f in done:  # every visible output is a complete image
        assert read(f).shape == (160, 160, 3)
    assert main(["upscale", str(inp), "-o", str(out), *model]) == 0
    assert len(list(out.glob("img*.png"))) == 6


def test_model_scale_for_weights_that_do_not_record_it(tmp_path: Path, capsys) -> None:
    """A third-party FSRCNN .pth (stride not in the tensors, no xN in its name) needs --model-scale."""
    import torch

    from superres.archs.fsrcnn import FSRCNN

    torch.manual_seed(0)
    weights = tmp_path / "fsrcnn_rgb.pth"
    torch.save(FSRCNN(num_channels=3, scale=3, d=8, s=4, m=1).state_dict(), weights)
    src = save_rgb(tmp_path / "cat.png", photo(10, 12))
    assert run_cli("upscale", str(src), "-o", str(tmp_path / "a"), "-m", str(weights)) == 2
    assert "--model-scale 3" in capsys.readouterr().err
    ok = run_cli("upscale", str(src), "-o", str(tmp_path / "b"), "-m", str(weights), "--model-scale", "3")
    assert ok == 0
    assert read(tmp_path / "b" / "cat.png").shape == (30, 36, 3)
    # the flag wins over a factor guessed from the file name
    named = tmp_path / "fsrcnn_x3.pth"
    weights.rename(named)
    ok = run_cli("upscale", str(src), "-o", str(tmp_path / "c"), "-m", str(named), "--model-scale", "2")
    assert ok == 0
    assert read(tmp_path / "c" / "cat.png").shape == (20, 24, 3)
