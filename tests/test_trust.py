"""calib.trust and calib.artifact.trust_graph: conformal intervals, applicability domain, budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calib.trust import (
    ConformalSpec,
    DomainSpec,
    TrustSpec,
    coverage_table,
    evaluate,
    fit_conformal,
    fit_domain,
    min_bin_rows,
    min_slope_rows,
    reasons,
    two_point_residuals,
    uncertainty_budget,
)

UNITS = ["deg", "degC"]
NAMES = ["phase_5000hz_deg", "temperature_degC"]


def _data(n, seed):
    """Heteroscedastic errors: sd grows with the prediction and with temperature."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(20, 60, n)
    temp = rng.uniform(0, 40, n)
    y = 600 - 10 * phase - temp
    pred = y + rng.normal(0, 0.5 + 0.01 * y + 0.05 * temp, n)
    return np.column_stack([phase, temp]), y, pred


def test_conformal_interval_covers_fresh_data_at_its_level_overall_and_per_tercile():
    x, y, p = _data(3000, 0)
    spec = fit_conformal(y, p, x, UNITS, NAMES, level=0.95)
    assert spec.bin_name == "temperature_degC" and len(spec.q) == 3 and spec.b > 0
    assert spec.oof_coverage >= 0.95
    x2, y2, p2 = _data(20000, 1)
    hw = spec.half_width(x2, p2.astype(np.float32))
    tab = coverage_table(y2, p2 - hw, p2 + hw, p2, x2[:, 1])
    assert 0.94 <= tab["coverage"] <= 0.965
    assert all(0.93 <= c <= 0.97 for c in tab["coverage_bins"]), tab
    # width follows the local error: wider at high O2 than at low O2
    assert hw[p2 > 400].mean() > 1.5 * hw[p2 < 100].mean()


def test_a_bin_needs_the_rows_that_give_its_level_a_finite_quantile():
    assert [min_bin_rows(v) for v in (0.9, 0.95, 0.99)] == [20, 20, 100]
    for level in (0.95, 0.99):  # at min_bin_rows the conformal rank fits in the bin, one row fewer at the floor
        n = min_bin_rows(level)
        assert int(np.ceil((n + 1) * level)) <= n
    x, y, p = _data(200, 3)
    for n, bins in ((59, 2), (60, 3), (39, 1), (40, 2)):  # 20 rows a bin at 95 %
        assert len(fit_conformal(y[:n], p[:n], x[:n], UNITS, NAMES, level=0.95).q) == bins
    assert len(fit_conformal(y, p, x, UNITS, NAMES, level=0.99).q) == 2  # 200 rows, 100 a bin at 99 %


def test_small_calibration_sets_keep_their_coverage_per_tercile():
    """50 calibration rows (a certificate's outer-training part) now get 2 bins; over many draws the
    interval still covers at its level, overall and in the cold and warm thirds."""
    inside, cold, warm = [], [], []
    for seed in range(200):
        x, y, p = _data(50, 100 + seed)
        spec = fit_conformal(y, p, x, UNITS, NAMES, level=0.95)
        assert len(spec.q) == 2
        x2, y2, p2 = _data(30, 10_000 + seed)
        hw = spec.half_width(x2, p2.astype(np.float32))
        ok = np.abs(y2 - p2) <= hw
        inside.append(ok.mean())
        cold.append(ok[x2[:, 1] < 40 / 3].mean())
        warm.append(ok[x2[:, 1] > 80 / 3].mean())
    assert 0.93 <= np.mean(inside) <= 0.975
    # one bin (the old 40-row floor) gave 98.5 % cold and 91.8 % warm on these draws
    assert 0.93 <= np.mean(cold) <= 0.975 and 0.93 <= np.mean(warm) <= 0.975


