"""Tests of calib.columns: finding a quantity's column in a readings table (units in names and brackets),
the rule of calib predict and of training alike (training's use: tests/test_ingest.py)."""

from __future__ import annotations

import pytest

from calib.errors import IngestError
from calib.columns import resolve_feature_columns

FEATURES = [{"name": "phase_5000hz_deg", "unit": "deg", "frequency_hz": 5000.0},
            {"name": "temperature_degC", "unit": "degC"}]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        pytest.param(["phase_5000hz_deg", "temperature_degC"], [("phase_5000hz_deg", None), ("temperature_degC", None)],
                     id="suffix"),
        pytest.param(["Phase 5000Hz [°]", "Temperature (°C)"], [("Phase 5000Hz [°]", None), ("Temperature (°C)", None)],
                     id="brackets-same-unit"),
        pytest.param(["phase_5000hz [rad]", "temperature [K]"], [("phase_5000hz [rad]", "rad"), ("temperature [K]", "K")],
                     id="brackets-converted"),
        pytest.param(["PHASE_5000HZ (deg)", "temperature_K"], [("PHASE_5000HZ (deg)", None), ("temperature_K", "K")],
                     id="mixed"),
        pytest.param(["phase_5000hz_deg", "temperature_degF"], [("phase_5000hz_deg", None), ("temperature_degF", "degF")],
                     id="fahrenheit"),
    ],
)
def test_units_in_brackets_resolve(columns, expected):
    assert resolve_feature_columns(FEATURES, columns) == expected


def test_the_same_quantity_in_suffix_and_brackets_is_refused():
    with pytest.raises(IngestError, match=r"^input: feature temperature_degC \(degC\) could be any of the columns "
                                          r"'temperature_degC', 'Temperature \(degC\)'; keep only one of them$"):
        resolve_feature_columns(FEATURES, ["phase_5000hz_deg", "temperature_degC", "Temperature (degC)"])


def test_a_model_trained_on_bracketed_columns_reads_them_back():
    # calib.ingest names "Phase [°]" Phase_deg, with source "Phase [°]"
    feats = [{"name": "Phase_deg", "unit": "deg", "source": "Phase [°]", "source_unit": "deg"},
             {"name": "Temp_degC", "unit": "degC", "source": "Temp (°C)", "source_unit": "degC"}]
    assert resolve_feature_columns(feats, ["Temp (°C)", "Phase [°]"]) == [("Phase [°]", None), ("Temp (°C)", None)]
    assert resolve_feature_columns(feats, ["Phase [deg]", "temp [K]"]) == [("Phase [deg]", None), ("temp [K]", "K")]


def test_a_long_column_name_is_clipped_in_the_missing_column_message():
    with pytest.raises(IngestError) as info:
        resolve_feature_columns(FEATURES, ["temperature_degC", "x" * 300_000])
    msg = str(info.value)
    assert len(msg) < 300 and msg.endswith(f"(columns present: temperature_degC, {'x' * 60}...(300,000 characters))")


def test_calib_readings_re_exports_it():
    import calib.readings

    assert calib.readings.resolve_feature_columns is resolve_feature_columns
