"""Tests of calib.ingest: reading, validation (the malformed corpus), units, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calib.cli import cli
from calib.config import DataSpec
from calib.errors import CalibError, ConfigError, IngestError, UnitError
from calib.ingest import load_dataset, read_table, split_dataset, summarize
from conftest import raw_data_dir

CORPUS = Path(__file__).parent / "malformed"
RAW = raw_data_dir()
AADI = RAW / "aanderaa-optode-calcerts" / "aadi4330_1463_b1206E.csv"

# file, extra CLI options, the exact error line expected
MALFORMED = [
    pytest.param("empty.csv", [], "empty.csv: file is empty; expected a header line and at least one row of readings", id="empty"),
    pytest.param("header_only.csv", [], "header_only.csv: no data rows; expected at least one row of readings below the header", id="header-only"),
    pytest.param("whitespace_only.csv", [], "whitespace_only.csv: file is empty; expected a header line and at least one row of readings", id="whitespace-only"),
    pytest.param("duplicate_header.csv", [], "duplicate_header.csv row 1, column phase_deg: duplicate column name (columns 2 and 3); expected unique column names", id="duplicate-header"),
    pytest.param("empty_header.csv", [], "empty_header.csv row 1, column 2: empty column name; expected a header name for every column", id="empty-header"),
    pytest.param("text_in_number.csv", [], "text_in_number.csv row 4, column phase_deg: 'n/a' is not a number", id="text-in-number"),
    pytest.param("empty_cell.csv", [], "empty_cell.csv row 5, column phase_deg: empty cell; expected a number", id="empty-cell"),
    pytest.param("nan_cell.csv", [], "nan_cell.csv row 3, column phase_deg: 'nan' is not a finite number; expected a measured value", id="nan"),
    pytest.param("inf_cell.csv", [], "inf_cell.csv row 5, column temperature_degC: 'inf' is not a finite number; expected a measured value", id="inf"),
    pytest.param("negative_o2.csv", [], "negative_o2.csv row 4, column o2_hPa: -3.5 hPa is impossible; expected O2 >= 0 (a negative O2 level is impossible)", id="negative-o2"),
    pytest.param("phase_above_90.csv", [], "phase_above_90.csv row 3, column phase_deg: 95 deg is impossible; expected a phase within 0..90 deg", id="phase-above-90"),
    pytest.param("phase_negative.csv", [], "phase_negative.csv row 5, column phase_deg: -1 deg is impossible; expected a phase within 0..90 deg", id="phase-negative"),
    pytest.param("temperature_too_low.csv", [], "temperature_too_low.csv row 2, column temperature_degC: -12 degC is impossible; expected a temperature within -5..100 degC", id="temperature-too-low"),
    pytest.param("temperature_kelvin_too_high.csv", [], "temperature_kelvin_too_high.csv row 3, column temperature_K: 400 K (= 126.85 degC) is impossible; expected a temperature within -5..100 degC", id="kelvin-too-high"),
    pytest.param("phase_rad_too_large.csv", [], "phase_rad_too_large.csv row 3, column phase_rad: 2 rad (= 114.592 deg) is impossible; expected a phase within 0..90 deg", id="rad-too-large"),
    pytest.param("constant_target.csv", [], "constant_target.csv column o2_hPa: constant (5 in every row); expected at least two distinct reference O2 levels", id="constant-target"),
    pytest.param("missing_target.csv", [], "missing_target.csv row 1: missing column 'o2_hPa' (target); did you mean 'o2_hpa_ref'? (columns in the file: temperature_degC, phase_deg, o2_hpa_ref)", id="missing-target"),
    pytest.param("no_unit.csv", ["--features", "temperature_degC,phase"], "no_unit.csv row 1, column phase: no unit; expected a unit suffix in the name (e.g. phase_deg, phase_degC, phase_hPa, or in brackets phase [deg]) or a declaration in the config: [data.units] phase = \"deg\"", id="no-unit"),
    pytest.param("too_many_fields.csv", [], "too_many_fields.csv row 4: 4 fields, expected 3 (separator ',')", id="too-many-fields"),
    pytest.param("too_few_fields.csv", [], "too_few_fields.csv row 4: 3 fields, expected 4 (separator ',')", id="too-few-fields"),
    pytest.param("semicolon_bad_number.csv", [], ("semicolon_bad_number.csv row 4, column phase_deg: '1.234,5' has a '.' in a file whose "
                  "decimal mark is ','; expected a decimal comma (such as '12,5'), without thousands separators, "
                  "or the decimal mark set to '.' (--decimal . or [data] decimal)"),
                 id="semicolon-bad-number"),
    pytest.param("group_empty.csv", ["--group", "spot_id"], "group_empty.csv row 3, column spot_id: empty cell; expected a sensor/group id", id="group-empty"),
    pytest.param("target_not_o2.csv", ["--target", "temperature_degC"], "target_not_o2.csv row 1, column temperature_degC: unit 'degC' is not an O2 unit; expected one of hPa, kPa, percent_airsat, percent_O2, umol_per_L, mg_per_L, mL_per_L, umol_per_kg", id="target-not-o2"),
    pytest.param("blank_line_before_header.csv", [], "blank_line_before_header.csv row 1: blank line before the header; expected the column names on row 1", id="blank-before-header"),
    pytest.param("binary_as_csv.csv", [], "binary_as_csv.csv: binary file with a .csv extension; expected .csv text, or name it .parquet / .xlsx", id="binary-as-csv"),
    pytest.param("negative_pressure.csv", [], "negative_pressure.csv row 3, column pressure_hPa: -5 hPa is impossible; expected a pressure >= 0 hPa", id="negative-pressure"),
    pytest.param("not_really_excel.xlsx", [], None, id="not-excel"),
    pytest.param("missing_feature.csv", ["--features", "temperature_degC,phase_5000hz_deg"], "missing_feature.csv row 1: missing column 'phase_5000hz_deg' (feature); did you mean 'phase_deg'? (columns in the file: temperature_degC, phase_deg, o2_hPa)", id="missing-feature"),
    pytest.param("bom_semicolon_text.csv", [], "bom_semicolon_text.csv row 3, column phase_deg: 'abc' is not a number", id="bom-semicolon-text"),
    pytest.param("case_duplicate_header.csv", [], "case_duplicate_header.csv row 1: columns 1 and 3 ('temperature_degC' and 'Temperature_degC') differ only in case or spaces; expected one column per quantity (rename or drop one)", id="case-duplicate-header"),
    pytest.param("two_units_same_quantity.csv", [], "column 'temperature_K' normalises to 'temperature_degC', which already exists; rename one of them", id="same-quantity-two-units"),
    pytest.param("bidi_in_header.csv", [], "bidi_in_header.csv row 1, column 2: the name 'phase\\u202e_deg' holds the control or bidi character '\\u202e' (U+202E); expected printable column names", id="bidi-in-header"),
    pytest.param("salinity_out_of_range.csv", [], "salinity_out_of_range.csv row 3, column salinity_psu: 80 psu is impossible; expected a salinity within 0..50 psu", id="salinity-range"),
]


def test_corpus_has_at_least_20_files():
    assert len(list(CORPUS.iterdir())) >= 20
    assert {p.values[0] for p in MALFORMED} == {p.name for p in CORPUS.iterdir()}


@pytest.mark.parametrize("name, opts, expected", MALFORMED)
def test_malformed_file_gives_one_line_error_and_writes_nothing(tmp_path, name, opts, expected):
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(cli, ["ingest", str(CORPUS / name), "--target", "o2_hPa", *opts, "-o", str(out)])
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    if expected is None:
        assert lines[0].startswith(f"Error: {name}: not a readable Excel file")
    else:
        assert lines[0] == f"Error: {expected}"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left either


def test_bad_cell_at_end_of_100k_rows_is_named(tmp_path):
    n = 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"temperature_degC": rng.uniform(5, 35, n).round(3),
                       "phase_deg": rng.uniform(20, 60, n).round(4),
                       "o2_hPa": rng.uniform(0, 300, n).round(2)}).astype(str)
    df.iloc[-1, 1] = "12.3.4"
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    with pytest.raises(IngestError, match=rf"^big.csv row {n + 1}, column phase_deg: '12.3.4' is not a number$"):
        load_dataset(path, DataSpec(target="o2_hPa"))


@pytest.mark.parametrize("text, row, fields", [
    pytest.param("a,b,c\n1,2,3\n4,5\n", 3, 2, id="last-field-missing"),
    pytest.param("a,b,c\r1,2,3\r4\r", 3, 1, id="bare-cr-line-ends"),
    pytest.param("a,b,c\r\n1,\"x,y\",3\r\n\"4\n4\",5\r\n", 3, 2, id="quoted-separator-and-line-break"),
    pytest.param("a;b;c\n1;2;3\n4;5\n1;2;3\n", 3, 2, id="semicolon"),
    pytest.param("a,b,c\n1,2,3\n\n4,5\n", 4, 2, id="after-a-blank-line"),
    pytest.param("a,b,c\n1,2,3\n4,5," + "9" * 200_000 + "\n1,2\n", 4, 2, id="after-a-cell-over-the-csv-field-limit"),
])
def test_a_row_with_fewer_fields_is_refused(tmp_path, text, row, fields):
    # pandas pads a short row with empty cells: a passthrough cell lost, or every later cell shifted left
    import csv

    path = tmp_path / "short.csv"
    path.write_bytes(text.encode())
    limit = csv.field_size_limit()
    with pytest.raises(IngestError, match=rf"^short\.csv row {row}: {fields} fields, expected 3 \(separator '[,;]'\)$"):
        read_table(path)
    assert csv.field_size_limit() == limit  # restored


@pytest.mark.parametrize("text", [
    pytest.param("a,b,c\n1,2,3\n4,5,6\n\n\r\n\n", id="trailing-blank-lines"),
    pytest.param("a,b,c\n1,2,3\n  \n4,5,6\n", id="whitespace-only-line"),
    pytest.param("a,b,c\n1,,\n,,\n", id="empty-cells-with-separators"),
    pytest.param("a,b,c\n1,\"x,y\",3\n", id="quoted-separator"),
])
def test_blank_lines_and_empty_cells_are_not_short_rows(tmp_path, text):
    path = tmp_path / "ok.csv"
    path.write_text(text)
    table = read_table(path)
    assert table.frame.shape[1] == 3


@pytest.mark.parametrize("cell, message", [
    pytest.param("1" * 2_000_000, "'" + "1" * 60 + "'...(2,000,000 characters) is not a number", id="2-MB-cell-clipped"),
    pytest.param("1e400", "'1e400' is beyond the range of a number (about 1.8e308); expected a measured value",
                 id="overflowing-number"),
    pytest.param("-1e400", "'-1e400' is beyond the range of a number (about 1.8e308); expected a measured value",
                 id="overflowing-negative-number"),
])
def test_bad_cell_message_stays_short_and_says_what_is_wrong(tmp_path, cell, message):
    path = tmp_path / "cell.csv"
    path.write_text(f"temperature_degC,phase_deg,o2_hPa\n10.0,55.1,0\n20.0,{cell},50\n")
    res = CliRunner().invoke(cli, ["ingest", str(path), "--target", "o2_hPa", "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 1 and res.output == f"Error: cell.csv row 3, column phase_deg: {message}\n"


def test_a_long_column_name_is_clipped_in_the_list_of_columns(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(f"temperature_degC,{'x' * 100_000},o2_hPa\n10.0,55.1,0\n20.0,50,50\n")
    with pytest.raises(IngestError) as info:
        load_dataset(path, DataSpec(target="o2_hPa", features=("phase_deg",)))
    assert len(str(info.value)) < 400 and f"{'x' * 60}...(100,000 characters)" in str(info.value)


def _good(tmp_path: Path) -> Path:
    p = tmp_path / "good.csv"
    p.write_text("spot_id,temperature_K,phase_rad,o2_umol_per_L\n"
                 "A,283.15,1.0,0\nA,293.15,0.8,100\nB,283.15,0.9,50\nB,303.15,0.6,250\n"
                 "C,290.0,0.7,150\nC,295.0,0.75,120\nD,285,0.95,20\nD,300,0.5,300\n")
    return p


def test_units_normalised_and_renamed(tmp_path):
    ds = load_dataset(_good(tmp_path), DataSpec(target="o2_umol_per_L", group="spot_id"))
    assert ds.feature_names == ("temperature_degC", "phase_deg")
    np.testing.assert_allclose(ds.frame["temperature_degC"].iloc[:2], [10.0, 20.0])
    np.testing.assert_allclose(ds.frame["phase_deg"].iloc[0], np.degrees(1.0))
    assert ds.target.unit == "umol_per_L"
    assert ds.features[0].source == "temperature_K" and ds.features[0].source_unit == "K"


def test_target_conversion_needs_conditions(tmp_path):
    spec = DataSpec(target="o2_umol_per_L", convert_target_to="hPa")
    with pytest.raises(UnitError, match="salinity_psu"):
        load_dataset(_good(tmp_path), spec)
    spec = DataSpec(target="o2_umol_per_L", convert_target_to="hPa",
                    conditions={"temperature_degC": "temperature_K", "salinity_psu": 0.0})
    ds = load_dataset(_good(tmp_path), spec)
    assert ds.target.name == "o2_hPa" and ds.target.unit == "hPa"
    # 100 umol/L at 20 degC freshwater is about 100/284 of air saturation (~209 hPa * 0.35 ~ 73 hPa)
    assert 65 < ds.frame["o2_hPa"].iloc[1] < 80


@pytest.mark.parametrize("conditions, message", [
    pytest.param({"salinity_psu": 80.0}, r"\[conditions\] salinity_psu = 80 is impossible; expected a salinity within "
                 r"0\.\.50 psu$", id="salinity-beyond-the-column-bounds"),
    pytest.param({"salinity_psu": 0.0, "pressure_hPa": -5.0}, r"\[conditions\] pressure_hPa = -5 is impossible",
                 id="negative-pressure"),
])
def test_condition_constants_are_held_to_the_column_bounds(tmp_path, conditions, message):
    # a salinity column of 80 psu is refused; the same constant converted the target without a word
    spec = DataSpec(target="o2_umol_per_L", convert_target_to="percent_airsat",
                    conditions={"temperature_degC": "temperature_K", "pressure_hPa": 1013.25, **conditions})
    with pytest.raises(ConfigError, match=message):
        load_dataset(_good(tmp_path), spec)


def test_units_from_config(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("t,delay,o2\n10,20,0\n20,15,100\n30,12,200\n")
    spec = DataSpec(target="o2", units={"t": "degC", "delay": "us", "o2": "hPa"}, frequencies={"delay": 5000})
    ds = load_dataset(p, spec)
    assert ds.feature_names == ("t", "delay_deg")
    np.testing.assert_allclose(ds.frame["delay_deg"], [360 * 5000 * 20e-6, 360 * 5000 * 15e-6, 360 * 5000 * 12e-6])


def test_unknown_unit_in_config(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("t,o2_hPa\n10,0\n20,100\n")
    with pytest.raises(UnitError, match="furlong"):
        load_dataset(p, DataSpec(target="o2_hPa", units={"t": "furlong"}))


def test_no_target_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no target column"):
        load_dataset(_good(tmp_path), DataSpec())


def test_undeclared_columns_are_ignored(tmp_path):
    p = tmp_path / "extra.csv"
    p.write_text("note,temperature_degC,phase_deg,o2_hPa\nhello,10,50,0\n,20,40,100\n")
    ds = load_dataset(p, DataSpec(target="o2_hPa"))
    assert "note" not in ds.frame.columns and ds.n_rows == 2


@pytest.mark.skipif(not AADI.exists(), reason=f"{RAW} is absent")
def test_real_aanderaa_file_and_its_semicolon_decimal_comma_twin(tmp_path):
    spec = DataSpec(target="o2_umol_per_L")
    a = load_dataset(AADI, spec)
    assert a.n_rows == 63 and a.feature_names == ("temperature_degC", "phase_deg")
    text = AADI.read_text().replace(",", ";").replace(".", ",")
    twin = tmp_path / "aadi_semicolon.csv"
    twin.write_bytes(("\ufeff" + text).encode("utf-8"))  # with a BOM too
    b = load_dataset(twin, spec)
    pd.testing.assert_frame_equal(a.frame, b.frame)


@pytest.mark.parametrize("body, where, cell", [
    pytest.param("10,5;50,0;0,0\n20,5;40.25;100,0\n", "row 3, column phase_deg", "'40.25'", id="dot-among-commas"),
    pytest.param("10,5;50,0;0,0\n20,5;40,2;1.013,0\n", "row 3, column o2_hPa", "'1.013,0'", id="thousands-point"),
])
def test_a_point_in_a_decimal_comma_file_is_refused_not_guessed(tmp_path, body, where, cell):
    """'1.013' in a file of decimal commas may be 1013 with a thousands point: refused with its row."""
    p = tmp_path / "de.csv"
    p.write_text("temperature_degC;phase_deg;o2_hPa\n" + body)
    with pytest.raises(IngestError, match=rf"^de\.csv {where}: {cell} has a '\.' in a file whose decimal mark is "
                                          r"','; expected a decimal comma"):
        load_dataset(p, DataSpec(target="o2_hPa"))


def test_a_file_of_points_with_a_comma_in_a_text_column_reads_with_decimal_point_set(tmp_path):
    """A comment '3,5' makes the detection guess decimal commas; the point numbers are then refused
    (not misread), and the decimal mark set to '.' reads them."""
    p = tmp_path / "notes.csv"
    p.write_text("note;temperature_degC;phase_deg;o2_hPa\n3,5;10.5;50.0;0.0\nok;20.5;40.25;100.0\n")
    with pytest.raises(IngestError, match=r"^notes\.csv row 2, column temperature_degC: '10\.5' has a '\.'"):
        load_dataset(p, DataSpec(target="o2_hPa"))
    ds = load_dataset(p, DataSpec(target="o2_hPa", decimal="."))
    assert ds.frame["phase_deg"].tolist() == [50.0, 40.25]


def test_a_decimal_comma_with_a_comma_separator_is_refused(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("temperature_degC,phase_deg,o2_hPa\n10,50,0\n")
    with pytest.raises(IngestError, match=r"^c\.csv: decimal mark ',' with the separator ','"):
        read_table(p, decimal=",")
    assert read_table(p, sep=";", decimal=",").frame.shape[1] == 1  # one column: any other separator is fine


@pytest.mark.parametrize("fmt", [pytest.param("parquet", id="parquet"), pytest.param("xlsx", id="excel")])
def test_parquet_and_excel_give_the_same_table(tmp_path, fmt):
    src = _good(tmp_path)
    df = pd.read_csv(src)
    path = tmp_path / f"good.{fmt}"
    if fmt == "parquet":
        df.to_parquet(path)
    else:
        df.to_excel(path, index=False)
    spec = DataSpec(target="o2_umol_per_L", group="spot_id")
    pd.testing.assert_frame_equal(load_dataset(src, spec).frame, load_dataset(path, spec).frame)


def test_excel_bad_cell_names_row(tmp_path):
    df = pd.DataFrame({"temperature_degC": [10, 20, "warm"], "phase_deg": [50, 40, 30], "o2_hPa": [0, 100, 200]})
    path = tmp_path / "bad.xlsx"
    df.to_excel(path, index=False)
    with pytest.raises(IngestError, match=r"^bad.xlsx row 4, column temperature_degC: 'warm' is not a number$"):
        load_dataset(path, DataSpec(target="o2_hPa"))


def test_an_empty_first_sheet_names_the_workbooks_other_sheets(tmp_path):
    df = pd.DataFrame({"temperature_degC": [10, 20], "phase_deg": [50, 40], "o2_hPa": [0, 100]})
    path = tmp_path / "log.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"operator": []}).to_excel(xw, sheet_name="Notes", index=False)  # header only
        df.to_excel(xw, sheet_name="Data", index=False)
    with pytest.raises(IngestError, match=r"^log.xlsx: no data rows; expected at least one row of readings below the "
                                          r"header \(the first sheet, 'Notes', was read; the workbook's sheets: 'Notes', "
                                          r"'Data'; name one with \[data\] sheet \(calib predict: --sheet\), or save that "
                                          r"sheet as \.csv\)$"):
        load_dataset(path, DataSpec(target="o2_hPa"))
    assert len(load_dataset(path, DataSpec(target="o2_hPa", sheet="Data")).frame) == 2


def test_a_sheet_for_a_file_that_is_not_a_workbook_is_refused(tmp_path):
    """``[data] sheet`` on a CSV or Parquet file is a mistake (the readings were meant to come from a
    workbook), refused as ``calib predict --sheet`` refuses it, not silently ignored."""
    df = pd.DataFrame({"temperature_degC": [10, 20], "phase_deg": [50, 40], "o2_hPa": [0, 100]})
    df.to_csv(tmp_path / "log.csv", index=False)
    df.to_parquet(tmp_path / "log.parquet", index=False)
    with pytest.raises(ConfigError, match=r"^sheet 'Data' applies to an Excel file; log.csv is csv$"):
        load_dataset(tmp_path / "log.csv", DataSpec(target="o2_hPa", sheet="Data"))
    with pytest.raises(ConfigError, match=r"^sheet 1 applies to an Excel file; log.parquet is parquet$"):
        load_dataset(tmp_path / "log.parquet", DataSpec(target="o2_hPa", sheet=1))
    assert len(load_dataset(tmp_path / "log.csv", DataSpec(target="o2_hPa")).frame) == 2


@pytest.mark.parametrize("cell", [pytest.param("#DIV/0!", id="error-cell"), pytest.param("#N/A", id="na-error-cell"),
                                  pytest.param("n/a", id="na-text"), pytest.param("NA", id="NA-text")])
def test_excel_error_and_na_cells_are_named_as_written(tmp_path, cell):
    """An Excel error cell or a text 'n/a' is named as the sheet shows it (as in a CSV), not as an
    'empty cell'; and such text in an undeclared column is kept, not blanked."""
    df = pd.DataFrame({"temperature_degC": [10, 20, cell], "phase_deg": [50, 40, 30], "o2_hPa": [0, 100, 200],
                       "note": ["NA", "n/a", "null"]})
    path = tmp_path / "bad.xlsx"
    df.to_excel(path, index=False)
    with pytest.raises(IngestError, match=rf"^bad.xlsx row 4, column temperature_degC: '{cell}' is not a number$"):
        load_dataset(path, DataSpec(target="o2_hPa"))
    table = read_table(path)
    assert table.frame["note"].tolist() == ["NA", "n/a", "null"]
    assert table.frame["temperature_degC"].tolist() == [10, 20, cell]


@pytest.mark.parametrize("sheet", [None, "Data"])
def test_an_excel_formula_without_a_saved_value_is_named(tmp_path, sheet):
    """A workbook written by a program that does not compute formulas stores a formula without its
    value, which reads as empty: the error names the formula and how to get its value, on the sheet
    read; a truly empty cell is still an empty cell."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    if sheet is not None:
        ws.title = "Notes"
        ws.append(["operator"])
        ws = book.create_sheet(sheet)
    ws.append(["temperature_degC", "phase_deg", "o2_hPa"])
    for row in ([10, 50, 0], [20, "=B2*0.9", 100], [30, 30, 200]):
        ws.append(row)
    path = tmp_path / "f.xlsx"
    book.save(path)
    spec = DataSpec(target="o2_hPa", sheet=sheet)
    with pytest.raises(IngestError, match=r"^f.xlsx row 3, column phase_deg: the formula '=B2\*0.9' has no saved "
                                          r"value \(the file was written by a program that does not compute "
                                          r"formulas\); open and save it in Excel or LibreOffice, or write the values$"):
        load_dataset(path, spec)
    ws["B3"] = None
    book.save(path)
    with pytest.raises(IngestError, match=r"^f.xlsx row 3, column phase_deg: empty cell; expected a number$"):
        load_dataset(path, spec)


