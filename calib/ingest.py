"""Ingestion: read sensor readings, validate them, normalise units, split.

readings file (CSV / Parquet / Excel) + :class:`~calib.config.DataSpec` -> :class:`Dataset`
-> :class:`Splits` (train / dev / test).

Rows in error messages are numbered as a spreadsheet shows them: the header is
row 1, the first reading row 2. Every error is one line naming the file, the row,
the column and what was expected, e.g.
``readings.csv row 17, column phase_5000hz_deg: 'n/a' is not a number``.

Examples
--------
>>> from calib.config import DataSpec
>>> ds = load_dataset("data/readings.csv", DataSpec(target="o2_hPa", group="spot_id"))  # doctest: +SKIP
>>> splits = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import hashlib
import shlex
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import units as U
from .columns import find_feature_column
from .config import Config, DataSpec, SplitSpec, toml_key, toml_string
from .csvtext import check_width, csv_dialect, parse_csv
from .constraints import check_params, require
from .errors import ConfigError, IngestError, UnitError, clip_list, clip_repr, escape_text
from .excel import cell_texts, other_sheets_hint, read_excel
from .rawio import decode_text, decompress, read_input

__all__ = [
    "Column",
    "Dataset",
    "Splits",
    "RawTable",
    "read_table",
    "csv_dialect", "parse_csv", "check_width", "check_header", "last_filled_row",  # also used by calib.chunks
    "load_dataset",
    "split_dataset",
    "prepare",
    "parse_numeric",
    "check_physical",
    "summarize",
]

#: Inclusive physical bounds per canonical unit (quantity, low, high, what).
PHYSICAL_BOUNDS: dict[str, tuple[float, float, str]] = {
    "deg": (0.0, 90.0, "a phase within 0..90 deg"),
    "us": (0.0, np.inf, "a phase delay >= 0 us"),
    "degC": (-5.0, 100.0, "a temperature within -5..100 degC"),
    "psu": (0.0, 50.0, "a salinity within 0..50 psu"),
}
_PRESSURE_BOUNDS = (0.0, np.inf, "a pressure >= 0 hPa")
_O2_BOUNDS = (0.0, np.inf, "O2 >= 0 (a negative O2 level is impossible)")


# --------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Column:
    """One declared column, before and after unit normalisation.

    Attributes
    ----------
    name : str
        Name in the normalised table (the source name, or its stem with the canonical
        unit suffix when the unit was converted, e.g. ``temp_K`` -> ``temp_degC``).
    source : str
        Name in the input file.
    unit : str
        Canonical unit of the normalised values (e.g. ``deg``, ``degC``, ``hPa``).
    source_unit : str
        Unit of the values in the input file.
    quantity : str
        ``phase``, ``delay``, ``temperature``, ``pressure``, ``o2``, ``salinity``, ...
    frequency_hz : float or None
        Modulation frequency of a phase or delay column, when known (Hz).
    """

    name: str
    source: str
    unit: str
    source_unit: str
    quantity: str
    frequency_hz: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Column":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Dataset:
    """Validated, unit-normalised readings.

    Attributes
    ----------
    frame : pandas.DataFrame
        Normalised columns: features, target, auxiliary targets and group (if any),
        with a fresh ``RangeIndex``; row ``i`` came from file row ``i + 2``.
    features : tuple of Column
        Inputs in model order.
    target : Column
        The O2 reference (in ``target.unit``).
    aux_targets : tuple of Column
        Further targets predicted together with O2.
    group : str or None
        Name of the sensor-spot column.
    source : str
        Path of the file read.
    sha256 : str
        SHA-256 of the file's bytes.
    """

    frame: pd.DataFrame
    features: tuple[Column, ...]
    target: Column
    aux_targets: tuple[Column, ...] = ()
    group: str | None = None
    source: str = ""
    sha256: str = ""

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    @property
    def target_names(self) -> tuple[str, ...]:
        return (self.target.name, *(c.name for c in self.aux_targets))

    def x(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Inputs as float64 array (n, n_features), in canonical units."""
        f = self.frame[list(self.feature_names)].to_numpy(dtype=np.float64)
        return f if rows is None else f[rows]

    def y(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Targets as float64 array (n, 1 + n_aux): O2 first."""
        t = self.frame[list(self.target_names)].to_numpy(dtype=np.float64)
        return t if rows is None else t[rows]

    def groups(self, rows: np.ndarray | None = None) -> np.ndarray | None:
        """Group labels as strings, or ``None`` without a group column."""
        if self.group is None:
            return None
        g = self.frame[self.group].astype(str).to_numpy()
        return g if rows is None else g[rows]


@dataclass(frozen=True)
class Splits:
    """Row indices of the train, dev and test parts of a :class:`Dataset`.

    The test part is set aside once; only the final evaluation touches it.
    With a group column, no group appears in two parts.
    """

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    seed: int
    by_group: bool

    @property
    def train_dev(self) -> np.ndarray:
        """Train and dev rows together (what k-fold validation runs on), sorted."""
        return np.sort(np.concatenate([self.train, self.dev]))

    def labels(self, n_rows: int) -> np.ndarray:
        """A per-row array of ``"train"``, ``"dev"``, ``"test"``."""
        out = np.empty(n_rows, dtype=object)
        out[self.train], out[self.dev], out[self.test] = "train", "dev", "test"
        return out


@dataclass(frozen=True)
class RawTable:
    """A file read as-is (once): header checked, cells not yet validated."""

    frame: pd.DataFrame
    name: str
    path: str
    decimal: str
    sha256: str
    #: ``"csv"``, ``"parquet"`` or ``"excel"`` (of the content, after decompression).
    format: str = "csv"
    #: Separator of a CSV (given or detected).
    sep: str = ","
    #: Text encoding of a CSV (``utf-8``, ``utf-8-sig``, ``utf-16``, ``cp1252``, ...); None otherwise.
    encoding: str | None = None
    #: The (decompressed) bytes read, so that nothing reads the file a second time.
    raw: bytes | None = field(default=None, repr=False, compare=False)
    #: File row of the frame's first row (2; later for a chunk of a streamed file, :mod:`calib.chunks`).
    first_row: int = 2
    #: The worksheet read (name or 0-based index) of an Excel file; None otherwise.
    sheet: str | int | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)


# --------------------------------------------------------------------------- reading
def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(pa.BufferReader(data))
        check_width(len(pf.schema_arrow.names), name)
        table = pf.read()
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(f"{name}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    names = [str(n) for n in table.column_names]
    frame = table.to_pandas(ignore_metadata=True) if len(set(names)) == len(names) else None
    if frame is None:
        check_header(names, name)
    frame = frame.reset_index(drop=True)
    header = pd.DataFrame([names], columns=frame.columns)
    frame.columns = range(len(names))
    header.columns = range(len(names))
    return pd.concat([header, frame.astype(object)], ignore_index=True)


#: Characters refused in a column name: control (Cc), format/bidi (Cf), line/paragraph separators.
_HIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def _hidden_char(text: str) -> str | None:
    return next((c for c in text if c != " " and unicodedata.category(c) in _HIDDEN_CATEGORIES), None)


def check_header(header: Sequence[Any], name: str) -> list[str]:
    """Column names, stripped: non-empty, free of control/bidi characters, unique (also up to case
    and whitespace).

    Raises
    ------
    IngestError
        Naming the column index (1-based) and, escaped, the names involved.
    """
    cols: list[str] = []
    seen: dict[str, int] = {}
    folded: dict[str, int] = {}
    for i, raw in enumerate(header, start=1):
        col = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
        if not col:
            raise IngestError(f"{name} row 1, column {i}: empty column name; expected a header name for every column")
        bad = _hidden_char(col)
        if bad is not None:
            raise IngestError(
                f"{name} row 1, column {i}: the name '{escape_text(col)}' holds the control or bidi character "
                f"'{escape_text(bad)}' (U+{ord(bad):04X}); expected printable column names"
            )
        if col in seen:
            raise IngestError(
                f"{name} row 1, column {col}: duplicate column name (columns {seen[col]} and {i}); "
                "expected unique column names"
            )
        key = " ".join(col.casefold().split())
        if key in folded:
            j = folded[key]
            raise IngestError(
                f"{name} row 1: columns {j} and {i} ({cols[j - 1]!r} and {col!r}) differ only in case or "
                "spaces; expected one column per quantity (rename or drop one)"
            )
        seen[col] = i
        folded[key] = i
        cols.append(col)
    return cols


def last_filled_row(body: pd.DataFrame) -> int:
    """Index of the last row with a non-blank cell, or -1.

    Looks at blocks of rows from the end (1, 2, 4, ... rows), so a table that ends in data
    costs one row, not a pass per column (a 10,000-column file stays fast).
    """
    end, size = len(body), 1
    while end > 0:
        start = max(0, end - size)
        block = body.iloc[start:end].to_numpy(dtype=object)
        for i in range(len(block) - 1, -1, -1):
            for v in block[i]:
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    continue
                if str(v).strip():
                    return start + i
        end, size = start, size * 2
    return -1


def read_table(
    path: str | Path,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    sheet: str | int | None = None,
) -> RawTable:
    """Read a CSV, Parquet or Excel file as-is and check its header.

    The file is read exactly once (a named pipe works), within the input size limit
    (:mod:`calib.limits`); devices, sockets and folders are refused.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt``/``.tsv`` (comma, semicolon, tab or pipe separated; decimal point
        or comma; UTF-8 with or without BOM, UTF-16/UTF-32 with BOM, cp1252 or latin-1),
        ``.parquet``/``.pq``, or ``.xlsx``/``.xlsm``; each may be compressed (``.gz``,
        ``.bz2``, ``.xz``, a one-file ``.zip``; also recognised by content).
    sep, decimal : str, optional
        CSV separator and decimal mark; detected when not given.
    sheet : str or int, optional
        Excel sheet; the first when not given.

    Returns
    -------
    RawTable

    Raises
    ------
    ConfigError
        A ``sheet`` for a file that is not an Excel workbook.
    IngestError
        Missing, unreadable, non-regular or too large file, unreadable format, empty,
        duplicate (also up to case) or control-character column names, more columns than
        the limit, rows with the wrong number of fields, no data rows.
    """
    p = Path(path)
    name = p.name
    data = read_input(p)
    digest = hashlib.sha256(data).hexdigest()
    data, _compression, ext = decompress(data, name)
    if sheet is not None and ext not in (".xlsx", ".xlsm", ".xls"):  # [data] sheet / --sheet on another format
        raise ConfigError(f"sheet {sheet!r} applies to an Excel file; {name} is "
                          f"{'parquet' if ext in ('.parquet', '.pq') else 'csv'}")
    if not data.strip():
        raise IngestError(f"{name}: file is empty; expected a header line and at least one row of readings")
    encoding, used_sep = None, ","
    if ext in (".parquet", ".pq"):
        frame, dec, fmt = _read_parquet(data, name), ".", "parquet"
    elif ext in (".xlsx", ".xlsm", ".xls"):
        frame, dec, fmt = read_excel(data, ext, name, sheet), ".", "excel"
    else:
        if data[:4] == b"PAR1" or data[:2] == b"PK":
            raise IngestError(f"{name}: binary file with a {ext or 'missing'} extension; "
                              "expected .csv text, or name it .parquet / .xlsx")
        text, encoding = decode_text(data, name)
        used_sep, dec = csv_dialect(name, text.splitlines(), sep, decimal)
        frame = parse_csv(name, text, used_sep)
        fmt = "csv"

    def hint() -> str:  # only on the error paths: it opens the workbook again
        return other_sheets_hint(data, sheet) if fmt == "excel" else ""

    if frame.shape[0] == 0:
        raise IngestError(f"{name}: file is empty; expected a header line and at least one row of readings{hint()}")
    check_width(frame.shape[1], name)
    cols = check_header(list(frame.iloc[0]), name)
    body = frame.iloc[1:].reset_index(drop=True)
    body.columns = cols
    # drop trailing wholly blank lines (e.g. an empty last line); blanks inside the data are empty cells
    last = last_filled_row(body)
    if last < 0:
        raise IngestError(f"{name}: no data rows; expected at least one row of readings below the header{hint()}")
    if last + 1 < len(body):
        body = body.iloc[: last + 1]
    return RawTable(frame=body, name=name, path=str(p), decimal=dec, sha256=digest, format=fmt,
                    sep=used_sep, encoding=encoding, raw=data,
                    sheet=(0 if sheet is None else sheet) if fmt == "excel" else None)


# --------------------------------------------------------------------------- cells
def _row(i: int, table: RawTable) -> int:
    """Spreadsheet row number of data index ``i`` of ``table`` (header is row 1)."""
    return int(i) + table.first_row


def _unsaved_formula(table: RawTable, i: int, column: str) -> str | None:
    """The formula of an Excel cell that reads as empty (data row ``i``, ``column``), if it has one.

    A workbook written by a program that does not compute formulas (openpyxl, many exporters)
    stores a formula without its value, which reads as an empty cell. Looked up only on that
    error path (it opens the workbook again)."""
    if table.format != "excel" or table.raw is None or table.sheet is None or table.first_row != 2:
        return None
    try:
        j = list(table.frame.columns).index(column)
        text = cell_texts(table.raw, table.sheet, np.array([[int(i) + 1, j]]), data_only=False)[0]
    except Exception:  # best effort: the error stands without it
        return None
    return text if text.startswith("=") else None


def parse_numeric(raw: pd.Series, table: RawTable, column: str) -> np.ndarray:
    """Parse one column of cells into finite float64 numbers.

    Raises
    ------
    IngestError
        At the first empty, non-numeric, NaN or infinite cell, naming its row.
    """
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        text = None
    else:
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        if table.decimal == ",":
            dotted = text.str.contains(".", regex=False).to_numpy(dtype=bool)
            if dotted.any():  # '1.013' here may be 1013 with a thousands point: refused, not guessed
                i = int(np.flatnonzero(dotted)[0])
                raise IngestError(f"{table.name} row {_row(i, table)}, column {column}: {clip_repr(text.iloc[i])} "
                                  "has a '.' in a file whose decimal mark is ','; expected a decimal comma "
                                  "(such as '12,5'), without thousands separators, or the decimal mark set to "
                                  "'.' (--decimal . or [data] decimal)")
        s = text.str.replace(",", ".", regex=False) if table.decimal == "," else text
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"{table.name} row {_row(i, table)}, column {column}"
        cell = None if text is None else text.iloc[i]
        if cell == "" or (cell is None and np.isnan(values[i])):
            formula = _unsaved_formula(table, i, column)
            if formula:
                raise IngestError(f"{where}: the formula {clip_repr(formula)} has no saved value (the file was "
                                  "written by a program that does not compute formulas); open and save it in "
                                  "Excel or LibreOffice, or write the values")
            raise IngestError(f"{where}: empty cell; expected a number")
        if cell is not None and not _looks_nonfinite(cell) and np.isinf(values[i]):  # '1e400'
            raise IngestError(f"{where}: {clip_repr(cell)} is beyond the range of a number (about 1.8e308); "
                              "expected a measured value")
        if cell is not None and not _looks_nonfinite(cell):
            raise IngestError(f"{where}: {clip_repr(cell)} is not a number")
        raise IngestError(f"{where}: {clip_repr(cell if cell is not None else values[i])} is not a finite number; "
                          "expected a measured value")
    return values


def _looks_nonfinite(cell: str) -> bool:
    return cell.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")


def physical_bounds(unit: str) -> tuple[float, float, str] | None:
    """``(low, high, what)`` of the physically possible values in a canonical unit (inclusive), or None.

    Phase 0..90 deg, temperature -5..100 degC, pressure >= 0, salinity 0..50; None for a
    unit without such bounds. :func:`check_physical` and :mod:`calib.runtime` use the same.
    """
    if unit in PHYSICAL_BOUNDS:
        return PHYSICAL_BOUNDS[unit]
    if U.UNITS.get(unit) == "pressure":
        return _PRESSURE_BOUNDS
    return None


def check_physical(values: np.ndarray, table: RawTable, column: str, unit: str, *, o2: bool = False,
                   source_values: np.ndarray | None = None, source_unit: str | None = None) -> None:
    """Refuse physically impossible values (inclusive bounds) in a canonical unit.

    Raises
    ------
    IngestError
        At the first value outside its bounds: negative O2, phase outside 0..90 deg,
        temperature outside -5..100 degC, negative pressure, salinity outside 0..50.
    """
    bounds = _O2_BOUNDS if o2 else physical_bounds(unit)
    if bounds is None:
        return
    lo, hi, what = bounds
    bad = (values < lo) | (values > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = values[i]
        shown = f"{_fmt(v)} {unit}"
        if source_values is not None and source_unit and source_unit != unit:
            shown = f"{_fmt(source_values[i])} {source_unit} (= {_fmt(v)} {unit})"
        raise IngestError(f"{table.name} row {_row(i, table)}, column {column}: {shown} is impossible; expected {what}")


def _fmt(v: float) -> str:
    return f"{v:.6g}"


# --------------------------------------------------------------------------- columns
def o2_columns(table: RawTable, units: Mapping[str, Any] | None = None) -> list[str]:
    """Columns of ``table`` whose unit (name suffix, brackets, or ``units``) is an O2 unit."""
    out = []
    for c in table.columns:
        unit: str | None = None
        if units and c in units:
            try:
                unit = U.normalize_unit(units[c])
            except UnitError:
                unit = None
        else:
            parsed = U.unit_from_column_name(c)
            unit = None if parsed is None else parsed[0]
        if unit in U.O2_UNITS:
            out.append(c)
    return out


def _missing(table: RawTable, col: str, role: str, units: Mapping[str, Any] | None = None) -> IngestError:
    close = difflib.get_close_matches(col, table.columns, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    cols = clip_list(table.columns)
    o2 = ""
    if role == "target":
        found = [c for c in o2_columns(table, units) if c != (close[0] if close else None)]
        if found:
            o2 = (f"; O2 columns in the file: {', '.join(found[:10])}" + (" ..." if len(found) > 10 else "")
                  + f" (e.g. --target {shlex.quote(found[0])} or [data] target = {toml_string(found[0])})")
    return IngestError(f"{table.name} row 1: missing column {col!r} ({role}){hint}{o2} (columns in the file: {cols})")


def _feature_column(table: RawTable, col: str, spec: DataSpec) -> str:
    """The file's column of the declared feature ``col``: ``col`` itself, or else the one column
    that names the same quantity in another unit that converts to ``col``'s (``temperature_K``
    or ``Temperature [K]`` for a declared ``temperature_degC``), found as ``calib predict`` finds
    a model's inputs (:func:`calib.columns.find_feature_column`); it is read in its own unit and
    normalised to ``col``'s. Two such columns, or a same-stem column whose unit does not
    convert, are refused; none is a missing column."""
    if col in table.columns:
        return col
    parsed = None if col in spec.units else U.unit_from_column_name(col)
    if parsed is not None:
        hit = find_feature_column({"name": col, "unit": parsed[0], "frequency_hz": parsed[1]}, table.columns,
                                  f"{table.name} row 1")
        if hit is not None and hit[0] not in spec.units and U.unit_from_column_name(hit[0]) is not None:
            return hit[0]
    raise _missing(table, col, "feature")


def _unit_of(table: RawTable, col: str, spec: DataSpec) -> tuple[str, float | None, bool]:
    """Return (unit, frequency_hz, from_name) of a column, or raise with how to declare it."""
    parsed = U.unit_from_column_name(col)
    freq = spec.frequencies.get(col)
    if col in spec.units:
        unit = U.normalize_unit(spec.units[col])
        if freq is None and parsed is not None:
            freq = parsed[1]
        return unit, freq, False
    if parsed is not None:
        unit, name_freq = parsed
        return unit, freq if freq is not None else name_freq, True
    bare = col.strip()
    raise IngestError(
        f"{table.name} row 1, column {col}: no unit; expected a unit suffix in the name "
        f"(e.g. {bare}_deg, {bare}_degC, {bare}_hPa, or in brackets {bare} [deg]) or a declaration in the config: "
        f'[data.units] {toml_key(col)} = "deg"'
    )


def _normalised_name(col: str, unit: str, canonical: str, from_name: bool) -> str:
    parsed = U.split_unit_suffix(col)
    if from_name and parsed is not None and parsed[3]:  # "Temp (°C)" -> Temp_degC
        return f"{U.snake_stem(parsed[0])}_{canonical}"
    if canonical == unit:
        return col
    if from_name and parsed is not None:
        # strip the matched suffix (case-insensitive)
        idx = col.lower().rfind("_" + unit.lower())
        stem = col[:idx] if idx > 0 else col
        return f"{stem}_{canonical}"
    return f"{col}_{canonical}"


def _feature_candidates(table: RawTable, spec: DataSpec, exclude: set[str]) -> tuple[str, ...]:
    cols = tuple(
        c for c in table.columns
        if c not in exclude and (c in spec.units or U.unit_from_column_name(c) is not None)
    )
    if not cols:
        raise IngestError(
            f"{table.name} row 1: no input columns found; name them with --features A,B or "
            "[data] features, and give units by name suffix (e.g. phase_deg) or [data.units]"
        )
    return cols


def _condition(spec: DataSpec, key: str, table: RawTable, frame: dict[str, np.ndarray]) -> Any:
    value = spec.conditions.get(key)
    if value is None:
        # a declared or present column whose name says what it is
        for cand in (key,):
            if cand in frame:
                return frame[cand]
        return None
    if isinstance(value, str):
        if value in frame:
            return frame[value]
        if value not in table.columns:
            raise _missing(table, value, f"[conditions] {key}")
        arr = parse_numeric(table.frame[value], table, value)
        unit, freq, _ = _unit_of(table, value, spec) if (value in spec.units or U.unit_from_column_name(value)) else (None, None, False)
        if unit is not None:
            arr, _ = U.to_canonical(arr, unit, frequency_hz=freq)
        return arr
    constant = float(value)
    bounds = physical_bounds(key.rsplit("_", 1)[1])  # the bounds a column of it is held to (salinity 0..50 psu)
    if bounds is not None and not bounds[0] <= constant <= bounds[1]:
        raise ConfigError(f"[conditions] {key} = {constant:g} is impossible; expected {bounds[2]}")
    return constant


# --------------------------------------------------------------------------- dataset
def load_dataset(path: str | Path, spec: DataSpec, *, table: RawTable | None = None) -> Dataset:
    """Read, validate and unit-normalise a readings file.

    Parameters
    ----------
    path : str or Path
        The readings file (CSV, Parquet or Excel).
    spec : DataSpec
        Columns and units (from the config file and CLI options).
    table : RawTable, optional
        An already-read table (avoids reading the file twice).

    Returns
    -------
    Dataset
        Features in canonical units (phase in deg, temperature in degC, pressure in hPa),
        target in its own O2 unit (or ``spec.convert_target_to``).

    Raises
    ------
    IngestError
        Bad file or cell (names file, row, column, expectation).
    ConfigError
        No target given, an unknown unit, a conversion missing an input.
    """
    table = table if table is not None else read_table(path, sep=spec.sep, decimal=spec.decimal, sheet=spec.sheet)
    if spec.target is None:
        found = o2_columns(table, spec.units)
        hint = (f" (O2 columns in {table.name}: {', '.join(found[:10])}; e.g. --target {shlex.quote(found[0])} "
                f"or [data] target = {toml_string(found[0])})" if found else "")
        raise ConfigError(f"no target column: give --target COL or [data] target in the config{hint}")
    target_col = spec.target
    aux = tuple(spec.aux_targets)
    if target_col in aux:
        raise ConfigError(f"aux_targets must not repeat the target, got {target_col!r} in both")
    for col, role in ((target_col, "target"), *((a, "aux target") for a in aux)):
        if col not in table.columns:
            raise _missing(table, col, role, spec.units)
    if spec.group is not None and spec.group not in table.columns:
        raise _missing(table, spec.group, "group")
    exclude = {target_col, *aux, *( [spec.group] if spec.group else [])}
    if spec.features is None:
        feature_cols = _feature_candidates(table, spec, exclude)
    else:
        feature_cols = tuple(_feature_column(table, col, spec) for col in spec.features)
        for col in feature_cols:
            if col == target_col or col == spec.group:
                raise ConfigError(f"column {col!r} cannot be both a feature and the {'target' if col == target_col else 'group'}")
            if col in aux:
                raise ConfigError(f"column {col!r} cannot be both a feature and an aux target (a network cannot "
                                  "predict one of its own inputs); remove it from [data] features or aux_targets")

    # --- declared units, before touching any cell (config errors first)
    metas: dict[str, tuple[str, float | None, bool]] = {}
    for col in (*feature_cols, target_col, *aux):
        metas[col] = _unit_of(table, col, spec)
    t_unit = metas[target_col][0]
    if t_unit not in U.O2_UNITS:
        raise UnitError(
            f"{table.name} row 1, column {target_col}: unit {t_unit!r} is not an O2 unit; "
            f"expected one of {', '.join(U.O2_UNITS)}"
        )

    # --- parse cells, in file column order so the first bad cell is reported left to right
    raw_values: dict[str, np.ndarray] = {}
    for col in table.columns:
        if col in metas:
            raw_values[col] = parse_numeric(table.frame[col], table, col)

    out: dict[str, np.ndarray] = {}
    columns: dict[str, Column] = {}
    for col in (*feature_cols, *aux):
        unit, freq, from_name = metas[col]
        values, canonical = U.to_canonical(raw_values[col], unit, frequency_hz=freq)
        check_physical(values, table, col, canonical, source_values=raw_values[col], source_unit=unit)
        name = _normalised_name(col, unit, canonical, from_name)
        if name in columns or (name != col and name in table.columns and name not in (col,)):
            raise ConfigError(f"column {col!r} normalises to {name!r}, which already exists; rename one of them")
        out[name] = values
        columns[col] = Column(name, col, canonical, unit, U.UNITS.get(canonical, "other"), freq)

    # --- target (O2): bounds, optional unit conversion
    y = raw_values[target_col]
    check_physical(y, table, target_col, t_unit, o2=True)
    t_name, t_out_unit = _normalised_name(target_col, t_unit, t_unit, metas[target_col][2]), t_unit
    if spec.convert_target_to is not None:
        to_unit = U.normalize_unit(spec.convert_target_to)
        if to_unit not in U.O2_UNITS:
            raise UnitError(f"convert_target_to must be an O2 unit ({', '.join(U.O2_UNITS)}), got {spec.convert_target_to!r}")
        if to_unit != t_unit:
            by_source = {c.source: out[c.name] for c in columns.values()}
            by_source.update(out)
            kwargs = {}
            for key in U.o2_conversion_needs(t_unit, to_unit):
                val = _condition(spec, key, table, by_source)
                if val is not None:
                    kwargs[key] = val
            y = U.convert_o2(y, t_unit, to_unit, **kwargs)
            t_name = _normalised_name(target_col, t_unit, to_unit, metas[target_col][2])
            t_out_unit = to_unit
    if np.ptp(y) == 0:
        raise IngestError(
            f"{table.name} column {target_col}: constant ({_fmt(y[0])} in every row); expected at least "
            "two distinct reference O2 levels"
        )
    out[t_name] = y
    target = Column(t_name, target_col, t_out_unit, t_unit, "o2", None)

    frame = pd.DataFrame(out)
    if spec.group is not None:
        g = table.frame[spec.group]
        gs = g.astype(object).where(g.notna(), "").astype(str).str.strip()
        empty = (gs == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise IngestError(f"{table.name} row {_row(i, table)}, column {spec.group}: empty cell; expected a sensor/group id")
        frame[spec.group] = gs.to_numpy()
    feats = tuple(columns[c] for c in feature_cols)
    aux_cols = tuple(columns[c] for c in aux)
    order = [c.name for c in feats] + [target.name] + [c.name for c in aux_cols if c.name not in {f.name for f in feats}]
    if spec.group:
        order.append(spec.group)
    frame = frame[list(dict.fromkeys(order))]
    return Dataset(frame=frame, features=feats, target=target, aux_targets=aux_cols,
                   group=spec.group, source=str(path), sha256=table.sha256)


# --------------------------------------------------------------------------- splits
def split_dataset(ds: Dataset, *, test_fraction: float = 0.2, dev_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Split rows into train, dev and test parts, by group when the dataset has one.

    Parameters
    ----------
    ds : Dataset
    test_fraction, dev_fraction : float, default=0.2
        Shares of rows (or groups) for test and dev; each 0 <= x < 1, sum < 1.
    seed : int, default=0
        The same seed gives the same split.

    Returns
    -------
    Splits

    Raises
    ------
    ConfigError
        If the parts would be empty (too few rows or groups for the fractions).
    """
    params = {"test_fraction": test_fraction, "dev_fraction": dev_fraction, "seed": seed}
    check_params(params, SplitSpec.rules)
    require(test_fraction + dev_fraction < 1, "test_fraction + dev_fraction < 1", **params)
    rng = np.random.default_rng(seed)
    n = ds.n_rows
    groups = ds.groups()
    if groups is not None:
        labels = np.unique(groups)
        units_ = rng.permutation(labels)
        n_units = len(units_)
        kind = "groups"
    else:
        units_ = rng.permutation(n)
        n_units = n
        kind = "rows"
    n_test = int(round(test_fraction * n_units)) if test_fraction > 0 else 0
    n_dev = int(round(dev_fraction * n_units)) if dev_fraction > 0 else 0
    n_test = max(n_test, 1) if test_fraction > 0 else 0
    n_dev = max(n_dev, 1) if dev_fraction > 0 else 0
    if n_units - n_test - n_dev < 2:
        where = f"{Path(ds.source).name}: " if ds.source else ""
        what = f"{kind} (column {ds.group})" if groups is not None and ds.group else kind
        fix = "lower test_fraction / dev_fraction (0 is allowed)" + (
            " or split by rows (no --group, no [data] group)" if groups is not None else "")
        raise ConfigError(
            f"{where}too few {what} to split: {n_units} {kind}, test_fraction={test_fraction} and "
            f"dev_fraction={dev_fraction} take {n_test} and {n_dev}, leaving "
            f"{max(n_units - n_test - n_dev, 0)} for training (need >= 2); {fix}"
        )
    test_u, dev_u = units_[:n_test], units_[n_test:n_test + n_dev]
    if groups is not None:
        test = np.flatnonzero(np.isin(groups, test_u))
        dev = np.flatnonzero(np.isin(groups, dev_u))
    else:
        test, dev = np.sort(test_u), np.sort(dev_u)
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    mask[dev] = False
    return Splits(train=np.flatnonzero(mask), dev=np.asarray(dev, dtype=np.int64),
                  test=np.asarray(test, dtype=np.int64), seed=seed, by_group=groups is not None)


