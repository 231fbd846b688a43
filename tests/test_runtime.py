"""Tests of calib.runtime: the one inference path, through every door.

The same readings of adjusted and unadjusted spots go through the CLI (``calib predict``),
``load_model(...).predict``, ``predict_frame`` and the child's bare ``model.onnx`` in plain
ONNX Runtime; every door must give the same numbers (to 1e-5) and the same flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LINEAR_FEATURES, copy_artifact, onnx_feed, lin_phase, lin_ref_rows, linear_keras, linear_metadata, tiny_with_s01_child

from calib.cli import cli
from calib.errors import ConfigError, IngestError
from calib.runtime import find_children, load_model

SPOTS = {"A": (0.3, 1.05), "B": (-0.2, 0.97)}  # spot -> (phase offset deg, Ksv scale)
P = np.array([0.0, 50.0, 100.0, 250.0])
T = np.array([10.0, 20.0, 25.0, 35.0])


def _readings(spot_column: str = "spot_id") -> pd.DataFrame:
    """Readings of spots A and B (adjusted) and C (no check), with known true O2 ``P``."""
    rows = []
    for spot, (off, k) in {**SPOTS, "C": (0.0, 1.0)}.items():
        for p, t in zip(P, T):
            rows.append({spot_column: spot, "note": f"{spot}-{p:g}", LINEAR_FEATURES[0]: float(lin_phase(p, t, off, k)),
                         LINEAR_FEATURES[1]: t, "o2_true": p})
    return pd.DataFrame(rows)


def _adjust(parent_dir, tmp_path, spot_column: str = "spot_id", extra_args=()):
    ref = tmp_path / "ref.csv"
    rows = [r for s, (off, k) in SPOTS.items() for r in lin_ref_rows(s, off, k, spot_column=spot_column)]
    pd.DataFrame(rows).to_csv(ref, index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent_dir), "--reference", str(ref), "--json", *extra_args])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _cli_predict(model_dir, df: pd.DataFrame, tmp_path) -> pd.DataFrame:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    res = CliRunner().invoke(cli, ["predict", str(model_dir), str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return pd.read_csv(out)


def _onnx(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    return s.run(["o2_hPa"], onnx_feed(s, x))[0]


# --------------------------------------------------------------------------- every door
def test_every_door_gives_the_same_numbers_and_flags(linear_artifact, tmp_path):
    parent_dir = copy_artifact(linear_artifact, tmp_path)
    adj = _adjust(parent_dir, tmp_path)
    children = {s["spot_id"]: s["artifact"] for s in adj["spots"]}
    df = _readings()
    x = df[list(LINEAR_FEATURES)]

    cli_out = _cli_predict(parent_dir, df, tmp_path)
    model = load_model(parent_dir)
    frame = model.predict_frame(df)
    api = model.predict(df)
    api_spots = model.predict(x.to_numpy(), spots=df["spot_id"].to_numpy())
    onnx = np.empty(len(df))
    for spot in df["spot_id"].unique():
        m = (df["spot_id"] == spot).to_numpy()
        onnx[m] = _onnx(parent_dir if spot == "C" else Path(children[spot]), x[m].to_numpy())

    for got in (cli_out["o2_hPa_pred"], frame["o2_hPa_pred"], api, api_spots):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), onnx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cli_out["o2_hPa_std"], frame["o2_hPa_std"], rtol=1e-6)
    for col in ("out_of_range", "adjusted"):
        np.testing.assert_array_equal(cli_out[col].to_numpy(), frame[col].to_numpy())
    assert frame["adjusted"].tolist() == [s in SPOTS for s in df["spot_id"]]
    # the adjusted spots are right (known answers); the unchecked spot C keeps the batch model
    np.testing.assert_allclose(frame["o2_hPa_pred"], df["o2_true"], atol=5e-3)
    # without spot ids the batch model answers, and says so
    plain = model.predict_frame(x)
    assert not plain["adjusted"].any()
    np.testing.assert_allclose(plain["o2_hPa_pred"], _onnx(parent_dir, x.to_numpy()), rtol=1e-5, atol=1e-5)


def test_children_of_a_model_without_group_are_applied_by_their_recorded_column(tmp_path):
    """`calib adjust --spot-column serial_number` on a model without [data] group: used, never silent."""
    from calib.artifact.export import export_artifact

    art = export_artifact(tmp_path / "models", "nogroup", model=linear_keras(-0.2),
                          metadata=linear_metadata(100, group=None))
    adj = _adjust(art.path, tmp_path, spot_column="serial_number", extra_args=("--spot-column", "serial_number"))
    assert {s["spot_id"] for s in adj["spots"]} == set(SPOTS)
    assert set(find_children(art.path)) == set(SPOTS)
    model = load_model(art.path)
    assert model.spot_columns == ("serial_number",)
    df = _readings("serial_number")
    cli_out = _cli_predict(art.path, df, tmp_path)
    frame = model.predict_frame(df)
    assert cli_out["adjusted"].tolist() == frame["adjusted"].tolist() == [s in SPOTS for s in df["serial_number"]]
    np.testing.assert_allclose(cli_out["o2_hPa_pred"], df["o2_true"], atol=5e-3)
    np.testing.assert_allclose(frame["o2_hPa_pred"], cli_out["o2_hPa_pred"], rtol=1e-5, atol=1e-5)


def test_a_child_written_after_loading_is_used_by_the_loaded_model(linear_artifact, tmp_path):
    parent_dir = copy_artifact(linear_artifact, tmp_path)
    model = load_model(parent_dir)  # e.g. a long-running service
    df = _readings()
    assert model.children == {} and not model.routes_spots
    assert "adjusted" not in model.predict_frame(df).columns
    _adjust(parent_dir, tmp_path)
    assert set(model.children) == set(SPOTS)
    np.testing.assert_allclose(model.predict(df), df["o2_true"], atol=5e-3)


# --------------------------------------------------------------------------- unit conversion
@pytest.mark.parametrize("column", [pytest.param("temperature_K", id="kelvin"),
                                    pytest.param("temperature_k", id="kelvin-lower-case")])
def test_temperature_in_kelvin_is_converted_through_every_door(linear_artifact, tmp_path, column):
    """The one test of unit conversion at inference (a DataFrame and a file, matched by name; the
    conversions themselves: tests/test_units.py). The linear model's known answer is the true O2."""
    from calib.predict import predict_file

    model = load_model(linear_artifact.path)
    phase = lin_phase(P, T)
    by_name = pd.DataFrame({LINEAR_FEATURES[0]: phase, LINEAR_FEATURES[1]: T})
    expected = model.predict(by_name.to_numpy())
    np.testing.assert_allclose(expected, P, atol=1e-3)
    np.testing.assert_allclose(model.predict(by_name), expected, rtol=0, atol=0)
    kelvin = pd.DataFrame({"note": "x", column: T + 273.15, LINEAR_FEATURES[0]: phase})  # other order, extra column
    np.testing.assert_allclose(model.predict(kelvin), expected, rtol=1e-5, atol=1e-4)
    src = tmp_path / "in.csv"
    kelvin.to_csv(src, index=False)
    summary = predict_file(model, src, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert summary["out_of_range"] == 0  # read as degC, 283 K would be refused as impossible
    np.testing.assert_allclose(out["o2_hPa_pred"], expected, rtol=1e-5, atol=1e-4)
    assert list(out.columns[:3]) == list(kelvin.columns)  # the source column is kept as it was


# --------------------------------------------------------------------------- flags and refusals
def test_spot_normalised_model_refuses_or_flags_unchecked_readings(linear_artifact, tmp_path):
    """A parent that must not be used unadjusted: predict refuses, predict_frame and the CLI flag."""
    meta = linear_metadata(100)
    meta["spot_normalisation"] = {"format": "calib.spotnorm"}  # only its presence matters here
    from calib.artifact.export import export_artifact

    art = export_artifact(tmp_path / "models", "norm", model=linear_keras(-0.2), metadata=meta)
    model = load_model(art.path)
    assert model.requires_adjustment and model.routes_spots
    df = _readings()
    with pytest.raises(ConfigError, match=r"spot-normalised phases .* 12 of 12 reading\(s\) cannot be adjusted"):
        model.predict(df)
    frame = model.predict_frame(df)
    assert frame["out_of_range"].all() and not frame["adjusted"].any()
    cli_out = _cli_predict(art.path, df, tmp_path)
    assert cli_out["out_of_range"].all() and not cli_out["adjusted"].any()


@pytest.mark.parametrize(
    "column, values, match",
    [
        pytest.param("temperature_degC", pd.date_range("2026-01-01", periods=4), "expected real numbers", id="datetime"),
        pytest.param("temperature_degC", [True, False, True, True], "expected real numbers", id="bool"),
        pytest.param("temperature_degC", [1 + 1j] * 4, "expected real numbers", id="complex"),
        pytest.param("phase_5000hz_deg", [1e30, 30.0, 30.0, 30.0], "not a finite number|impossible", id="huge-phase"),
        pytest.param("phase_5000hz_deg", [120.0, 30.0, 30.0, 30.0], "impossible; expected a phase within 0..90", id="phase>90"),
        pytest.param("temperature_degC", [20.0, 20.0, -50.0, 20.0], "index 2, column temperature_degC: -50 degC is impossible",
                     id="cold"),
    ],
)
def test_python_api_refuses_what_the_cli_refuses(linear_artifact, column, values, match):
    df = pd.DataFrame({"phase_5000hz_deg": [30.0] * 4, "temperature_degC": [20.0] * 4})
    df[column] = values
    model = load_model(linear_artifact.path)
    for door in (model.predict, model.predict_frame, model.out_of_range):
        with pytest.raises(IngestError, match=match):
            door(df)


def test_a_model_loaded_without_spots_ignores_spot_ids(linear_artifact):
    model = load_model(linear_artifact.path, spots=False)
    assert model.children == {}
    x = np.array([[30.0, 20.0], [40.0, 20.0]])
    assert model.predict(x, spots=["A", "B"]).shape == (2,)  # no routing: spots are ignored


def test_children_written_elsewhere_are_not_applied_and_the_adjustment_says_so(linear_artifact, tmp_path):
    parent_dir = copy_artifact(linear_artifact, tmp_path)
    adj = _adjust(parent_dir, tmp_path, extra_args=("--models-dir", str(tmp_path / "elsewhere")))
    assert "does not apply them" in adj["note"]
    assert load_model(parent_dir).children == {}
    child = load_model(adj["spots"][0]["artifact"])
    assert child.is_child and not child.routes_spots and "adjusted" not in child.output_columns()


# --------------------------------------------------------------------------- intervals and domain
def _onnx_all(path, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, onnx_feed(s, x))))