def test_split_by_group_never_shares_a_spot_and_is_seeded(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame({"spot": rng.integers(0, 20, n).astype(str), "temperature_degC": rng.uniform(5, 35, n),
                       "phase_deg": rng.uniform(20, 60, n), "o2_hPa": rng.uniform(0, 300, n)})
    p = tmp_path / "g.csv"
    df.to_csv(p, index=False)
    ds = load_dataset(p, DataSpec(target="o2_hPa", group="spot"))
    s1 = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=3)
    s2 = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=3)
    s3 = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=4)
    g = ds.groups()
    parts = [set(g[s1.train]), set(g[s1.dev]), set(g[s1.test])]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(parts[2]) == 4 and len(parts[1]) == 4
    assert sorted(np.concatenate([s1.train, s1.dev, s1.test])) == list(range(n))
    np.testing.assert_array_equal(s1.test, s2.test)
    assert not np.array_equal(s1.test, s3.test)


def test_split_without_group_by_rows():
    df = pd.DataFrame({"temperature_degC": np.linspace(5, 30, 50), "o2_hPa": np.linspace(0, 200, 50)})
    from calib.ingest import Column, Dataset

    ds = Dataset(df, (Column("temperature_degC", "temperature_degC", "degC", "degC", "temperature"),),
                 Column("o2_hPa", "o2_hPa", "hPa", "hPa", "o2"))
    s = split_dataset(ds, test_fraction=0.2, dev_fraction=0.1, seed=0)
    assert (len(s.train), len(s.dev), len(s.test)) == (35, 5, 10)
    with pytest.raises(ConfigError, match="too few rows to split"):
        split_dataset(Dataset(df.iloc[:3], ds.features, ds.target), test_fraction=0.4, dev_fraction=0.4)


