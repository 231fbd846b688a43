"""Tests of calib.units: unit names, column suffixes, feature and O2 conversions."""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib import units
from calib.errors import ConfigError, UnitError
from calib.units import (
    FEATURE_UNITS,
    O2_UNITS,
    UNITS,
    canonical_unit,
    convert_o2,
    normalize_unit,
    o2_conversion_needs,
    o2_solubility_ml_per_l,
    o2_solubility_umol_per_kg,
    o2_solubility_umol_per_l,
    po2_air_saturated_hPa,
    seawater_density_kg_per_m3,
    to_canonical,
    unit_from_column_name,
    split_unit_suffix,
    snake_stem,
    vapour_pressure_hPa,
)

TS = ("temperature_degC", "salinity_psu")
TPS = ("temperature_degC", "pressure_hPa", "salinity_psu")
ALL_CONDITIONS = {"temperature_degC": 12.5, "pressure_hPa": 985.0, "salinity_psu": 17.0}

# ----------------------------------------------------------------------------- registry


def test_registry_roles():
    assert set(O2_UNITS) <= set(UNITS)
    assert "hPa" in O2_UNITS and "hPa" in FEATURE_UNITS and "kPa" in O2_UNITS
    assert "umol_per_L" not in FEATURE_UNITS
    assert FEATURE_UNITS["deg"] == "phase" and FEATURE_UNITS["us"] == "delay"
    assert FEATURE_UNITS["degC"] == FEATURE_UNITS["K"] == "temperature"


@pytest.mark.parametrize(
    ("text", "token"),
    [
        pytest.param("°", "deg", id="degree-sign"),
        pytest.param("Degrees", "deg", id="degrees"),
        pytest.param("rad", "rad", id="rad"),
        pytest.param("°C", "degC", id="degree-C"),
        pytest.param("C", "degC", id="C"),
        pytest.param("Celsius", "degC", id="celsius"),
        pytest.param("degc", "degC", id="degc-lower"),
        pytest.param("K", "K", id="K"),
        pytest.param("°F", "degF", id="degree-F"),
        pytest.param("ºC", "degC", id="masculine-ordinal-C"),  # Spanish/Portuguese keyboards, Excel
        pytest.param("˚C", "degC", id="ring-above-C"),
        pytest.param("° C", "degC", id="degree-space-C"),
        pytest.param("º", "deg", id="masculine-ordinal"),
        pytest.param("Fahrenheit", "degF", id="fahrenheit"),
        pytest.param("µs", "us", id="micro-sign-s"),
        pytest.param("\u03bcs", "us", id="greek-mu-s"),
        pytest.param("microseconds", "us", id="microseconds"),
        pytest.param("%airsat", "percent_airsat", id="pct-airsat"),
        pytest.param(" % Air  Saturation ", "percent_airsat", id="pct-air-saturation"),
        pytest.param("%O2", "percent_O2", id="pct-O2"),
        pytest.param("µmol/L", "umol_per_L", id="umol-L-micro"),
        pytest.param("umol/l", "umol_per_L", id="umol-l"),
        pytest.param("mg/L", "mg_per_L", id="mg-L"),
        pytest.param("mL/L", "mL_per_L", id="mL-L"),
        pytest.param("µmol/kg", "umol_per_kg", id="umol-kg"),
        pytest.param("MBAR", "mbar", id="mbar-upper"),
        pytest.param("hpa", "hPa", id="hpa"),
        pytest.param("mv", "mV", id="mv"),
        pytest.param("hz", "Hz", id="hz"),
        pytest.param("1", "1", id="dimensionless"),
    ],
)
def test_normalize_unit_aliases(text, token):
    assert normalize_unit(text) == token


def test_normalize_unit_accepts_every_token():
    assert all(normalize_unit(token) == token for token in UNITS)


def test_normalize_unit_unknown_lists_known_units():
    with pytest.raises(UnitError, match=r"unit 'furlongs' is unknown; known units: deg, rad, us, "):
        normalize_unit("furlongs")