def test_a_higher_level_gives_a_wider_interval():
    x, y, p = _data(2000, 2)
    w90 = fit_conformal(y, p, x, UNITS, NAMES, level=0.9).half_width(x, p)
    w99 = fit_conformal(y, p, x, UNITS, NAMES, level=0.99).half_width(x, p)
    assert (w99 > w90).all()


def test_domain_flags_a_reading_far_from_the_calibration_points_although_each_input_is_in_range():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 40, 400)
    phase = 60 - 0.5 * t + rng.normal(0, 0.3, 400)  # a curve: phase follows temperature
    x = np.column_stack([phase, t])
    y = 100 + 0 * t
    folds = [(np.flatnonzero(np.arange(400) % 5 != k), np.flatnonzero(np.arange(400) % 5 == k)) for k in range(5)]
    dom = fit_domain(x, y, y, folds, UNITS)
    conf = fit_conformal(y, y + 0.1, x, UNITS, NAMES)
    spec = TrustSpec(conf, dom)
    probe = np.array([[58.0, 4.0],   # on the curve
                      [42.0, 4.0],   # each input in range, jointly far
                      [58.0, 45.0],  # temperature above range
                      [95.0, 4.0]])  # impossible phase
    out = evaluate(spec, probe, np.full(4, 100.0))
    assert list(out["domain_code"]) == [0, 2, 1 | 2, 1 | 2 | 8]
    assert out["domain_distance"][0] <= 1 < out["domain_distance"][1]
    why = reasons(out["domain_code"], probe.astype(np.float32), np.array(dom.lower), np.array(dom.upper), NAMES)
    assert list(why) == ["", "joint", "temperature_degC above range + joint",
                         "phase_5000hz_deg above range + joint + physical"]
    # a prediction outside the calibrated target range (widened by the margin) is flagged "output"
    assert evaluate(spec, probe[:1], np.array([100 + dom.margin + 5.0]))["domain_code"][0] == 4


def test_spec_round_trips_through_json():
    import json

    x, y, p = _data(500, 3)
    folds = [(np.arange(250, 500), np.arange(250)), (np.arange(250), np.arange(250, 500))]
    spec = TrustSpec(fit_conformal(y, p, x, UNITS, NAMES), fit_domain(x, y, p, folds, UNITS))
    back = TrustSpec.from_metadata(json.loads(json.dumps(spec.to_dict())))
    a, b = evaluate(spec, x, p), evaluate(back, x, p)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_two_point_check_removes_a_per_group_gain_and_offset():
    rng = np.random.default_rng(4)
    levels = np.array([0.0, 50, 100, 212, 300])
    temps = np.array([5.0, 20.0, 35.0])
    g, y, t = np.meshgrid(np.arange(4), levels, temps, indexing="ij")
    g, y, t = g.ravel(), y.ravel(), t.ravel()
    gain, off = rng.uniform(0.9, 1.1, 4), rng.uniform(-5, 5, 4)
    pred = gain[g] * y + off[g]
    adj, keep = two_point_residuals(y, pred, g.astype(str), t, reference_temperature=20.0)
    np.testing.assert_allclose(adj, y, atol=1e-9)
    # the check points (0 and 300 at 20 degC, per group) are not scored
    assert keep.sum() == len(y) - 2 * 4 and not keep[(t == 20.0) & ((y == 0) | (y == 300))].any()


def test_uncertainty_budget_combines_in_quadrature_and_measures_its_coverage():
    r = np.random.default_rng(5).normal(0, 1.0, 20000)
    b = uncertainty_budget(r, reference=0.5, input_noise=0.2, drift=0.0)
    assert b["combined"] == pytest.approx(np.sqrt(np.mean(r**2) + 0.25 + 0.04))
    assert b["expanded"] == pytest.approx(2 * b["combined"])
    assert 0.97 < b["oof_coverage"] < 1.0


