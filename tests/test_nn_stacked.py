"""Tests of calib.nn.stacked: K networks trained together equal the same networks trained one by one."""

from __future__ import annotations

import numpy as np
import pytest

from nn_data import make_data, weights

from calib.errors import ConfigError, TrainingError
from calib.nn import ModelConfig, fit_member, fit_members, predict, predict_member, train, train_stacked
from calib.scaling import fit_scaler


@pytest.fixture(scope="module")
def problems():
    """Three problems with different row counts (and so different batches per epoch) and dev rows."""
    out = []
    for i, n in enumerate((150, 123, 190)):
        x, y = make_data(n, seed=10 + i, noise=0.2)
        xd, yd = make_data(40 + 7 * i, seed=20 + i, noise=0.2)
        out.append((x, y, xd, yd))
    return out


def _scalers(problems):
    return [fit_scaler(p[0]) for p in problems], [fit_scaler(p[1]) for p in problems]


def _one_by_one(configs, problems, **kw):
    xs, ys = _scalers(problems)
    return [train(c, *p, x_scaler=a, y_scaler=b, **kw) for c, p, a, b in zip(configs, problems, xs, ys)]


def _stacked(configs, problems, **kw):
    xs, ys = _scalers(problems)
    return train_stacked(configs, problems, x_scalers=xs, y_scalers=ys, **kw)


def _assert_same(alone, together, problems, atol, rtol=1e-4):
    for a, s, p in zip(alone, together, problems):
        assert (s.best_epoch, s.epochs_run, s.iterations) == (a.best_epoch, a.epochs_run, a.iterations)
        np.testing.assert_allclose(s.train_loss, a.train_loss, rtol=rtol, atol=1e-6)
        np.testing.assert_allclose(s.dev_loss, a.dev_loss, rtol=rtol, atol=1e-6)
        for wa, ws in zip(weights(a.model), weights(s.model)):
            np.testing.assert_allclose(ws, wa, atol=atol)
        np.testing.assert_allclose(predict(s.model, p[2]), predict(a.model, p[2]), atol=50 * atol)


ADAM = dict(hidden_layers=(16, 16), batch_size=32, epochs=25, patience=3, learning_rate=3e-2)


@pytest.mark.parametrize("changes", [
    pytest.param({}, id="adam-early-stopping"),
    pytest.param({"optimizer": "rmsprop", "dropout": 0.1, "l2": 1e-3}, id="rmsprop-dropout-l2"),
    pytest.param({"optimizer": "momentum", "learning_rate": 1e-2, "l1": 1e-4, "lr_schedule": "exponential",
                  "decay_steps": 20, "patience": None, "epochs": 8}, id="momentum-l1-schedule-no-stopping"),
    pytest.param({"batch_size": None, "family": "hybrid"}, id="full-batch-hybrid-start"),
])
def test_stacked_equals_one_by_one(problems, changes):
    base = ModelConfig(**{**ADAM, **changes})
    configs = [base.replace(seed=s) for s in (0, 1, 2)]
    alone = _one_by_one(configs, problems, jit_compile=False)
    together = _stacked(configs, problems, jit_compile=False)
    _assert_same(alone, together, problems, atol=2e-5)


def test_stacked_is_bit_identical_under_xla(problems):
    configs = [ModelConfig(**{**ADAM, "epochs": 6}).replace(seed=s) for s in (3, 4, 5)]
    alone = _one_by_one(configs, problems, jit_compile=True)
    together = _stacked(configs, problems, jit_compile=True)
    for a, s in zip(alone, together):
        assert all(np.array_equal(wa, ws) for wa, ws in zip(weights(a.model), weights(s.model)))


def test_trials_of_one_shape_stack_with_their_own_hyperparameters(problems):
    """Several trials: learning rate, penalty, patience and epochs differ per model."""
    configs = [ModelConfig(**{**ADAM, "l2": 1e-4}),
               ModelConfig(**{**ADAM, "l2": 1e-2, "learning_rate": 1e-3, "seed": 7}),
               ModelConfig(**{**ADAM, "l2": 1e-6, "patience": None, "epochs": 4})]
    _assert_same(_one_by_one(configs, problems, jit_compile=False),
                 _stacked(configs, problems, jit_compile=False), problems, atol=2e-5)


def test_stacked_lbfgs_runs_each_problem_as_alone(problems):
    configs = [ModelConfig(hidden_layers=(8, 8), optimizer="lbfgs", epochs=20, patience=4, seed=s) for s in (0, 1, 2)]
    alone = _one_by_one(configs, problems)
    together = _stacked(configs, problems)
    # the objective comes from batched kernels, not the Keras model: float differences that
    # L-BFGS's curvature pairs amplify a little, never into another iteration count or stop
    _assert_same(alone, together, problems, atol=2e-3, rtol=1e-2)


def test_same_seeds_same_weights_and_deterministic(problems):
    configs = [ModelConfig(**ADAM).replace(seed=s) for s in (0, 1, 2)]
    a = _stacked(configs, problems, jit_compile=False)
    b = _stacked(configs, problems, jit_compile=False)
    for ra, rb in zip(a, b):
        assert ra.train_loss == rb.train_loss
        assert all(np.array_equal(wa, wb) for wa, wb in zip(weights(ra.model), weights(rb.model)))


def test_fit_members_equals_fit_member(problems):
    cfg = ModelConfig(**{**ADAM, "family": "hybrid"})
    names, units = ["phase_deg", "temperature_degC"], ["deg", "degC"]
    kw = dict(feature_names=names, feature_units=units, target_unit="hPa")
    alone = [fit_member(cfg, *p, **kw) for p in problems]
    together = fit_members(cfg, problems, **kw)
    for a, s, p in zip(alone, together, problems):
        assert s.best_epoch == a.best_epoch
        np.testing.assert_allclose(predict_member(s, p[2]), predict_member(a, p[2]), atol=1e-3)


def test_shapes_must_match_and_divergence_names_the_epoch(problems):
    with pytest.raises(ConfigError, match="must share their shape"):
        _stacked([ModelConfig(**ADAM), ModelConfig(**{**ADAM, "hidden_layers": (8,)}),
                  ModelConfig(**ADAM)], problems)
    with pytest.raises(ConfigError, match="one ModelConfig or one per problem, got 2 for 3"):
        _stacked([ModelConfig(**ADAM)] * 2, problems)
    with pytest.raises(ConfigError, match="all have dev rows or none"):
        _stacked(ModelConfig(**ADAM), [problems[0], problems[1][:2] + (None, None)])
    bad = ModelConfig(**{**ADAM, "optimizer": "sgd", "learning_rate": 1e6, "patience": None})
    with pytest.raises(TrainingError, match=r"training diverged at epoch \d+: loss is (nan|inf)"):
        _stacked(bad, problems, jit_compile=False)
