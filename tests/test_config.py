"""Tests of calib.config: TOML loading, validation rules, CLI overrides."""

from __future__ import annotations

import pytest

from calib.config import DataSpec, SplitSpec, ValidateSpec, load_config, parse_column_list
from calib.errors import ConfigError


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_full_config_round_trip(tmp_path):
    cfg = load_config(_write(tmp_path, """
[data]
features = ["a_deg", "t"]
target = "o2_hPa"
group = "spot"
[data.units]
t = "degC"
d = { unit = "us", frequency_hz = 5000 }
[conditions]
salinity_psu = 0
temperature_degC = "t"
[split]
test_fraction = 0.25
seed = 3
[validate]
folds = 4
tolerance = 2.5
[model]
hidden_layers = [8, 8]
"""))
    assert cfg.data.features == ("a_deg", "t") and cfg.data.group == "spot"
    assert cfg.data.units == {"t": "degC", "d": "us"} and cfg.data.frequencies == {"d": 5000}
    assert cfg.data.conditions["salinity_psu"] == 0
    assert cfg.split.test_fraction == 0.25 and cfg.split.seed == 3
    assert cfg.validate.folds == 4 and cfg.model["hidden_layers"] == [8, 8]


def test_overrides_replace_config_values(tmp_path):
    cfg = load_config(_write(tmp_path, '[data]\ntarget = "x_hPa"\nfeatures = ["a_deg"]\n'))
    o = cfg.with_overrides(features=("b_deg", "c_degC"), target="y_hPa", group="g", folds=3, seed=9)
    assert o.data.features == ("b_deg", "c_degC") and o.data.target == "y_hPa" and o.data.group == "g"
    assert o.validate.folds == 3 and o.split.seed == 9
    assert cfg.data.target == "x_hPa"  # frozen original unchanged


@pytest.mark.parametrize("text, match", [
    pytest.param("[dta]\n", "unknown key 'dta' in \\[top level\\]", id="unknown-section"),
    pytest.param("[data]\ntargett = 'x'\n", "unknown key 'targett' in \\[data\\]; did you mean 'target'\\? \\(valid keys", id="unknown-data-key"),
    pytest.param("[split]\ntest_fraction = 1.5\n", "0 <= test_fraction < 1 must hold, got test_fraction=1.5", id="test-fraction"),
    pytest.param("[split]\ndev_fraction = -0.1\n", "0 <= dev_fraction < 1 must hold, got dev_fraction=-0.1", id="dev-fraction"),
    pytest.param("[split]\ntest_fraction = 0.6\ndev_fraction = 0.5\n", "test_fraction \\+ dev_fraction < 1 must hold", id="fraction-sum"),
    pytest.param("[split]\nscaling = 'log'\n", "scaling must be one of standard, minmax, robust, none, got scaling='log'", id="scaling"),
    pytest.param("[split]\nseed = -1\n", "seed must be an integer >= 0, got seed=-1", id="seed"),
    pytest.param("[validate]\nfolds = 1\n", "folds >= 2 must hold, got folds=1", id="folds"),
    pytest.param("[validate]\ntolerance = 0\n", r'tolerance > 0 \(or "auto"\) must hold, got tolerance=0', id="tolerance"),
    pytest.param("[validate]\nnoise_floor = -1\n", "noise_floor >= 0 must hold, got noise_floor=-1", id="noise-floor"),
    pytest.param("[conditions]\nhumidity = 3\n", "unknown key 'humidity' in \\[conditions\\]", id="condition-key"),
    pytest.param("[data]\nfeatures = []\n", "features must name at least one column", id="empty-features"),
    pytest.param("[data]\nfeatures = ['a', 'a']\n", "features must not repeat a column", id="repeated-feature"),
    pytest.param("[data]\nsep = ':'\n", "sep must be one of", id="sep"),
    pytest.param("[data]\ndecimal = ';'\n", "decimal must be '.' or ','", id="decimal"),
    pytest.param("[data.units]\nd = { unit = 'us', frequency_hz = -5 }\n", "frequency_hz > 0 must hold", id="frequency"),
    pytest.param("[data.units]\nd = { frequency_hz = 5 }\n", "must give a unit", id="unit-table-without-unit"),
    pytest.param("[data]\ntarget = 'a'\ngroup = 'a'\n", "group and target must differ", id="group-is-target"),
    pytest.param("not toml = = 3\n", "not valid TOML", id="bad-toml"),
])
def test_each_rule_has_its_error(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_write(tmp_path, text))


def test_error_names_the_file(tmp_path):
    p = _write(tmp_path, "[validate]\nfolds = 0\n")
    with pytest.raises(ConfigError, match=rf"^{p}: folds >= 2"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_defaults():
    cfg = load_config(None)
    assert cfg.split == SplitSpec() and cfg.validate == ValidateSpec() and cfg.data == DataSpec()


def test_parse_column_list():
    assert parse_column_list(" a, b ,c ") == ("a", "b", "c")
    assert parse_column_list("") is None and parse_column_list(None) is None


def test_adjust_section_is_validated(tmp_path):
    cfg = load_config(_write(tmp_path, "[adjust]\ntemperature_degC = 22.5\nair = 212.0\n"))
    assert cfg.adjust["air"] == 212.0
    with pytest.raises(ConfigError, match="air"):
        load_config(_write(tmp_path, "[adjust]\ntemperature_degC = 22.5\n"))


def test_auto_tolerance_is_one_hpa_in_the_target_unit():
    from calib.config import ValidateSpec, auto_tolerance

    assert ValidateSpec().tolerance == "auto"
    assert ValidateSpec().resolve_tolerance("hPa") == 1.0
    assert ValidateSpec().resolve_tolerance("kPa") == pytest.approx(0.1)
    assert ValidateSpec(tolerance=2.5).resolve_tolerance("mL_per_L") == 2.5
    # 1 hPa of pO2 at 20 degC in fresh water: solubility (GG1992) / air-saturated pO2
    from calib.units import o2_solubility_umol_per_l, po2_air_saturated_hPa

    per_hpa = float(o2_solubility_umol_per_l(20.0, 0.0) / po2_air_saturated_hPa(20.0, 0.0, 1013.25))
    assert auto_tolerance("umol_per_L") == pytest.approx(per_hpa, rel=1e-6)
    assert 0.02 < auto_tolerance("mL_per_L") < 0.04
    assert auto_tolerance("percent_airsat") == pytest.approx(100 / po2_air_saturated_hPa(20.0, 0.0, 1013.25), rel=1e-6)
    assert auto_tolerance("degC") == 1.0  # not an O2 unit
    with pytest.raises(ConfigError, match='tolerance > 0 \\(or "auto"\\) must hold'):
        ValidateSpec(tolerance="loose")