# --------------------------------------------------------------------------- the ONNX head
def _toy_graph(n_out: int):
    """readings [N, 2] -> target: 600 - 10 phase - T (and T as a second output)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[-10.0, 0.0], [-1.0, 1.0]], dtype=np.float32)[:, :n_out]
    b = np.array([600.0, 0.0], dtype=np.float32)[:n_out]
    nodes = [helper.make_node("MatMul", ["readings", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["yy"])]
    if n_out == 1:
        nodes.append(helper.make_node("Squeeze", ["yy", "ax"], ["o2_hPa"]))
    else:
        nodes.append(helper.make_node("Identity", ["yy"], ["o2_hPa"]))
    g = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("readings", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("o2_hPa", TensorProto.FLOAT, ["N"] if n_out == 1 else ["N", n_out])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "ax")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("n_out, bin_on_prediction", [(1, False), (2, False), (1, True)])
def test_onnx_head_equals_numpy(n_out, bin_on_prediction):
    import onnxruntime as ort

    from calib.artifact.trust_graph import attach_trust, strip_trust, trust_outputs

    x, y, p = _data(1500, 6)
    units = ["deg", "degC"] if not bin_on_prediction else ["deg", "deg"]
    folds = [(np.arange(750, 1500), np.arange(750)), (np.arange(750), np.arange(750, 1500))]
    spec = TrustSpec(fit_conformal(y, p, x, units, NAMES), fit_domain(x, y, p, folds, units))
    assert (spec.conformal.bin_on < 0) == bin_on_prediction
    proto = attach_trust(_toy_graph(n_out), spec, input_name="readings", target="o2_hPa", n_out=n_out)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    probe = np.column_stack([rng.uniform(-5, 100, 3000), rng.uniform(-10, 60, 3000)]).astype(np.float32)
    res = dict(zip(["y", *trust_outputs("o2_hPa")], sess.run(None, {"readings": probe})))
    y_graph = res["y"] if n_out == 1 else res["y"][:, 0]
    want = evaluate(spec, probe, y_graph)
    np.testing.assert_allclose(res["o2_hPa_lo"], want["lo"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res["o2_hPa_hi"], want["hi"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res["domain_distance"], want["domain_distance"], rtol=1e-4, atol=1e-4)
    close = np.abs(want["domain_distance"] - 1) < 1e-3  # float rounding at the threshold itself
    np.testing.assert_array_equal(res["domain_code"][~close], want["domain_code"][~close])
    c = res["domain_code"]
    assert c.dtype == np.int32 and (c == 0).any() and all((c & bit).any() for bit in (1, 2, 4, 8))
    # stripping gives back the bare graph's outputs
    strip_trust(proto, "o2_hPa")
    assert [o.name for o in proto.graph.output] == ["o2_hPa"]


def test_conformal_spec_dict_is_plain_json():
    spec = ConformalSpec(0.95, 1, "t", (1.0, 2.0), (1.5, 1.6, 1.7), 0.1, 0.01, 0.05, 100, 0.96)
    assert ConformalSpec.from_dict(spec.to_dict()) == spec
    d = DomainSpec((0.0,), (1.0,), ((0.0,),), 1.0, (0.0,), (1.0,), (-np.inf,), (np.inf,), 0.0, 1.0, 0.1)
    assert DomainSpec.from_dict(d.to_dict()) == d


# --------------------------------------------------------------------------- end to end: a real certificate
CERT_CONFIG = """
[data]
features = ["phase_deg", "temperature_degC"]
target = "o2_umol_per_L"

[split]
test_fraction = 0.2

[sweep]
strategy = "grid"
trials = 1
folds = 5

