"""Tests of calib.scaling: fitted on training rows only, stored as plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.scaling import Scaler, fit_scaler


@pytest.fixture
def x():
    rng = np.random.default_rng(0)
    return np.column_stack([rng.normal(50, 10, 1000), rng.uniform(-5, 35, 1000), np.full(1000, 7.0)])


def test_standard(x):
    s = fit_scaler(x, "standard")
    z = s.transform(x)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1, atol=1e-12)
    assert s.scale[2] == 1.0 and s.center[2] == 7.0  # constant column only shifted


def test_minmax(x):
    z = fit_scaler(x, "minmax").transform(x)
    np.testing.assert_allclose(z[:, :2].min(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].max(axis=0), 1, atol=1e-12)


def test_robust_ignores_outliers(x):
    y = x.copy()
    y[:5, 0] = 1e6
    s = fit_scaler(y, "robust")
    assert abs(s.center[0] - 50) < 2 and 10 < s.scale[0] < 16  # IQR of N(50, 10) ~ 13.5


def test_none(x):
    np.testing.assert_array_equal(fit_scaler(x, "none").transform(x), x)


def test_inverse_and_json_round_trip(x):
    s = fit_scaler(x, "standard")
    s2 = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2 == s
    np.testing.assert_allclose(s2.inverse_transform(s2.transform(x)), x)


def test_fit_on_train_rows_only(x):
    train, test = x[:500], x[500:] + 100
    s = fit_scaler(train)
    assert abs(s.center[0] - train[:, 0].mean()) < 1e-12


@pytest.mark.parametrize("bad, match", [
    pytest.param({"kind": "standard", "center": [0.0], "scale": [0.0]}, "scale > 0", id="zero-scale"),
    pytest.param({"kind": "standard", "center": [0.0, 1.0], "scale": [1.0]}, "equal length", id="length"),
    pytest.param({"center": [0.0]}, "must have kind, center and scale", id="missing"),
])
def test_from_dict_rules(bad, match):
    with pytest.raises(ConfigError, match=match):
        Scaler.from_dict(bad)


def test_unknown_kind(x):
    with pytest.raises(ConfigError, match=r"scaling in \{'standard', .* must hold, got scaling="):
        fit_scaler(x, "log")