def test_summary_ranges(tmp_path):
    ds = load_dataset(_good(tmp_path), DataSpec(target="o2_umol_per_L", group="spot_id"))
    s = summarize(ds, split_dataset(ds, test_fraction=0.25, dev_fraction=0.25))
    assert s["rows"] == 8 and s["groups"] == 4
    tgt = [c for c in s["columns"] if c["role"] == "target"][0]
    assert (tgt["min"], tgt["max"]) == (0.0, 300.0)
    assert s["split"]["test"] == 2 and s["split"]["dev"] == 2


# ---------------------------------------------------------------- property-based
_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.integers(-1000, 1000).map(str),
    st.text(alphabet="0123456789.,-eE naINF;\"'", max_size=8),
    st.just(""),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.lists(st.sampled_from(["temperature_degC", "phase_deg", "o2_hPa", "spot", "x", "phase_rad", "p_kPa", ""]),
                    min_size=1, max_size=5),
    rows=st.lists(st.lists(_cell, min_size=0, max_size=6), min_size=0, max_size=8),
    sep=st.sampled_from([",", ";", "\t"]),
    group=st.sampled_from([None, "spot"]),
)
def test_random_tables_only_raise_calib_errors(tmp_path, header, rows, sep, group):
    path = tmp_path / "random.csv"
    text = sep.join(header) + "\n" + "\n".join(sep.join(r) for r in rows)
    path.write_text(text, encoding="utf-8")
    try:
        ds = load_dataset(path, DataSpec(target="o2_hPa", group=group))
    except CalibError:
        return
    # whatever was accepted is clean
    assert np.isfinite(ds.x()).all() and np.isfinite(ds.y()).all()
    assert (ds.y()[:, 0] >= 0).all() and np.ptp(ds.y()[:, 0]) > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_only_raise_calib_errors(tmp_path, data):
    path = tmp_path / "bytes.csv"
    path.write_bytes(data)
    try:
        read_table(path)
    except CalibError:
        pass


