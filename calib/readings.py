"""Readings in a model's schema: find each input column, convert its unit, refuse what is not a reading.

Used by the one inference path (:mod:`calib.runtime`) for files and frames alike, and by
the spot reference reader (:mod:`calib.spots.reference`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .columns import resolve_feature_columns
from .errors import IngestError

if TYPE_CHECKING:  # pragma: no cover
    from .ingest import RawTable

__all__ = [
    "resolve_feature_columns", "numeric_column", "check_physical_array", "feature_frequency", "spot_ids",
    "float32_columns", "finite_columns",
]

#: Rows converted at once by :func:`float32_columns` (a block of the source stays in cache).
CONVERT_ROWS = 65536


def feature_frequency(f: Mapping[str, Any]) -> float | None:
    v = f.get("frequency_hz")
    return float(v) if v not in (None, "") else None


def numeric_column(table: RawTable, column: str) -> np.ndarray:
    """A column as finite float64 numbers; errors exactly as :func:`calib.ingest.parse_numeric`.

    Text columns go through a fast strict parse (pyarrow); anything it does not accept
    cleanly (spaces, empty cells, ``nan``, ...) is left to ``parse_numeric``, which either
    accepts it the same way ingestion does or raises the one-line error.
    """
    import pandas as pd

    from .ingest import parse_numeric

    s = table.frame[column]
    if not pd.api.types.is_numeric_dtype(s.dtype):
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            arr = pa.array(s, type=pa.string(), from_pandas=True)
            if table.decimal == ",":
                if pc.any(pc.match_substring(arr, ".")).as_py():  # refused, with its row, by parse_numeric
                    return parse_numeric(s, table, column)
                arr = pc.replace_substring(arr, ",", ".")
            values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            if values.dtype == np.float64 and np.isfinite(values).all():
                return values
        except Exception:  # pyarrow refuses the text: the slow path gives the precise error
            pass
    return parse_numeric(s, table, column)


def spot_ids(values: Any) -> np.ndarray:
    """Spot ids as stripped strings (an empty or missing cell is ``""``), shape (n,)."""
    import pandas as pd

    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    return s.astype(object).where(s.notna(), "").astype(str).str.strip().to_numpy()


def float32_columns(arr: np.ndarray) -> np.ndarray:
    """``arr`` (n, m) as a column-major float32 array, converted in row blocks.

    Equal to ``np.asfortranarray(arr, dtype=np.float32)``; for a row-major source the
    blocks keep the transposing copy in cache (about 2.5x faster on 1M x 5 float64). A value
    beyond float32's range becomes +-inf (no warning; the caller refuses it).
    """
    n = arr.shape[0]
    if arr.flags.f_contiguous or n <= CONVERT_ROWS:
        with np.errstate(over="ignore"):
            return np.asfortranarray(arr, dtype=np.float32)
    out = np.empty(arr.shape, dtype=np.float32, order="F")
    with np.errstate(over="ignore"):
        for start in range(0, n, CONVERT_ROWS):
            out[start:start + CONVERT_ROWS] = arr[start:start + CONVERT_ROWS]
    return out


def finite_columns(x: np.ndarray, lower: np.ndarray | None = None, upper: np.ndarray | None = None) -> bool:
    """True when every value of ``x`` (n, m) is finite (and within ``lower``..``upper`` per column).

    One min and one max per column (a NaN or an infinity shows in them), which is several
    times cheaper than element-wise masks; callers locate the offending cell only on False.
    """
    if x.size == 0:
        return True
    for j in range(x.shape[1]):
        col = x[:, j]
        a, b = col.min(), col.max()
        if not (np.isfinite(a) and np.isfinite(b)):
            return False
        if lower is not None and (a < lower[j] or b > upper[j]):
            return False
    return True


def check_physical_array(x: np.ndarray, specs: Sequence[Mapping[str, Any]], names: Sequence[str],
                         label: Callable[[int], str]) -> None:
    """Refuse physically impossible inputs (:func:`calib.ingest.physical_bounds`); ``label(i)`` names row i.

    ``x`` must hold finite values (checked before).
    """
    from .ingest import physical_bounds

    bounds = [physical_bounds(str(spec["unit"])) for spec in specs]
    lo = np.array([-np.inf if b is None else b[0] for b in bounds], dtype=np.float32)
    hi = np.array([np.inf if b is None else b[1] for b in bounds], dtype=np.float32)
    # one min and max per column in the common case; the first bad cell is located only on failure
    if finite_columns(x, lo, hi):
        return
    for j, (spec, b) in enumerate(zip(specs, bounds)):
        if b is None:
            continue
        bad = (x[:, j] < b[0]) | (x[:, j] > b[1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise IngestError(
                f"{label(i)}, column {names[j]}: {float(x[i, j]):.6g} {spec['unit']} is impossible; expected {b[2]}"
            )
