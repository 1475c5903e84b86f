"""``superres video`` end to end on synthetic clips made here with PyAV (real encode, decode, model).

Clips are tiny (48x32, 6-36 frames) so the whole file runs in well under a minute on 2 cores:
a moving pattern plus a 440 Hz tone and two subtitles, at a constant and at a variable frame
rate, 8- and 10-bit. The model is the real ``realesr-animevideov3`` (x4, cheap at this size).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is needed for video (pip install 'superres[video]')")

from superres.cli.main import main  # noqa: E402
from superres.video.colour import Colour, FrameConverter, source_colour  # noqa: E402
from tests.conftest import REPO  # noqa: E402

MODEL = "realesr-animevideov3"
W, H = 48, 32
CFR_PTS = [round(i * 1000 / 16) for i in range(16)]  # 16 fps, 1 s, time base 1/1000
VFR_PTS = [0, 40, 90, 120, 170, 250, 260, 300, 380, 400, 470, 520]  # irregular gaps


# ------------------------------------------------------------------------------ clip making


def pattern(i: int, deep: bool = False) -> np.ndarray:
    """Frame i of a moving pattern: drifting sine stripes, a gradient and a moving square."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([0.5 + 0.5 * np.sin((x + 2 * i) / 5.0), (y / H + 0.02 * i) % 1.0,
                    0.5 + 0.5 * np.cos((x - y - 3 * i) / 7.0)], axis=2)
    cx, cy = (4 + 3 * i) % (W - 10), (2 + 2 * i) % (H - 10)
    img[cy:cy + 8, cx:cx + 8] = [1.0, 0.9, 0.1]
    if deep:
        return np.round(img * 65535).astype(np.uint16)
    return np.round(img * 255).astype(np.uint8)


def make_clip(path: Path, pts: list[int], *, rate: int = 16, pix_fmt: str = "yuv420p",
              audio: str | None = "aac", subtitles: bool = True,
              colour: tuple[int, int, int, int] = (1, 1, 1, 1)) -> Path:
    """A clip with PyAV: H.264 video at the given pts (time base 1/1000), a sine tone, SRT subtitles."""
    tb = Fraction(1, 1000)
    out = av.open(str(path), "w")
    out.metadata["title"] = "superres test clip"
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt, vs.time_base = W, H, pix_fmt, tb
    cc = vs.codec_context
    cc.time_base = tb
    cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = colour
    cc.options = {"crf": "12", "preset": "fast"}
    if audio:
        a = out.add_stream(audio, rate=48000)
        a.layout = "stereo"
        a.metadata["language"] = "eng"
    if subtitles:
        s = out.add_mux_stream("subrip", time_base=tb)
        s.metadata["language"] = "fra"
    deep = "10" in pix_fmt
    for i, p in enumerate(pts):
        f = av.VideoFrame.from_ndarray(pattern(i, deep), format="rgb48le" if deep else "rgb24")
        f = f.reformat(format=pix_fmt, dst_colorspace=colour[1], dst_color_range=colour[0])
        f.pts, f.time_base = p, tb
        out.mux(vs.encode(f))
    out.mux(vs.encode(None))
    end = float((pts[-1] + (pts[-1] - pts[-2])) * tb)
    if audio:
        n = round(end * 48000)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
        step = a.codec_context.frame_size or 1024
        s16 = a.codec_context.codec.audio_formats[0].name == "s16"
        for s0 in range(0, n, step):
            chunk = np.stack([tone[s0:s0 + step]] * 2)
            if s16:
                pcm = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                fr = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            else:
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = 48000, s0
            out.mux(a.encode(fr))
        out.mux(a.encode(None))
    if subtitles:
        for t0, text in [(0.05, b"Bonjour"), (end / 2, b"Au revoir")]:
            pk = av.Packet(text)
            pk.stream, pk.pts, pk.duration, pk.time_base = s, round(t0 * 1000), 200, tb
            out.mux(pk)
    out.close()
    return path


# ------------------------------------------------------------------------------ reading back


def video_frames(path: Path) -> tuple[list[Fraction], Any]:
    """(presentation times in seconds as exact fractions, decoded frames)."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        frames = list(c.decode(st))
        return [f.pts * st.time_base for f in frames], frames


def packets(path: Path, kind: str) -> list[tuple[bytes, Fraction]]:
    """(bytes, pts in seconds) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        st = getattr(c.streams, kind)[0]
        return [(bytes(p), p.pts * st.time_base) for p in c.demux(st) if p.size]


def audio_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(c.streams.audio[0]))


