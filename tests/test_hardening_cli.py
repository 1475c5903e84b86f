"""Issue 17 items 3, 5 and 7 at the CLI: long names, temporaries a kill left, paths and options.

Each reproduction of the issue is a test asserting the exit code, exactly one error line per bad
file (naming the input), every good file written and no temporary left. The tiny shipped
``fsrcnn-x2`` keeps them fast; a few run the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superres.cli.main import main
from superres.io.atomic import TEMP_SUFFIX, stale_temps, temp_name
from tests.conftest import REPO
from tests.helpers import photo, save_rgb

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = ["-m", "fsrcnn-x2"]


def cli(*args: str) -> int:
    return main([*args, *MODEL]) if args[0] == "upscale" else main(list(args))


def run_sub(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "superres", *args, *MODEL], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def errors(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def no_temporaries(*roots: Path) -> None:
    for root in roots:
        left = [p for p in root.rglob(f"*{TEMP_SUFFIX}")]
        assert left == [], left


def small(path: Path, h: int = 8, w: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_rgb(path, photo(h, w))


# ---- item 3: long names -------------------------------------------------------------------
def test_output_names_of_241_to_255_bytes_are_written_and_a_too_long_one_names_its_input(tmp_path: Path
                                                                                        ) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    good = [small(inp / ("n" * (n - 4) + ".png")) for n in (241, 248, 255)]
    good.append(small(inp / ("é" * 120 + "x.png")))  # 246 bytes of UTF-8
    res = run_sub("upscale", str(inp), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert errors(res.stderr) == []
    assert files(out) == sorted(p.name for p in good)
    for p in good:
        assert Image.open(out / p.name).size == (20, 16)
    no_temporaries(out)
    # a suffix that takes a 253-byte name past 255: one line, naming the input and the output
    long_in = tmp_path / "in2" / ("m" * 249 + ".png")
    small(long_in)
    small(tmp_path / "in2" / "fine.png")
    res = run_sub("upscale", str(tmp_path / "in2"), "-o", str(tmp_path / "out2"), "--suffix", "_x2")
    assert res.returncode == 1
    (line,) = errors(res.stderr)
    assert line.startswith(f"error: {long_in}: cannot write ") and "_x2.png" in line and "too long" in line
    assert files(tmp_path / "out2") == ["fine_x2.png"]
    no_temporaries(tmp_path / "out2")


def test_temp_name_fits_any_name_length(tmp_path: Path) -> None:
    for n in (1, 200, 241, 250, 255):
        name = temp_name(tmp_path / ("q" * n)).name
        assert len(name.encode()) <= 255 and name.startswith(".") and name.endswith(TEMP_SUFFIX)


# ---- item 5: temporaries a killed run left ---------------------------------------------------
def test_stale_temporaries_of_our_outputs_are_removed_and_nothing_else(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    small(inp / "a.png")
    small(inp / ("L" * 251 + ".png"))
    out.mkdir()
    ours = [out / ".a.png.0123abcd.part", temp_name(out / ("L" * 251 + ".png"))]
    theirs = [out / ".a.png.part", out / ".a.png.0123ABCD.part", out / ".a.png.0123abc.part",
              out / "a.png.0123abcd.part", out / ".b.png.0123abcd.part", out / ".a.png.0123abcd.part.bak"]
    for p in ours + theirs:
        p.write_bytes(b"\x89PNG half a file")
    old = time.time() - 60
    for p in ours + theirs:
        os.utime(p, (old, old))
    assert cli("upscale", str(inp), "-o", str(out)) == 0
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs)  # a user's files, or temporaries of outputs not ours
    # the next run sweeps them too when the output is already there (a kill during --overwrite)
    again = out / ".a.png.fedcba98.part"
    again.write_bytes(b"")
    os.utime(again, (old, old))
    assert cli("upscale", str(inp), "-o", str(out)) == 0
    assert not again.exists()
    assert stale_temps(out / "a.png") == []


def test_a_fresh_temporary_of_a_concurrent_writer_is_left_alone(tmp_path: Path) -> None:
    src = small(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    future = out / ".a.png.00000000.part"
    future.write_bytes(b"")
    later = time.time() + 3600  # newer than the run: someone else's write in progress
    os.utime(future, (later, later))
    assert cli("upscale", str(src), "-o", str(out)) == 0
    assert future.exists()


# ---- item 7: paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["same", "dot", "absolute", "symlink"])
def test_output_equal_to_the_input_is_an_argument_error(tmp_path: Path, capsys, spelling: str) -> None:
    src = small(tmp_path / "a.png")
    before = src.read_bytes()
    out = {"same": "a.png", "dot": "./a.png", "absolute": str(src), "symlink": "link.png"}[spelling]
    (tmp_path / "link.png").symlink_to(src)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = cli("upscale", "a.png", "-o", out)
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2
    (line,) = errors(err)
    assert "is the input" in line and "a.png" in line
    assert src.read_bytes() == before
    no_temporaries(tmp_path)


def test_output_equal_to_the_input_in_a_subprocess(tmp_path: Path) -> None:
    small(tmp_path / "a.png")
    res = run_sub("upscale", "a.png", "-o", "a.png", cwd=tmp_path)
    assert res.returncode == 2
    assert len(errors(res.stderr)) == 1 and "Traceback" not in res.stderr
    assert "skipped" not in res.stdout


def test_recursive_run_into_a_folder_inside_the_input_does_not_eat_its_outputs(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    small(inp / "a.png")
    small(inp / "sub" / "b.png")
    for _ in range(3):
        assert cli("upscale", str(inp), "-o", str(inp / "out"), "--recursive") == 0
    assert files(inp) == ["a.png", "out/a.png", "out/sub/b.png", "sub/b.png"]
    no_temporaries(inp)


def test_suffix_into_the_input_folder_does_not_upscale_its_outputs_again(tmp_path: Path, capsys) -> None:
    inp = tmp_path / "in"
    small(inp / "a.png")
    small(inp / "sub" / "b.png")
    small(inp / "lonely_x2.png")  # no lonely.png beside it: a user's file, an input like any other
    for _ in range(3):
        assert cli("upscale", str(inp), "-o", str(inp), "--recursive", "--suffix", "_x2") == 0
    assert files(inp) == ["a.png", "a_x2.png", "lonely_x2.png", "lonely_x2_x2.png", "sub/b.png",
                          "sub/b_x2.png"]
    assert "0 written, 3 skipped" in capsys.readouterr().out


def test_suffix_into_the_input_folder_without_recursion(tmp_path: Path, capsys) -> None:
    small(tmp_path / "a.png")
    Image.fromarray(photo(8, 10)).save(tmp_path / "b.jpg")
    for _ in range(3):
        assert cli("upscale", str(tmp_path), "-o", str(tmp_path), "--suffix", "_x2") == 0
    assert files(tmp_path) == ["a.png", "a_x2.png", "b.jpg", "b_x2.jpg"]
    assert "0 written, 2 skipped" in capsys.readouterr().out
    # named explicitly, an earlier output is an input like any other
    assert cli("upscale", str(tmp_path / "a_x2.png"), "-o", str(tmp_path), "--suffix", "_x2") == 0
    assert (tmp_path / "a_x2_x2.png").is_file()


def test_one_file_spelled_several_ways_is_one_input(tmp_path: Path, capsys) -> None:
    src = small(tmp_path / "in" / "a.png")
    (tmp_path / "alias").mkdir()
    (tmp_path / "alias" / "a.png").symlink_to(src)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = cli("upscale", "in/a.png", "./in/a.png", str(src), "in//a.png", "alias/a.png", "-o", "out",
                   "--overwrite")
    finally:
        os.chdir(cwd)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert errors(captured.err) == []
    assert files(tmp_path / "out") == ["a.png"]


def test_two_different_files_for_one_output_still_clash(tmp_path: Path, capsys) -> None:
    small(tmp_path / "x" / "a.png")
    Image.fromarray(photo(8, 10)).save(tmp_path / "y.jpg")
    (tmp_path / "x" / "a.jpg").write_bytes((tmp_path / "y.jpg").read_bytes())
    code = cli("upscale", str(tmp_path / "x"), "-o", str(tmp_path / "out"), "-f", "png", "--overwrite")
    assert code == 1
    (line,) = errors(capsys.readouterr().err)
    assert "a.png" in line and "also the output of" in line


def test_unreadable_subfolder_is_one_error_line_and_the_rest_is_done(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    inp = tmp_path / "in"
    small(inp / "a.png")
    small(inp / "locked" / "hidden.png")
    small(inp / "z" / "c.png")
    real_scandir = os.scandir

    def scandir(path):  # what a mode-000 folder does for a user who is not root
        if Path(path) == inp / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code = cli("upscale", str(inp), "-o", str(tmp_path / "out"), "--recursive")
    assert code == 1
    (line,) = errors(capsys.readouterr().err)
    assert line == f"error: {inp / 'locked'}: cannot read folder: Permission denied"
    assert files(tmp_path / "out") == ["a.png", "z/c.png"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads mode-000 folders")
def test_mode_000_subfolder_for_real(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    small(inp / "a.png")
    small(inp / "locked" / "hidden.png")
    (inp / "locked").chmod(0)
    try:
        res = run_sub("upscale", str(inp), "-o", str(tmp_path / "out"), "--recursive")
    finally:
        (inp / "locked").chmod(0o755)
    assert res.returncode == 1
    (line,) = errors(res.stderr)
    assert "locked" in line and "cannot read folder" in line
    assert files(tmp_path / "out") == ["a.png"]


def test_output_over_the_size_limit_is_the_input_s_error_line(tmp_path: Path, capsys,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    good, big = small(tmp_path / "good.png"), small(tmp_path / "big.png", 40, 40)
    code = cli("upscale", str(good), str(big), "-o", str(tmp_path / "out"), "--scale", "1e5")
    assert code == 1
    lines = errors(capsys.readouterr().err)
    assert len(lines) == 2 and all("over the output limit" in ln for ln in lines)
    assert files(tmp_path / "out") == []
    monkeypatch.setenv("SUPERRES_MAX_OUTPUT_PIXELS", str(20 * 16))  # good.png's output exactly
    code = cli("upscale", str(good), str(big), "-o", str(tmp_path / "out"))
    assert code == 1
    (line,) = errors(capsys.readouterr().err)
    assert line.startswith(f"error: {big}: output 80x80") and "SUPERRES_MAX_OUTPUT_PIXELS" in line
    assert files(tmp_path / "out") == ["good.png"]


# ---- item 7: numbers checked by the argument parser -----------------------------------------
@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("--threads", "-1", "whole number >= 1"),
    ("--threads", "0", "whole number >= 1"),
    ("--scale", "nan", "finite number > 0"),
    ("--scale", "inf", "finite number > 0"),
    ("--scale", "0", "finite number > 0"),
    ("--scale", "-1", "finite number > 0"),
    ("--scale", "two", "finite number > 0"),
    ("--tile", "-5", "whole number >= 0"),
    ("--tile-pad", "-1", "whole number >= 0"),
    ("--batch", "0", "whole number >= 1"),
    ("--model-scale", "0", "whole number >= 1"),
    ("--quality", "0", "whole number from 1 to 100"),
    ("--quality", "101", "whole number from 1 to 100"),
])
def test_bad_numbers_are_argument_errors(tmp_path: Path, capsys, option: str, value: str,
                                         allowed: str) -> None:
    src = small(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exc:
        cli("upscale", str(src), "-o", str(tmp_path / "out"), f"{option}={value}")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err or option in err
    assert f"invalid value '{value}': must be a {allowed}" in err
    assert not (tmp_path / "out").exists()


def test_bad_threads_in_a_subprocess_is_no_traceback(tmp_path: Path) -> None:
    src = small(tmp_path / "a.png")
    res = run_sub("upscale", str(src), "-o", str(tmp_path / "out"), "--threads", "-1")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "must be a whole number >= 1" in res.stderr


@pytest.mark.parametrize("args", [["--tile", "0"], ["--tile-pad", "0"], ["--scale", "1.5"],
                                  ["--threads", "1"], ["--batch", "2"], ["-q", "1"], ["-q", "100"]])
def test_edge_values_still_accepted(tmp_path: Path, args: list[str]) -> None:
    src = small(tmp_path / "a.png")
    assert cli("upscale", str(src), "-o", str(tmp_path / "out.png"), *args) == 0
    assert np.asarray(Image.open(tmp_path / "out.png")).ndim == 3
