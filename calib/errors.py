"""The error hierarchy of calib.

Every error a user can cause derives from :class:`CalibError`. The CLI maps a
``CalibError`` once to a one-line ``Error: ...`` message and exit status 1; no
traceback is shown for bad input. The double bases follow scikit-learn's
``NotFittedError(ValueError, AttributeError)`` so that callers catching the
built-in exception types keep working.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "CalibError",
    "IngestError",
    "ConfigError",
    "UnitError",
    "TrainingError",
    "ArtifactError",
    "IncompatibleArtifactError",
    "IntegrityError",
    "MissingExtraError",
    "TRAIN_MODULES",
    "missing_train_install",
    "escape_text",
    "clip_text",
    "clip_repr",
    "clip_list",
    "toml_key",
    "toml_string",
]

#: Top-level modules that only the training install (``pip install 'calib[train]'``) brings.
TRAIN_MODULES = ("tensorflow", "keras", "tf2onnx", "optuna", "sklearn", "scipy", "joblib", "matplotlib", "dask")


class CalibError(Exception):
    """Base class of every error calib raises on purpose."""


class MissingExtraError(CalibError, ImportError):
    """A command or function needs a package of an optional install (e.g. ``calib[train]``)."""


def missing_train_install(exc: BaseException) -> MissingExtraError | None:
    """The one-line error for an import of a training-only module, or None for any other error.

    The runtime install (``pip install calib``) predicts, inspects and serves with ONNX Runtime;
    training (``calibrate``, ``validate``, ``sweep``, ``adjust``, ``report``) needs ``calib[train]``.
    """
    name = getattr(exc, "name", None) or ""
    if not isinstance(exc, ImportError) or name.split(".")[0] not in TRAIN_MODULES:
        return None
    return MissingExtraError(
        f"this needs the training install, which is missing here (no module {name.split('.')[0]!r}): "
        "pip install 'calib[train]'"
    )


class IngestError(CalibError, ValueError):
    """Input data is malformed: names the file, row, column and what was expected."""


class ConfigError(CalibError, ValueError):
    """A configuration value or option is invalid: names the parameter, rule and value."""


class UnitError(ConfigError):
    """A unit is unknown, or a conversion lacks an input it needs."""


class TrainingError(CalibError, RuntimeError):
    """Training failed, e.g. the loss became NaN or infinite."""


class ArtifactError(CalibError):
    """A calibration artifact cannot be written, read or trusted."""


class IncompatibleArtifactError(ArtifactError):
    """The artifact was written by an incompatible (newer major) schema version."""


class IntegrityError(ArtifactError):
    """An artifact file is missing or its checksum does not match."""


def escape_text(text: str) -> str:
    """``text`` with every control, format (bidi, zero-width) or separator character escaped
    as Python writes it (``'\\x1b'``, ``'\\u202e'``); other characters (``ü``, ``µ``) unchanged.

    Never print a user's text raw: ``\\x1b[2J`` clears a terminal and ``\\u202e`` reverses
    what follows it.
    """
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def clip_text(text: object, limit: int = 60) -> str:
    """``text`` for a message, cut after ``limit`` characters with its full length
    (``1111...(2,000,000 characters)``), so that a long cell or column name cannot flood the one error line."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text):,} characters)"


def clip_repr(value: object, limit: int = 60) -> str:
    """The ``repr`` of a user's text for a message, cut like :func:`clip_text` (``'1111'...(2,000,000 characters)``)."""
    text = str(value)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}...({len(text):,} characters)"


def clip_list(items: object, most: int = 20) -> str:
    """Names for a message (columns, spots), comma separated: the first ``most``, each cut like
    :func:`clip_text`, then ``...`` when there are more."""
    items = [str(i) for i in items]
    return ", ".join(clip_text(i) for i in items[:most]) + (" ..." if len(items) > most else "")


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (what an error message may tell a user to paste).

    Examples
    --------
    >>> toml_string('O2 [µmol/L]')
    '"O2 [µmol/L]"'
    """
    return json.dumps(str(text), ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it may be, else quoted (``"Phase [°]"``).

    Examples
    --------
    >>> toml_key("phase_a"), toml_key("Phase A")
    ('phase_a', '"Phase A"')
    """
    return name if _BARE_KEY.match(name) else toml_string(name)
