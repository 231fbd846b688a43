"""The two-point reference file of ``calib adjust``: read, validate, check against the batch model.

One row per reference reading of a spot (zero O2 and air-saturated water): the spot
column, the model's inputs (any unit calib converts), and the level as the reference O2
(column ``<target>``) or a ``level`` column (``zero``/``air``, the air value then computed
from 100 % air saturation with the temperature and an ``air_pressure_<unit>`` column).
See :mod:`calib.spots.adjust` for what the readings are used for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..constraints import COLUMN, check_param
from ..errors import ConfigError, IngestError, clip_list, clip_repr

if TYPE_CHECKING:  # pragma: no cover
    from ..ingest import RawTable
    from ..runtime import CalibrationModel

__all__ = ["Reference", "read_reference", "check_ranges", "spot_column_of", "temperature_index", "rows_text",
           "LEVEL_COLUMN", "LEVELS", "DATE_COLUMNS", "CHECK_YEARS", "reference_dates"]

#: Name of the optional level column of a reference file and its values.
LEVEL_COLUMN = "level"
LEVELS = ("zero", "air")


def rows_text(rows: Sequence[int]) -> str:
    rows = sorted(rows)
    if len(rows) > 1 and rows[-1] - rows[0] == len(rows) - 1:
        return f"rows {rows[0]}-{rows[-1]}"
    if len(rows) > 6:
        return "rows " + ", ".join(map(str, rows[:6])) + ", ..."
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows))


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _cells(table: RawTable, col: str) -> np.ndarray:
    s = table.frame[col]
    return s.astype(object).where(s.notna(), "").astype(str).str.strip().to_numpy()


def spot_column_of(parent: CalibrationModel, spot_column: str | None) -> str:
    if spot_column is not None:
        check_param("spot_column", spot_column, COLUMN)
        return spot_column
    group = (parent.metadata.get("data") or {}).get("group")
    if not group:
        raise ConfigError(
            f"model {parent.name} {parent.version} names no group (spot) column in its metadata; "
            "give spot_column (--spot-column COL)"
        )
    return str(group)


def _target_column(parent: CalibrationModel, table: RawTable) -> str | None:
    t = parent.metadata["target"]
    if t["name"] in table.columns:
        return str(t["name"])
    src, src_unit = t.get("source"), t.get("source_unit")
    if src and src in table.columns:
        if src_unit and src_unit != t["unit"]:
            raise IngestError(
                f"{table.name} row 1, column {src}: the reference O2 must be in the model's unit "
                f"{t['unit']}; give it as column {t['name']!r} (or give a {LEVEL_COLUMN!r} column "
                "with zero/air and the air pressure)"
            )
        return str(src)
    return None


def temperature_index(parent: CalibrationModel) -> int | None:
    for j, u in enumerate(parent.feature_units):
        if u == "degC":
            return j
    return None


def _condition_column(table: RawTable, stem: str, unit_kind: str) -> tuple[str, str] | None:
    """A column ``<stem>_<unit>`` whose unit is of quantity ``unit_kind``: (column, unit)."""
    from .. import units as U

    for c in table.columns:
        parsed = U.unit_from_column_name(c)
        if parsed is None or U.UNITS.get(parsed[0]) != unit_kind:
            continue
        if c[: -len(parsed[0]) - 1].lower() == stem:
            return c, parsed[0]
    return None


def _column_at(table: RawTable, col: str, rows: np.ndarray) -> np.ndarray:
    """Numbers of ``col`` at ``rows`` (other rows may be empty), errors naming the file row."""
    from ..ingest import parse_numeric

    s = table.frame[col].astype(object).copy()
    others = np.ones(len(s), dtype=bool)
    others[rows] = False
    s[others] = "0"
    return parse_numeric(s, table, col)


def _air_values(parent: CalibrationModel, table: RawTable, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Air-saturated O2 (target unit) of ``rows`` from 100 % air saturation, T, P and S."""
    from .. import units as U
    from ..ingest import check_physical

    unit = parent.unit
    needs = U.o2_conversion_needs("percent_airsat", unit)
    kwargs: dict[str, Any] = {}
    if "temperature_degC" in needs:
        j = temperature_index(parent)
        if j is None:
            raise IngestError(
                f"{table.name} row 1: the air level in {unit} needs the water temperature, but the "
                f"model has no degC input; give the air value in a column {parent.target!r}"
            )
        kwargs["temperature_degC"] = x[rows, j].astype(np.float64)
    if "pressure_hPa" in needs:
        found = _condition_column(table, "air_pressure", "pressure") or _condition_column(table, "pressure", "pressure")
        if found is None:
            raise IngestError(
                f"{table.name} row 1: missing column 'air_pressure_hPa' (air pressure of the air "
                f"reference rows, needed to compute the air-saturated level in {unit}); or give the "
                f"air value in a column {parent.target!r}"
            )
        col, pu = found
        raw = _column_at(table, col, rows)
        p, _ = U.to_canonical(raw, pu)
        check_physical(p, table, col, "hPa", source_values=raw, source_unit=pu)
        p = p[rows]
        if np.any(p < 500.0) or np.any(p > 1100.0):
            i = int(np.flatnonzero((p < 500.0) | (p > 1100.0))[0])
            raise IngestError(
                f"{table.name} row {int(rows[i]) + 2}, column {col}: {_fmt(p[i])} hPa is not an air "
                "pressure at the surface; expected 500..1100 hPa"
            )
        kwargs["pressure_hPa"] = p
    if "salinity_psu" in needs:
        found = _condition_column(table, "salinity", "salinity")
        if found is None:
            kwargs["salinity_psu"] = np.zeros(len(rows))
        else:
            s = _column_at(table, found[0], rows)
            check_physical(s, table, found[0], "psu")
            kwargs["salinity_psu"] = s[rows]
    return np.asarray(U.convert_o2(np.full(len(rows), 100.0), "percent_airsat", unit, **kwargs), dtype=np.float64)


