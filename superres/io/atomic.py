"""The one way superres writes a file: a hidden temporary beside it, fsync, rename, fsync the folder.

Readers (and a re-run after a crash or kill) see either the old file or the complete new one,
never a truncated file. Everything that writes outputs, caches, checkpoints, manifests or
plots goes through :func:`atomic_path` or :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Our temporaries are ``.<name prefix>.<8 hex>.part``: hidden, recognisable, and short enough
# for any destination name (a 255-byte name still gets a temporary that fits NAME_MAX).
TEMP_SUFFIX = ".part"
_NAME_MAX = 255
_TOKEN_HEX = 8


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_UMASK = _current_umask()


def _temp_stem(path: Path) -> str:
    room = _NAME_MAX - len(b".") - len(b".") - _TOKEN_HEX - len(TEMP_SUFFIX.encode())
    return path.name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")


def temp_name(path: str | os.PathLike[str]) -> Path:
    """A fresh hidden temporary path in ``path``'s folder that fits the file-name length limit."""
    path = Path(path)
    return path.with_name(f".{_temp_stem(path)}.{secrets.token_hex(_TOKEN_HEX // 2)}{TEMP_SUFFIX}")


_TEMP_NAME = re.compile(r"\.(?P<stem>.*)\.[0-9a-f]{" + str(_TOKEN_HEX) + "}" + re.escape(TEMP_SUFFIX), re.S)


def temps_in(folder: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Our temporaries in ``folder`` (one listing), keyed by :func:`temp_key` of their destination.

    For a writer of many files into one folder (a batch), which looks each output up here
    instead of listing the folder once per file.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    found: dict[str, list[Path]] = {}
    for name in names:
        m = _TEMP_NAME.fullmatch(name)
        if m:
            found.setdefault(m.group("stem"), []).append(folder / name)
    return found


def temp_key(path: str | os.PathLike[str]) -> str:
    """The part of ``path``'s temporaries' names that names it (its name, cut to fit)."""
    return _temp_stem(Path(path))


def stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Temporaries of ``path`` that a killed writer left behind (a kill skips every cleanup).

    For writers of large files (a muxed video) that sweep them before writing ``path`` again.
    """
    return temps_in(Path(path).parent).get(temp_key(path), [])


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable; silently impossible on some systems (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path, mode: int) -> None:
    with open(path, "rb+") as f:
        if hasattr(os, "fchmod"):
            os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path``.

    For writers that want a file name (``torch.save``, ``safetensors.save_file``, matplotlib,
    a muxer). The new file keeps the old file's permission bits, else ``mode``, else the umask's.
    On any exception the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_UMASK
    tmp = temp_name(path)
    try:
        yield tmp
        _fsync_file(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | bytearray | memoryview | Iterable[Any], *,
                 mode: int | None = None) -> None:
    """Write bytes (or an iterable of bytes-like pieces) to ``path`` atomically."""
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    with atomic_path(path, mode=mode) as tmp, open(tmp, "xb") as f:
        for piece in pieces:
            f.write(piece)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    atomic_write(path, text.encode("utf-8"), mode=mode)
