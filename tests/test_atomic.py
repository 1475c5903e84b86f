"""superres.io.atomic: the one atomic file write (outputs, caches, checkpoints, manifests, videos)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from superres.io import atomic
from superres.io.atomic import (
    TEMP_SUFFIX,
    atomic_path,
    atomic_write,
    atomic_write_text,
    fsync_dir,
    stale_temps,
    temp_name,
)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_content_is_replaced_only_when_the_block_ends(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"new content")
        assert dest.read_bytes() == b"old"  # readers still see the complete old file
        assert tmp.parent == dest.parent and tmp.name.startswith(".") and tmp.name.endswith(TEMP_SUFFIX)
    assert dest.read_bytes() == b"new content"
    assert _names(tmp_path) == ["model.bin"]


def test_atomic_write_takes_bytes_or_pieces_and_text(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a", b"abc")
    atomic_write(tmp_path / "b", [b"ab", bytearray(b"cd"), memoryview(b"ef")])
    atomic_write_text(tmp_path / "c.json", '{"é": 1}\n')
    assert (tmp_path / "a").read_bytes() == b"abc"
    assert (tmp_path / "b").read_bytes() == b"abcdef"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == '{"é": 1}\n'
    assert _names(tmp_path) == ["a", "b", "c.json"]


def test_folders_are_created(tmp_path: Path) -> None:
    dest = tmp_path / "x" / "y" / "out.txt"
    atomic_write_text(dest, "hi")
    assert dest.read_text() == "hi"


def test_exception_in_the_block_removes_the_temporary_and_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "ckpt.pt"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half of it")
        raise RuntimeError("writer failed")
    assert dest.read_bytes() == b"old"
    assert _names(tmp_path) == ["ckpt.pt"]


def test_interrupt_in_the_block_removes_the_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(dest) as tmp:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_writer_that_never_creates_the_temporary_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.bin"):
        pass
    assert _names(tmp_path) == []


@pytest.mark.parametrize("failure", ["fsync", "replace"])
def test_disk_failure_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("simulated failure")

    monkeypatch.setattr(os, failure, boom)
    with pytest.raises(OSError, match="simulated failure"):
        atomic_write(dest, b"new")
    monkeypatch.undo()
    assert dest.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]


def test_permission_bits_of_the_old_file_are_kept(tmp_path: Path) -> None:
    dest = tmp_path / "shared.txt"
    atomic_write_text(dest, "one")
    assert dest.stat().st_mode & 0o7777 == 0o666 & ~atomic._UMASK  # the umask's, not mkstemp's 0600
    dest.chmod(0o640)
    atomic_write_text(dest, "two")
    assert dest.stat().st_mode & 0o7777 == 0o640
    with atomic_path(dest) as tmp:
        tmp.write_text("three")
    assert dest.stat().st_mode & 0o7777 == 0o640
    atomic_write_text(tmp_path / "private.txt", "x", mode=0o600)
    assert (tmp_path / "private.txt").stat().st_mode & 0o7777 == 0o600


@pytest.mark.parametrize(
    "name",
    [
        "a" * 251 + ".png",  # 255 bytes, the longest name most file systems allow
        "é" * 125 + ".jpeg",  # 255 bytes of two-byte characters
        "a" + "€" * 83 + ".bin",  # three-byte characters: truncation must not split one
    ],
)
def test_longest_destination_names_work(tmp_path: Path, name: str) -> None:
    assert len(name.encode()) <= 255
    dest = tmp_path / name
    tmp = temp_name(dest)
    assert len(tmp.name.encode()) <= 255 and tmp.name.endswith(TEMP_SUFFIX)
    atomic_write(dest, b"payload")
    assert dest.read_bytes() == b"payload"
    assert _names(tmp_path) == [name]


def test_temporary_names_are_fresh(tmp_path: Path) -> None:
    dest = tmp_path / "out.mkv"
    assert temp_name(dest) != temp_name(dest)


def test_stale_temps_finds_only_this_files_leftovers(tmp_path: Path) -> None:
    dest = tmp_path / "out.mkv"
    left = temp_name(dest)
    left.write_bytes(b"killed writer")
    temp_name(tmp_path / "other.mkv").write_bytes(b"not ours")
    (tmp_path / ".out.mkv.notatemp.part").write_bytes(b"not ours either")
    assert stale_temps(dest) == [left]
    assert stale_temps(tmp_path / "missing" / "x.bin") == []


def test_fsync_dir_is_best_effort(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    fsync_dir(tmp_path / "does-not-exist")  # no error: not every system can do it