@dataclass(frozen=True)
class Reference:
    """A validated reference file: readings in model units, reference O2, level and spot per row."""


    table: Any
    spot_column: str
    x: np.ndarray  # (n, n_features) float32, model units
    y: np.ndarray  # (n,) reference O2, target unit
    level: np.ndarray  # (n,) "zero"/"air"
    spot: np.ndarray  # (n,) str
    target_column: str | None


def read_reference(
    parent: CalibrationModel,
    reference: str | Path,
    *,
    spot_column: str | None,
    sep: str | None,
    decimal: str | None,
) -> Reference:
    from ..ingest import check_physical, parse_numeric, read_table
    
    scol = spot_column_of(parent, spot_column)
    table = read_table(reference, sep=sep, decimal=decimal)
    if scol not in table.columns:
        import difflib

        close = difflib.get_close_matches(scol, table.columns, n=1, cutoff=0.6)
        raise IngestError(
            f"{table.name} row 1: missing column {scol!r} (the spot id of each reference row)"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (columns present: {clip_list(table.columns)})"
        )
    spot = _cells(table, scol)
    empty = np.flatnonzero(spot == "")
    if empty.size:
        raise IngestError(f"{table.name} row {int(empty[0]) + 2}, column {scol}: empty cell; expected a spot id")
    x = parent.readings(table)

    tcol = _target_column(parent, table)
    y = None
    if tcol is not None:
        y = parse_numeric(table.frame[tcol], table, tcol)
        check_physical(y, table, tcol, parent.unit, o2=True)
    level = None
    if LEVEL_COLUMN in table.columns:
        raw = _cells(table, LEVEL_COLUMN)
        level = np.char.lower(raw.astype(str))
        bad = np.flatnonzero(~np.isin(level, LEVELS))
        if bad.size:
            i = int(bad[0])
            raise IngestError(
                f"{table.name} row {i + 2}, column {LEVEL_COLUMN}: {clip_repr(raw[i])} is not a reference level; "
                f"expected {' or '.join(LEVELS)}"
            )
        if y is not None:
            clash = np.flatnonzero(((level == "zero") & (y > 0)) | ((level == "air") & (y <= 0)))
            if clash.size:
                i = int(clash[0])
                raise IngestError(
                    f"{table.name} row {i + 2}, column {tcol}: {_fmt(y[i])} {parent.unit} contradicts "
                    f"{LEVEL_COLUMN} {str(level[i])!r}; expected 0 for zero and > 0 for air"
                )
    if y is None and level is None:
        raise IngestError(
            f"{table.name} row 1: missing column {parent.target!r} (reference O2 in {parent.unit}: 0 for "
            f"the zero point, the air-saturated value for air) or {LEVEL_COLUMN!r} (zero/air); one of them "
            "says which level each row is"
        )
    if level is None:
        level = np.where(y > 0, "air", "zero")
    if y is None:
        y = np.zeros(len(level))
        air = np.flatnonzero(level == "air")
        if air.size:
            y[air] = _air_values(parent, table, x, air)
    return Reference(table=table, spot_column=scol, x=x, y=np.asarray(y, dtype=np.float64),
                      level=np.asarray(level), spot=spot, target_column=tcol)


