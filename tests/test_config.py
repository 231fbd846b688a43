"""Tests of calib.config: TOML loading, validation rules, CLI overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from calib.config import (
    DEFAULT_TRIALS,
    CalibrateSpec,
    Config,
    DataSpec,
    SplitSpec,
    SweepSpec,
    ValidateSpec,
    config_from_dict,
    load_config,
    parse_column_list,
    sweep_settings,
)
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
    pytest.param("[split]\nscaling = 'log'\n", "scaling in {'standard', 'minmax', 'robust', 'none'} must hold, got scaling='log'", id="scaling"),
    pytest.param("[split]\nseed = -1\n", "0 <= seed < 2147483648 must hold, got seed=-1", id="seed"),
    pytest.param("[split]\nseed = 9223372036854775807\n", "0 <= seed < 2147483648 must hold, got seed=9223372036854775807",
                 id="seed-huge"),
    pytest.param("[split]\nseed = 1.5\n", r"0 <= seed < 2147483648 must hold, got seed=1.5 \(not an integer\)", id="seed-not-integer"),
    pytest.param("[validate]\nfolds = 1\n", "folds >= 2 must hold, got folds=1", id="folds"),
    pytest.param("[validate]\ntolerance = 0\n", r'tolerance > 0 \(or "auto"\) must hold, got tolerance=0', id="tolerance"),
    pytest.param("[validate]\nnoise_floor = -1\n", "noise_floor >= 0 must hold, got noise_floor=-1", id="noise-floor"),
    pytest.param("[conditions]\nhumidity = 3\n", "unknown key 'humidity' in \\[conditions\\]", id="condition-key"),
    pytest.param("[conditions]\nsalinity_psu = true\n", "salinity_psu is a non-empty column name \\(or salinity_psu is a finite number\\) must hold", id="condition-value"),
    pytest.param("[data]\nfeatures = []\n", r"features names >= 1 column, none twice must hold, got features=\(\)", id="empty-features"),
    pytest.param("[data]\nfeatures = ['a', 'a']\n", "features names >= 1 column, none twice must hold, got features=\\('a', 'a'\\)", id="repeated-feature"),
    pytest.param("[data]\nsep = ':'\n", r"sep in \{',', ';', '\\t', '\|'\} must hold, got sep=':'", id="sep"),
    pytest.param("[data]\ndecimal = ';'\n", r"decimal in \{'.', ','\} must hold, got decimal=';'", id="decimal"),
    pytest.param("[data]\nsep = ','\ndecimal = ','\n", "sep != decimal must hold, got sep=',', decimal=','", id="sep-is-decimal"),
    pytest.param("[data.units]\nd = { unit = 'us', frequency_hz = -5 }\n", "frequency_hz > 0 must hold", id="frequency"),
    pytest.param("[data.units]\nd = { frequency_hz = 5 }\n", "must give a unit", id="unit-table-without-unit"),
    pytest.param("[data]\nunits = 'deg'\n", r"\[data\] units must be a table of column = unit .*, got units='deg'$",
                 id="units-not-a-table"),  # was a ValueError traceback
    pytest.param("[data.units]\nd = 'dgr'\n", r"\[data\.units\] d: unit 'dgr' is unknown; known units: deg, rad",
                 id="unit-typo-named-with-its-column"),
    pytest.param("[data.units]\nd = { unit = 'microsec', frequency_hz = 5 }\n", r"\[data\.units\] d: unit 'microsec' is unknown",
                 id="unit-typo-in-a-table"),
    pytest.param("[data]\ntarget = 'a'\ngroup = 'a'\n", "group != target must hold, got group='a', target='a'", id="group-is-target"),
    pytest.param("[data]\ntarget = ''\n", "target is a non-empty column name must hold, got target=''", id="empty-target"),
    pytest.param("[model]\nfamly = 'physics'\n", r"unknown key 'famly' in \[model\]; did you mean 'family'\? \(valid keys: hidden_layers", id="unknown-model-key"),
    pytest.param("[model]\nlearning_rate = -0.1\n", "learning_rate > 0 must hold, got learning_rate=-0.1", id="model-rule"),
    pytest.param("[sweep]\nstrategy = 'grit'\n", "strategy in {'grid', 'random', 'bayes'} must hold, got strategy='grit'", id="sweep-strategy"),
    pytest.param("[sweep]\ntrials = 0\n", "trials >= 1 must hold, got trials=0", id="sweep-trials"),
    pytest.param("[sweep]\nseed = 4294967296\n", "0 <= seed < 2147483648 must hold, got seed=4294967296",
                 id="sweep-seed-huge"),
    pytest.param("[sweep]\nseed = -2\n", "0 <= seed < 2147483648 must hold, got seed=-2", id="sweep-seed"),
    pytest.param("[sweep]\nfolds = 1\n", "folds >= 2 must hold, got folds=1", id="sweep-folds"),
    pytest.param("[sweep]\njobs = 0\n", r"jobs >= 1 \(or -1 for every core\) must hold, got jobs=0", id="sweep-jobs"),
    pytest.param("[sweep]\nstorage = ' '\n", "storage is a file path or a database URL must hold, got storage=' '", id="sweep-storage"),
    pytest.param("[sweep]\nstudy = ''\n", "study is a non-empty string must hold, got study=''", id="sweep-study"),
    pytest.param("[sweep]\nstorag = 'x'\n", r"unknown key 'storag' in \[sweep\]; did you mean 'storage'\?", id="unknown-sweep-key"),
    pytest.param("[sweep.space]\nlearnin_rate = { low = 1e-3, high = 1e-2 }\n", "learnin_rate", id="sweep-space"),
    pytest.param("[sweep]\nstrategy = 'grid'\n[sweep.space]\nlearning_rate = { low = 1e-3, high = 1e-2 }\n", "grid", id="grid-needs-finite-values"),
    pytest.param("[calibrate]\nname = 'bad name'\n", "name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit must hold, got name='bad name'", id="calibrate-name"),
    pytest.param("[calibrate]\nnme = 'x'\n", r"unknown key 'nme' in \[calibrate\]; did you mean 'name'\?", id="unknown-calibrate-key"),
    pytest.param("[calibrate]\njobs = 2\n[sweep]\njobs = 3\n", r"\[calibrate\] jobs is a deprecated alias of \[sweep\] jobs and they differ", id="alias-conflict"),
    pytest.param("[adjust]\ntemperature_degC = 22.5\n", r"\[adjust\] must give air", id="adjust-missing-air"),
    pytest.param("[adjust]\ntemperature_degC = 22.5\nair = 0.0\n", "air > zero must hold", id="adjust-rule"),
    pytest.param("[adjust]\ntemperature_degC = 22.5\nair = 212.0\nzer = 0\n", r"unknown key 'zer' in \[adjust\]; did you mean 'zero'\?", id="unknown-adjust-key"),
    pytest.param("[check]\ninterval_days = 3000000\n", "0 < interval_days <= 36525 must hold, got interval_days=3000000",
                 id="check-interval-days-overflowed-the-due-date"),  # was OverflowError's traceback
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


def test_a_folder_or_a_non_utf8_file_says_a_toml_file_is_expected(tmp_path):
    """--config some/folder said 'expected a CSV, Parquet or Excel file'; a UTF-16 or cp1252 save
    gave the codec's text ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)."""
    with pytest.raises(ConfigError, match=rf"^config file {tmp_path}: is a folder; expected a TOML config file$"):
        load_config(tmp_path)
    p = tmp_path / "calib.toml"
    p.write_bytes("[validate]\nfolds = 3\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=rf"^{p}: not UTF-8 text \(byte 0xff at offset 0\); expected a TOML config "
                                          "file saved as UTF-8$"):
        load_config(p)


