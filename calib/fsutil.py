"""Atomic file writes, and the one policy on where a user's output may go.

Writes go to a temporary file beside the target, then are renamed onto it.

A crash or a bad input never leaves a half-written or half-overwritten file. A process
killed mid-write (SIGKILL, power loss) leaves at most its hidden temporary file
``.<name>.<random>[<suffix>].tmp`` beside the target; the next write of the same target
removes such files once they are older than :data:`STALE_TMP_SECONDS`.

Output paths
------------
Every command that writes a file the user names (``calib predict -o``, ``calib ingest -o``,
``calib simulate -o``, ``calib report -o``) first calls :func:`check_output_path`:

- the target must be a regular file or not exist yet: a folder, a symbolic link (even to a
  regular file), a device (``/dev/null``), a named pipe or a socket is refused;
- the target must not lie inside a calibration artifact (a folder holding
  ``calibration.json`` or ``SHA256SUMS``, or any folder under ``<models>/<name>/<version>/``):
  a file there would break the artifact's checksums;
- an existing file is replaced only with ``force`` (``--force``); the final rename then
  refuses a file that appeared meanwhile (:func:`atomic_path` with ``overwrite=False``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import CalibError, ConfigError
from .rawio import file_kind

__all__ = ["atomic_write", "atomic_path", "check_output_path", "place_file", "artifact_folder_of", "sha256_file",
           "STALE_TMP_SECONDS", "ARTIFACT_MARKERS"]

#: Files that make a folder a calibration artifact version (calib.artifact.store writes both).
ARTIFACT_MARKERS = ("calibration.json", "SHA256SUMS")
_VERSION_NAME = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?")

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


def _is_artifact(folder: Path) -> bool:
    return any((folder / m).is_file() for m in ARTIFACT_MARKERS)


def artifact_folder_of(path: str | Path) -> Path | None:
    """The artifact version folder that ``path`` (a file or folder, existing or not) lies in, or None.

    An artifact folder holds ``calibration.json`` or ``SHA256SUMS``; a folder named like a
    version (``1.2.0``) beside such a folder is one too (e.g. being written).
    """
    here = Path(os.path.abspath(path))
    for d in (here, *here.parents):
        if _is_artifact(d):
            return d
        if _VERSION_NAME.fullmatch(d.name) and d.parent.is_dir():
            with contextlib.suppress(OSError):
                if any(_VERSION_NAME.fullmatch(s.name) and _is_artifact(s) for s in d.parent.iterdir()):
                    return d
    return None


def check_output_path(path: str | Path, *, force: bool, what: str = "output") -> Path:
    """Refuse an output path the user surely did not mean; return it as a Path.

    Parameters
    ----------
    path : str or Path
        The file to write.
    force : bool
        Allow replacing an existing regular file (``--force``).
    what : str, default="output"
        How to name the file in messages (``"output"``, ``"readings file"``, ...).

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        ``path`` is a folder, a symbolic link, a device, a named pipe or a socket; lies inside
        an artifact folder; or is an existing file and ``force`` is false ("use --force to
        overwrite").
    """
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot check it ({exc.strerror or exc})") from None
    if st is not None:
        kind = file_kind(st.st_mode)
        if kind == "a symbolic link":
            raise ConfigError(f"{what} {p} is a symbolic link (to {os.readlink(p)}); refusing to write through "
                              "it: give the real file path")
        if kind is not None:
            raise ConfigError(f"{what} {p} is {kind}, not a regular file; expected a file path")
    art = artifact_folder_of(p.parent if str(p.parent) else Path("."))
    if art is not None:
        raise ConfigError(f"{what} {p} is inside the artifact folder {art} (it would break its SHA256SUMS); "
                          "choose a path outside it")
    if st is not None and not force:
        raise ConfigError(f"{what} {p} already exists; use --force to overwrite")
    return p


def place_file(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``target``; without ``overwrite`` fail if ``target`` exists (atomically:
    a hard link never replaces; where links are not supported, check then rename).

    Raises
    ------
    ConfigError
        ``target`` exists and ``overwrite`` is false ("use --force to overwrite").
    OSError
        The rename fails.
    """
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise ConfigError(f"output {target} already exists; use --force to overwrite") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(target):
            raise ConfigError(f"output {target} already exists; use --force to overwrite") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or Path
        The target.
    suffix : str, default=""
        Suffix of the temporary file (some writers choose the format by it).
    overwrite : bool, default=True
        Replace an existing ``path``; if false, an existing ``path`` (even one created while
        writing) is left alone and :class:`~calib.errors.ConfigError` raised.

    Raises
    ------
    CalibError
        If the folder does not exist or is not writable (e.g. read-only or full disk).
    ConfigError
        ``path`` exists and ``overwrite`` is false.
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
        place_file(tmp_path, target, overwrite)
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


def atomic_write(path: str | Path, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, suffix=Path(path).suffix, overwrite=overwrite) as tmp:
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