def decoded_rgb(path: Path, deep: bool = False) -> list[np.ndarray]:
    """The source's frames as the pipeline sees them (same colour conversion)."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        colour, _ = source_colour(st.codec_context, st.codec_context.format.name, st.codec_context.height)
        conv = FrameConverter(colour)
        return [conv.to_rgb(f, deep) for f in c.decode(st)]


def run_cli(*args: str | Path) -> int:
    return main(["video", *map(str, args)])


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries, work folders or partial files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model(realesrgan_models_dir: Path) -> Any:
    import superres

    return superres.load(MODEL, device="cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "cfr": make_clip(d / "cfr.mkv", CFR_PTS),
        "vfr": make_clip(d / "vfr.mkv", VFR_PTS, audio="pcm_s16le"),
        "ten": make_clip(d / "ten.mkv", CFR_PTS[:6], pix_fmt="yuv420p10le", audio=None, subtitles=False,
                         colour=(1, 9, 9, 16)),
    }


# ------------------------------------------------------------------------------ tests


def test_cfr_mkv_keeps_frames_timestamps_audio_subtitles_and_frames_dir_matches_the_model(
        model: Any, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out, frames = clips["cfr"], tmp_path / "out.mkv", tmp_path / "frames"
    assert run_cli(src, "-o", out, "--frames-dir", frames, "-m", MODEL) == 0
    t_in, _ = video_frames(src)
    t_out, f_out = video_frames(out)
    assert len(t_out) == len(t_in) == len(CFR_PTS)
    assert t_out == t_in
    assert (f_out[0].width, f_out[0].height) == (4 * W, 4 * H)
    # audio and subtitles copied: the very same packets at the very same times
    assert packets(out, "audio") == packets(src, "audio")
    assert packets(out, "subtitles") == packets(src, "subtitles")
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "superres test clip"
        assert c.streams.audio[0].metadata.get("language") == "eng"
        assert c.streams.subtitles[0].metadata.get("language") == "fra"
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.color_range, cc.colorspace) == ("h264", "yuv420p", 1, 1)
    assert leftovers(tmp_path) == []
    # the PNG frames are the model's output for the decoded source frames
    side = json.loads((frames / "frames.json").read_text())
    assert side["complete"] and [p for _, p, _ in side["frames"]] == CFR_PTS
    from superres.io import read_image

    for i, rgb in enumerate(decoded_rgb(src)):
        png = read_image(frames / f"frame_{i + 1:06d}.png").pixels
        ref = model.upscale(rgb)
        assert png.shape == ref.shape == (4 * H, 4 * W, 3)
        assert np.abs(png.astype(int) - ref.astype(int)).max() <= 1
    # and they assemble back into the same timing, with the source's audio
    out2 = tmp_path / "again.mkv"
    assert run_cli("--from-frames", frames, "-o", out2) == 0
    assert video_frames(out2)[0] == t_in
    assert packets(out2, "audio") == packets(src, "audio")
    assert "frames" in capsys.readouterr().out


def test_vfr_to_mp4_keeps_irregular_timestamps_and_reencodes_audio_it_cannot_hold(
        model: Any, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = clips["vfr"], tmp_path / "out.mp4"
    assert run_cli(src, "-o", out, "-m", MODEL) == 0
    err = capsys.readouterr().err
    assert "re-encoded to aac" in err and "subtitle #2 (srt): dropped" in err
    t_in, _ = video_frames(src)
    t_out, f_out = video_frames(out)
    assert [float(t) * 1000 for t in t_in] == VFR_PTS
    assert t_out == t_in  # exact: the MP4 time base is a multiple of 1/1000
    assert (f_out[0].width, f_out[0].height) == (4 * W, 4 * H)
    # same audio duration, up to the AAC frame (1024 samples) the encoder pads to
    assert abs(audio_samples(out) - audio_samples(src)) <= 1024
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("batch", ["1", "4"])  # 4: one batched forward of 4 frames, then one of 2
def test_lossless_output_equals_the_engine_on_each_frame(model: Any, tmp_path: Path, batch: str) -> None:
    src = make_clip(tmp_path / "six.mkv", CFR_PTS[:6], audio=None, subtitles=False)
    out = tmp_path / "lossless.mkv"
    assert run_cli(src, "-o", out, "-m", MODEL, "--codec", "libx264rgb", "--crf", "0", "--batch", batch) == 0
    pts_in, _ = video_frames(src)
    pts_out, frames = video_frames(out)
    assert pts_out == pts_in  # order and timing survive the batching
    for rgb, f in zip(decoded_rgb(src), frames, strict=True):
        assert f.format.name in ("gbrp", "bgr0", "rgb24", "bgr24")
        got = f.to_ndarray(format="rgb24")
        assert np.abs(got.astype(int) - model.upscale(rgb).astype(int)).max() <= 1


def test_ten_bit_in_ten_bit_out(model: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    src, out = clips["ten"], tmp_path / "out10.mkv"
    assert run_cli(src, "-o", out, "-m", MODEL) == 0
    t_out, frames = video_frames(out)
    assert t_out == video_frames(src)[0]
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.pix_fmt == "yuv420p10le"  # the default follows the source's depth and chroma layout
        assert (cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc) == (1, 9, 9, 16)
    luma = frames[3].to_ndarray()[: 4 * H]
    assert luma.dtype == np.uint16 and luma.max() < 1024
    assert np.mean(luma % 4 != 0) > 0.5  # real 10-bit values, not 8-bit ones shifted left
    # Colours survive the BT.2020 round trip: without chroma subsampling and at CRF 0 the frame is
    # the model's 16-bit output up to 10-bit rounding, and clearly closer than with the wrong matrix.
    out444 = tmp_path / "out444.mkv"
    assert run_cli(src, "-o", out444, "-m", MODEL, "--pix-fmt", "yuv444p10le", "--crf", "0") == 0
    frame = video_frames(out444)[1][3]
    ref = model.upscale(decoded_rgb(src, deep=True)[3])
    assert ref.dtype == np.uint16

    def error(matrix: int) -> float:
        got = FrameConverter(Colour(1, matrix, 9, 16)).to_rgb(frame, deep=True).astype(np.float32)
        return float(np.abs(got - ref.astype(np.float32)).mean() / 65535)

    assert error(9) < 0.006 and error(9) < error(1) / 2


def test_default_pixel_format_follows_the_source() -> None:
    from superres.video.encode import choose_pix_fmt

    notes: list[str] = []
    cases = {("libx264", "yuv420p10le"): "yuv420p10le", ("libx264", "yuv422p"): "yuv422p",
             ("libx264", "yuvj420p"): "yuv420p", ("libx264", "rgb24"): "yuv420p",
             ("libsvtav1", "yuv444p10le"): "yuv420p10le", ("libx264rgb", "yuv420p"): "rgb24",
             ("libx265", "yuv420p12le"): "yuv420p12le"}
    for (enc, src), want in cases.items():
        assert choose_pix_fmt(enc, src, None, notes, Path("x.mkv")) == want, (enc, src)
    assert "libsvtav1 cannot store yuv444p10le (the source's layout and depth); using yuv420p10le" in notes


def test_user_weight_file(model: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = tmp_path / "my_compact_x4.safetensors"
    save_file({k: v.contiguous() for k, v in model.model.module.state_dict().items()}, str(weights))
    src = make_clip(tmp_path / "four.mkv", CFR_PTS[:4], audio=None, subtitles=False)
    frames = tmp_path / "frames"
    assert run_cli(src, "--frames-dir", frames, "-m", weights, "--scale", "2") == 0
    from superres.io import read_image

    got = read_image(frames / "frame_000002.png").pixels
    ref = model.upscale(decoded_rgb(src)[1], scale=2)
    assert got.shape == (2 * H, 2 * W, 3)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_killed_run_leaves_no_output_and_resumes_to_the_same_frames(
        model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pts = [round(i * 1000 / 24) for i in range(36)]
    src = make_clip(tmp_path / "long.mkv", pts, rate=24)
    out = tmp_path / "out.mkv"
    args = ["video", str(src), "-o", str(out), "-m", MODEL, "--segment", "0.1", "--threads", "1"]
    manifest = tmp_path / ".out.mkv.superres-work" / "manifest.json"
    proc = subprocess.Popen([sys.executable, "-m", "superres", *args], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and len(json.loads(manifest.read_text())["segments"]) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing under the final name
    segments = json.loads(manifest.read_text())["segments"]
    done, done_frames = len(segments), sum(s["frames"] for s in segments)
    assert 2 <= done < 15
    assert main(args) == 0
    assert f"resuming: {done_frames} frame(s) already done in {done} segment(s)" in capsys.readouterr().err
    t_out, frames = video_frames(out)
    assert t_out == video_frames(src)[0]
    assert len(frames) == 36 and (frames[0].width, frames[0].height) == (4 * W, 4 * H)
    assert packets(out, "audio") == packets(src, "audio")
    assert leftovers(tmp_path) == []


def test_frames_folder_without_sidecar_needs_fps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from superres.io import write_image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(5):
        write_image(folder / f"img{i:03d}.png", pattern(i))
    out = tmp_path / "plain.mp4"
    assert run_cli("--from-frames", folder, "-o", out) == 1
    assert f"error: {folder}: no frames.json" in capsys.readouterr().err
    assert run_cli("--from-frames", folder, "-o", out, "--fps", "25") == 0
    t, frames = video_frames(out)
    assert t == [Fraction(i, 25) for i in range(5)] and (frames[0].width, frames[0].height) == (W, H)


def _audio_only(path: Path) -> Path:
    out = av.open(str(path), "w")
    a = out.add_stream("aac", rate=48000)
    a.layout = "stereo"
    fr = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
    fr.sample_rate, fr.pts = 48000, 0
    out.mux(a.encode(fr))
    out.mux(a.encode(None))
    out.close()
    return path


@pytest.mark.parametrize("case", ["random", "truncated", "audio_only", "missing", "container",
                                  "codec_container", "unknown_codec", "bad_pix_fmt", "bad_preset"])
def test_bad_input_is_one_clear_error_and_leaves_nothing(case: str, clips: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src, out, extra = clips["cfr"], tmp_path / "out.mkv", []
    if case == "random":
        src = tmp_path / "noise.mp4"
        src.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
        reason = "not a readable video"
    elif case == "truncated":
        data = clips["cfr"].read_bytes()
        src = tmp_path / "cut.mkv"
        src.write_bytes(data[: len(data) // 3])
        reason = "truncated"
    elif case == "audio_only":
        src = _audio_only(tmp_path / "tone.m4a")
        reason = "no video stream (streams: audio (aac))"
    elif case == "missing":
        src = tmp_path / "nope.mkv"
        reason = "no such file"
    elif case == "container":
        out = tmp_path / "out.xyz123"
        reason = "unsupported container '.xyz123'"
    elif case == "codec_container":
        out, extra = tmp_path / "out.webm", ["--codec", "h264"]
        reason = "cannot encode video for this container (webm)"
    elif case == "unknown_codec":
        extra = ["--codec", "nosuchcodec"]
        reason = "no encoder for codec 'nosuchcodec'"
    elif case == "bad_pix_fmt":
        extra = ["--pix-fmt", "yuv420p10le", "--codec", "mpeg4"]
        reason = "mpeg4 cannot encode yuv420p10le"
    else:
        extra = ["--preset", "nosuchpreset"]
        reason = "the encoder refused its settings"
    before = set(tmp_path.iterdir())
    assert run_cli(src, "-o", out, "-m", MODEL, *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    about_output = ("container", "codec_container", "unknown_codec", "bad_pix_fmt", "bad_preset")
    where = out if case in about_output else src
    assert err.startswith(f"error: {where}: "), err
    assert reason in err, err
    assert set(tmp_path.iterdir()) == before  # no output, no temporary, no work folder


def test_disk_full_is_reported_and_cleaned_up(clips: dict[str, Path], tmp_path: Path,
                                              realesrgan_models_dir: Path) -> None:
    """A real full disk: a 64 KiB tmpfs in a private mount namespace (unshare, no root needed)."""
    unshare = shutil.which("unshare")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mount = f"mount -t tmpfs -o size=64k tmpfs {mnt}"
    probe = subprocess.run([unshare or "unshare", "-rm", "sh", "-c", mount], capture_output=True, check=False)
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (unshare -rm): {probe.stderr.decode().strip()}")
    py = sys.executable
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mnt} || exit 99\n"
        f"{py} -m superres video {clips['cfr']} -o {mnt}/out.mkv -m {MODEL} --codec ffv1; echo rc=$?\n"
        f"{py} -m superres video {clips['cfr']} --frames-dir {mnt}/frames -m {MODEL}; echo rc=$?\n"
        f"ls -A {mnt}; echo files; ls -A {mnt}/frames | grep -v '^frame_.*png$'; echo end\n"
    )
    res = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ), check=False, timeout=600)
    out = res.stdout
    assert out.count("rc=1") == 2, res.stdout + res.stderr
    assert f"error: {mnt}/out.mkv: disk full (no space left on device); partial files removed" in res.stderr
    assert f"error: {mnt}/frames: disk full" in res.stderr
    listing = out.split("rc=1")[-1].split("files")[0].split()
    assert listing == ["frames"], out  # no out.mkv, no partial output, no work folder
    assert out.split("files")[1].split() == ["frames.json", "end"], out  # no half-written PNG
