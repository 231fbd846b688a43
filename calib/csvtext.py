"""CSV text -> a frame of text cells: the separator and decimal mark, the width limit, the parse.

Shared by the whole-file reader (:func:`calib.ingest.read_table`) and the chunked one
(:mod:`calib.chunks`), so both refuse the same rows with the same row numbers.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterable

import pandas as pd

from .errors import IngestError
from .limits import max_columns

__all__ = ["check_width", "csv_dialect", "parse_csv"]

_CSV_SEPS = (";", "\t", "|", ",")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*$")


def _detect_sep(lines: list[str]) -> str:
    """Pick the separator whose count is non-zero on the header and the same on every sampled line."""
    header, body = lines[0], [ln for ln in lines[1:] if ln.strip()]
    best, best_count = ",", 0
    for sep in _CSV_SEPS:
        n = header.count(sep)
        if n == 0:
            continue
        if all(ln.count(sep) == n for ln in body):
            return sep
        if n > best_count:
            best, best_count = sep, n
    return best


def csv_dialect(name: str, lines: list[str], sep: str | None, decimal: str | None) -> tuple[str, str]:
    """``(sep, decimal)`` of a CSV from its lines (the first 50 looked at; also :mod:`calib.chunks`).

    Raises ``IngestError``: no line, a blank line before the header, more columns than the limit.
    """
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise IngestError(f"{name}: file is empty; expected a header line and at least one row of readings")
    if first > 0:
        raise IngestError(f"{name} row 1: blank line before the header; expected the column names on row 1")
    sample = lines[:50]
    sep = sep or _detect_sep(sample)
    if decimal == "," and sep == ",":
        raise IngestError(f"{name}: decimal mark ',' with the separator ','; expected a decimal comma only with "
                          "';', tab or '|' as the separator")
    check_width(lines[0].count(sep) + 1, name)
    if decimal is None:
        decimal = "."
        if sep != ",":
            cells = (c for ln in sample[1:] for c in ln.split(sep))
            if any(_DECIMAL_COMMA.match(c) for c in cells):
                decimal = ","
    return sep, decimal


def _unclosed_quote(text: str, sep: str) -> tuple[int, str] | None:
    """File row (header = 1) and column name of the cell whose opening quote is never closed.

    Quotes as the C parser reads them: one opens a cell only at the cell's start, and inside a
    quoted cell ``""`` is a quote in the text.
    """
    header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")], delimiter=sep), [])
    row, field, quoted, at_start, start = 1, 0, False, True, None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == '"':
                if text.startswith('""', i):
                    i += 1
                else:
                    quoted = False
        elif ch == '"' and at_start:
            quoted, start = True, (row, field)
        elif ch == sep:
            field += 1
        elif ch == "\n":
            row, field = row + 1, 0
        at_start = not quoted and ch in (sep, "\n")
        i += 1
    if not quoted or start is None:
        return None
    row, field = start
    return row, (header[field] if field < len(header) else f"#{field + 1}")


def parse_csv(name: str, text: str, sep: str, row_offset: int = 0) -> pd.DataFrame:
    """CSV text -> a frame of text cells (``header=None``, nothing converted); errors name the row.

    ``row_offset`` is added to the row numbers in errors: text that holds the header line
    and then a chunk of a file whose first line is file row ``2 + row_offset``.
    """
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            quoting=csv.QUOTE_MINIMAL,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise IngestError(
                f"{name} row {int(m.group(2)) + row_offset}: {m.group(3)} fields, expected {m.group(1)} "
                f"(separator {sep!r})"
            ) from None
        if "EOF inside string" in str(exc):
            at = _unclosed_quote(text, sep)
            if at is not None:
                row, column = at
                raise IngestError(f"{name} row {row + row_offset}, column {column}: a quoted cell is never closed; "
                                  'expected a closing " before the end of the file') from None
        raise IngestError(f"{name}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        raise IngestError(f"{name}: file is empty; expected a header line and at least one row of readings") from None
    short = _short_record(text, sep, frame.shape[1])
    if short is not None:  # pandas pads a short row with empty cells without a word
        i, n = short
        raise IngestError(f"{name} row {i + 1 + row_offset}: {n} fields, expected {frame.shape[1]} (separator {sep!r})")
    return frame


def _short_record(text: str, sep: str, width: int) -> tuple[int, int] | None:
    """``(index, fields)`` of the first record of ``text`` (0 = the header) with fewer than ``width``
    fields, or None. A blank or whitespace-only line is not one (it reads as a row of empty cells).

    Rows with more fields are refused by pandas already, so an unquoted text whose separator count
    is ``(width - 1)`` per line, trailing line breaks aside, has none (the usual case: two counts).
    """
    if width <= 1:
        return None
    end = len(text)
    while end > 0 and text[end - 1] in "\r\n":
        end -= 1
    quoted = '"' in text
    if not quoted:
        lines = text.count("\n", 0, end) + text.count("\r", 0, end) - text.count("\r\n", 0, end) + 1
        if text.count(sep, 0, end) == (width - 1) * lines:
            return None
    if quoted:
        records: Iterable[list[str]] = csv.reader(io.StringIO(text[:end], newline=""), delimiter=sep)
    else:
        records = (ln.rstrip("\r\n").split(sep) for ln in io.StringIO(text[:end], newline=""))
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, end + 1))  # a long cell is not this check's business
    try:
        for i, rec in enumerate(records):
            if len(rec) < width and (len(rec) > 1 or (rec and rec[0].strip())):
                return i, len(rec)
    except csv.Error:
        return None  # pandas read it; whatever csv makes of it is no short row
    finally:
        csv.field_size_limit(limit)
    return None


def check_width(n_columns: int, name: str) -> None:
    limit = max_columns()
    if n_columns > limit:
        raise IngestError(f"{name} row 1: {n_columns} columns is over the limit of {limit}; expected a readings "
                          "table (raise the limit with the environment variable CALIB_MAX_COLUMNS)")