def test_normalize_unit_not_a_string():
    with pytest.raises(UnitError, match=r"unit must be a string, got 5"):
        normalize_unit(5)  # type: ignore[arg-type]


def test_unit_error_is_a_config_error():
    with pytest.raises(ConfigError):
        normalize_unit("parsecs")


# ------------------------------------------------------------------------ column names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("phase_5000hz_deg", ("deg", 5000.0), id="phase-hz"),
        pytest.param("delay_5khz_us", ("us", 5000.0), id="delay-khz"),
        pytest.param("phase_1.5kHz_deg", ("deg", 1500.0), id="phase-decimal-kHz"),
        pytest.param("phase_rad", ("rad", None), id="rad"),
        pytest.param("temperature_degC", ("degC", None), id="degC-not-deg"),
        pytest.param("TEMPERATURE_DEGC", ("degC", None), id="degC-upper"),
        pytest.param("temperature_deg", ("deg", None), id="deg"),
        pytest.param("temp_K", ("K", None), id="K"),
        pytest.param("temperature_degF", ("degF", None), id="degF-not-deg"),
        pytest.param("air_pressure_hPa", ("hPa", None), id="hPa"),
        pytest.param("pressure_kPa", ("kPa", None), id="kPa"),
        pytest.param("pressure_mbar", ("mbar", None), id="mbar"),
        pytest.param("o2_umol_per_L", ("umol_per_L", None), id="umol-L"),
        pytest.param("o2_umol_per_kg", ("umol_per_kg", None), id="umol-kg"),
        pytest.param("o2_mg_per_l", ("mg_per_L", None), id="mg-L-lower"),
        pytest.param("o2_mL_per_L", ("mL_per_L", None), id="mL-L"),
        pytest.param("o2_percent_airsat", ("percent_airsat", None), id="airsat"),
        pytest.param("o2_percent_O2", ("percent_O2", None), id="percent-O2"),
        pytest.param("salinity_psu", ("psu", None), id="psu"),
        pytest.param("temp_raw_mV", ("mV", None), id="mV"),
        pytest.param("modulation_Hz", ("Hz", None), id="Hz-unit"),
    ],
)
def test_unit_from_column_name(name, expected):
    assert unit_from_column_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("sensor_id", id="no-suffix"),
        pytest.param("deg", id="no-stem"),
        pytest.param("phase_deg_raw", id="unit-not-last"),
        pytest.param("phase_5000hz", id="frequency-only"),
        pytest.param("phasedeg", id="no-underscore"),
    ],
)
def test_unit_from_column_name_none(name):
    assert unit_from_column_name(name) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Phase [°]", ("Phase", "deg", None, True), id="square-degree-sign"),
        pytest.param("Temp (°C)", ("Temp", "degC", None, True), id="round-degC-sign"),
        pytest.param("O2 [µmol/L]", ("O2", "umol_per_L", None, True), id="micro-sign"),
        pytest.param("Phase [deg]", ("Phase", "deg", None, True), id="square-deg"),
        pytest.param("T (degC)", ("T", "degC", None, True), id="round-degC"),
        pytest.param("Temp [°F]", ("Temp", "degF", None, True), id="square-degF-sign"),
        pytest.param("temperature (ºC)", ("temperature", "degC", None, True), id="ordinal-look-alike"),
        pytest.param("Phase 5 kHz [°]", ("Phase 5 kHz", "deg", 5000.0, True), id="frequency-with-spaces"),
        pytest.param("pO2 (hPa) ", ("pO2", "hPa", None, True), id="trailing-space"),
        pytest.param("phase_5khz_deg", ("phase_5khz", "deg", 5000.0, False), id="underscore-suffix"),
    ],
)
def test_unit_in_brackets_is_a_unit_suffix(name, expected):
    assert split_unit_suffix(name) == expected
    assert unit_from_column_name(name) == expected[1:3]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Sensor (S1)", id="not-a-unit"),
        pytest.param("Signal (counts)", id="unit-that-is-no-suffix-unit"),
        pytest.param("[deg]", id="no-stem"),
        pytest.param("Phase [deg] raw", id="bracket-not-last"),
    ],
)
def test_bracketed_text_that_is_no_unit(name):
    assert split_unit_suffix(name) is None