def test_defaults():
    cfg = load_config(None)
    assert cfg.split == SplitSpec() and cfg.validate == ValidateSpec() and cfg.data == DataSpec()


def test_parse_column_list():
    assert parse_column_list(" a, b ,c ") == ("a", "b", "c")
    assert parse_column_list("") is None and parse_column_list(None) is None


def test_adjust_section_is_typed():
    from dataclasses import fields

    from calib.config import AdjustSpec
    from calib.spots.normalise import SpotReference

    cfg = config_from_dict({"adjust": {"temperature_degC": 22, "air": 212}})
    assert cfg.adjust == AdjustSpec(temperature_degC=22.0, air=212.0) and isinstance(cfg.adjust.air, float)
    assert cfg.adjust.reference() == SpotReference(temperature_degC=22.0, air=212.0)
    assert [f.name for f in fields(AdjustSpec)] == [f.name for f in fields(SpotReference)]
    assert config_from_dict({}).adjust is None


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
    assert auto_tolerance("degC") == 0.1  # a temperature (an auxiliary output): 0.1 degC
    assert auto_tolerance("psu") == 1.0  # neither O2 nor temperature
    with pytest.raises(ConfigError, match='tolerance > 0 \\(or "auto"\\) must hold'):
        ValidateSpec(tolerance="loose")