# --------------------------------------------------------------------------- units in brackets
BRACKETS = "spot,Phase [°],Temp (°C),O2 [µmol/L],pO2 (hPa)\nA,50,10,0,0\nA,40,20,100,80\nB,30,25,200,160\n"


def test_units_in_brackets_are_unit_suffixes(tmp_path):
    p = tmp_path / "lab.csv"
    p.write_text(BRACKETS, encoding="utf-8")
    ds = load_dataset(p, DataSpec(target="O2 [µmol/L]", features=("Phase [°]", "Temp (°C)")))
    assert list(ds.frame.columns) == ["Phase_deg", "Temp_degC", "O2_umol_per_L"]
    assert [(c.source, c.unit) for c in ds.features] == [("Phase [°]", "deg"), ("Temp (°C)", "degC")]
    assert (ds.target.source, ds.target.unit) == ("O2 [µmol/L]", "umol_per_L")
    # converted like a suffix unit: "T [K]" -> T_degC
    p.write_text("Phase [deg],T [K],O2 [hPa]\n50,283.15,0\n40,293.15,100\n", encoding="utf-8")
    ds = load_dataset(p, DataSpec(target="O2 [hPa]"))
    assert list(ds.frame.columns) == ["Phase_deg", "T_degC", "O2_hPa"]
    np.testing.assert_allclose(ds.frame["T_degC"], [10.0, 20.0])


