"""Tests of calib.spots.normalise (per-spot two-point phase normalisation) and its use in the main job
and in ``calib adjust`` (method ``spot_map``).

A hand-made batch gives known anchors; a small simulated batch (5 spots, 2 frequencies, 3
temperatures including 22.5 degC, O2 levels including 0 and 212 hPa) runs ``calibrate`` once per
module with a :class:`SpotReference`, then ``adjust_spots`` writes ``spot_map`` children.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calib.spots import child as A
from calib.artifact import store as S
from calib.runtime import load_model
from calib.config import DataSpec, config_from_dict
from calib.errors import ArtifactError, ConfigError, IngestError
from calib.ingest import load_dataset
from calib.spots.normalise import SpotNormalisation, SpotReference, fit_normalisation, spot_anchors

REF = SpotReference(temperature_degC=22.5, air=212.0)
SPEC = DataSpec(features=("phase_5000hz_deg", "temperature_degC"), target="o2_hPa", group="spot_id")

# spot, phase (deg), temperature (degC), O2 (hPa)
HAND = [
    ("A", 60.0, 22.5, 0.0),   # A zero
    ("A", 60.2, 22.7, 0.0),   # A zero        -> r0 = (60.1, 22.6)
    ("A", 30.0, 22.4, 212.0),  # A air
    ("A", 30.4, 23.5, 212.0),  # A air, on the inclusive bound -> r1 = (30.2, 22.95)
    ("A", 35.0, 23.6, 212.0),  # off temperature: not an anchor
    ("A", 63.0, 10.0, 0.0),   # off temperature
    ("A", 40.0, 22.5, 100.0),  # another level
    ("B", 61.0, 22.5, 0.0),   # B: r0 = 61.0, r1 = 32.0
    ("B", 32.0, 22.5, 212.0),
    ("B", 42.0, 22.5, 100.0),
]


def hand_ds(tmp_path: Path, rows=HAND, name: str = "readings.csv"):
    df = pd.DataFrame(rows, columns=["spot_id", "phase_5000hz_deg", "temperature_degC", "o2_hPa"])
    path = tmp_path / name
    df.to_csv(path, index=False)
    return load_dataset(path, SPEC)


# --------------------------------------------------------------------------- SpotReference
@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"temperature_degC": float("nan")}, r"^-50 <= temperature_degC <= 150 must hold, got temperature_degC=nan \(not a number\)$",
                 id="temperature-finite"),
    pytest.param({"temperature_degC": 200.0}, r"^-50 <= temperature_degC <= 150 must hold, got temperature_degC=200\.0",
                 id="temperature-range"),
    pytest.param({"air": "212"}, r"^air is a finite number must hold, got air='212' \(not a number\)$", id="air-number"),
    pytest.param({"temperature_tolerance_degC": 0.0},
                 r"^temperature_tolerance_degC > 0 must hold, got temperature_tolerance_degC=0\.0", id="tolerance"),
    pytest.param({"zero": -1.0}, r"^zero >= 0 must hold, got zero=-1\.0", id="zero"),
    pytest.param({"air": 0.0}, r"^air > zero must hold, got air=0\.0, zero=0\.0", id="air-above-zero"),
    pytest.param({"level_tolerance": 0.2}, r"^0 <= level_tolerance < 0\.1 must hold, got level_tolerance=0\.2",
                 id="level-tolerance"),
    pytest.param({"zero": True}, r"^zero >= 0 must hold, got zero=True \(not a number\)$", id="zero-bool"),
])
def test_spot_reference_rules(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SpotReference(**{"temperature_degC": 22.5, "air": 212.0, **kwargs})


@pytest.mark.parametrize("table, match", [
    pytest.param({"temperature_degC": 22.5, "air": 212.0, "ari": 1.0}, r"^unknown key 'ari' in \[adjust\]; did you mean 'air'\? \(valid keys: temperature_degC, air, ",
                 id="unknown-key"),
    pytest.param({"temperature_degC": 22.5}, r"^\[adjust\] must give air ", id="missing-air"),
    pytest.param([22.5], r"^\[adjust\] must be a table", id="not-a-table"),
])
def test_adjust_table_rules(table, match):
    with pytest.raises(ConfigError, match=match):
        SpotReference.from_dict(table)


def test_adjust_table_and_levels():
    ref = SpotReference.from_dict({"temperature_degC": 20, "air": 100, "level_tolerance": 0.01})
    assert ref == SpotReference(20.0, 100.0, 1.0, 0.0, 0.01) and ref.level_abs_tolerance == pytest.approx(1.0)
    assert ref.at_level(np.array([0.0, 1.0, 1.01, 99.0, 101.5]), "air").tolist() == [False, False, False, True, False]
    assert ref.at_level(np.array([0.0, 1.0, 1.01]), "zero").tolist() == [True, True, False]
    assert ref.at_temperature(np.array([19.0, 21.0, 21.01])).tolist() == [True, True, False]


# --------------------------------------------------------------------------- anchors
def test_spot_anchors_are_the_level_means_at_the_reference_temperature(tmp_path):
    ds = hand_ds(tmp_path)
    anchors = spot_anchors(ds, None, REF)
    assert list(anchors) == ["A", "B"]
    np.testing.assert_allclose(anchors["A"][0], [60.1, 22.6], rtol=0, atol=1e-12)
    np.testing.assert_allclose(anchors["A"][1], [30.2, 22.95], rtol=0, atol=1e-12)
    np.testing.assert_allclose(anchors["B"][0], [61.0, 22.5], atol=1e-12)
    np.testing.assert_allclose(anchors["B"][1], [32.0, 22.5], atol=1e-12)
    only_b = spot_anchors(ds, np.arange(7, 10), REF)
    assert list(only_b) == ["B"]


@pytest.mark.parametrize("extra, match", [
    pytest.param([("C", 61.0, 22.5, 0.0), ("C", 41.0, 22.5, 100.0)],
                 r"^readings\.csv rows 12-13, column o2_hPa: spot 'C' has no row at the air level \(o2_hPa = 212 hPa "
                 r"at temperature_degC 22\.5 \+- 1 degC\)", id="no-air-level"),
    pytest.param([("C", 64.0, 10.0, 0.0), ("C", 32.0, 22.5, 212.0)],
                 r"^readings\.csv rows 12-13, column o2_hPa: spot 'C' has no row at the zero level", id="zero-off-temperature"),
])
def test_a_spot_without_a_level_is_named(tmp_path, extra, match):
    ds = hand_ds(tmp_path, HAND + extra)
    with pytest.raises(IngestError, match=match):
        spot_anchors(ds, None, REF)
    with pytest.raises(IngestError, match=match):
        fit_normalisation(ds, None, REF)


def test_anchors_need_a_group_column(tmp_path):
    pd.DataFrame(HAND, columns=["spot_id", "phase_5000hz_deg", "temperature_degC", "o2_hPa"]).to_csv(
        tmp_path / "r.csv", index=False)
    ds = load_dataset(tmp_path / "r.csv", DataSpec(features=SPEC.features, target="o2_hPa"))
    with pytest.raises(ConfigError, match=r"^spot normalisation needs a group \(spot\) column"):
        spot_anchors(ds, None, REF)


# --------------------------------------------------------------------------- the normalisation
def test_normalisation_maps_each_spots_anchors_onto_the_batch_anchors(tmp_path):
    ds = hand_ds(tmp_path)
    norm = fit_normalisation(ds, None, REF)
    assert norm.mapped == (0,) and norm.mapped_names == ("phase_5000hz_deg",)
    assert norm.b0 == pytest.approx((60.55,)) and norm.b1 == pytest.approx((31.1,))
    out = norm.apply(ds)
    assert list(out.frame.columns) == list(ds.frame.columns) and out.sha256 == ds.sha256
    np.testing.assert_array_equal(out.frame["temperature_degC"], ds.frame["temperature_degC"])  # not mapped
    np.testing.assert_array_equal(ds.frame["phase_5000hz_deg"].iloc[:2], [60.0, 60.2])  # input untouched
    # every spot now reads exactly the batch anchors at its own zero and air points
    for spot, (r0, r1) in spot_anchors(out, None, REF).items():
        assert r0[0] == pytest.approx(60.55, abs=1e-12) and r1[0] == pytest.approx(31.1, abs=1e-12), spot
    # A's 100 hPa reading: B0 + (x - r0) * (B1 - B0) / (r1 - r0)
    assert out.frame["phase_5000hz_deg"][6] == pytest.approx(60.55 + (40.0 - 60.1) * (31.1 - 60.55) / (30.2 - 60.1))
    assert out.frame["phase_5000hz_deg"][9] == pytest.approx(60.55 + (42.0 - 61.0) * (31.1 - 60.55) / (32.0 - 61.0))


def test_unseen_spots_are_mapped_with_their_own_anchors(tmp_path):
    ds = hand_ds(tmp_path)
    norm = fit_normalisation(ds, np.arange(0, 7), REF)  # fitted on spot A only: B0/B1 = A's anchors
    assert list(norm.anchors) == ["A"] and norm.b0 == pytest.approx((60.1,))
    out = norm.apply(ds)
    assert out.frame["phase_5000hz_deg"][7] == pytest.approx(60.1)  # B's zero point -> A's
    assert out.frame["phase_5000hz_deg"][8] == pytest.approx(30.2)


def test_an_implausible_map_is_refused(tmp_path):
    rows = HAND + [("C", 33.0, 22.5, 0.0), ("C", 61.0, 22.5, 212.0)]  # levels swapped
    ds = hand_ds(tmp_path, rows)
    norm = fit_normalisation(ds, np.arange(10), REF)  # spots A and B
    with pytest.raises(IngestError, match=r"^readings\.csv rows 12-13 \(spot 'C'\): phase_5000hz_deg moves \+28 deg "
                                          r"from zero to air, the batch-typical -29\.45: map scale -1\.05179 is "
                                          r"outside the plausible 0\.5\.\.2; check that the rows are at 0 and 212 hPa$"):
        norm.apply(ds)
    with pytest.raises(IngestError, match=r"outside the plausible 0\.5\.\.2"):  # C among the calibration spots
        fit_normalisation(ds, None, REF)


def test_normalisation_needs_a_phase_input(tmp_path):
    df = pd.DataFrame(HAND, columns=["spot_id", "amplitude", "temperature_degC", "o2_hPa"])
    df.to_csv(tmp_path / "r.csv", index=False)
    ds = load_dataset(tmp_path / "r.csv", DataSpec(features=("amplitude", "temperature_degC"), target="o2_hPa",
                                                  group="spot_id", units={"amplitude": "1"}))
    with pytest.raises(ConfigError, match=r"^spot normalisation needs a phase input \(unit deg or us\)"):
        fit_normalisation(ds, None, REF)


def test_json_round_trip(tmp_path):
    norm = fit_normalisation(hand_ds(tmp_path), None, REF)
    d = json.loads(json.dumps(norm.to_dict()))
    assert d["mapped"] == ["phase_5000hz_deg"] and d["anchors"]["A"] == {"zero": [60.1], "air": [30.2]}
    back = SpotNormalisation.from_dict(d)
    assert back == norm
    np.testing.assert_array_equal(back.coefficients([60.1, 20.0], [30.2, 20.0])[0],
                                  norm.coefficients([60.1, 20.0], [30.2, 20.0])[0])
    with pytest.raises(ArtifactError, match=r"^spot_normalisation must be an object of format 'calib\.spotnorm'"):
        SpotNormalisation.from_dict({**d, "format": "other"})
    with pytest.raises(ArtifactError, match=r"^spot_normalisation is malformed \(KeyError"):
        SpotNormalisation.from_dict({k: v for k, v in d.items() if k != "b0"})


# --------------------------------------------------------------------------- main job + spot_map children
FEATURES = ["phase_2000hz_deg", "phase_5000hz_deg", "temperature_degC"]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from calib.pipeline import CalibrateSettings, calibrate
    from calib.simulate import SimulationConfig, simulate

    root = tmp_path_factory.mktemp("spotnorm")
    sc = SimulationConfig(n_spots=5, replicates=1, seed=2, frequencies_hz=(2000, 5000),
                          temperature_levels_degC=(10.0, 22.5, 35.0), o2_levels_hPa=(0.0, 50.0, 150.0, 212.0, 300.0))
    df = simulate(sc)
    csv = root / "batch.csv"
    df.to_csv(csv, index=False)
    cfg = config_from_dict({
        "data": {"features": FEATURES, "target": "o2_hPa", "group": "spot_id"},
        "split": {"test_fraction": 0.2, "dev_fraction": 0.2, "seed": 0},
        "validate": {"folds": 2},
        "model": {"hidden_layers": [8], "epochs": 40, "patience": "none", "batch_size": 16, "learning_rate": 0.01},
        "sweep": {"strategy": "random", "trials": 1, "folds": 2,
                  "space": {"learning_rate": {"low": 5e-3, "high": 2e-2}}},
    })
    run = calibrate(csv, cfg, CalibrateSettings(name="sn", models_dir=str(root / "models"),
                                                runs_dir=str(root / "runs")), spot_reference=REF)
    ref_rows = df[(df.temperature_degC.sub(22.5).abs() <= 1.0) & df.o2_hPa.isin([0.0, 212.0])]
    ref_csv = root / "two_point.csv"
    ref_rows[["spot_id", *FEATURES, "o2_hPa"]].to_csv(ref_csv, index=False)
    return {"run": run, "df": df, "csv": csv, "ref": ref_csv, "root": root}


def test_calibrate_exports_the_normalisation(calibrated):
    run, df = calibrated["run"], calibrated["df"]
    meta = S.read_metadata(run.artifact.path)
    d = meta["spot_normalisation"]
    assert d["mapped"] == FEATURES[:2] and d["reference"]["air"] == 212.0
    test_spots = set(meta["test"]["groups"])
    assert len(test_spots) == 1 and set(d["anchors"]) == set(df.spot_id) - test_spots  # train + dev spots only
    norm = SpotNormalisation.from_dict(d)
    np.testing.assert_allclose(norm.b0, np.mean([a[0] for a in norm.anchors.values()], axis=0), rtol=1e-12)
    # test_predictions.csv keeps the readings as measured
    tp = pd.read_csv(run.artifact.path / "test_predictions.csv")
    raw = df[df.spot_id.isin(test_spots)].reset_index(drop=True)
    np.testing.assert_allclose(tp[FEATURES[1]], raw[FEATURES[1]], rtol=0, atol=1e-9)


def test_spot_map_children_equal_the_python_side_and_the_main_job(calibrated):
    import keras

    run, df = calibrated["run"], calibrated["df"]
    res = A.adjust_spots(run.artifact.path, calibrated["ref"])
    assert res.method == "spot_map" and len(res.artifacts) == 5
    parent = load_model(run.artifact.path)
    norm = SpotNormalisation.from_dict(parent.metadata["spot_normalisation"])
    test_spot = parent.metadata["test"]["groups"][0]
    tp = pd.read_csv(run.artifact.path / "test_predictions.csv")
    for adj, art in zip(res.adjustments, res.artifacts):
        child = load_model(art.path)
        x = df.loc[df.spot_id == adj.spot_id, FEATURES].to_numpy()
        got = child.predict(x)
        np.testing.assert_allclose(got, adj.apply(parent, x), rtol=0, atol=1e-4)
        # independently: the spot's anchors from the data, the map in float64, the parent on mapped phases
        sel = (df.spot_id == adj.spot_id) & (df.temperature_degC.sub(22.5).abs() <= 1.0)
        r0 = df.loc[sel & (df.o2_hPa == 0), FEATURES].to_numpy().mean(0)
        r1 = df.loc[sel & (df.o2_hPa == 212), FEATURES].to_numpy().mean(0)
        b0, b1 = np.r_[norm.b0, 0.0], np.r_[norm.b1, 0.0]
        xm = x.copy()
        xm[:, :2] = b0[:2] + (x[:, :2] - r0[:2]) * (b1[:2] - b0[:2]) / (r1[:2] - r0[:2])
        graph = lambda a: parent.predict_graph(parent.as_array(a))[0]  # noqa: E731 - the parent's own graph
        np.testing.assert_allclose(got, graph(xm), rtol=0, atol=2e-3)
        assert np.abs(got - graph(x)).max() > 0.1  # the map does something
        with pytest.raises(ConfigError, match="spot-normalised phases .* cannot be adjusted"):
            parent.predict(x)  # no flag to return: refused
        np.testing.assert_allclose(parent.predict(x, spots=[adj.spot_id] * len(x)), got, rtol=0, atol=0)
        if adj.spot_id == test_spot:  # the main job normalised the test spot with the same anchors
            np.testing.assert_allclose(got, tp["o2_hPa_pred"], rtol=0, atol=2e-3)
    meta = S.read_metadata(res.artifacts[0].path)
    a = meta["spot_adjustment"]
    assert a["method"] == "spot_map" and a["formula"] == "target = batch(readings * input_scale + input_add)"
    assert set(a["normalisation"]) == {"mapped", "b0", "b1", "r0", "r1", "reference"}
    assert "spot_normalisation" not in meta and a["input_scale"]["temperature_degC"] == 1.0
    k = keras.models.load_model(res.artifacts[0].path / "model.keras", safe_mode=True)
    x0 = df.loc[df.spot_id == res.adjustments[0].spot_id, FEATURES].to_numpy(np.float32)
    np.testing.assert_allclose(np.asarray(k(x0))[:, 0], load_model(res.artifacts[0].path).predict(x0),
                               rtol=1e-5, atol=1e-3)


def test_predict_applies_spot_map_children_by_spot(calibrated, tmp_path):
    from calib.predict import predict_file

    run, df = calibrated["run"], calibrated["df"]
    models = tmp_path / "models"
    import shutil

    shutil.copytree(run.artifact.path, models / "sn" / run.artifact.version)
    parent_dir = models / "sn" / run.artifact.version
    readings = df[["spot_id", *FEATURES, "o2_hPa"]].copy()
    extra = readings[readings.spot_id == "S01"].assign(spot_id="S99")  # a spot without a check
    readings = pd.concat([readings, extra], ignore_index=True)
    path = tmp_path / "readings.csv"
    readings.to_csv(path, index=False)
    parent = load_model(parent_dir)
    # before any check: every row is predicted on raw readings and marked as not adjusted
    predict_file(parent, path, tmp_path / "before.csv")
    before = pd.read_csv(tmp_path / "before.csv")
    assert len(before) == len(readings) and not before["adjusted"].any()
    assert before["out_of_range"].all()  # a spot-normalised model cannot vouch for unchecked spots
    readings[FEATURES].to_csv(tmp_path / "no_spot.csv", index=False)  # no spot column: the same
    predict_file(parent, tmp_path / "no_spot.csv", tmp_path / "no_spot_out.csv")
    assert not pd.read_csv(tmp_path / "no_spot_out.csv")["adjusted"].any()
    res = A.adjust_spots(parent_dir, calibrated["ref"], spots=["S01", "S02"])
    summary = predict_file(parent, path, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert summary["adjusted"] == int(readings.spot_id.isin(["S01", "S02"]).sum())
    assert out["adjusted"].tolist() == readings.spot_id.isin(["S01", "S02"]).tolist()
    for adj in res.adjustments:
        m = (readings.spot_id == adj.spot_id).to_numpy()
        np.testing.assert_allclose(out.loc[m, "o2_hPa_pred"], adj.apply(parent, readings.loc[m, FEATURES]),
                                   rtol=0, atol=1e-4)
    s99 = (readings.spot_id == "S99").to_numpy()
    raw = parent.predict_graph(parent.as_array(readings.loc[s99, FEATURES]))[0]
    np.testing.assert_allclose(out.loc[s99, "o2_hPa_pred"], raw, rtol=0, atol=1e-4)
    assert out.loc[~out["adjusted"], "out_of_range"].all()  # every unchecked spot is flagged
    # the checked spot is closer to the reference than the unchecked copy of its own readings
    s01 = (readings.spot_id == "S01").to_numpy()
    err = lambda m: float(np.abs(out.loc[m, "o2_hPa_pred"] - out.loc[m, "o2_hPa"]).mean())  # noqa: E731
    assert err(s01) < err(s99)
    frame = parent.predict_frame(readings[["spot_id", *FEATURES]])
    assert frame["adjusted"].tolist() == readings.spot_id.isin(["S01", "S02"]).tolist()


def _ref_variant(calibrated, tmp_path, kind):
    ref = pd.read_csv(calibrated["ref"])
    ref = ref[ref.spot_id == "S01"].copy()
    if kind == "temperature":
        ref.loc[ref.index[0], "temperature_degC"] = 25.0
    elif kind == "air_level":
        ref.loc[ref.o2_hPa > 0, "o2_hPa"] = 207.3
    elif kind == "swapped":
        ph = ref[FEATURES[:2]].to_numpy()[::-1].copy()
        ref[FEATURES[:2]] = ph
    path = tmp_path / "ref.csv"
    ref.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind, exc, match", [
    pytest.param("temperature", IngestError, r"^ref\.csv row 2, column temperature_degC: 25 degC is not the reference "
                 r"temperature 22\.5 \+- 1 degC of model sn 1\.0\.0", id="off-reference-temperature"),
    pytest.param("air_level", IngestError, r"^ref\.csv row 3, column o2_hPa: the air reference is 207\.3 hPa, but model "
                 r"sn 1\.0\.0 is normalised at air = 212 hPa", id="other-air-level"),
    pytest.param("swapped", IngestError, r"^ref\.csv rows 2-3 \(spot 'S01'\): phase_2000hz_deg moves \+\d+\.\d+ deg "
                 r"from zero to air", id="implausible-map"),
])
def test_bad_spot_map_reference(calibrated, tmp_path, kind, exc, match):
    path = _ref_variant(calibrated, tmp_path, kind)
    with pytest.raises(exc, match=match):
        A.compute_adjustments(calibrated["run"].artifact.path, path)


def test_other_methods_are_refused_for_a_normalised_parent(calibrated):
    with pytest.raises(ConfigError, match=r"^method='linear' cannot adjust model sn 1\.0\.0: it takes spot-normalised "
                                          r"phases"):
        A.compute_adjustments(calibrated["run"].artifact.path, calibrated["ref"], method="linear")