def test_interval_and_domain_are_the_same_through_every_door(tiny_run, tmp_path):
    """The calibrated artifact's _lo/_hi/out_of_range/reason: CLI, predict, predict_frame, bare ONNX
    (parent and a spot child), equal to 1e-5; the child's interval is its own (two-point adjusted)."""
    parent_dir, child_dir = tiny_with_s01_child(tiny_run, tmp_path)  # spot S01's two-point check
    parent = load_model(parent_dir)
    assert parent.has_interval and parent.metadata["conformal"]["level"] == 0.95
    feats = list(parent.features)
    data = pd.read_csv(tiny_run["csv"])
    df = pd.concat([data[data.spot_id.isin(["S01", "S02"])].iloc[::7], data.iloc[:2]], ignore_index=True)
    df.loc[len(df) - 2, "temperature_degC"] = 45.0  # above the calibrated range
    j = feats.index("phase_1000hz_deg")
    df.loc[len(df) - 1, feats[j]] = df[feats[j]].min() * 0.5  # one phase far off: jointly and per input
    df = df.drop(columns=["o2_hPa"])

    cli_out = _cli_predict(parent_dir, df, tmp_path)
    frame = load_model(parent_dir).predict_frame(df)
    pred, lo, hi = load_model(parent_dir).predict(df, return_interval=True)
    for col, api in (("o2_hPa_pred", pred), ("o2_hPa_lo", lo), ("o2_hPa_hi", hi)):
        np.testing.assert_allclose(cli_out[col], frame[col], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(api, frame[col], rtol=1e-5, atol=1e-4)
    assert cli_out["out_of_range"].tolist() == frame["out_of_range"].tolist()
    assert cli_out["out_of_range_reason"].fillna("").tolist() == frame["out_of_range_reason"].tolist()
    assert (frame["o2_hPa_lo"] < frame["o2_hPa_pred"]).all() and (frame["o2_hPa_pred"] < frame["o2_hPa_hi"]).all()
    assert frame["out_of_range_reason"].iloc[-2].startswith("temperature_degC above range")
    assert "phase_1000hz_deg below range" in frame["out_of_range_reason"].iloc[-1]
    assert "joint" in frame["out_of_range_reason"].iloc[-1]
    # bare ONNX: the parent for unadjusted rows, the child for S01's rows
    x = df[feats].to_numpy(np.float32)
    adjusted = frame["adjusted"].to_numpy()
    assert adjusted.any() and not adjusted.all()
    for rows, folder in ((~adjusted, parent_dir), (adjusted, child_dir)):
        g = _onnx_all(folder, x[rows])
        np.testing.assert_allclose(g["o2_hPa"], frame["o2_hPa_pred"][rows], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(g["o2_hPa_lo"], frame["o2_hPa_lo"][rows], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(g["o2_hPa_hi"], frame["o2_hPa_hi"][rows], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(g["domain_distance"], frame["domain_distance"][rows], rtol=1e-5, atol=1e-5)
        assert ((g["domain_code"] != 0) == frame["out_of_range"][rows].to_numpy()).all()
    # the child's interval is the two-point adjusted one: narrower than the batch model's
    child_meta = load_model(child_dir).metadata
    assert child_meta["conformal"] == parent.metadata["conformal_adjusted"]
    assert "two-point" in child_meta["conformal"]["source"]


def test_chunks_computed_at_once_give_the_same_numbers_as_one_thread(tiny_run):
    """More rows than one ONNX Runtime call takes are computed in chunks by several threads at
    once (:attr:`CalibrationModel.workers`): values, spread, interval and flags are bitwise the
    ones of one thread, and equal to the bare graph run on all rows in one call."""
    import onnxruntime as ort

    from calib.runtime import CHUNK_ROWS

    path = tiny_run["path"]
    meta = json.loads((path / "calibration.json").read_text())
    lo, hi = np.array(meta["domain"]["lower"]), np.array(meta["domain"]["upper"])
    rng = np.random.default_rng(0)
    n = 2 * CHUNK_ROWS + 123
    x = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), size=(n, len(lo)))  # some out of range
    one = load_model(path, threads=1)
    assert one.workers == 1 and load_model(path, threads=3).workers == 3 and load_model(path).workers >= 1
    ref = one.predict(x, return_std=True, return_interval=True)
    frame = pd.DataFrame(x, columns=one.features)
    ref_frame = one.predict_frame(frame)
    assert ref_frame[one.features[0]].size == n and ref_frame.filter(like="out_of_range").to_numpy().any()
    for threads in (2, 3, None):
        m = load_model(path, threads=threads)
        for a, b in zip(ref, m.predict(x, return_std=True, return_interval=True)):
            np.testing.assert_array_equal(a, b)
        pd.testing.assert_frame_equal(m.predict_frame(frame), ref_frame)
    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    bare = s.run([one.output_name], onnx_feed(s, x.astype(np.float32)))[0].reshape(-1)
    np.testing.assert_allclose(ref[0], bare, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    pytest.param(np.nan, r"row 70000 \(0-based\), column temperature_degC: nan is not a finite number", id="nan"),
    pytest.param(1e300, r"row 70000 \(0-based\), column temperature_degC: inf is not a finite number \(or beyond float32\)",
                 id="beyond-float32"),
    pytest.param(-60.0, r"row 70000 \(0-based\), column temperature_degC: -60 degC is impossible", id="impossible"),
])
def test_a_large_array_names_the_first_bad_row_past_the_first_block(linear_artifact, bad, match):
    """Arrays are converted in blocks and checked by column extremes; the message still names the row."""
    model = load_model(linear_artifact.path)
    x = np.tile([30.0, 20.0], (150_000, 1))  # row-major float64: the blocked conversion
    x[70_000, 1] = bad
    x[120_000, 1] = bad
    with pytest.raises(IngestError, match=match):
        model.predict(x)
    x[[70_000, 120_000], 1] = 20.0
    np.testing.assert_array_equal(model.predict(x), model.predict(np.asfortranarray(x)))