[sweep.space]
family = { choices = ["physics"] }
"""


def test_certificate_model_flags_jointly_impossible_readings_with_the_reason(tmp_path):
    """The issue's two readings on the Aanderaa 4330 certificate model: in range one input at a
    time, yet -4.5 and 951 umol/L (training 0..571); flagged ``output`` by every door, ONNX too."""
    import json

    import onnxruntime as ort
    import pandas as pd
    from click.testing import CliRunner
    from conftest import raw_data_dir

    from calib.cli import cli
    from calib.runtime import load_model

    cert = raw_data_dir() / "aanderaa-optode-calcerts" / "aadi4330_1463_b1206E.csv"
    (tmp_path / "calib.toml").write_text(CERT_CONFIG)
    res = CliRunner().invoke(cli, ["-q", "calibrate", str(cert), "--config", str(tmp_path / "calib.toml"),
                                   "--models-dir", str(tmp_path / "models"), "--name", "aadi", "--json"],
                             env={"CALIB_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 0, res.output
    path = Path(json.loads(res.output)["artifact"])
    df = pd.DataFrame({"temperature_degC": [39.0, 3.2, 20.0], "phase_deg": [63.5, 23.0, 45.0]})
    m = load_model(path)
    out = m.predict_frame(df)
    assert out["o2_umol_per_L_pred"].iloc[0] < 0 and out["o2_umol_per_L_pred"].iloc[1] > 700
    assert out["out_of_range"].tolist() == [True, True, False]
    assert out["out_of_range_reason"].tolist()[:2] == ["output", "output"] and out["out_of_range_reason"][2] == ""
    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    g = dict(zip([o.name for o in s.get_outputs()],
                 s.run(None, {f: df[f].to_numpy(np.float32) for f in m.features})))
    assert g["domain_code"].tolist() == [4, 4, 0]
    np.testing.assert_allclose(g["o2_umol_per_L_lo"], out["o2_umol_per_L_lo"], rtol=1e-5)
    np.testing.assert_allclose(g["o2_umol_per_L_hi"], out["o2_umol_per_L_hi"], rtol=1e-5)


def test_conformal_quantiles_equal_crepes_mondrian_normalised_regressor():
    """The per-bin quantiles calib puts into the graph are crepes' (a maintained conformal library):
    the same residuals, difficulty and Mondrian bins give the same interval."""
    from crepes import ConformalRegressor

    x, y, p = _data(1200, 8)
    spec = fit_conformal(y, p, x, UNITS, NAMES, level=0.95)
    sig = spec.sigma(p.astype(np.float32)).astype(np.float64)
    bins = spec.bins(x.astype(np.float32), p.astype(np.float32))
    cr = ConformalRegressor().fit(residuals=y - p, sigmas=sig, bins=bins)
    x2, _, p2 = _data(500, 9)
    s2 = spec.sigma(p2.astype(np.float32)).astype(np.float64)
    b2 = spec.bins(x2.astype(np.float32), p2.astype(np.float32))
    want = cr.predict_int(y_hat=p2, sigmas=s2, bins=b2, confidence=0.95)
    hw = spec.half_width(x2, p2.astype(np.float32)).astype(np.float64)
    np.testing.assert_allclose(p2 + hw, want[:, 1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(p2 - hw, want[:, 0], rtol=1e-5, atol=1e-4)


def test_few_calibration_rows_get_a_constant_difficulty_that_keeps_the_level():
    """19 rows (a 24-point certificate's inner part): a slope fitted to the same residuals it
    normalises under-covers (93.8 % on these draws); the constant difficulty keeps 95 %."""
    assert [min_slope_rows(v) for v in (0.9, 0.95, 0.99)] == [40, 40, 200]
    inside = []
    for seed in range(2000):
        x, y, p = _data(19, 100 + seed)
        spec = fit_conformal(y, p, x, UNITS, NAMES, level=0.95)
        assert spec.b == 0.0 and len(spec.q) == 1
        x2, y2, p2 = _data(200, 50_000 + seed)
        inside.append(np.mean(np.abs(y2 - p2) <= spec.half_width(x2, p2.astype(np.float32))))
    assert 0.945 <= np.mean(inside) <= 0.965
    x, y, p = _data(40, 7)
    assert fit_conformal(y, p, x, UNITS, NAMES, level=0.95).b != 0.0  # 40 rows: the line
