"""Tests of the model family (calib.nn.family) and the physics fits in ONNX (calib.artifact.physics_graph)."""

from __future__ import annotations

import numpy as np
import pytest

from calib.artifact.physics_graph import attach_physics
from calib.nn import ModelConfig, export_onnx, fit_member, predict_member
from calib.physics import fit_physics

NAMES = ["phase_5000hz_deg", "temperature_degC"]
UNITS = ["deg", "degC"]


def _two_site_data(n=400, seed=0, noise=0.002):
    """pO2 (hPa) from a two-site foil at 5 kHz with DOMAIN.md's temperature laws."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(3, 39, n)
    po2 = rng.uniform(0, 300, n)
    s = (t - 3) / 36
    tau0 = 64 - 7 * s
    f = 0.61 + 0.08 * s
    k1, k2 = 0.031 + 0.016 * s, 0.003
    omega = 2 * np.pi * 5000
    tan0 = omega * tau0 * 1e-6
    ratio = f / (1 + k1 * po2) + (1 - f) / (1 + k2 * po2)
    phase = np.degrees(np.arctan(tan0 * ratio)) + rng.normal(0, noise, n)
    # a smooth non-physical distortion the two-site form cannot follow: the network's job
    po2_meas = po2 + 0.8 * np.sin(po2 / 40.0)
    return np.column_stack([phase, t]), po2_meas


def _onnx_predict(proto, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.fixture(scope="module")
def data():
    x, y = _two_site_data()
    return x[:300], y[:300], x[300:], y[300:]


def test_physics_family_equals_the_classical_fit(data):
    xtr, ytr, xte, yte = data
    m = fit_member(ModelConfig(family="physics"), xtr, ytr, feature_names=NAMES, feature_units=UNITS,
                   target_unit="hPa")
    b = fit_physics(xtr, ytr, NAMES, UNITS, "hPa")
    np.testing.assert_array_equal(predict_member(m, xte)[:, 0], b.predict(xte))  # exactly: the network adds 0.0
    assert m.result is None and m.best_epoch == 0


def test_hybrid_learns_the_residual_and_beats_physics(data):
    xtr, ytr, xte, yte = data
    kw = dict(feature_names=NAMES, feature_units=UNITS, target_unit="hPa")
    phys = fit_member(ModelConfig(family="physics"), xtr, ytr, **kw)
    hyb = fit_member(ModelConfig(family="hybrid", hidden_layers=(16, 16), epochs=300, patience=None,
                                 batch_size=None, learning_rate=1e-2), xtr, ytr, **kw)
    mae_phys = np.mean(np.abs(predict_member(phys, xte)[:, 0] - yte))
    mae_hyb = np.mean(np.abs(predict_member(hyb, xte)[:, 0] - yte))
    assert mae_hyb < 0.7 * mae_phys, (mae_hyb, mae_phys)


def test_untrained_hybrid_is_exactly_the_physics_fit(data):
    """The residual network starts at 0, so epoch 0 of a hybrid is the physics fit."""
    from calib.nn import build_model
    from calib.scaling import fit_scaler

    xtr, ytr, xte, yte = data
    kw = dict(feature_names=NAMES, feature_units=UNITS, target_unit="hPa")
    phys = fit_member(ModelConfig(family="physics"), xtr, ytr, **kw)
    resid = ytr - phys.physics.predict(xtr)
    net = build_model(ModelConfig(family="hybrid", seed=3), 2, 1, fit_scaler(xtr), fit_scaler(resid[:, None]))
    assert np.all(net.get_layer("output_scaled").get_weights()[0][:, 0] == 0)
    np.testing.assert_allclose(np.asarray(net(xte.astype(np.float32))), 0.0, atol=1e-4)
    # an mlp is not zero-initialised
    mlp = build_model(ModelConfig(family="mlp", seed=3), 2, 1, fit_scaler(xtr), fit_scaler(ytr[:, None]))
    assert np.any(mlp.get_layer("output_scaled").get_weights()[0] != 0)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_hybrid_keeps_the_physics_fit_when_no_epoch_helps(data, optimizer):
    """Dev rows that training cannot improve on: early stopping keeps epoch 0 (the physics fit)."""
    xtr, ytr, xte, yte = data
    kw = dict(feature_names=NAMES, feature_units=UNITS, target_unit="hPa")
    phys = fit_member(ModelConfig(family="physics"), xtr, ytr, **kw)
    # dev targets exactly on the physics fit: any residual the network learns makes the dev loss worse
    y_dev = phys.physics.predict(xte)
    cfg = ModelConfig(family="hybrid", optimizer=optimizer, learning_rate=1e-2, epochs=60, patience=20,
                      batch_size=None)
    hyb = fit_member(cfg, xtr, ytr, xte, y_dev, **kw)
    assert hyb.best_epoch == 0
    np.testing.assert_allclose(predict_member(hyb, xte)[:, 0], y_dev, atol=1e-3)
    # the same hybrid with dev rows that carry the residual trains past epoch 0
    hyb2 = fit_member(cfg, xtr, ytr, xte, yte, **kw)
    assert hyb2.best_epoch > 0


def test_refit_config_uses_the_median_best_epoch_and_falls_back_to_physics():
    from calib.nn import refit_config

    hyb = ModelConfig(family="hybrid")
    cfg, epochs = refit_config(hyb, [0, 0, 40], 100)
    assert (cfg.family, epochs) == ("physics", 0)
    cfg, epochs = refit_config(hyb, [0, 30, 40], 100)
    assert (cfg.family, epochs, cfg.patience) == ("hybrid", 30, None) and cfg.epochs == 30
    cfg, epochs = refit_config(ModelConfig(family="mlp"), [0, 20, 40], 100)
    assert (cfg.family, epochs) == ("mlp", 30)
    cfg, epochs = refit_config(ModelConfig(family="physics"), [0, 0], 100)
    assert (cfg.family, epochs) == ("physics", 0)
    cfg, epochs = refit_config(ModelConfig(family="mlp", patience=None, epochs=77), [77], 100)
    assert epochs == 77


def test_refit_config_scales_a_full_batch_refit_by_the_rows():
    from calib.nn import refit_config
    from calib.nn.config import LBFGS_AUTO_ITERATIONS

    lbfgs = ModelConfig(optimizer="lbfgs")
    # an L-BFGS iteration is one pass whatever the rows: 600 iterations on 1,000 rows -> 900 on 1,500
    assert refit_config(lbfgs, [500, 600, 700], 1500, [1000, 1000, 1000])[1] == 900
    assert refit_config(lbfgs, [500, 600, 700], 1500)[1] == 600  # rows unknown: not scaled
    assert refit_config(lbfgs, [500, 600, 700], 900, [1000, 1000, 1000])[1] == 600  # never shortened
    assert refit_config(lbfgs, [4000], 3000, [1000])[1] == LBFGS_AUTO_ITERATIONS  # capped at the budget
    assert refit_config(lbfgs.replace(epochs=2000), [1500], 3000, [1000])[1] == 2000
    hyb = ModelConfig(family="hybrid", optimizer="lbfgs")
    assert refit_config(hyb, [0, 0, 40], 200, [100] * 3) == (hyb.replace(family="physics"), 0)
    assert refit_config(hyb, [0, 30, 40], 200, [100] * 3)[1] == 60
    # a mini-batch optimizer's epoch already grows with the rows: unscaled
    assert refit_config(ModelConfig(optimizer="adam"), [500, 600, 700], 1500, [1000] * 3)[1] == 600


def test_refit_config_takes_the_validation_curves_iteration_for_lbfgs():
    from calib.nn import refit_config

    lbfgs = ModelConfig(optimizer="lbfgs")
    # the curve's iteration replaces the median best iteration, then scales by the rows
    assert refit_config(lbfgs, [500, 600, 700], 1500, [1000] * 3, curve_epoch=1000)[1] == 1500
    assert refit_config(lbfgs, [500, 600, 700], 1500, curve_epoch=1000)[1] == 1000
    assert refit_config(lbfgs, [500, 600, 700], 1500, [1000] * 3, curve_epoch=None)[1] == 900
    # folds that kept the physics fit still refit as physics; other optimizers keep their median
    hyb = ModelConfig(family="hybrid", optimizer="lbfgs")
    assert refit_config(hyb, [0, 0, 40], 200, [100] * 3, curve_epoch=300) == (hyb.replace(family="physics"), 0)
    assert refit_config(ModelConfig(optimizer="adam"), [500, 600, 700], 1500, [1000] * 3, curve_epoch=90)[1] == 600


@pytest.mark.parametrize("kind", ["svu", "two_site", "poly"])
def test_physics_in_onnx_equals_python(tmp_path, data, kind):
    xtr, ytr, xte, _ = data
    b = fit_physics(xtr, ytr, NAMES, UNITS, "hPa", kind=kind)
    m = fit_member(ModelConfig(family="physics"), xtr, ytr, feature_names=NAMES, feature_units=UNITS,
                   target_unit="hPa")
    m = type(m)(m.model, b, None, m.x_scaler, m.y_scaler)
    path = tmp_path / "net.onnx"
    export_onnx(m.model, path, 2)
    import onnx

    proto = attach_physics(onnx.load(str(path)), b, 1)
    onnx.checker.check_model(proto, full_check=True)
    got = _onnx_predict(proto, xte)[:, 0]
    want = predict_member(m, xte)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-3)


def test_sbe63_in_onnx_equals_python(tmp_path):
    rng = np.random.default_rng(3)
    t = rng.uniform(2, 30, 200)
    v = rng.uniform(0.7, 1.4, 200) * 39.457071
    o2 = ((1.05 + 0.0015 * t + 0.4 * (v / 39.457071) ** 2) / (-0.15 + v / 39.457071) - 1) / (0.11 + 0.004 * t + 5e-5 * t * t)
    x = np.column_stack([v, t])
    b = fit_physics(x, o2, ["phase_delay_us", "temperature_degC"], ["us", "degC"], "mL_per_L", kind="sbe63")
    m = fit_member(ModelConfig(family="physics"), x, o2, feature_names=["phase_delay_us", "temperature_degC"],
                   feature_units=["us", "degC"], target_unit="mL_per_L")
    path = tmp_path / "net.onnx"
    export_onnx(m.model, path, 2)
    import onnx

    got = _onnx_predict(attach_physics(onnx.load(str(path)), b, 1), x)[:, 0]
    np.testing.assert_allclose(got, b.predict(x), rtol=1e-4, atol=1e-4)


def test_hybrid_member_exports_into_one_artifact(tmp_path, data):
    from calib.artifact.export import export_artifact
    from calib.runtime import load_model

    xtr, ytr, xte, _ = data
    kw = dict(feature_names=NAMES, feature_units=UNITS, target_unit="hPa")
    cfg = ModelConfig(family="hybrid", hidden_layers=(8,), epochs=20, patience=None)
    members = [fit_member(cfg.replace(seed=i), xtr, ytr, **kw) for i in range(3)]
    meta = {
        "features": [{"name": n, "unit": u, "min": float(xtr[:, i].min()), "max": float(xtr[:, i].max())}
                     for i, (n, u) in enumerate(zip(NAMES, UNITS))],
        "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
        "hyperparameters": cfg.to_dict(),
        "data": {"file": "synthetic", "sha256": "0" * 64, "rows": len(xtr)},
    }
    art = export_artifact(tmp_path, "hyb", model=members[0].model, fold_models=[m.model for m in members[1:]],
                          physics=[m.physics for m in members], metadata=meta)
    lm = load_model(art.path)
    pred, std = lm.predict(xte, return_std=True)
    np.testing.assert_allclose(pred, predict_member(members[0], xte)[:, 0], rtol=1e-4, atol=2e-3)
    folds = np.stack([predict_member(m, xte)[:, 0] for m in members[1:]])
    np.testing.assert_allclose(std, folds.std(axis=0), atol=2e-3)


@pytest.mark.parametrize("family", ["mlp", "hybrid"])
def test_a_members_monitor_path_is_its_own_prediction(data, family):
    """The recorded path holds the member's predictions (a hybrid's include its physics fit)."""
    xtr, ytr, xte, yte = data
    cfg = ModelConfig(family=family, hidden_layers=(8,), optimizer="lbfgs", epochs=40, patience=None)
    m = fit_member(cfg, xtr, ytr, feature_names=NAMES, feature_units=UNITS, target_unit="hPa", monitor=(xte, yte))
    assert m.monitor_pred.shape == (4, len(xte), 1) and len(m.monitor_loss) == 4
    # 40 iterations, no early stopping: the last point is the trained member
    np.testing.assert_allclose(m.monitor_pred[-1, :, 0], predict_member(m, xte)[:, 0], rtol=1e-5, atol=2e-3)
    assert fit_member(cfg, xtr, ytr, feature_names=NAMES, feature_units=UNITS, target_unit="hPa").monitor_pred is None