def test_snake_stem():
    assert snake_stem("Phase 5 kHz") == "Phase_5kHz" and snake_stem(" O2  sat ") == "O2_sat"


# ----------------------------------------------------------------------- feature units


def test_rad_to_deg():
    values, unit = to_canonical([0.0, math.pi / 2, math.pi], "rad")
    assert unit == "deg"
    np.testing.assert_allclose(values, [0.0, 90.0, 180.0], rtol=1e-12)


def test_kelvin_to_degC():
    values, unit = to_canonical(np.array([273.15, 293.15]), "K")
    assert unit == "degC"
    np.testing.assert_allclose(values, [0.0, 20.0], atol=1e-12)


def test_fahrenheit_to_degC():
    """A US logger's temperature_degF is a temperature (converted), not a column without a unit,
    which default features skipped and a degC model's "did you mean" offered to rename unconverted."""
    values, unit = to_canonical(np.array([32.0, 68.0, 212.0]), "degF")
    assert unit == "degC"
    np.testing.assert_allclose(values, [0.0, 20.0, 100.0], atol=1e-12)


def test_us_to_deg_with_frequency():
    # One full period (200 us at 5 kHz) is 360 deg; 10 us at 5 kHz is 18 deg.
    values, unit = to_canonical([10.0, 200.0], "µs", frequency_hz=5000.0)
    assert unit == "deg"
    np.testing.assert_allclose(values, [18.0, 360.0], rtol=1e-12)


def test_us_without_frequency_stays_us():
    values, unit = to_canonical([10.0], "us")
    assert unit == "us"
    np.testing.assert_array_equal(values, [10.0])


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        pytest.param(101.325, "kPa", 1013.25, id="kPa"),
        pytest.param(1013.25, "mbar", 1013.25, id="mbar"),
        pytest.param(101325.0, "Pa", 1013.25, id="Pa"),
        pytest.param(1.0, "atm", 1013.25, id="atm"),
        pytest.param(1013.25, "hPa", 1013.25, id="hPa"),
    ],
)
def test_pressure_to_hPa(value, unit, expected):
    values, canonical = to_canonical([value], unit)
    assert canonical == "hPa"
    np.testing.assert_allclose(values, [expected], rtol=1e-12)


def test_other_units_unchanged_and_copied():
    original = np.array([1.0, 2.0])
    values, unit = to_canonical(original, "mV")
    assert unit == "mV"
    values[0] = 99.0
    assert original[0] == 1.0


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_canonical_unit_matches_to_canonical(unit):
    for frequency in (None, 1000.0):
        _, converted_unit = to_canonical([1.0], unit, frequency_hz=frequency)
        assert canonical_unit(unit, frequency) == converted_unit


def test_frequency_must_be_positive():
    with pytest.raises(UnitError, match=r"frequency_hz > 0 must hold, got frequency_hz=-5.0"):
        to_canonical([1.0], "us", frequency_hz=-5.0)


# ---------------------------------------------------------------------------- physics


def test_garcia_gordon_umol_per_kg_check_value():
    # Garcia & Gordon (1992), combined fit of Benson & Krause data: 274.610 umol/kg.
    assert float(o2_solubility_umol_per_kg(10.0, 35.0)) == pytest.approx(274.610, abs=5e-4)


def test_garcia_gordon_ml_per_l_check_value():
    # Garcia & Gordon (1992), combined fit in cm3/dm3: 6.315 mL/L at 10 degC, S = 35.
    assert float(o2_solubility_ml_per_l(10.0, 35.0)) == pytest.approx(6.315, abs=5e-4)


