"""Synthetic data with a known answer shared by the ``tests/test_nn_*.py`` modules.

Two raw inputs in physical-looking units (``x = u * [10, 5] + [40, 20]``, u uniform in
[-1, 1]) and ``y = 3*u0 - 2*u1**2 + noise``. Most tests share one network shape and batch
layout (:data:`BASE`) so the compiled epoch is traced once.
"""

from __future__ import annotations

import numpy as np
import pytest

from calib.nn import ModelConfig, TrainResult, build_model, predict, train
from calib.scaling import fit_scaler

NOISE = 0.05


def make_data(n: int, seed: int, noise: float = NOISE, two_targets: bool = False):
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=(n, 2))
    x = u * [10.0, 5.0] + [40.0, 20.0]  # e.g. phase in deg, temperature in degC
    y = 3.0 * u[:, 0] - 2.0 * u[:, 1] ** 2 + noise * rng.normal(size=n)
    if two_targets:
        y = np.column_stack([y, u[:, 0] * u[:, 1] + noise * rng.normal(size=n)])
    return x, y


@pytest.fixture(scope="module")
def data():
    x, y = make_data(256, seed=1)
    xd, yd = make_data(64, seed=2)
    return x, y, xd, yd, fit_scaler(x), fit_scaler(y)


BASE = dict(hidden_layers=(16, 16), batch_size=32, epochs=30, patience=None, learning_rate=1e-2)


def weights(model) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) for v in model.weights]


def scaled_mse(model, x, y, y_scaler) -> float:
    """Mean squared error in scaled target units (what train() reports as dev loss for mse)."""
    z_pred = y_scaler.transform(predict(model, x).reshape(len(x), -1))
    z_true = y_scaler.transform(np.asarray(y).reshape(len(x), -1))
    return float(np.mean((z_pred - z_true) ** 2))


def fit(cfg: ModelConfig, data, **kw) -> tuple[TrainResult, float, float]:
    """Train on the shared data; return the result, dev MSE before and after (scaled units)."""
    x, y, xd, yd, xs, ys = data
    untrained = build_model(cfg, 2, 1, xs, ys)
    before = scaled_mse(untrained, xd, yd, ys)
    res = train(cfg, x, y, xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=False, **kw)
    return res, before, scaled_mse(res.model, xd, yd, ys)