def test_missing_target_names_the_o2_columns_as_valid_toml(tmp_path):
    import tomllib

    p = tmp_path / "lab.csv"
    p.write_text(BRACKETS, encoding="utf-8")
    with pytest.raises(IngestError) as exc:
        load_dataset(p, DataSpec(target="o2_hPa"))
    msg = str(exc.value)
    assert msg.startswith("lab.csv row 1: missing column 'o2_hPa' (target); O2 columns in the file: "
                          "O2 [µmol/L], pO2 (hPa) (e.g. --target 'O2 [µmol/L]' or [data] target = \"O2 [µmol/L]\")")
    fix = msg.split(" or ", 1)[1].split(") (columns")[0]
    section, line = fix.split(" ", 1)
    assert tomllib.loads(f"{section}\n{line}")["data"]["target"] == "O2 [µmol/L]"
    with pytest.raises(ConfigError, match=r"no target column: .* \(O2 columns in lab\.csv: O2 \[µmol/L\], pO2 \(hPa\);"):
        load_dataset(p, DataSpec())


def test_no_unit_suggests_a_valid_toml_declaration(tmp_path):
    import tomllib

    p = tmp_path / "lab.csv"
    p.write_text("Phase A,o2_hPa\n50,0\n40,100\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"column Phase A: no unit; expected a unit suffix in the name "
                                          r"\(e\.g\. Phase A_deg, Phase A_degC, Phase A_hPa, or in brackets Phase A \[deg\]\)") as exc:
        load_dataset(p, DataSpec(target="o2_hPa", features=("Phase A",)))
    fix = str(exc.value).split("in the config: ", 1)[1]
    table, line = fix.split(" ", 1)
    assert fix == '[data.units] "Phase A" = "deg"'
    assert tomllib.loads(f"{table}\n{line}")["data"]["units"] == {"Phase A": "deg"}
    ds = load_dataset(p, DataSpec(target="o2_hPa", features=("Phase A",), units={"Phase A": "deg"}))
    assert ds.feature_names == ("Phase A",)