def test_two_solubility_forms_agree_through_density():
    # The umol/kg and mL/L fits are separate fits of the same data: linked by
    # 44.6596 umol/mL and the seawater density they must agree to a few 1e-4.
    t = np.linspace(-2.0, 40.0, 22)[:, None]
    s = np.linspace(0.0, 42.0, 8)[None, :]
    kg_per_l = seawater_density_kg_per_m3(t, s) / 1000.0
    per_kg_from_ml = o2_solubility_ml_per_l(t, s) * 44.6596 / kg_per_l
    np.testing.assert_allclose(per_kg_from_ml, o2_solubility_umol_per_kg(t, s), rtol=5e-4)


def test_freshwater_solubility_20_degC():
    # USGS / APHA tables: 9.09 mg/L at 20 degC, 760 mmHg, fresh water (~284 umol/L).
    c = float(o2_solubility_umol_per_l(20.0, 0.0))
    assert c == pytest.approx(284.0, rel=5e-3)
    assert c * 31.9988e-3 == pytest.approx(9.09, rel=5e-3)


@pytest.mark.parametrize(
    ("t", "mg_per_l"),
    [
        pytest.param(0.0, 14.621, id="0degC"),
        pytest.param(10.0, 11.288, id="10degC"),
        pytest.param(30.0, 7.559, id="30degC"),
        pytest.param(40.0, 6.412, id="40degC"),
    ],
)
def test_freshwater_solubility_table(t, mg_per_l):
    # APHA Standard Methods 4500-O table (Benson & Krause), 1 atm, fresh water.
    got = float(convert_o2(o2_solubility_umol_per_l(t, 0.0), "umol_per_L", "mg_per_L"))
    assert got == pytest.approx(mg_per_l, rel=2e-3)


@pytest.mark.parametrize(
    ("t", "hpa"),
    [
        pytest.param(20.0, 23.37, id="20degC"),
        pytest.param(25.0, 31.7, id="25degC"),
    ],
)
def test_weiss_price_vapour_pressure_freshwater(t, hpa):
    # Saturation vapour pressure of pure water (IAPWS: 23.39 hPa at 20 degC, 31.70 hPa
    # at 25 degC); the Weiss & Price fit reproduces it within 0.2 %.
    assert float(vapour_pressure_hPa(t, 0.0)) == pytest.approx(hpa, rel=2e-3)


def test_weiss_price_in_atm_and_salinity_effect():
    assert float(vapour_pressure_hPa(20.0, 0.0)) / 1013.25 == pytest.approx(0.0230, abs=1e-4)
    ratio = vapour_pressure_hPa(20.0, 35.0) / vapour_pressure_hPa(20.0, 0.0)
    assert float(ratio) == pytest.approx(math.exp(-0.000544 * 35.0), rel=1e-12)


def test_po2_air_saturated():
    expected = 0.20946 * (1013.25 - float(vapour_pressure_hPa(20.0, 0.0)))
    assert float(po2_air_saturated_hPa(20.0, 0.0, 1013.25)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(207.34, abs=0.01)


@pytest.mark.parametrize(
    ("t68", "s", "rho"),
    [
        pytest.param(5.0, 0.0, 999.96675, id="S0-5degC"),
        pytest.param(5.0, 35.0, 1027.67547, id="S35-5degC"),
        pytest.param(25.0, 35.0, 1023.34306, id="S35-25degC"),
    ],
)
def test_seawater_density_unesco_check_values(t68, s, rho):
    # UNESCO (1983) check values at p = 0, given in IPTS-68.
    got = float(seawater_density_kg_per_m3(t68 / 1.00024, s))
    assert got == pytest.approx(rho, abs=1e-4)


# ----------------------------------------------------------------------- O2 conversion


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        pytest.param("umol_per_L", lambda t, s: o2_solubility_umol_per_l(t, s), id="umol-L"),
        pytest.param("mL_per_L", lambda t, s: o2_solubility_ml_per_l(t, s), id="mL-L"),
        pytest.param(
            "mg_per_L", lambda t, s: o2_solubility_umol_per_l(t, s) * 31.9988e-3, id="mg-L"
        ),
        pytest.param("percent_O2", lambda t, s: 20.946, id="percent-O2"),
        pytest.param("hPa", lambda t, s: po2_air_saturated_hPa(t, s, 1013.25), id="hPa"),
        pytest.param("kPa", lambda t, s: po2_air_saturated_hPa(t, s, 1013.25) / 10, id="kPa"),
    ],
)
def test_air_saturation_at_one_atmosphere_equals_solubility(unit, expected):
    t = np.array([2.0, 10.0, 20.0, 35.0])
    s = np.array([0.0, 35.0, 10.0, 5.0])
    got = convert_o2(
        100.0, "percent_airsat", unit, temperature_degC=t, pressure_hPa=1013.25, salinity_psu=s
    )
    np.testing.assert_allclose(got, np.broadcast_to(expected(t, s), t.shape), rtol=1e-12)