# ---------------------------------------------------------------- calib.constraints: one error per rule
from numbers import Integral, Real  # noqa: E402

from calib.constraints import (  # noqa: E402
    JOBS,
    Boolean,
    Interval,
    Options,
    Satisfies,
    SeqOf,
    StrOptions,
    check_keys,
    check_param,
    check_params,
    require,
)


@pytest.mark.parametrize("name, value, rules, match", [
    pytest.param("folds", 1, [Interval(Integral, 2, None)], "^folds >= 2 must hold, got folds=1$", id="interval-low"),
    pytest.param("folds", 2.0, [Interval(Integral, 2, None)], r"^folds >= 2 must hold, got folds=2.0 \(not an integer\)$",
                 id="interval-integer-type"),
    pytest.param("flag", True, [Interval(Integral, 0, None)], r"got flag=True \(not an integer\)$", id="interval-bool"),
    pytest.param("lr", 0.0, [Interval(Real, 0, None, closed="neither")], "^lr > 0 must hold, got lr=0.0$", id="interval-open"),
    pytest.param("x", float("nan"), [Interval(Real, None, None)], r"^x is a finite number must hold, got x=nan \(not a number\)$",
                 id="interval-nan"),
    pytest.param("f", 1.0, [Interval(Real, 0, 1, closed="left")], "^0 <= f < 1 must hold, got f=1.0$", id="interval-both"),
    pytest.param("f", 0, [Interval(Real, 0, 1, closed="right")], "^0 < f <= 1 must hold, got f=0$", id="interval-right"),
    pytest.param("t", 81, [Interval(Real, None, 80, closed="both")], "^t <= 80 must hold, got t=81$", id="interval-high"),
    pytest.param("jobs", 0, JOBS, r"^jobs >= 1 \(or -1 for every core\) must hold, got jobs=0$", id="options-label"),
    pytest.param("k", 3, [Options([1, 2])], r"^k in \{1, 2\} must hold, got k=3$", id="options"),
    pytest.param("k", True, [Options([1, 2])], r"^k in \{1, 2\} must hold, got k=True$", id="options-bool-is-not-1"),
    pytest.param("s", "log", [StrOptions(["a", "b"])], r"^s in \{'a', 'b'\} must hold, got s='log'$", id="str-options"),
    pytest.param("s", 1, [StrOptions(["a"])], r"got s=1 \(not a string\)$", id="str-options-type"),
    pytest.param("b", 1, [Boolean()], r"^b in \{true, false\} must hold, got b=1 \(not a bool\)$", id="boolean"),
    pytest.param("cols", ["a", ""], [SeqOf(str)], "^cols is a list of non-empty string must hold", id="seq-items"),
    pytest.param("cols", [], [SeqOf(str, min_len=1)], "cols is a list of non-empty string with >= 1 item must hold", id="seq-min-len"),
    pytest.param("cols", ["a", "a"], [SeqOf(str, unique=True)], "none repeated must hold", id="seq-unique"),
    pytest.param("cols", "a", [SeqOf(str)], r"got cols='a' \(not a list\)$", id="seq-type"),
    pytest.param("n", "", [Satisfies(bool, "{name} is not empty")], "^n is not empty must hold, got n=''$", id="satisfies"),
    pytest.param("tol", "x", [Interval(Real, 0, None, closed="neither"), StrOptions(["auto"], label='"auto"')],
                 r'^tol > 0 \(or "auto"\) must hold, got tol=\'x\'$', id="alternatives"),
])
def test_each_constraint_rule_has_its_error(name, value, rules, match):
    with pytest.raises(ConfigError, match=match):
        check_param(name, value, rules)