def check_ranges(parent: CalibrationModel, ref: Reference, rows: np.ndarray,
                  skip: Sequence[int] = ()) -> None:
    from ..readings import resolve_feature_columns

    table = ref.table
    x = ref.x[rows].astype(np.float64)
    lo = parent.lower
    hi = parent.upper
    bad = (x < lo.astype(np.float32)) | (x > hi.astype(np.float32))
    bad[:, list(skip)] = False  # spot_map: the parent's phase ranges are of mapped phases
    if bad.any():
        i, j = np.argwhere(bad)[0]
        col = resolve_feature_columns(parent.feature_specs, table.columns)[j][0]
        raise IngestError(
            f"{table.name} row {int(rows[i]) + 2}, column {col}: {_fmt(x[i, j])} {parent.feature_units[j]} "
            f"is outside the model's calibrated range {_fmt(lo[j])}..{_fmt(hi[j])} "
            f"{parent.feature_units[j]} ({parent.name} {parent.version}); a reference must lie inside it"
        )
    t = parent.metadata["target"]
    tlo, thi = float(t["min"]), float(t["max"])
    y = ref.y[rows]
    out = np.flatnonzero((y < tlo) | (y > thi))
    if out.size:
        i = int(out[0])
        col = ref.target_column or LEVEL_COLUMN
        raise IngestError(
            f"{table.name} row {int(rows[i]) + 2}, column {col}: reference {_fmt(y[i])} {parent.unit} is "
            f"outside the model's calibrated range {_fmt(tlo)}..{_fmt(thi)} {parent.unit}"
        )


# --------------------------------------------------------------------------- computing


#: Columns that may date a check (case-insensitive); ``date`` and ``time`` together are joined.
DATE_COLUMNS = ("date", "time", "datetime", "timestamp")
#: The years a check's date may fall in (inclusive; also ``--date``, :func:`calib.spots.history.parse_date`):
#: a typo such as 9999-12-31 or 0001-01-01 is refused, and its due date (at most 100 years later,
#: ``[check] interval_days``) stays a date.
CHECK_YEARS = (1900, 2999)


def reference_dates(ref: Reference, spots: Sequence[str]) -> dict[str, str] | None:
    """The date of each spot's check from a ``date``/``time`` column of the reference file.

    Cells are ISO 8601 (``2026-03-01``, ``2026-03-01T10:15``, ``2026-03-01 10:15:00+01:00``);
    a time without a zone is UTC. A ``date`` column with a separate ``time`` column (time of
    day) is read as both. A spot's check is dated by its latest row.

    Returns
    -------
    dict of str to str or None
        ``{spot: "YYYY-MM-DDTHH:MM:SSZ"}`` (UTC); None when the file has no such column.

    Raises
    ------
    IngestError
        An empty cell or one that is not an ISO 8601 date, naming the file, row and column.
    """
    import pandas as pd

    table = ref.table
    found = {c.strip().lower(): c for c in table.columns if c.strip().lower() in DATE_COLUMNS}
    if not found:
        return None
    if "date" in found and "time" in found:
        cols = [found["date"], found["time"]]
    else:
        cols = [found[k] for k in DATE_COLUMNS if k in found][:1]
    cells = [_cells(table, c) for c in cols]
    out: dict[str, str] = {}
    for spot in spots:
        rows = np.flatnonzero(ref.spot == spot)
        stamps = []
        for i in rows:
            parts = [c[i] for c in cells]
            text = " ".join(parts)
            col = cols[0] if not parts[0] or len(cols) == 1 else cols[-1]
            try:
                ts = pd.to_datetime(text, format="ISO8601") if all(parts) else None
            except (ValueError, TypeError, OverflowError):
                ts = None
            if ts is None or ts is pd.NaT:
                shown = repr(text) if text else "empty cell"
                raise IngestError(
                    f"{table.name} row {int(i) + 2}, column {col}: {shown} is not an ISO 8601 date of the check; "
                    "expected e.g. 2026-03-01 or 2026-03-01T10:15 (UTC unless a zone is given)"
                )
            if not CHECK_YEARS[0] <= ts.year <= CHECK_YEARS[1]:  # 9999-12-31: its due date overflowed
                raise IngestError(f"{table.name} row {int(i) + 2}, column {col}: {text!r} is not the date of a check; "
                                  f"expected a date in the years {CHECK_YEARS[0]}..{CHECK_YEARS[1]}")
            stamps.append(ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC"))
        out[spot] = max(stamps).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
