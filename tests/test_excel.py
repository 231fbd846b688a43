"""calib.excel: a workbook's cells, their texts or formulas, the other-sheets hint."""

from __future__ import annotations

import io

import numpy as np
import pytest

from calib.errors import IngestError
from calib.excel import cell_texts, other_sheets_hint, read_excel


def _book(sheets: dict[str, list[list]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        ws = book.create_sheet(name)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_cells_texts_and_formulas_by_frame_position():
    data = _book({"Data": [["a", "b"], [1, "=A2*2"], ["#N/A", 3]]})
    frame = read_excel(data, ".xlsx", "f.xlsx", None)
    assert frame.iloc[0].tolist() == ["a", "b"] and frame.iat[1, 0] == 1
    assert np.isnan(frame.iat[1, 1])  # a formula written without its value reads as empty
    cells = np.array([[1, 1], [1, 0], [2, 1]])
    assert cell_texts(data, 0, cells, data_only=False) == ["=A2*2", "1", "3"]
    assert cell_texts(data, "Data", cells[:1]) == ["#ERROR"]  # no saved value to show


def test_other_sheets_hint_and_unreadable_workbooks():
    data = _book({"Notes": [["operator"]], "Data": [["a"], [1]]})
    assert "the workbook's sheets: 'Notes', 'Data'" in other_sheets_hint(data, None)
    assert other_sheets_hint(data, "Data") == ""  # a sheet was named: no hint
    assert other_sheets_hint(_book({"Only": [["a"]]}), None) == ""
    with pytest.raises(IngestError, match=r"^f.xls: legacy .xls is not supported"):
        read_excel(b"x", ".xls", "f.xls", None)
    with pytest.raises(IngestError, match=r"^f.xlsx: not a readable Excel file"):
        read_excel(b"not a zip", ".xlsx", "f.xlsx", None)
    with pytest.raises(IngestError, match=r"^f.xlsx: no sheet 'Nope'; the workbook's sheets: 'Notes', 'Data'$"):
        read_excel(data, ".xlsx", "f.xlsx", "Nope")
    with pytest.raises(IngestError, match=r"^f.xlsx: no sheet 'data'; the workbook's sheets: 'Notes', 'Data' "
                                          r"\(names are exact: 'Data'\?\)$"):
        read_excel(data, ".xlsx", "f.xlsx", "data")
    with pytest.raises(IngestError, match=r"^f.xlsx: no sheet 5; the workbook's sheets: 'Notes', 'Data'$"):
        read_excel(data, ".xlsx", "f.xlsx", 5)