@pytest.mark.parametrize("name, value, rules", [
    pytest.param("folds", 2, [Interval(Integral, 2, None)], id="interval"),
    pytest.param("jobs", -1, JOBS, id="option"),
    pytest.param("x", None, [None, Interval(Real, 0, None)], id="none-allowed"),
    pytest.param("cols", ("a", "b"), [SeqOf(str, min_len=1, unique=True)], id="seq"),
    pytest.param("b", False, [Boolean()], id="boolean"),
])
def test_values_that_keep_the_rules_pass(name, value, rules):
    check_param(name, value, rules)


def test_check_params_require_and_error_class():
    from calib.errors import UnitError

    check_params({"a": 1, "unchecked": object()}, {"a": [Interval(Integral, 0, None)], "missing": [Boolean()]})
    with pytest.raises(UnitError, match="^a >= 0 must hold, got a=-1$"):
        check_params({"a": -1}, {"a": [Interval(Integral, 0, None)]}, error=UnitError)
    with pytest.raises(ConfigError, match=r"^a \+ b < 1 must hold, got a=0.5, b=0.5 \(both shares\)$"):
        require(False, "a + b < 1", a=0.5, b=0.5, note=" (both shares)")
    import numpy as np

    with pytest.raises(ConfigError, match="got x=-1.5$"):  # a NumPy scalar reads as a number
        check_param("x", np.float64(-1.5), [Interval(Real, 0, None)])


@pytest.mark.parametrize("given, match", [
    pytest.param({"targett": 1}, r"^unknown key 'targett' in \[t\]; did you mean 'target'\? \(valid keys: target, group\)$",
                 id="one-with-hint"),
    pytest.param({"x": 1, "y": 2}, r"^unknown keys 'x', 'y' in \[t\] \(valid keys: target, group\)$", id="several"),
])
def test_check_keys(given, match):
    with pytest.raises(ConfigError, match=match):
        check_keys("t", given, ("target", "group"))
    check_keys("t", {"group": 1}, ("target", "group"))


def test_did_you_mean_stays_importable_from_config():
    from calib.config import did_you_mean

    assert did_you_mean("famly", ["family", "seed"]) == "; did you mean 'family'?"


# ---------------------------------------------------------------- typed sections
def test_every_section_is_a_frozen_dataclass_with_defaults():
    import dataclasses

    cfg = Config()
    for section in (cfg.data, cfg.split, cfg.validate, cfg.sweep, cfg.calibrate):
        assert dataclasses.is_dataclass(section)
        with pytest.raises(dataclasses.FrozenInstanceError):
            section.__setattr__("x", 1)
    assert cfg.sweep == SweepSpec() and cfg.sweep.trials == DEFAULT_TRIALS == 12
    assert cfg.sweep.strategy == "random" and cfg.sweep.storage is None and cfg.sweep.folds is None
    assert cfg.calibrate == CalibrateSpec() and cfg.adjust is None
    assert cfg.model_config().family == "mlp"


def test_sweep_section_is_typed(tmp_path):
    cfg = load_config(_write(tmp_path, """
[sweep]
strategy = "bayes"
trials = 7
seed = 4
jobs = 2
storage = "sqlite:///s.db"
[sweep.space]
learning_rate = { low = 1e-3, high = 1e-2 }
"""))
    assert (cfg.sweep.strategy, cfg.sweep.trials, cfg.sweep.seed, cfg.sweep.jobs) == ("bayes", 7, 4, 2)
    assert cfg.sweep.prune is True  # the default
    assert load_config(_write(tmp_path, "[sweep]\nprune = false\n")).sweep.prune is False
    with pytest.raises(ConfigError, match="prune"):
        load_config(_write(tmp_path, "[sweep]\nprune = 1\n"))
    assert cfg.sweep.storage == "sqlite:///s.db" and cfg.sweep.search_space().names == ("learning_rate",)
    assert cfg.sweep.to_dict()["space"] == {"learning_rate": {"low": 1e-3, "high": 1e-2}}