def prepare(data: str | Path, cfg: Config) -> tuple[Dataset, Splits]:
    """Load ``data`` with ``cfg.data`` and split it with ``cfg.split``: the start of every stage.

    Parameters
    ----------
    data : str or Path
        Readings file (CSV, Parquet, Excel).
    cfg : Config
        Its ``data`` (columns, units) and ``split`` (fractions, seed) sections are used.

    Returns
    -------
    (Dataset, Splits)

    Raises
    ------
    IngestError, ConfigError
        As :func:`load_dataset` and :func:`split_dataset`.

    Examples
    --------
    >>> from calib.config import load_config
    >>> ds, splits = prepare("data/readings.csv", load_config("data/calib.toml"))  # doctest: +SKIP
    """
    ds = load_dataset(data, cfg.data)
    sp = split_dataset(ds, test_fraction=cfg.split.test_fraction, dev_fraction=cfg.split.dev_fraction,
                       seed=cfg.split.seed)
    return ds, sp


# --------------------------------------------------------------------------- summary
def summarize(ds: Dataset, splits: Splits | None = None) -> dict[str, Any]:
    """A JSON-able summary: rows, groups, per-column unit and range, split sizes."""
    cols = []
    for c in (*ds.features, ds.target, *ds.aux_targets):
        v = ds.frame[c.name].to_numpy()
        cols.append({"name": c.name, "source": c.source, "unit": c.unit, "source_unit": c.source_unit,
                     "role": "target" if c is ds.target else ("aux_target" if c in ds.aux_targets else "feature"),
                     "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())})
    out: dict[str, Any] = {
        "file": ds.source,
        "sha256": ds.sha256,
        "rows": ds.n_rows,
        "group": ds.group,
        "groups": int(ds.frame[ds.group].nunique()) if ds.group else None,
        "columns": cols,
    }
    if splits is not None:
        out["split"] = {"train": int(len(splits.train)), "dev": int(len(splits.dev)),
                        "test": int(len(splits.test)), "by_group": splits.by_group, "seed": splits.seed}
    return out


def iter_names(cols: Iterable[Column]) -> list[str]:
    return [c.name for c in cols]
