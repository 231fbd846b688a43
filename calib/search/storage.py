"""Where a sweep's trials are recorded: an Optuna journal file or an RDB database.

:func:`storage_spec` normalises the ``storage`` argument (an absolute journal path, or a
checked database URL), :func:`open_storage` opens it (repairing a journal whose last record
a killed process left torn), :func:`open_study` loads or creates the study (cached per
process), :func:`claim_lock` serialises trial claims among the processes of one machine and
:func:`mask_url` hides a password for messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..constraints import Satisfies, check_param, require
from ..errors import CalibError, ConfigError

_log = logging.getLogger(__name__)


#: Where trials are recorded when no storage is given (relative to the working folder).
DEFAULT_STORAGE = "runs/sweep.journal"

_URL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
#: Rule of a storage argument (the same text as ``[sweep] storage``'s).
STORAGE = [Satisfies(lambda v: isinstance(v, str) and bool(v.strip()), "{name} is a file path or a database URL")]


def mask_url(spec: str) -> str:
    """Hide a password in a database URL."""
    if "://" not in spec:
        return spec
    scheme, rest = spec.split("://", 1)
    if "@" in rest:
        cred, host = rest.rsplit("@", 1)
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":***"
        rest = f"{cred}@{host}"
    return f"{scheme}://{rest}"


def storage_spec(storage: str | os.PathLike[str] | None) -> str:
    """Normalise a storage argument: an absolute journal path or a checked RDB URL."""
    if storage is None:
        storage = DEFAULT_STORAGE
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    check_param("storage", storage, STORAGE)
    s = storage.strip()
    if "://" in s:
        scheme = s.split("://", 1)[0].split("+", 1)[0].lower()
        # the value is shown with its password masked, so not through check_param
        require(scheme in _URL_SCHEMES, f"storage URL scheme in {{{', '.join(map(repr, _URL_SCHEMES))}}} "
                "(or a journal file path)", storage=mask_url(s))
        return s
    return str(Path(s).expanduser().resolve())


def is_url(spec: str) -> bool:
    """Whether a normalised storage spec is a database URL (else a journal file)."""
    return "://" in spec


def _sqlite_file(spec: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for another URL or an in-memory one)."""
    scheme, rest = spec.split("://", 1)
    db = rest.split("?", 1)[0]
    db = db[1:] if db.startswith("/") else db
    if scheme.split("+", 1)[0].lower() == "sqlite" and db and db != ":memory:":
        return Path(db).expanduser()
    return None


def leaderboard_folder(spec: str, data_source: str | os.PathLike[str] | None = None) -> Path:
    """Where a sweep's leaderboard files go: beside the trial record.

    A journal's folder; a SQLite database file's folder; for a database server, the runs folder of
    the data (``$CALIB_RUNS_DIR`` or ``runs``, then the data file's stem), never the working folder,
    where ``leaderboard.csv`` may be a user's own file (the study's leaderboard is replaced on resume).
    """
    if not is_url(spec):
        return Path(spec).parent
    db = _sqlite_file(spec)
    if db is not None:
        return db.resolve().parent
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(data_source or "")).stem).strip("-.") or "data"
    return Path(os.environ.get("CALIB_RUNS_DIR", "runs")) / stem[:80]


def _check_journal(path: Path) -> None:
    """Refuse an existing file that is not an Optuna journal before anything reads or repairs it:
    the repair cuts a last line without a newline, which on a readings CSV given by mistake
    (``calib report data.csv``, ``--storage data.csv``) would cut the user's last row.

    Raises
    ------
    ConfigError
        Not a regular file, or its first line is not a journal record.
    """
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"{path}: not a sweep journal (not a regular file); expected a journal file "
                          "(a new one, or one calib sweep wrote) or a database URL")
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 20)
    except OSError as exc:
        raise CalibError(f"{path}: cannot read the sweep journal ({exc.strerror or exc})") from None
    if not first:
        return
    try:
        record = json.loads(first)
    except ValueError:  # also UnicodeDecodeError
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise ConfigError(f"{path}: not a sweep journal (its first line is not an Optuna journal record); "
                          "expected a journal file (a new one, or one calib sweep wrote) or a database URL")


def _repair_journal(path: Path) -> None:
    """Drop a torn last line (a process killed mid-write) so the journal stays readable."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
    lock = JournalFileSymlinkLock(str(path))
    if not lock.acquire():  # pragma: no cover - acquire blocks until it succeeds
        return
    try:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(path, "r+b") as fh:
                fh.truncate(cut)
            _log.warning("%s: dropped a torn last record (%d bytes)", path, len(data) - cut)
    finally:
        lock.release()


_STUDIES: dict[tuple[str, str], Any] = {}


def open_storage(spec: str) -> Any:
    """Open the Optuna storage of ``spec`` (see :func:`storage_spec`).

    An ``RDBStorage`` for a database URL; else a ``JournalStorage`` over the journal file, its
    folder created and a torn last record dropped.

    Raises
    ------
    ConfigError
        The database cannot be opened (bad URL, unreachable server, missing driver), or the
        journal path holds a file that is not an Optuna journal (left untouched).
    CalibError
        The journal's folder cannot be created.
    """
    import optuna

    if is_url(spec):
        db = _sqlite_file(spec)
        if db is not None:  # as for a journal: the database file's folder is made
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CalibError(f"{mask_url(spec)}: cannot create folder {db.parent} ({exc.strerror or exc})") from None
        try:
            return optuna.storages.RDBStorage(spec)
        except Exception as exc:  # sqlalchemy errors: bad URL, unreachable server, no driver
            raise ConfigError(f"cannot open storage {mask_url(spec)}: {type(exc).__name__}: {exc}") from None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or exc
        raise CalibError(f"{path}: cannot create folder {path.parent} ({why})") from None
    _check_journal(path)
    _repair_journal(path)
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except ValueError as exc:  # a record further down that is not JSON (json's error, UnicodeDecodeError)
        raise ConfigError(f"{path}: not a readable sweep journal ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None


def _file_id(spec: str) -> tuple[int, int] | None:
    try:
        st = os.stat(spec)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def open_study(spec: str, study_name: str, sampler: Any = None, *, create: bool = False) -> Any:
    """The study in ``spec``, with ``sampler`` set when given.

    Cached per process (a journal is replayed once); ``create=True`` (the start of a sweep)
    always opens the storage afresh, so a journal deleted and written anew is not mixed up
    with the old one.
    """
    import optuna

    key = (spec, study_name)
    study = None if create else _STUDIES.get(key)
    if study is not None and not is_url(spec) and getattr(study, "_calib_file_id", None) != _file_id(spec):
        study = None
    if study is None:
        storage = open_storage(spec)
        if create:
            study = optuna.create_study(storage=storage, study_name=study_name,
                                        direction="minimize", load_if_exists=True)
        else:
            try:
                study = optuna.load_study(study_name=study_name, storage=storage)
            except KeyError:
                raise ConfigError(f"storage {mask_url(spec)} holds no study named {study_name!r}") from None
        study._calib_file_id = None if is_url(spec) else _file_id(spec)
        _STUDIES[key] = study
    if sampler is not None:
        study.sampler = sampler
    return study


@contextlib.contextmanager
def claim_lock(spec: str, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" among the processes of this machine."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the post-ask check still prevents overshoot
        yield
        return
    if is_url(spec):
        import tempfile

        digest = hashlib.sha1(f"{spec}\0{study_name}".encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"calib-sweep-{digest}.lock"
    else:
        path = Path(spec)
    with open(path, "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Within the block, Optuna logs warnings and errors only."""
    import optuna

    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)