def test_model_section_is_validated_at_load_by_every_command(tmp_path, small_batch):
    """calib ingest used to accept a [model] key that validate rejects."""
    from click.testing import CliRunner

    from calib.cli import cli

    csv, _ = small_batch
    bad = _write(tmp_path, '[data]\ntarget = "o2_hPa"\n[model]\nfamly = "physics"\n')
    res = CliRunner().invoke(cli, ["ingest", str(csv), "--config", str(bad), "-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: {bad}: unknown key 'famly' in [model]; did you mean 'family'? "
                                  "(valid keys: " + ", ".join(f for f in Config().model_config().to_dict()) + ")")


def test_calibrate_aliases_are_deprecated_and_read_as_sweep_keys(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"\[calibrate\] (jobs|trials) is deprecated; write it as \[sweep\] (jobs|trials)"):
        cfg = load_config(_write(tmp_path, '[calibrate]\nname = "a"\njobs = 2\ntrials = 3\n'))
    assert cfg.sweep.jobs == 2 and cfg.sweep.trials == 3 and cfg.calibrate.name == "a"
    with pytest.warns(DeprecationWarning):
        same = load_config(_write(tmp_path, "[calibrate]\njobs = 2\n[sweep]\njobs = 2\n"))
    assert same.sweep.jobs == 2


def test_sweep_settings_resolution():
    cfg = config_from_dict({"validate": {"folds": 4}, "sweep": {"strategy": "bayes", "trials": 5, "jobs": 2}})
    ss = sweep_settings(cfg)
    assert (ss.strategy, ss.trials, ss.seed, ss.folds, ss.jobs, ss.storage) == ("bayes", 5, 0, 4, 2, None)
    ss = sweep_settings(cfg, trials=9, jobs=None, storage="j.journal")
    assert (ss.trials, ss.jobs, ss.storage) == (9, 2, "j.journal")
    o = cfg.with_overrides(folds=3, seed=7)
    assert sweep_settings(o).folds == 3 and sweep_settings(o).seed == 7 and o.split.seed == 7
    with pytest.raises(ConfigError, match="trials >= 1 must hold, got trials=0"):
        sweep_settings(cfg, trials=0)
    with pytest.raises(ConfigError, match=r"unknown key 'trial' in \[sweep options\]"):
        sweep_settings(cfg, trial=3)


def test_sweep_and_calibrate_commands_resolve_the_same_settings(tmp_path, small_batch, monkeypatch):
    """One config, both commands: the same strategy, trials, folds, jobs, storage and seed reach run_sweep."""
    from click.testing import CliRunner

    import calib.search
    from calib.cli import cli

    csv, toml = small_batch
    seen = []

    class Stop(Exception):
        pass

    def fake_run_sweep(ds, rows, base, space, **kw):
        seen.append({k: kw[k] for k in ("strategy", "n_trials", "folds", "jobs", "storage", "seed", "study_name",
                                        "prune")})
        raise Stop

    monkeypatch.setattr(calib.search, "run_sweep", fake_run_sweep)
    head = Path(toml).read_text().split("[model]")[0]
    assert "\nseed = 0\n" in head  # [split] seed
    cfg = _write(tmp_path, head.replace("\nseed = 0\n", "\nseed = 1\n") + f"""
[sweep]
strategy = "bayes"
trials = 5
seed = 3
jobs = 2
storage = "{tmp_path / 'j.journal'}"
[sweep.space]
learning_rate = {{ low = 1e-3, high = 1e-2 }}
""")
    for args in (["sweep", "--trials", "4", "--no-prune"],
                 ["calibrate", "--trials", "4", "--no-prune", "--models-dir", str(tmp_path / "m")]):
        res = CliRunner().invoke(cli, ["-q", args[0], str(csv), "--config", str(cfg), *args[1:]])
        assert isinstance(res.exception, Stop), res.output
    loaded = load_config(cfg)
    assert loaded.split.seed == 1
    assert seen[0] == seen[1] == {"strategy": "bayes", "n_trials": 4, "folds": loaded.validate.folds, "jobs": 2,
                                  "storage": str(tmp_path / "j.journal"), "seed": 3, "study_name": "calib",
                                  "prune": False}


def test_the_python_sweep_has_the_defaults_of_the_sweep_table():
    """`calib.search.run_sweep` (Python API) and `[sweep]` (both commands) share every default."""
    import inspect

    from calib.config import SweepSpec
    from calib.search import run_sweep

    p = inspect.signature(run_sweep).parameters
    spec = SweepSpec()
    assert (p["strategy"].default, p["n_trials"].default, p["seed"].default, p["jobs"].default,
            p["study_name"].default, p["prune"].default) == (spec.strategy, spec.trials, spec.seed, spec.jobs,
                                                              spec.study, spec.prune)