def test_too_few_groups_to_split_names_the_file_and_the_group_column(tmp_path):
    """A file with too few spots for the split: the one-line error names the file and the group column."""
    ds = load_dataset(_good(tmp_path), DataSpec(target="o2_umol_per_L", group="spot_id"))
    n = len(np.unique(ds.groups()))
    with pytest.raises(ConfigError) as err:
        split_dataset(ds, test_fraction=0.4, dev_fraction=0.4)
    msg = str(err.value)
    assert msg.startswith(f"{Path(ds.source).name}: too few groups (column spot_id) to split: {n} groups")
    assert msg.endswith("for training (need >= 2); lower test_fraction / dev_fraction (0 is allowed) or split by "
                        "rows (no --group, no [data] group)")
    assert "\n" not in msg and "leaving -" not in msg


def test_a_declared_feature_is_found_in_another_unit_as_predict_finds_it(tmp_path):
    """A config written for temperature_degC and phase_deg reads a logger export in K and rad:
    the same quantity in a unit that converts, found as calib predict finds a model's inputs."""
    declared = DataSpec(target="o2_umol_per_L", group="spot_id", features=("temperature_degC", "phase_deg"))
    ds = load_dataset(_good(tmp_path), declared)
    assert ds.feature_names == ("temperature_degC", "phase_deg")
    np.testing.assert_allclose(ds.frame["temperature_degC"].iloc[:2], [10.0, 20.0])
    np.testing.assert_allclose(ds.frame["phase_deg"].iloc[0], np.degrees(1.0))
    assert [(c.source, c.source_unit) for c in ds.features] == [("temperature_K", "K"), ("phase_rad", "rad")]
    # the same numbers as the file written in the declared units
    same = tmp_path / "declared.csv"
    frame = pd.read_csv(_good(tmp_path))
    frame["temperature_K"] -= 273.15
    frame["phase_rad"] = np.degrees(frame["phase_rad"])
    frame.rename(columns={"temperature_K": "temperature_degC", "phase_rad": "phase_deg"}).to_csv(same, index=False)
    direct = load_dataset(same, declared)
    np.testing.assert_allclose(ds.x(), direct.x(), rtol=1e-12)
    # two candidates, a unit that does not convert, or none: refused, naming the columns
    two = tmp_path / "two.csv"
    frame.assign(temperature_K=frame["temperature_K"] + 273.15).rename(
        columns={"phase_rad": "phase_deg"}).assign(**{"Temperature (degC)": 10.0}).to_csv(two, index=False)
    with pytest.raises(IngestError, match=r"two\.csv row 1: feature temperature_degC \(degC\) could be any of the "
                                          r"columns 'temperature_K', 'Temperature \(degC\)'; keep only one of them"):
        load_dataset(two, declared)
    wrong = tmp_path / "wrong.csv"
    frame.rename(columns={"temperature_K": "temperature_hPa", "phase_rad": "phase_deg"}).to_csv(wrong, index=False)
    with pytest.raises(IngestError, match=r"wrong\.csv row 1, column temperature_hPa: hPa cannot be converted to "
                                          r"degC; expected feature temperature_degC in degC"):
        load_dataset(wrong, declared)
    with pytest.raises(IngestError, match=r"missing column 'pressure_hPa' \(feature\)"):
        load_dataset(_good(tmp_path), DataSpec(target="o2_umol_per_L", features=("pressure_hPa", "phase_deg")))
