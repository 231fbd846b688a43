"""The error hierarchy of calib.

Every error a user can cause derives from :class:`CalibError`. The CLI maps a
``CalibError`` once to a one-line ``Error: ...`` message and exit status 1; no
traceback is shown for bad input. The double bases follow scikit-learn's
``NotFittedError(ValueError, AttributeError)`` so that callers catching the
built-in exception types keep working.
"""

from __future__ import annotations

__all__ = [
    "CalibError",
    "IngestError",
    "ConfigError",
    "UnitError",
    "TrainingError",
    "ArtifactError",
    "IncompatibleArtifactError",
    "IntegrityError",
    "escape_text",
]


class CalibError(Exception):
    """Base class of every error calib raises on purpose."""


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
