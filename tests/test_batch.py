"""``superres.upscale_files``: the library batch job (bad files, nested folders, resume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import superres
from superres.archs.srvgg import SRVGGNetCompact
from superres.batch import BatchResult
from superres.engine.protocol import Engine
from tests.helpers import photo, save_rgb


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny_x2.safetensors"
    save_file(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2).state_dict(), str(path))
    return path


def _tree(root: Path) -> Path:
    """Two good images (one nested two levels down), a truncated PNG, text named .png, a .txt."""
    inp = root / "in"
    (inp / "sub" / "deeper").mkdir(parents=True)
    save_rgb(inp / "a_good.png", photo(16, 20))
    Image.fromarray(photo(12, 10)).save(inp / "sub" / "deeper" / "b_good.jpg", quality=90)
    full = (inp / "a_good.png").read_bytes()
    (inp / "c_truncated.png").write_bytes(full[: len(full) // 2])
    (inp / "sub" / "d_text.png").write_text("this is not an image\n")
    (inp / "notes.txt").write_text("not an image, not looked at\n")
    return inp


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_bad_files_nested_folders_and_resume(tmp_path: Path, weights: Path) -> None:
    inp, out = _tree(tmp_path), tmp_path / "out"
    started: list[Path] = []
    seen: list[str] = []
    res = superres.upscale_files([inp], out, model=weights, device="cpu", recursive=True,
                                 on_start=lambda job: started.append(job.src),
                                 on_file=lambda f: seen.append(f.status))
    assert isinstance(res, BatchResult) and res.out == out
    assert (res.written, res.skipped, res.failed, res.ok) == (2, 0, 2, False)
    by_name = {f.src.name: f for f in res.files}
    assert sorted(by_name) == ["a_good.png", "b_good.jpg", "c_truncated.png", "d_text.png"]  # no .txt
    assert started == [f.src for f in res.files] and seen == [f.status for f in res.files]
    assert by_name["a_good.png"].status == "written" and by_name["a_good.png"].dst == out / "a_good.png"
    assert by_name["b_good.jpg"].dst == out / "sub" / "deeper" / "b_good.jpg"
    for bad in ("c_truncated.png", "d_text.png"):
        f = by_name[bad]
        assert f.status == "failed" and f.dst is None and bad in (f.error or "")
    assert len(res.errors) == 2 and all(f.seconds >= 0 for f in res.files) and res.seconds > 0
    # the folder tree is kept, only the good files are written, nothing partial is left
    assert _outputs(out) == ["a_good.png", "sub/deeper/b_good.jpg"]
    assert np.asarray(Image.open(out / "a_good.png")).shape == (32, 40, 3)
    assert np.asarray(Image.open(out / "sub" / "deeper" / "b_good.jpg")).shape == (24, 20, 3)

    # a re-run resumes: what exists is skipped (untouched), the bad files fail again
    up = superres.load(weights, device="cpu")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = superres.upscale_files(inp, out, model=up, recursive=True)
    assert (again.written, again.skipped, again.failed) == (0, 2, 2)
    assert {f.src.name for f in again.files if f.status == "skipped"} == {"a_good.png", "b_good.jpg"}
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # overwrite redoes them; a bare engine (no Upscaler) is taken as well
    assert isinstance(up.engine, Engine) and isinstance(up, Engine)
    redo = superres.upscale_files(inp, out, model=up.engine, recursive=True, overwrite=True)
    assert (redo.written, redo.skipped, redo.failed) == (2, 0, 2)


def test_not_recursive_suffix_format_scale_and_claims(tmp_path: Path, weights: Path) -> None:
    inp, out = _tree(tmp_path), tmp_path / "out"
    up = superres.load(weights, device="cpu")
    res = superres.upscale_files([inp, tmp_path / "missing.png"], out, model=up, suffix="_x3", scale=3,
                                 format="webp")
    assert [(f.src.name, f.status) for f in res.files] == [
        ("a_good.png", "written"), ("c_truncated.png", "failed"), ("missing.png", "failed")]
    assert "no such file or folder" in (res.files[-1].error or "")
    assert _outputs(out) == ["a_good_x3.webp"]
    assert Image.open(out / "a_good_x3.webp").size == (60, 48)
    # two inputs that would write one output: the second one fails, the first is kept (with
    # overwrite: else the second sees the first one's output and skips, as a resume would)
    (tmp_path / "same").mkdir()
    save_rgb(tmp_path / "same" / "p.png", photo(8, 8))
    Image.fromarray(photo(8, 8)).save(tmp_path / "same" / "p.jpg")
    clash = superres.upscale_files(tmp_path / "same", tmp_path / "o2", model=up, format="png", overwrite=True)
    assert [f.status for f in clash.files] == ["written", "failed"]
    assert "also the output of" in (clash.files[1].error or "")
    # an output that would replace its input fails instead
    self_out = superres.upscale_files(tmp_path / "same" / "p.png", tmp_path / "same", model=up)
    assert self_out.failed == 1 and "overwrite the input" in (self_out.files[0].error or "")


def test_single_file_named_output_and_nothing_to_do(tmp_path: Path, weights: Path) -> None:
    src = save_rgb(tmp_path / "x.png", photo(8, 10))
    res = superres.upscale_files(src, tmp_path / "y.jpg", model=weights, device="cpu")
    assert res.written == 1 and res.files[0].dst == tmp_path / "y.jpg"
    assert Image.open(tmp_path / "y.jpg").format == "JPEG"
    (tmp_path / "empty").mkdir()
    none = superres.upscale_files(tmp_path / "empty", tmp_path / "o", model="no-such-model")  # not loaded
    assert none.files == [] and none.ok
    with pytest.raises(ValueError, match="quality"):
        superres.upscale_files(src, tmp_path / "o", model=weights, quality=0)


def _damaged_jpeg(path: Path) -> None:
    """A JPEG with flipped bytes in its scan: libjpeg says "Corrupt JPEG data" and fills in grey."""
    import cv2

    _, enc = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = bytearray(enc.tobytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 7] ^= 0x55
    path.write_bytes(bytes(data))


def test_damaged_input_fails_unless_allowed_then_warns(tmp_path: Path, weights: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    _damaged_jpeg(inp / "damaged.jpg")
    save_rgb(inp / "good.png", photo(16, 20))
    notes: list[str] = []
    res = superres.upscale_files([inp], tmp_path / "out", model=weights, device="cpu", note=notes.append)
    by_name = {f.src.name: f for f in res.files}
    assert by_name["good.png"].status == "written"
    assert by_name["damaged.jpg"].status == "failed"
    error = by_name["damaged.jpg"].error or ""
    assert error.startswith(str(inp / "damaged.jpg")) and "damaged image data" in error
    assert "--allow-damaged" in error and not (tmp_path / "out" / "damaged.jpg").exists()
    assert notes == []

    res = superres.upscale_files([inp], tmp_path / "out", model=weights, device="cpu", note=notes.append,
                                 allow_damaged=True)
    assert {f.src.name: f.status for f in res.files} == {"damaged.jpg": "written", "good.png": "skipped"}
    assert len(notes) == 1 and notes[0].startswith(f"warning: {inp / 'damaged.jpg'}: damaged image data")


def test_header_bomb_is_one_error_and_the_batch_goes_on(tmp_path: Path, weights: Path) -> None:
    """A tiny PNG whose header claims 16384 x 16384: refused from the header, nothing decoded."""
    import struct
    import zlib

    inp = tmp_path / "in"
    inp.mkdir()
    ihdr = struct.pack(">IIBBBBB", 16384, 16384, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    (inp / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                                   + chunk(b"IEND", b""))
    save_rgb(inp / "good.png", photo(16, 20))
    res = superres.upscale_files([inp], tmp_path / "out", model=weights, device="cpu")
    by_name = {f.src.name: f for f in res.files}
    assert by_name["good.png"].status == "written" and by_name["bomb.png"].status == "failed"
    assert "limit" in (by_name["bomb.png"].error or "")


def test_inputs_that_are_not_files_say_what_they_are(tmp_path: Path, weights: Path) -> None:
    import os

    fifo, dangling, missing = tmp_path / "p.png", tmp_path / "dangling.png", tmp_path / "missing.png"
    os.mkfifo(fifo)  # never opened: reading a FIFO with no writer would block the batch
    dangling.symlink_to(tmp_path / "nowhere.png")
    res = superres.upscale_files([fifo, dangling, missing], tmp_path / "out", model=weights, device="cpu")
    reasons = {f.src.name: (f.error or "").split(": ", 1)[1] for f in res.files}
    assert reasons == {"p.png": "not a regular file (a named pipe)",
                       "dangling.png": "a symbolic link to nothing readable (No such file or directory)",
                       "missing.png": "no such file or folder"}
