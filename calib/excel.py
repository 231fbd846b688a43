"""Excel workbooks (``.xlsx``, ``.xlsm``) read as a table of cells, for :mod:`calib.ingest`.

The sheet's cells as pandas reads them (``header=None``, text kept as written), with Excel's
error cells (``#DIV/0!``) named as the sheet shows them; the texts or formulas of given cells;
and, for a first sheet without data, where the readings may be.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from .errors import IngestError

__all__ = ["read_excel", "cell_texts", "other_sheets_hint"]


def _sheet_names(data: bytes) -> list[str]:
    """The workbook's sheet names (empty if they cannot be read: a hint is best effort)."""
    try:
        import openpyxl

        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        names = list(wb.sheetnames)
        wb.close()
    except Exception:
        return []
    return names


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")


def _sheets_named(data: bytes, sheet: str | int) -> str:
    """For a sheet that is not there: the workbook's sheets, and the one that differs only in case."""
    names = _sheet_names(data)
    if not names:
        return ""
    same = [n for n in names if isinstance(sheet, str) and n.casefold() == sheet.strip().casefold()]
    return f"; the workbook's sheets: {_shown(names)}" + (f" (names are exact: {same[0]!r}?)" if same else "")


def other_sheets_hint(data: bytes, sheet: str | int | None) -> str:
    """For an empty first sheet of a workbook with more sheets: where the readings may be."""
    if sheet is not None:
        return ""
    names = _sheet_names(data)
    if len(names) < 2:
        return ""
    shown = _shown(names)
    return (f" (the first sheet, {names[0]!r}, was read; the workbook's sheets: {shown}; name one with [data] sheet "
            "(calib predict: --sheet), or save that sheet as .csv)")


def read_excel(data: bytes, ext: str, name: str, sheet: str | int | None) -> pd.DataFrame:
    if ext == ".xls":
        raise IngestError(f"{name}: legacy .xls is not supported; save the sheet as .xlsx or .csv")
    try:
        # na_filter=False: a text cell 'NA', 'n/a' or 'null' stays text, as in a CSV (pandas' default
        # would read it as an empty cell: "empty cell" for a feature, a blanked note in the output)
        frame = pd.read_excel(io.BytesIO(data), sheet_name=0 if sheet is None else sheet, header=None,
                              dtype=object, engine="openpyxl", na_filter=False)
        errors = np.argwhere(frame.isna().to_numpy())  # only error cells (#DIV/0!) read as NaN now
        if len(errors):
            texts = cell_texts(data, 0 if sheet is None else sheet, errors)
            for (i, j), text in zip(errors, texts):
                frame.iat[i, j] = text
    except Exception as exc:  # openpyxl raises many types on corrupt files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if sheet is not None and ("not found" in msg.lower() or (isinstance(sheet, int) and "index" in msg.lower())):
            raise IngestError(f"{name}: no sheet {sheet!r}{_sheets_named(data, sheet)}") from None
        raise IngestError(f"{name}: not a readable Excel file ({msg})") from None
    return frame.mask(frame.eq(""))  # empty cells as NaN, as before


def cell_texts(data: bytes, sheet: str | int, cells: np.ndarray, data_only: bool = True) -> list[str]:
    """The text of Excel error cells (``#DIV/0!``, ``#N/A``), which pandas reads as NaN, at the
    (row, column) positions ``cells`` of the sheet (both 0-based, as in ``pd.read_excel(header=None)``):
    a bad cell is then named as a CSV export of the sheet shows it, and kept as such in the output.
    With ``data_only=False``: the cells' formulas (``=B4*2``) where they have one."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=data_only, keep_links=False)
    try:
        ws = book.worksheets[sheet] if isinstance(sheet, int) else book[sheet]
        ws.reset_dimensions()
        wanted: dict[int, list[int]] = {}
        for i, j in cells:
            wanted.setdefault(int(i), []).append(int(j))
        found: dict[tuple[int, int], str] = {}
        for i, row in enumerate(ws.iter_rows(values_only=True)):
            for j in wanted.get(i, ()):
                found[i, j] = str(row[j]) if j < len(row) and row[j] is not None else "#ERROR"
            if i >= max(wanted):
                break
    finally:
        book.close()
    return [found.get((int(i), int(j)), "#ERROR") for i, j in cells]
