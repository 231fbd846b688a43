"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a bad input never leaves a half-written or half-overwritten file. A process
killed mid-write (SIGKILL, power loss) leaves at most its hidden temporary file
``.<name>.<random>[<suffix>].tmp`` beside the target; the next write of the same target
removes such files once they are older than :data:`STALE_TMP_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import CalibError

__all__ = ["atomic_write", "atomic_path", "sha256_file", "STALE_TMP_SECONDS"]

#: A temporary file of :func:`atomic_path` older than this (s) was left by a killed process;
#: the next write of the same target removes it (a running write is never that old).
STALE_TMP_SECONDS = 3600.0


def _clean_stale_tmp(folder: Path, name: str, suffix: str) -> None:
    """Remove ``.<name>.<8 random chars><suffix>.tmp`` files older than STALE_TMP_SECONDS."""
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(f"{suffix}.tmp"))
    now = time.time()
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if pattern.fullmatch(e.name)]
    except OSError:
        return
    for e in entries:
        with contextlib.suppress(OSError):
            stale = now - e.stat(follow_symlinks=False).st_mtime > STALE_TMP_SECONDS
            if stale and e.is_file(follow_symlinks=False):
                os.unlink(e.path)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.

    Raises
    ------
    CalibError
        If the folder does not exist or is not writable (e.g. read-only or full disk).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CalibError(f"{target}: folder {folder} does not exist")
    _clean_stale_tmp(folder, target.name, suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=folder)
    except OSError as exc:
        raise CalibError(f"{target}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    _plain_mode(tmp_path)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise CalibError(f"{target}: write failed ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _plain_mode(path: Path) -> None:
    """mkstemp makes 0600 files; give the result the mode any new file gets (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:  # pragma: no cover - best effort
        pass


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically."""
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        write(tmp)
    return Path(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
