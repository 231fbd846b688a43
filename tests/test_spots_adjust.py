"""Tests of calib.spots: two-point spot adjustment into child artifacts (routing: test_runtime.py).

Two batch models:

- ``linear`` (the session's tiny artifact, conftest ``linear_artifact``): a network without hidden layers whose weights are set by hand, so the batch model
  is exactly ``O2 = -10 * (phase - (60 - 0.1 * T))`` (hPa; phase in deg, T in degC), with two
  fold models 1 hPa apart (a known ``o2_hPa_std`` of 1 hPa). A spot with phase offset ``d`` and
  Stern-Volmer scale ``k`` reads ``phase = 60 - 0.1 T - k * pO2 / 10 + d``, so the adjustments
  have known answers: ``phase_scale`` -> shift ``d``, scale ``1/k``; ``linear`` -> slope ``1/k``,
  intercept ``10 d / k``.
- ``trained``: a small tanh network trained on simulated single-frequency readings of the
  nominal foil (:mod:`calib.simulate`, no spot variation).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calib.spots import child as A
from calib.artifact import export as E
from calib.artifact import store as S
from calib.runtime import find_children, load_model
from calib.errors import ConfigError, IngestError
from conftest import copy_artifact as copy_parent
from conftest import lin_phase, lin_ref_rows, linear_metadata

REPO = Path(__file__).resolve().parents[1]
FEATURES = ("phase_5000hz_deg", "temperature_degC")
O2_LEVELS = (0.0, 20.0, 50.0, 100.0, 150.0, 212.0, 300.0)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def linear(linear_artifact):
    return linear_artifact


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from calib.nn import ModelConfig, train
    from calib.scaling import fit_scaler
    from calib.simulate import SimulationConfig, simulate

    sc = SimulationConfig(n_spots=1, replicates=2, seed=3, frequencies_hz=(5000,),
                          temperature_levels_degC=(5.0, 15.0, 25.0, 35.0),
                          o2_levels_hPa=(0.0, 10.0, 20.0, 50.0, 100.0, 150.0, 212.0, 250.0, 300.0),
                          tau0_scale_sd=0.0, ksv_scale_sd=0.0, f_shift_sd=0.0, phase_offset_sd_deg=0.0,
                          temperature_offset_sd_degC=0.0)
    df = simulate(sc)
    x, y = df[list(FEATURES)].to_numpy(), df[["o2_hPa"]].to_numpy()
    cfg = ModelConfig(hidden_layers=(16, 16), learning_rate=0.01, batch_size=None, epochs=1500, patience=None, seed=0)
    model = train(cfg, x, y, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y)).model
    meta = linear_metadata(len(df), (float(x[:, 0].min()), float(x[:, 0].max())), (float(x[:, 1].min()), float(x[:, 1].max())))
    models = tmp_path_factory.mktemp("models")
    return E.export_artifact(models, "sim", model=model, metadata=meta)


def write_ref(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(path, index=False, columns=columns)
    return path



def sim_spot(k: float = 1.0, offset: float = 0.0, seed: int = 5):
    """Readings of a simulated spot (Ksv1 and Ksv2 scaled by k, phase offset) on a (T, O2) grid."""
    from calib.simulate import phase_deg

    rng = np.random.default_rng(seed)
    t = np.repeat([10.0, 20.0, 30.0], len(O2_LEVELS))
    p = np.tile(O2_LEVELS, 3)
    ph = phase_deg(p, t, 5000.0, ksv1_scale=k, ksv2_scale=k) + offset + rng.normal(0.0, 0.005, len(p))
    return np.column_stack([ph, t]), p


# --------------------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    "method, shift, scale, intercept",
    [
        pytest.param("phase_scale", 0.3, 1 / 1.05, 0.0, id="phase_scale"),
        pytest.param("linear", 0.0, 1 / 1.05, 10 * 0.3 / 1.05, id="linear"),
    ],
)
def test_known_phase_offset_and_ksv_scale_are_recovered(linear, tmp_path, method, shift, scale, intercept):
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("S1", offset=0.3, k=1.05))
    info, (adj,) = A.compute_adjustments(linear.path, ref, method=method)
    assert adj.spot_id == "S1" and adj.method == method
    assert adj.phase_shift == pytest.approx(shift, abs=1e-3)
    assert adj.input_offset == pytest.approx((shift, 0.0), abs=1e-3)
    assert adj.scale == pytest.approx(scale, rel=1e-4)
    assert adj.intercept == pytest.approx(intercept, abs=2e-3)
    assert adj.zero.rows == (2, 3) and adj.air.rows == (4, 5)
    assert adj.zero.adjusted_reading == pytest.approx(0.0, abs=2e-3)
    assert adj.air.adjusted_reading == pytest.approx(212.0, abs=2e-3)
    # the spot's other readings: the batch model is off by -3 hPa at zero to +12 hPa at 300 hPa
    # (MAE 4.5 hPa); the adjustment is exact
    parent = load_model(linear.path)
    t = np.repeat([5.0, 20.0, 35.0], len(O2_LEVELS))
    p = np.tile(O2_LEVELS, 3)
    x = np.column_stack([lin_phase(p, t, 0.3, 1.05), t])
    assert np.abs(parent.predict(x) - p).mean() == pytest.approx(4.514, abs=1e-3)
    np.testing.assert_allclose(adj.apply(parent, x), p, atol=5e-3)


def test_trained_network_recovers_ksv_scale_and_reduces_error(trained, tmp_path):
    x, p = sim_spot(k=1.06)
    sel = (x[:, 1] == 20.0) & np.isin(p, (0.0, 212.0))
    rows = [{"spot_id": "S7", FEATURES[0]: v[0], FEATURES[1]: v[1], "o2_hPa": o} for v, o in zip(x[sel], p[sel])]
    ref = write_ref(tmp_path / "ref.csv", rows)
    _, (adj,) = A.compute_adjustments(trained.path, ref)  # default method
    assert adj.method == "linear"
    assert adj.scale == pytest.approx(1 / 1.06, abs=0.01)  # Ksv x 1.06 reads 1.06 x pO2
    parent = load_model(trained.path)
    before = np.abs(parent.predict(x[~sel]) - p[~sel]).mean()
    after = np.abs(adj.apply(parent, x[~sel]) - p[~sel]).mean()
    assert before > 4.0
    assert after < before / 3


# --------------------------------------------------------------------------- child artifacts
def test_child_onnx_and_keras_equal_the_python_side(trained, tmp_path):
    import keras

    parent_dir = copy_parent(trained, tmp_path)
    x, p = sim_spot(k=0.96, offset=0.1, seed=8)
    sel = (x[:, 1] == 20.0) & np.isin(p, (0.0, 212.0))
    ref = write_ref(tmp_path / "ref.csv",
                    [{"spot_id": "S8", FEATURES[0]: v[0], FEATURES[1]: v[1], "o2_hPa": o} for v, o in zip(x[sel], p[sel])])
    for method in ("linear", "phase_scale"):  # spot_map: tests/test_spotnorm.py
        res = A.adjust_spots(parent_dir, ref, method=method)
        (adj,), (art,) = res.adjustments, res.artifacts
        parent, child = load_model(parent_dir), load_model(art.path)
        rng = np.random.default_rng(2)
        xs = rng.uniform(parent.lower, parent.upper, size=(300, 2))
        expected = adj.apply(parent, xs)
        got = child.predict(xs)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert np.ptp(got) > 100.0 and np.abs(got - parent.predict(xs)).max() > 1.0
        k = keras.models.load_model(art.path / "model.keras", safe_mode=True)
        np.testing.assert_allclose(np.asarray(k(xs.astype(np.float32)))[:, 0], got, rtol=1e-5, atol=1e-4)


def test_child_std_is_the_scaled_fold_spread(linear, tmp_path):
    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("S1", offset=0.3, k=1.05))
    (art,) = A.adjust_spots(parent_dir, ref, method="phase_scale").artifacts
    child = load_model(art.path)
    pred, std = child.predict(np.array([[50.0, 20.0], [35.0, 10.0]]), return_std=True)
    np.testing.assert_allclose(std, 1.0 / 1.05, rtol=1e-4)  # fold models 1 hPa apart, times |scale|
    assert child.std_name == "o2_hPa_std"


def test_child_metadata_names_parent_and_reference(linear, tmp_path):
    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "spot_checks.csv", lin_ref_rows("S 1/a", offset=0.3, k=1.05))
    res = A.adjust_spots(parent_dir, ref)
    (art,) = res.artifacts
    parent = load_model(parent_dir)
    assert art.name == "lin.S_1_a" and art.version == "1.0.0"
    assert art.path == tmp_path / "models" / "lin.S_1_a" / "1.0.0"
    assert S.verify_artifact(art.path)["ok"]
    meta = S.read_metadata(art.path)
    a = meta["spot_adjustment"]
    assert a["spot_id"] == "S 1/a" and a["spot_column"] == "spot_id" and a["method"] == "linear"
    assert a["parent"]["model_id"] == parent.model_id and a["parent"]["version"] == parent.version
    assert a["parent"]["name"] == "lin"
    assert a["parent"]["onnx_sha256"] == hashlib.sha256((parent_dir / "model.onnx").read_bytes()).hexdigest()
    assert a["reference"] == {"file": "spot_checks.csv", "sha256": hashlib.sha256(ref.read_bytes()).hexdigest()}
    assert meta["model_id"] != parent.model_id
    assert [f["name"] for f in meta["features"]] == list(FEATURES)
    card = (art.path / "MODEL_CARD.md").read_text()
    assert "## Spot adjustment" in card and a["reference"]["sha256"] in card
    import onnx

    props = {p.key: p.value for p in onnx.load(str(art.path / "model.onnx")).metadata_props}
    assert props["parent_model_id"] == parent.model_id and props["spot_id"] == "S 1/a"
    assert props["reference_sha256"] == a["reference"]["sha256"]
    json.dumps(res.to_dict())  # what `calib adjust --json` prints
    assert [d["spot_id"] for d in res.to_dict()["spots"]] == ["S 1/a"]  # its text: tests/test_cli_format.py


def test_child_versions_bump_and_the_newest_is_used(linear, tmp_path):
    parent_dir = copy_parent(linear, tmp_path)
    ref1 = write_ref(tmp_path / "ref1.csv", lin_ref_rows("S1", offset=0.3, k=1.05))
    ref2 = write_ref(tmp_path / "ref2.csv", lin_ref_rows("S1", offset=0.1, k=1.0))
    a1 = A.adjust_spots(parent_dir, ref1).artifacts[0]
    a2 = A.adjust_spots(parent_dir, ref2).artifacts[0]
    assert (a1.version, a2.version) == ("1.0.0", "1.1.0")
    assert S.list_versions(tmp_path / "models" / "lin.S1") == ["1.0.0", "1.1.0"]
    assert a1.metadata["spot_adjustment"]["reference"]["sha256"] != a2.metadata["spot_adjustment"]["reference"]["sha256"]
    assert find_children(parent_dir) == {"S1": ("spot_id", a2.path)}
    assert load_model(parent_dir).children == {"S1": a2.path}


# --------------------------------------------------------------------------- prediction
def test_predict_spots_uses_each_spots_child(linear, tmp_path):
    import pandas as pd

    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("A", 0.3, 1.05) + lin_ref_rows("B", -0.2, 0.97))
    A.adjust_spots(parent_dir, ref)
    p = np.array([0.0, 100.0, 250.0])
    t = np.array([10.0, 25.0, 35.0])
    df = pd.DataFrame({
        "spot_id": ["A"] * 3 + ["B"] * 3 + ["C"] * 3,
        "note": list("abcdefghi"),
        FEATURES[0]: np.concatenate([lin_phase(p, t, 0.3, 1.05), lin_phase(p, t, -0.2, 0.97), lin_phase(p, t)]),
        FEATURES[1]: np.tile(t, 3),
    })
    out = load_model(parent_dir).predict_frame(df)
    assert list(out.columns) == [*df.columns, "o2_hPa_pred", "o2_hPa_std", "out_of_range",
                                  "out_of_range_reason", "adjusted"]
    assert out["adjusted"].tolist() == [True] * 6 + [False] * 3
    np.testing.assert_allclose(out["o2_hPa_pred"], np.tile(p, 3), atol=5e-3)  # each spot right
    parent = load_model(parent_dir)
    np.testing.assert_allclose(out["o2_hPa_pred"][6:], parent.predict(df[6:]), rtol=0, atol=0)


def test_predict_file_with_spot_column_adds_adjusted(linear, tmp_path):
    import pandas as pd

    from calib.predict import predict_file

    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("A", 0.3, 1.05))
    (child,) = A.adjust_spots(parent_dir, ref).artifacts
    readings = tmp_path / "readings.csv"
    readings.write_text(
        "spot_id,phase_5000hz_deg,temperature_degC\n"
        f"A,{lin_phase(100.0, 20.0, 0.3, 1.05):.6f},20\n"
        f"C,{lin_phase(100.0, 20.0):.6f},20\n"
    )
    summary = predict_file(load_model(parent_dir), readings, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["adjusted"].tolist() == [True, False]
    np.testing.assert_allclose(out["o2_hPa_pred"], [100.0, 100.0], atol=5e-3)
    assert summary["adjusted"] == 1 and summary["spot_models"] == {"A": child.version}
    assert summary["columns_added"][-1] == "adjusted"
    # without the spot column: the batch model for every row, and `adjusted` says so
    readings.write_text(f"phase_5000hz_deg,temperature_degC\n{lin_phase(100.0, 20.0):.6f},20\n")
    summary = predict_file(load_model(parent_dir), readings, tmp_path / "out2.csv")
    assert pd.read_csv(tmp_path / "out2.csv")["adjusted"].tolist() == [False]
    assert summary["adjusted"] == 0 and summary["spot_models"] == {}


def test_prediction_with_children_stays_tensorflow_free(linear, tmp_path):
    parent_dir = copy_parent(linear, tmp_path)
    A.adjust_spots(parent_dir, write_ref(tmp_path / "ref.csv", lin_ref_rows("A", 0.3, 1.05)))
    code = (
        "import sys, pandas as pd; from calib import load_model; "
        f"out = load_model({str(parent_dir)!r}).predict_frame(pd.DataFrame({{'spot_id': ['A'], "
        f"'phase_5000hz_deg': [{lin_phase(50.0, 20.0, 0.3, 1.05)}], 'temperature_degC': [20.0]}})); "
        "print(round(float(out['o2_hPa_pred'][0]), 2), bool(out['adjusted'][0]), "
        "any(m in sys.modules for m in ('tensorflow', 'keras')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["50.0", "True", "False"]


# --------------------------------------------------------------------------- the level form
def test_level_form_computes_the_air_saturated_value(linear, tmp_path):
    from calib.units import po2_air_saturated_hPa

    pa = float(po2_air_saturated_hPa(20.0, 0.0, 1013.25))
    assert pa == pytest.approx(207.3, abs=0.05)  # the documented check value
    rows = [{"spot_id": "S1", FEATURES[0]: lin_phase(p, 20.0, 0.3, 1.05), FEATURES[1]: 20.0, "level": lev,
             "air_pressure_mbar": 1013.25} for p, lev in ((0.0, "Zero"), (pa, "air "))]
    ref = write_ref(tmp_path / "ref.csv", rows)
    _, (adj,) = A.compute_adjustments(linear.path, ref, method="phase_scale")
    assert adj.air.value == pytest.approx(pa, rel=1e-9)
    assert adj.phase_shift == pytest.approx(0.3, abs=1e-3) and adj.scale == pytest.approx(1 / 1.05, rel=1e-4)


# --------------------------------------------------------------------------- bad references
def _bad(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    ok = lin_ref_rows("S1", 0.3, 1.05)
    header = None
    kwargs: dict = {}
    if kind == "missing_air":
        rows = ok[:2]
    elif kind == "missing_zero":
        rows = ok[2:]
    elif kind == "phase_out_of_range":
        rows = ok[:3] + [{**ok[3], FEATURES[0]: 70.0}]
    elif kind == "target_out_of_range":
        rows = [{**r, "o2_hPa": 400.0 if r["o2_hPa"] else 0.0} for r in ok]
    elif kind == "unknown_spot":
        rows, kwargs = ok, {"spots": ["S9"]}
    elif kind == "text_cell":
        rows = [ok[0], {**ok[1], FEATURES[0]: "n/a"}] + ok[2:]
    elif kind == "empty_spot":
        rows = ok[:2] + [{**ok[2], "spot_id": ""}] + ok[3:]
    elif kind == "no_spot_column":
        rows, header = ok, [FEATURES[0], FEATURES[1], "o2_hPa"]
    elif kind == "bad_level":
        rows = [{**r, "level": "half" if i == 1 else ("zero" if r["o2_hPa"] == 0 else "air")} for i, r in enumerate(ok)]
    elif kind == "no_level_no_target":
        rows, header = ok, ["spot_id", *FEATURES]
    elif kind == "air_without_pressure":
        rows, header = [{**r, "level": "zero" if r["o2_hPa"] == 0 else "air"} for r in ok], ["spot_id", *FEATURES, "level"]
    elif kind == "level_contradicts_target":
        rows = [{**r, "level": "air"} for r in ok]
    elif kind == "air_levels_differ":
        rows = ok[:3] + lin_ref_rows("S1", 0.3, 1.05, air=150.0)[3:]
    elif kind == "zero_reads_like_air":
        rows = [{**ok[2], "o2_hPa": 0.0}, {**ok[3], "o2_hPa": 0.0}] + ok[2:]
    elif kind == "scale_implausible":
        rows = ok[:2] + lin_ref_rows("S1", 0.3, 1.05, air=60.0)[2:]
        rows = [{**r, "o2_hPa": 212.0 if r["o2_hPa"] else 0.0} for r in rows]
    elif kind == "name_clash":
        rows = lin_ref_rows("S 1", 0.3, 1.05) + lin_ref_rows("S_1", 0.3, 1.05)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return write_ref(tmp_path / "ref.csv", rows, columns=header), kwargs


BAD = [
    pytest.param("missing_air", "linear", IngestError,
                 r"^ref\.csv rows 2-3, column o2_hPa: spot 'S1' has no air reference row", id="missing-air-level"),
    pytest.param("missing_zero", "linear", IngestError,
                 r"^ref\.csv rows 2-3, column o2_hPa: spot 'S1' has no zero reference row", id="missing-zero-level"),
    pytest.param("phase_out_of_range", "linear", IngestError,
                 r"^ref\.csv row 5, column phase_5000hz_deg: 70 deg is outside the model's calibrated range 25\.\.65 deg",
                 id="phase-outside-calibrated-range"),
    pytest.param("target_out_of_range", "linear", IngestError,
                 r"^ref\.csv row 4, column o2_hPa: reference 400 hPa is outside the model's calibrated range 0\.\.300 hPa",
                 id="o2-outside-calibrated-range"),
    pytest.param("unknown_spot", "linear", IngestError,
                 r"^ref\.csv, column spot_id: no reference rows for spot 'S9' \(spots in the file: S1\)", id="unknown-spot"),
    pytest.param("text_cell", "linear", IngestError,
                 r"^ref\.csv row 3, column phase_5000hz_deg: 'n/a' is not a number", id="non-numeric-cell"),
    pytest.param("empty_spot", "linear", IngestError,
                 r"^ref\.csv row 4, column spot_id: empty cell; expected a spot id", id="empty-spot-cell"),
    pytest.param("no_spot_column", "linear", IngestError,
                 r"^ref\.csv row 1: missing column 'spot_id'", id="missing-spot-column"),
    pytest.param("bad_level", "linear", IngestError,
                 r"^ref\.csv row 3, column level: 'half' is not a reference level; expected zero or air", id="unknown-level"),
    pytest.param("no_level_no_target", "linear", IngestError,
                 r"^ref\.csv row 1: missing column 'o2_hPa' .* or 'level'", id="no-level-and-no-target"),
    pytest.param("air_without_pressure", "linear", IngestError,
                 r"^ref\.csv row 1: missing column 'air_pressure_hPa'", id="air-level-without-pressure"),
    pytest.param("level_contradicts_target", "linear", IngestError,
                 r"^ref\.csv row 2, column o2_hPa: 0 hPa contradicts level 'air'", id="level-contradicts-target"),
    pytest.param("air_levels_differ", "linear", IngestError,
                 r"^ref\.csv rows 4-5, column o2_hPa: the air references of spot 'S1' differ \(150\.\.212 hPa",
                 id="two-air-levels"),
    pytest.param("zero_reads_like_air", "phase_scale", IngestError,
                 r"^ref\.csv rows 2-3 \(spot 'S1', zero\): the batch model reads 219\.6 hPa and no phase shift within",
                 id="zero-not-reachable"),
    pytest.param("zero_reads_like_air", "linear", IngestError,
                 r"^ref\.csv rows 4-5 \(spot 'S1', air\): .*the air reference must read above the zero one",
                 id="air-not-above-zero"),
    pytest.param("name_clash", "linear", IngestError,
                 r"^ref\.csv, column spot_id: spots 'S 1' and 'S_1' would share the artifact name 'lin\.S_1'",
                 id="spot-ids-clash"),
    pytest.param("scale_implausible", "linear", IngestError,
                 r"^ref\.csv rows 4-5 \(spot 'S1', air\): the adjustment would scale O2 by 3\.\d+, outside the "
                 r"plausible 0\.5\.\.2", id="implausible-scale"),
]


@pytest.mark.parametrize("kind, method, exc, match", BAD)
def test_bad_reference_is_refused_with_file_row_and_column(linear, tmp_path, kind, method, exc, match):
    parent_dir = copy_parent(linear, tmp_path)
    ref, kwargs = _bad(kind, tmp_path)
    with pytest.raises(exc, match=match) as info:
        A.adjust_spots(parent_dir, ref, method=method, **kwargs)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["lin"]  # nothing written


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"method": "spline"}, r"^method in \{'linear', 'phase_scale', 'spot_map'\} must hold, got method='spline'$", id="method"),
        pytest.param({"spot_column": " "}, r"^spot_column is a non-empty column name must hold, got spot_column=' '$", id="spot-column"),
        pytest.param({"method": "spot_map"}, r"^method='spot_map' needs a model trained on spot-normalised phases "
                     r".*; model lin 1\.0\.0 has none, use method='linear'", id="spot-map-needs-normalised-parent"),
    ],
)
def test_bad_options_are_config_errors(linear, tmp_path, kwargs, match):
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("S1", 0.3, 1.05))
    with pytest.raises(ConfigError, match=match):
        A.adjust_spots(linear.path, ref, **kwargs)


def test_a_child_cannot_be_adjusted_again(linear, tmp_path):
    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "ref.csv", lin_ref_rows("S1", 0.3, 1.05))
    (child,) = A.adjust_spots(parent_dir, ref).artifacts
    with pytest.raises(ConfigError, match=r"^model lin.S1 1.0.0 is already the spot adjustment of lin 1.0.0"):
        A.adjust_spots(child.path, ref)


def test_each_child_has_a_printable_certificate_of_its_check(linear, tmp_path):
    """certificate.html of a spot child: the spot, the parent, both reference points with pass/fail."""
    parent_dir = copy_parent(linear, tmp_path)
    ref = write_ref(tmp_path / "spot_checks.csv", lin_ref_rows("S1", offset=0.3, k=1.05))
    (art,) = A.adjust_spots(parent_dir, ref).artifacts
    html = (art.path / "certificate.html").read_text()
    assert "spot <b>S1</b>" in html and "<code>lin</code>" in html and ">zero<" in html and ">air<" in html
    assert html.count("<td class='pass'>pass</td>") == 2 and "Calibration certificate" in html
    assert S.verify_artifact(art.path)["ok"]  # listed in SHA256SUMS


def test_a_long_column_name_is_clipped_in_the_reference_message(linear, tmp_path):
    """The reference reader lists the columns present like the readings readers: each name clipped."""
    parent_dir = copy_parent(linear, tmp_path)
    long = "x" * 200_000
    rows = [{FEATURES[0]: r[FEATURES[0]], FEATURES[1]: r[FEATURES[1]], long: r["o2_hPa"]}
            for r in lin_ref_rows("S1", 0.3, 1.05)]
    ref = write_ref(tmp_path / "ref.csv", rows)
    with pytest.raises(IngestError) as info:
        A.adjust_spots(parent_dir, ref)
    msg = str(info.value)
    assert msg.startswith("ref.csv row 1: missing column 'spot_id'") and len(msg) < 400
    assert f"{'x' * 60}...(200,000 characters))" in msg
