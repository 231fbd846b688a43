"""One JSON form for calib's objects (artifact metadata, ``--json`` output, ONNX properties).

:func:`to_jsonable` turns numpy scalars and arrays, tuples, paths and dataclasses (or any
object with ``to_dict()``) into plain JSON values, non-finite floats into ``None``;
:func:`json_bytes` and :func:`json_text` serialise that form.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError

__all__ = ["to_jsonable", "json_bytes", "json_text"]


def to_jsonable(obj: Any) -> Any:
    """Plain-JSON form of ``obj``: numpy scalars/arrays, tuples, paths, dataclasses; NaN/inf -> None.

    Raises
    ------
    ConfigError
        ``obj`` holds a value that has no JSON form (e.g. a function).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(obj))
    raise ConfigError(f"metadata must be JSON-serialisable, got a {type(obj).__name__}: {obj!r:.80}")


def json_bytes(obj: Any) -> bytes:
    """Indented UTF-8 JSON of an already plain object, with a final newline (files)."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def json_text(obj: Any, *, indent: int | None = None) -> str:
    """Compact (or indented) JSON text of ``to_jsonable(obj)``, keys sorted when compact."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=indent is None, allow_nan=False)
