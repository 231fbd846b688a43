"""Tests of calib.physics: the classical physics calibration (SVU, two-site, SBE63, poly)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from calib import physics
from conftest import raw_data_dir
from calib.physics import PhysicsModel, fit_physics, two_site_inverse
from calib.errors import ArtifactError, ConfigError, IncompatibleArtifactError, TrainingError

RAW = raw_data_dir() / "aanderaa-optode-calcerts"
AANDERAA = RAW / "aadi4330_1463_b1206E.csv"
SBE63 = RAW / "sbe63_0800_factory.csv"

# Aanderaa-typical SVU constants for umol/L (the brief's starting values).
SVU_C = (2.8e-3, 1.1e-4, 2.5e-6, 230.0, -0.3, -60.0, 4.5)


# --------------------------------------------------------------------- synthetic data
def svu_data(n: int, noise: float, seed: int = 0):
    """Readings (T degC, P deg) and O2 (umol/L) from the SVU form; noise (umol/L) on O2."""
    rng = np.random.default_rng(seed)
    c0, c1, c2, c3, c4, c5, c6 = SVU_C
    t = rng.uniform(2.0, 38.0, n)
    o2 = rng.uniform(0.0, 500.0, n)
    ksv = c0 + c1 * t + c2 * t * t
    p = ((c3 + c4 * t) / (1.0 + o2 * ksv) - c5) / c6
    return np.column_stack([t, p]), o2, o2 + rng.normal(0.0, noise, n)


def two_site_truth(t: np.ndarray):
    """DOMAIN.md foil: theta0 63.6 -> 60.8 deg, f 0.61 -> 0.69, Ksv1 0.031 -> 0.047 /hPa (3..39 degC), Ksv2 0.003."""
    s = (t - 3.0) / 36.0
    return 63.6 - 2.8 * s, 0.61 + 0.08 * s, 0.031 + 0.016 * s, np.full_like(t, 0.003)


def two_site_phase(t: np.ndarray, po2: np.ndarray) -> np.ndarray:
    th0, f, k1, k2 = two_site_truth(t)
    r = f / (1.0 + k1 * po2) + (1.0 - f) / (1.0 + k2 * po2)
    return np.degrees(np.arctan(np.tan(np.radians(th0)) * r))


def two_site_data(n: int, phase_noise: float = 0.002, seed: int = 1):
    rng = np.random.default_rng(seed)
    t = rng.uniform(3.0, 39.0, n)
    po2 = rng.uniform(0.0, 250.0, n)
    p = two_site_phase(t, po2) + rng.normal(0.0, phase_noise, n)
    return np.column_stack([p, t]), po2


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    if not RAW.is_dir():
        pytest.skip(f"real calibration data folder {RAW} is absent")
    names = path.read_text().splitlines()[0].split(",")
    return names, np.loadtxt(path, delimiter=",", skiprows=1)


def rmse(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(e))))


# --------------------------------------------------------------------- SVU
def test_svu_recovers_synthetic_form():
    noise = 0.2  # umol/L
    x, o2_true, o2 = svu_data(400, noise)
    m = fit_physics(x, o2, ["temperature", "phase_deg"], ["degC", "deg"], "umol/L", kind="svu")
    assert m.kind == "svu" and m.columns == (1, 0)
    pred = m.predict(x)
    assert np.mean(np.abs(pred - o2)) < 2 * noise
    assert np.mean(np.abs(pred - o2_true)) < 0.5 * noise
    # The form is only defined up to a common scale of c3..c6: compare the ratios.
    c = m.params
    assert c["c6"] == 1.0
    assert c["c3"] / c["c6"] == pytest.approx(SVU_C[3] / SVU_C[6], rel=0.01)
    assert c["c5"] / c["c6"] == pytest.approx(SVU_C[5] / SVU_C[6], rel=0.02)
    assert [c["c0"], c["c1"], c["c2"]] == pytest.approx(SVU_C[:3], rel=0.05)  # Ksv is not rescaled


@pytest.mark.parametrize(
    "factor, unit",
    [pytest.param(1.0, "umol/L", id="umol_per_L"), pytest.param(1 / 44.66, "mL/L", id="mL_per_L"),
     pytest.param(0.38, "hPa", id="hPa-like")],
)
def test_svu_initialises_from_data_in_any_unit(factor, unit):
    x, o2_true, _ = svu_data(200, 0.0, seed=3)
    m = fit_physics(x, o2_true * factor, ["t", "p"], ["degC", "deg"], unit, kind="svu")
    assert rmse(m.predict(x) - o2_true * factor) < 1e-4 * 500 * factor


# --------------------------------------------------------------------- two-site
def test_two_site_recovers_po2_within_half_hpa():
    x, po2 = two_site_data(600)
    m = fit_physics(x, po2, ["phase_5000hz_deg", "temperature"], ["deg", "degC"], "hPa", kind="two_site")
    # Noise-free grid over the calibrated range.
    tg, pg = np.meshgrid(np.linspace(3.0, 39.0, 13), np.linspace(0.0, 250.0, 26))
    xg = np.column_stack([two_site_phase(tg.ravel(), pg.ravel()), tg.ravel()])
    assert np.max(np.abs(m.predict(xg) - pg.ravel())) < 0.5
    # The physical parameters come back too.
    th0, f, k1, k2 = two_site_truth(np.array([20.0]))
    g = m.params
    assert g["theta0_0"] + 20 * g["theta0_1"] == pytest.approx(th0[0], abs=0.05)
    assert g["f_0"] + 20 * g["f_1"] == pytest.approx(f[0], abs=0.01)
    assert g["ksv1_0"] + 20 * g["ksv1_1"] + 400 * g["ksv1_2"] == pytest.approx(k1[0], rel=0.02)
    assert g["ksv2_0"] + 20 * g["ksv2_1"] == pytest.approx(k2[0], rel=0.05)


def test_auto_prefers_two_site_on_two_site_data():
    x, po2 = two_site_data(300)
    m = fit_physics(x, po2, ["phase_5000hz_deg", "temperature"], ["deg", "degC"], "hPa")
    assert m.kind == "two_site"
    assert set(m.selection_rmse) == {"svu", "two_site"}
    assert m.selection_rmse["two_site"] < 0.1 * m.selection_rmse["svu"]


@pytest.mark.parametrize(
    "f, k1, k2",
    [pytest.param(0.61, 0.031, 0.003, id="cold-foil"), pytest.param(0.69, 0.047, 0.003, id="warm-foil"),
     pytest.param(0.8, 0.05, 0.0, id="k2-zero-single-site"), pytest.param(1.0, 0.04, 0.01, id="f-one")],
)
def test_two_site_inverse_picks_the_physical_root(f, k1, k2):
    po2 = np.linspace(0.0, 400.0, 81)
    r = f / (1 + k1 * po2) + (1 - f) / (1 + k2 * po2)
    got = two_site_inverse(r, f, k1, k2)
    np.testing.assert_allclose(got, po2, rtol=1e-9, atol=1e-9)
    # The other root of the quadratic is negative, so "the root >= 0" is unique.
    a, c = r * k1 * k2, r - 1
    if k2 > 0:
        other = c[1:] / (a[1:] * got[1:])  # product of roots = c/a
        assert np.all(other < 0)


def test_two_site_inverse_above_zero_phase_gives_small_negative():
    # r slightly above 1 (phase above theta0, noise at zero O2): the continuous branch, not a far root.
    got = two_site_inverse(np.array([1.0, 1.001]), 0.6, 0.04, 0.003)
    assert got[0] == 0.0
    assert -0.1 < got[1] < 0.0


# --------------------------------------------------------------------- real certificates
def test_aanderaa_certificate_svu_and_two_site():
    names, d = read_csv(AANDERAA)
    assert names == ["temperature_degC", "phase_deg", "o2_umol_per_L"] and d.shape == (63, 3)
    x, y = d[:, :2], d[:, 2]
    units = ["degC", "deg"]
    svu = fit_physics(x, y, names[:2], units, "umol/L", kind="svu")
    # Measured 2.06 umol/L (MAE 1.59); literature ~1-2 umol/L for this kind of fit.
    assert svu.train_rmse == pytest.approx(rmse(svu.predict(x) - y))
    assert svu.train_rmse < 2.5
    # The fitted constants are Aanderaa-like (c3/c6 ~ 230/4.5, c5/c6 ~ -60/4.5).
    c = svu.params
    assert 45 < c["c3"] / c["c6"] < 57 and -16 < c["c5"] / c["c6"] < -9
    two = fit_physics(x, y, names[:2], units, "umol/L", kind="two_site")
    assert two.train_rmse < 1.8  # measured 1.42 umol/L
    auto = fit_physics(x, y, names[:2], units, "umol/L")
    assert auto.kind == min(auto.selection_rmse, key=auto.selection_rmse.get)
    assert auto.kind in ("svu", "two_site") and auto.columns == (1, 0)


def test_sbe63_factory_calibration():
    names, d = read_csv(SBE63)
    assert names == ["temperature_degC", "phase_delay_us", "o2_mL_per_L"] and d.shape == (24, 3)
    x, y = d[:, :2], d[:, 2]
    units = ["degC", "us"]
    m = fit_physics(x, y, names[:2], units, "mL/L", kind="sbe63")
    assert m.train_rmse < 0.01  # measured 0.0048 mL/L (MAE 0.0038)
    # Sea-Bird-like shape: b0/b1 ~ -0.15 V (B0 -0.25, B1 1.65 on typical certificates).
    assert -0.3 < m.params["b0"] / m.params["b1"] < -0.05
    auto = fit_physics(x, y, names[:2], units, "mL/L")
    assert auto.kind == "sbe63" and auto.params == m.params
    poly = fit_physics(x, y, names[:2], units, "mL/L", kind="poly")
    assert m.train_rmse < poly.train_rmse


# --------------------------------------------------------------------- poly and auto fallbacks
def test_poly_fallback_without_phase_column():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.0, 1.0, (300, 2))
    f = lambda a: 1.0 + 2.0 * a[:, 0] + 3.0 * a[:, 1] ** 2
    y = f(x) + rng.normal(0.0, 0.01, 300)
    m = fit_physics(x, y, ["temperature", "amplitude"], ["degC", "1"], "hPa")
    assert m.kind == "poly" and m.columns == (0, 1) and m.params["degree"] >= 2
    xt = rng.uniform(-0.9, 0.9, (50, 2))
    assert np.max(np.abs(m.predict(xt) - f(xt))) < 0.01


def test_auto_falls_back_to_poly_with_one_temperature():
    x, _, y = svu_data(50, 0.1)
    x[:, 0] = 20.0
    m = fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L")
    assert m.kind == "poly"


def test_auto_falls_back_to_poly_when_physics_fails(monkeypatch):
    monkeypatch.setattr(physics, "_FITTERS", {k: (lambda p, t, y: None) for k in physics._FITTERS})
    x, _, y = svu_data(60, 0.1)
    assert fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L").kind == "poly"
    with pytest.raises(TrainingError, match="'svu' fit did not converge"):
        fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L", kind="svu")


@pytest.mark.parametrize(
    "names, expected",
    [pytest.param(["phase_1000hz_deg", "phase_5000hz_deg", "phase_20000hz_deg", "t"], 1, id="hz"),
     pytest.param(["phase_1khz_deg", "phase_4khz_deg", "phase_20khz_deg", "t"], 1, id="khz"),
     pytest.param(["phase_a", "phase_b", "phase_c", "t"], 0, id="no-frequency-first")],
)
def test_phase_column_nearest_5khz(names, expected):
    x, _, y = svu_data(80, 0.1)
    t, p = x[:, 0], x[:, 1]
    xx = np.column_stack([p + 3.0, p, p - 3.0, t])
    xx[:, expected] = p
    m = fit_physics(xx, y, names, ["deg", "deg", "deg", "degC"], "umol/L", kind="svu")
    assert m.columns == (expected, 3)


# --------------------------------------------------------------------- persistence, determinism, speed
@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in ("svu", "two_site", "poly")])
def test_to_dict_from_dict_round_trip(kind):
    x, po2 = two_site_data(120)
    m = fit_physics(x, po2, ["phase_deg", "temperature"], ["deg", "degC"], "hPa", kind=kind)
    back = PhysicsModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert np.array_equal(back.predict(x), m.predict(x))


# Typical Sea-Bird SBE63 certificate coefficients (V in volts, O2 in mL/L).
SBE63_C = dict(a0=1.0513, a1=-1.5e-3, a2=4.1907e-1, b0=-2.5004e-1, b1=1.6524,
               c0=1.0355e-1, c1=4.4295e-3, c2=6.0011e-5)


def sbe63_data(n: int, seed: int = 2):
    """(T degC, delay us) and O2 mL/L from the SBE63 form: V is the smaller root of its quadratic."""
    rng = np.random.default_rng(seed)
    g = SBE63_C
    t = rng.uniform(2.0, 30.0, n)
    o2 = rng.uniform(0.3, 9.0, n)
    q = 1.0 + o2 * (g["c0"] + g["c1"] * t + g["c2"] * t * t)
    b, c = q * g["b1"], g["a0"] + g["a1"] * t - q * g["b0"]
    v = (b - np.sqrt(b * b - 4 * g["a2"] * c)) / (2 * g["a2"])
    return np.column_stack([t, v * physics.SBE63_US_PER_VOLT]), o2


def test_sbe63_recovers_synthetic_form_deterministically():
    x, o2 = sbe63_data(60)
    m1 = fit_physics(x, o2, ["t", "delay"], ["degC", "us"], "mL/L", kind="sbe63")
    m2 = fit_physics(x, o2, ["t", "delay"], ["degC", "us"], "mL/L", kind="sbe63")
    assert m1 == m2
    assert rmse(m1.predict(x) - o2) < 1e-6
    # Same curve as the certificate, up to the common scale of a0, a1, a2, b0, b1.
    s = SBE63_C["b1"] / m1.params["b1"]
    assert m1.params["b0"] * s == pytest.approx(SBE63_C["b0"], rel=1e-3)
    assert m1.params["a2"] * s == pytest.approx(SBE63_C["a2"], rel=1e-3)
    assert m1.params["c0"] == pytest.approx(SBE63_C["c0"], rel=1e-3)
    back = PhysicsModel.from_dict(json.loads(json.dumps(m1.to_dict())))
    assert np.array_equal(back.predict(x), m1.predict(x))


def test_fit_2000_rows_is_fast():
    x, po2 = two_site_data(2000)
    fit_physics(x[:50], po2[:50], ["p", "t"], ["deg", "degC"], "hPa", kind="poly")  # warm imports
    start = time.perf_counter()
    m = fit_physics(x, po2, ["p", "t"], ["deg", "degC"], "hPa")
    elapsed = time.perf_counter() - start
    assert m.kind == "two_site"
    assert elapsed < 2.0  # measured ~0.06 s; the brief asks < 1 s, margin for a shared CPU


# --------------------------------------------------------------------- validation
def _xy():
    x, _, y = svu_data(30, 0.1)
    return x, y


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param(dict(kind="spline"), r"^kind in \{'auto', .*\} must hold, got kind='spline'$", id="kind"),
        pytest.param(dict(target_unit=" "), r"^target_unit is a non-empty string must hold, got target_unit=' '$", id="target-unit"),
        pytest.param(dict(x=np.zeros(30)), r"x must be 2-D .* got shape \(30,\)", id="x-1d"),
        pytest.param(dict(y=np.zeros(29)), r"y must be 1-D with n=30 .* got shape \(29,\)", id="y-len"),
        pytest.param(dict(feature_names=["t"]), r"feature_names must have k=2 entries .* got 1", id="names"),
        pytest.param(dict(feature_units=["degC"]), r"feature_units must have k=2 entries .* got 1", id="units"),
        pytest.param(dict(kind="sbe63"), r"kind='sbe63' needs a phase column with unit 'us'", id="columns"),
    ],
)
def test_fit_rejects_bad_arguments(change, match):
    x, y = _xy()
    args = dict(x=x, y=y, feature_names=["t", "p"], feature_units=["degC", "deg"], target_unit="umol/L")
    args.update(change)
    with pytest.raises(ConfigError, match=match):
        fit_physics(**args)


def test_fit_rejects_non_finite_x():
    x, y = _xy()
    x[4, 1] = np.nan
    with pytest.raises(ConfigError, match=r"x must be finite, got nan at row 4, column 'p'"):
        fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L")


def test_fit_rejects_non_finite_y():
    x, y = _xy()
    y[7] = np.inf
    with pytest.raises(ConfigError, match=r"y must be finite, got inf at row 7"):
        fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L")


def test_physics_kind_needs_three_temperatures():
    x, y = _xy()
    x[:, 0] = np.where(x[:, 0] > 20, 30.0, 10.0)
    with pytest.raises(ConfigError, match=r"kind='svu' needs >= 3 distinct temperatures .* got 2"):
        fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L", kind="svu")


def test_physics_kind_needs_more_rows_than_parameters():
    x, y = _xy()
    with pytest.raises(ConfigError, match=r"kind='two_site' needs n > 9 rows .* got n=9"):
        fit_physics(x[:9], y[:9], ["t", "p"], ["degC", "deg"], "umol/L", kind="two_site")


def test_two_site_needs_phase_below_90_deg():
    x, y = _xy()
    x[0, 1] = 95.0
    with pytest.raises(ConfigError, match=r"kind='two_site' needs 0 < phase < 90 deg"):
        fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L", kind="two_site")


def test_predict_rejects_wrong_column_count():
    x, y = _xy()
    m = fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L", kind="svu")
    with pytest.raises(ConfigError, match=r"x must be 2-D with n_features=2 columns, got shape \(30, 1\)"):
        m.predict(x[:, :1])


@pytest.mark.parametrize(
    "change, error, match",
    [
        pytest.param({"format": "pickle"}, ArtifactError, r"format must be 'calib.baseline'", id="format"),
        pytest.param({"version": 2}, IncompatibleArtifactError, r"version 2 is newer", id="newer"),
        pytest.param({"kind": "nn"}, ArtifactError, r"kind must be one of .* got 'nn'", id="kind"),
        pytest.param({"params": {"c0": 1.0}}, ArtifactError, r"params of kind 'svu' lack", id="params"),
        pytest.param({"columns": [1, 5]}, ArtifactError, r"columns must lie in 0..1, got \[1, 5\]", id="columns"),
        pytest.param({"feature_units": ["degC"]}, ArtifactError, r"must have n_features=2 entries", id="units"),
    ],
)
def test_from_dict_rejects_bad_dicts(change, error, match):
    x, y = _xy()
    d = fit_physics(x, y, ["t", "p"], ["degC", "deg"], "umol/L", kind="svu").to_dict()
    d.update(change)
    with pytest.raises(error, match=match):
        PhysicsModel.from_dict(d)