def test_air_saturation_in_umol_per_kg_matches_umol_per_kg_fit():
    got = convert_o2(
        100.0,
        "percent_airsat",
        "umol_per_kg",
        temperature_degC=10.0,
        pressure_hPa=1013.25,
        salinity_psu=35.0,
    )
    assert float(got) == pytest.approx(274.610, rel=5e-4)


def test_air_saturation_scales_with_pressure():
    # Half the dry-air pressure at the same temperature: half the concentration.
    t, s = 15.0, 0.0
    ph2o = float(vapour_pressure_hPa(t, s))
    p_half = ph2o + (1013.25 - ph2o) / 2
    got = convert_o2(
        100.0, "percent_airsat", "umol_per_L", temperature_degC=t, pressure_hPa=p_half,
        salinity_psu=s,
    )
    assert float(got) == pytest.approx(float(o2_solubility_umol_per_l(t, s)) / 2, rel=1e-12)


def test_fixed_factors():
    assert float(convert_o2(212.0, "hPa", "kPa")) == pytest.approx(21.2, rel=1e-15)
    got = float(convert_o2(100.0, "percent_airsat", "percent_O2"))
    assert got == pytest.approx(20.946, rel=1e-15)
    assert float(convert_o2(1000.0, "umol_per_L", "mg_per_L")) == pytest.approx(31.9988, rel=1e-15)
    assert float(convert_o2(44.6596, "umol_per_L", "mL_per_L")) == pytest.approx(1.0, rel=1e-15)


def test_broadcasting():
    values = np.array([[50.0], [100.0], [150.0]])
    t = np.array([5.0, 15.0, 25.0, 35.0])
    got = convert_o2(
        values, "percent_airsat", "umol_per_L", temperature_degC=t, pressure_hPa=1013.25,
        salinity_psu=0.0,
    )
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got[1], o2_solubility_umol_per_l(t, 0.0), rtol=1e-12)
    np.testing.assert_allclose(got[2], 1.5 * got[1], rtol=1e-12)


@pytest.mark.parametrize(
    ("src", "dst"),
    [pytest.param(a, b, id=f"{a}-{b}") for a, b in itertools.permutations(O2_UNITS, 2)],
)
def test_round_trip_every_pair(src, dst):
    values = np.array([0.0, 0.5, 37.0, 212.0, 480.0])
    t = np.array([0.0, 4.0, 17.5, 30.0, 40.0])
    there = convert_o2(values, src, dst, **{**ALL_CONDITIONS, "temperature_degC": t})
    back = convert_o2(there, dst, src, **{**ALL_CONDITIONS, "temperature_degC": t})
    np.testing.assert_allclose(back, values, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize(
    ("src", "dst", "needs"),
    [
        pytest.param("hPa", "hPa", (), id="same"),
        pytest.param("hPa", "kPa", (), id="pressure-group"),
        pytest.param("percent_airsat", "percent_O2", (), id="fraction-group"),
        pytest.param("umol_per_L", "mg_per_L", (), id="concentration-group"),
        pytest.param("umol_per_L", "umol_per_kg", TS, id="density"),
        pytest.param("umol_per_L", "hPa", TS, id="henry"),
        pytest.param("kPa", "percent_airsat", TPS, id="airsat"),
        pytest.param("mg_per_L", "percent_O2", TPS, id="conc-frac"),
        pytest.param("% air saturation", "µmol/L", TPS, id="aliases"),
    ],
)
def test_o2_conversion_needs(src, dst, needs):
    assert o2_conversion_needs(src, dst) == needs


def test_every_needed_input_is_used():
    # Dropping any listed input must fail, and giving exactly the listed ones must work.
    for src, dst in itertools.permutations(O2_UNITS, 2):
        needs = o2_conversion_needs(src, dst)
        convert_o2(100.0, src, dst, **{k: ALL_CONDITIONS[k] for k in needs})
        for drop in needs:
            with pytest.raises(UnitError, match=drop):
                convert_o2(100.0, src, dst, **{k: ALL_CONDITIONS[k] for k in needs if k != drop})


def test_missing_inputs_message():
    with pytest.raises(
        UnitError,
        match=(
            r"^converting O2 from umol_per_L to hPa needs temperature_degC and salinity_psu; "
            r"give them as columns or under \[conditions\] in the config$"
        ),
    ):
        convert_o2([200.0], "umol/L", "hPa")


def test_missing_some_inputs_names_them():
    with pytest.raises(
        UnitError,
        match=r"needs temperature_degC, pressure_hPa and salinity_psu; .*; missing: pressure_hPa$",
    ):
        convert_o2([80.0], "percent_airsat", "umol_per_L", temperature_degC=20.0, salinity_psu=0.0)


def test_not_an_o2_unit():
    with pytest.raises(
        UnitError, match=r"to_unit must be an O2 unit \(hPa, kPa, .*\), got to_unit='deg'$"
    ):
        convert_o2([1.0], "hPa", "deg")


def test_unknown_o2_unit():
    with pytest.raises(UnitError, match=r"unit 'ppb' is unknown"):
        o2_conversion_needs("ppb", "hPa")


def test_temperature_rule_catches_kelvin():
    with pytest.raises(
        UnitError,
        match=r"-5 <= temperature_degC <= 80 must hold, got temperature_degC=293.15 \(degC, not K\)$",
    ):
        convert_o2([200.0], "umol_per_L", "hPa", temperature_degC=[20.0, 293.15], salinity_psu=0.0)


def test_salinity_rule():
    with pytest.raises(UnitError, match=r"salinity_psu >= 0 must hold, got salinity_psu=-1.0"):
        convert_o2([200.0], "umol_per_L", "hPa", temperature_degC=20.0, salinity_psu=-1.0)


def test_pressure_rule():
    with pytest.raises(
        UnitError,
        match=r"pressure_hPa > water vapour pressure must hold, "
        r"got pressure_hPa=10.0 with vapour pressure 23.36 hPa \(total pressure in hPa\)",
    ):
        convert_o2(
            [50.0],
            "percent_airsat",
            "hPa",
            temperature_degC=20.0,
            pressure_hPa=[1013.25, 10.0],
            salinity_psu=0.0,
        )


def test_nan_values_propagate():
    got = convert_o2(
        [np.nan, 100.0], "percent_airsat", "hPa", **{**ALL_CONDITIONS, "salinity_psu": 0.0}
    )
    assert np.isnan(got[0]) and np.isfinite(got[1])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    value=st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
    pair=st.sampled_from(list(itertools.permutations(O2_UNITS, 2))),
    t=st.floats(min_value=-2.0, max_value=40.0),
    p=st.floats(min_value=500.0, max_value=1200.0),
    s=st.floats(min_value=0.0, max_value=42.0),
)
def test_round_trip_property(value, pair, t, p, s):
    src, dst = pair
    cond = {"temperature_degC": t, "pressure_hPa": p, "salinity_psu": s}
    there = convert_o2(value, src, dst, **cond)
    assert np.isfinite(there) and there > 0
    back = convert_o2(there, dst, src, **cond)
    assert float(back) == pytest.approx(value, rel=1e-9)


def test_docstring_examples():
    result = doctest.testmod(units, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6 and result.failed == 0


def test_no_tensorflow_import():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(units))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"tensorflow", "keras"}
