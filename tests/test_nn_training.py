"""Tests of calib.nn.training: the compiled epoch loop, early stopping, L-BFGS, divergence."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from calib.errors import ConfigError, TrainingError
from calib.nn import ACTIVATIONS, INITS, LOSSES, LR_SCHEDULES, ModelConfig, build_model, predict, train
from calib.scaling import fit_scaler
from nn_data import BASE, data, fit, make_data, scaled_mse, weights  # noqa: F401 (data: fixture)

@pytest.mark.parametrize(
    "changes",
    [pytest.param({"activation": a}, id=f"activation-{a}") for a in ACTIVATIONS]
    + [pytest.param({"init": i}, id=f"init-{i}") for i in INITS]
    + [
        pytest.param({"optimizer": "sgd", "learning_rate": 0.1}, id="optimizer-sgd"),
        pytest.param({"optimizer": "momentum", "learning_rate": 0.02}, id="optimizer-momentum"),
        pytest.param({"optimizer": "rmsprop", "learning_rate": 3e-3}, id="optimizer-rmsprop"),
        pytest.param({"optimizer": "adam"}, id="optimizer-adam"),
    ]
    + [pytest.param({"lr_schedule": s, "decay_steps": 100}, id=f"schedule-{s}") for s in LR_SCHEDULES]
    + [pytest.param({"loss": lo}, id=f"loss-{lo}") for lo in LOSSES],
)
def test_every_option_trains_and_reduces_loss(data, changes):
    cfg = ModelConfig(**{**BASE, **changes})
    res, before, after = fit(cfg, data)
    assert res.epochs_run == cfg.epochs and len(res.train_loss) == len(res.dev_loss) == cfg.epochs
    assert res.train_loss[-1] < res.train_loss[0]
    # dev MSE in scaled units (1 = predicting the mean). A linear fit gets the 3*u0 part and
    # leaves -2*u1**2 (about 11 % of the variance): identity can do no better, and sigmoid or a
    # small truncated-normal start are still near it after 30 epochs; the others fit the curve.
    slow = cfg.activation in ("identity", "sigmoid") or cfg.init == "truncated_normal"
    limit = 0.15 if slow else 0.05
    assert after < limit and before > 0.5


def test_training_runs_in_lockstep_with_a_keras_adam_loop():
    """Whole epochs of calib's loop = a plain Keras loop (same start, same batches, keras Adam).

    Same initial weights, the shuffling calib draws (``default_rng(seed)``, a new permutation
    per epoch), a partial last batch, MSE on the scaled target and ``keras.optimizers.Adam``:
    the weights agree after 3 epochs, so calib trains the same way ``model.fit`` does, just
    with less overhead (what ``benchmarks/train_speed.py`` compares).
    """
    import keras
    import tensorflow as tf

    from calib.nn.network import dense_layers

    rng = np.random.default_rng(7)
    x = rng.normal(size=(100, 3)) * [1.0, 10.0, 0.1] + [0.0, 20.0, 5.0]
    y = np.sin(x[:, 0]) + 0.05 * x[:, 1] + rng.normal(0, 0.05, 100)
    xs, ys = fit_scaler(x), fit_scaler(y[:, None])
    cfg = ModelConfig(hidden_layers=(8, 8), optimizer="adam", learning_rate=1e-2, batch_size=32, epochs=3,
                      patience=None, seed=5)
    res = train(cfg, x, y, x_scaler=xs, y_scaler=ys, jit_compile=False)

    ref = build_model(cfg, 3, 1, xs, ys)  # same seed: same initial weights as train's model
    opt = keras.optimizers.Adam(1e-2)
    center, scale = float(ys.center[0]), float(ys.scale[0])
    xf = x.astype(np.float32)
    zf = ((y - center) / scale).astype(np.float32)[:, None]
    variables = [v for layer in dense_layers(ref) for v in (layer.kernel, layer.bias)]
    shuffle = np.random.default_rng(cfg.seed)
    for _ in range(cfg.epochs):
        perm = shuffle.permutation(len(x))
        for start in range(0, len(x), 32):  # batches of 32, 32, 32 and 4 rows
            rows = perm[start:start + 32]
            with tf.GradientTape() as tape:
                z = (ref(xf[rows], training=True) - center) / scale
                loss = tf.reduce_mean(tf.square(z - zf[rows]))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    assert res.iterations == 3 * 4
    for got, want in zip(res.model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("schedule", [pytest.param(s, id=s) for s in ("exponential", "inverse_time")])
def test_schedule_decays_per_iteration(data, schedule):
    x, y, _, _, xs, ys = data
    cfg = ModelConfig(**{**BASE, "epochs": 3, "lr_schedule": schedule, "decay_steps": 10, "decay_rate": 0.5})
    res = train(cfg, x, y, x_scaler=xs, y_scaler=ys, jit_compile=False)
    assert res.iterations == 3 * 8  # 256 rows / batch 32 = 8 steps per epoch
    expected = {"exponential": 1e-2 * 0.5 ** (24 / 10), "inverse_time": 1e-2 / (1 + 0.5 * 24 / 10)}[schedule]
    assert res.final_learning_rate == pytest.approx(expected, rel=1e-5)
    assert res.final_learning_rate == pytest.approx(cfg.learning_rate_at(24), rel=1e-5)


def test_batch_size_one_takes_a_step_per_row(data):
    x, y, xd, yd, xs, ys = data
    cfg = ModelConfig(**{**BASE, "batch_size": 1, "epochs": 4, "learning_rate": 3e-3})
    res = train(cfg, x[:64], y[:64], xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=False)
    assert res.iterations == 4 * 64
    assert res.dev_loss[-1] < 0.5 * scaled_mse(build_model(cfg, 2, 1, xs, ys), xd, yd, ys)


def _sgd_reference(cfg, x, y, xs, ys, batches):
    """Plain Keras/TF SGD steps over the given row batches from the same initial weights."""
    import keras
    import tensorflow as tf

    model = build_model(cfg, 2, 1, xs, ys)
    core = keras.Model(model.inputs[0], model.get_layer("output_scaled").output)
    z = ys.transform(y.reshape(-1, 1)).astype(np.float32)
    for rows in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(core(x[rows].astype(np.float32)) - z[rows]))
        for v, g in zip(core.trainable_variables, tape.gradient(loss, core.trainable_variables)):
            v.assign_sub(cfg.learning_rate * g)
    return weights(model)


def test_full_batch_is_exact_gradient_descent(data):
    """Full batch: one step per epoch on the mean over all rows; the padding rows weigh nothing."""
    x, y, _, _, xs, ys = data
    n = 100  # padded to 128 rows inside
    cfg = ModelConfig(hidden_layers=(8,), optimizer="sgd", learning_rate=0.1, batch_size=None, epochs=2, patience=None)
    res = train(cfg, x[:n], y[:n], x_scaler=xs, y_scaler=ys, jit_compile=False)
    assert res.iterations == 2
    expected = _sgd_reference(cfg, x[:n], y[:n], xs, ys, [np.arange(n)] * 2)
    for got, want in zip(weights(res.model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_last_partial_batch_averages_its_own_rows(data):
    """40 rows, batch 32: a step on 32 shuffled rows, then one on the 8 left over."""
    x, y, _, _, xs, ys = data
    cfg = ModelConfig(hidden_layers=(8,), optimizer="sgd", learning_rate=0.1, batch_size=32, epochs=1, patience=None, seed=5)
    res = train(cfg, x[:40], y[:40], x_scaler=xs, y_scaler=ys, jit_compile=False)
    perm = np.random.default_rng(5).permutation(40)  # the documented shuffling
    expected = _sgd_reference(cfg, x[:40], y[:40], xs, ys, [perm[:32], perm[32:]])
    assert res.iterations == 2
    for got, want in zip(weights(res.model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_l1_zeroes_more_weights_than_l2(data):
    def share_tiny(res):
        kernels = [layer.kernel.numpy().ravel() for layer in res.model.layers if hasattr(layer, "kernel")]
        return float(np.mean(np.abs(np.concatenate(kernels)) < 1e-3))

    l1, _, _ = fit(ModelConfig(**{**BASE, "epochs": 60, "l1": 1e-2}), data)
    l2, _, _ = fit(ModelConfig(**{**BASE, "epochs": 60, "l2": 1e-2}), data)
    assert share_tiny(l1) > 0.3 > 0.05 > share_tiny(l2)


def test_dropout_is_active_in_training_only(data):
    x, _, xd, _, _, _ = data
    res, before, after = fit(ModelConfig(**{**BASE, "dropout": 0.3}), data)
    assert after < 0.5 * before
    p1, p2 = predict(res.model, xd), predict(res.model, xd)
    assert np.array_equal(p1, p2)
    np.testing.assert_allclose(np.asarray(res.model(xd.astype(np.float32), training=False))[:, 0], p1, rtol=1e-6)
    t1 = np.asarray(res.model(xd.astype(np.float32), training=True))
    t2 = np.asarray(res.model(xd.astype(np.float32), training=True))
    assert not np.allclose(t1, t2)


def test_early_stopping_restores_best_epoch():
    x, y = make_data(24, seed=7, noise=0.3)  # few noisy rows and a big network: it overfits
    xd, yd = make_data(64, seed=8, noise=0.3)
    xs, ys = fit_scaler(x), fit_scaler(y)
    cfg = ModelConfig(hidden_layers=(64, 64), learning_rate=3e-2, batch_size=8, epochs=400, patience=10)
    res = train(cfg, x, y, xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=False)
    assert res.epochs_run < cfg.epochs
    assert res.epochs_run == res.best_epoch + cfg.patience
    assert res.best_epoch == int(np.argmin(res.dev_loss)) + 1
    assert min(res.dev_loss) < res.dev_loss[-1]
    assert scaled_mse(res.model, xd, yd, ys) == pytest.approx(min(res.dev_loss), rel=1e-4)


def test_min_delta_and_training_loss_monitor_without_dev(data):
    x, y, _, _, xs, ys = data
    cfg = ModelConfig(**{**BASE, "epochs": 50, "patience": 3, "min_delta": 100.0})
    res = train(cfg, x, y, x_scaler=xs, y_scaler=ys, jit_compile=False)
    assert res.dev_loss == ()
    assert (res.best_epoch, res.epochs_run) == (1, 4)  # nothing improves by 100 after epoch 1


def test_no_early_stopping_keeps_last_epoch(data):
    res, _, _ = fit(ModelConfig(**{**BASE, "epochs": 5}), data)
    assert res.best_epoch == res.epochs_run == 5


def test_same_seed_same_predictions_other_seed_differs(data):
    _, _, xd, _, _, _ = data
    a, _, _ = fit(ModelConfig(**BASE), data)
    b, _, _ = fit(ModelConfig(**BASE), data)
    c, _, _ = fit(ModelConfig(**{**BASE, "seed": 1}), data)
    assert np.array_equal(predict(a.model, xd), predict(b.model, xd))
    assert a.train_loss == b.train_loss
    assert not np.allclose(predict(a.model, xd), predict(c.model, xd))


def test_divergence_raises_training_error_naming_epoch(data):
    x, y, _, _, xs, ys = data
    cfg = ModelConfig(**{**BASE, "optimizer": "sgd", "learning_rate": 1e6})
    with pytest.raises(TrainingError) as info:
        train(cfg, x, y, x_scaler=xs, y_scaler=ys, jit_compile=False)
    message = str(info.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"training diverged at epoch \d+: loss is (nan|inf); likely causes: learning rate too large "
        r"\(learning_rate=1e\+06\), unscaled inputs, initial weights too large \(init=glorot\)",
        message,
    ), message


def test_multi_task_two_targets(data):
    x, _, xd, _, xs, _ = data
    _, y2 = make_data(256, seed=1, two_targets=True)
    _, yd2 = make_data(64, seed=2, two_targets=True)
    ys2 = fit_scaler(y2)
    res = train(ModelConfig(**BASE), x, y2, xd, yd2, x_scaler=xs, y_scaler=ys2, jit_compile=False)
    pred = predict(res.model, xd)
    assert pred.shape == (64, 2)
    assert res.dev_loss[-1] < 0.1 and scaled_mse(res.model, xd, yd2, ys2) == pytest.approx(res.dev_loss[-1], rel=1e-4)


def test_progress_and_verbose(data, capsys, caplog):
    x, y, xd, yd, xs, ys = data
    seen = []
    with caplog.at_level(logging.INFO, logger="calib.nn.training"):
        res = train(ModelConfig(**{**BASE, "epochs": 12}), x, y, xd, yd, x_scaler=xs, y_scaler=ys,
                    verbose=True, progress=lambda *a: seen.append(a), jit_compile=False)
    assert seen == [(i + 1, t, d) for i, (t, d) in enumerate(zip(res.train_loss, res.dev_loss))]
    lines = [r.getMessage() for r in caplog.records if r.name == "calib.nn.training"]  # logged, not printed
    assert len(lines) == 11 and lines[0].startswith("epoch 1/12: train_loss=") and "dev_loss=" in lines[0]
    assert lines[0] == f"epoch 1/12: train_loss={res.train_loss[0]:.6g} dev_loss={res.dev_loss[0]:.6g}"
    assert lines[-1].startswith("epoch 12/12:")
    assert capsys.readouterr() == ("", "")


def test_compiled_epoch_is_reused_across_folds_and_trials():
    """Folds with slightly different sizes and trials with other numbers share one trace."""
    import calib.nn.training as cm

    shapes = []
    for n, lr, seed in [(250, 1e-2, 0), (251, 3e-3, 1), (247, 1e-3, 2)]:
        x, y = make_data(n, seed=seed)
        xd, yd = make_data(60 + seed, seed=10 + seed)
        cfg = ModelConfig(hidden_layers=(8,), batch_size=32, epochs=3, learning_rate=lr, seed=seed)
        train(cfg, x, y, xd, yd, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y), jit_compile=False)
        shapes.append([fn for plan, fn in cm._EPOCH_CACHE.items() if plan.widths == (8, 1)])
    assert len(shapes[-1]) == 1 and shapes[0][0] is shapes[-1][0]
    assert shapes[-1][0].experimental_get_tracing_count() == 1
    assert len(cm._EPOCH_CACHE) <= cm._CACHE_SIZE


def test_xla_compiled_epoch_matches_graph_epoch(data):
    x, y, xd, yd, xs, ys = data
    cfg = ModelConfig(**{**BASE, "epochs": 10})
    a = train(cfg, x, y, xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=False)
    b = train(cfg, x, y, xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=True)
    np.testing.assert_allclose(predict(a.model, xd), predict(b.model, xd), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(a.dev_loss, b.dev_loss, rtol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"x_train": np.full((4, 2), np.nan)}, "x_train must be finite, found 8 NaN/inf value(s)", id="nan-inputs"),
        pytest.param({"y_train": np.zeros(5)}, "x_train and y_train must have the same number of rows, got 4 and 5", id="row-mismatch"),
        pytest.param({"x_dev": np.zeros((3, 2))}, "x_dev and y_dev must be given together", id="dev-pair"),
        pytest.param({"x_dev": np.zeros((3, 3)), "y_dev": np.zeros(3)}, "x_dev must have 2 column(s), got 3", id="dev-columns"),
        pytest.param({"x_train": np.zeros((0, 2)), "y_train": np.zeros(0)}, "x_train must have at least one row, got 0 rows", id="no-rows"),
    ],
)
def test_train_rejects_bad_arrays(data, kwargs, message):
    _, _, _, _, xs, ys = data
    args = {"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), **kwargs}
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(ModelConfig(epochs=1), args.pop("x_train"), args.pop("y_train"), **args, x_scaler=xs, y_scaler=ys)


def test_lbfgs_fits_better_than_a_short_adam_run_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (300, 2))
    y = 3 * x[:, 0] - 2 * x[:, 1] ** 2 + rng.normal(0, 0.01, 300)
    xs, ys = fit_scaler(x), fit_scaler(y)
    cfg = ModelConfig(hidden_layers=(16,), optimizer="lbfgs", epochs=300, patience=None)
    a = train(cfg, x, y, x_scaler=xs, y_scaler=ys)
    b = train(cfg, x, y, x_scaler=xs, y_scaler=ys)
    np.testing.assert_array_equal(predict(a.model, x), predict(b.model, x))
    assert a.train_loss[-1] < 1e-3 < a.train_loss[0]
    adam = train(ModelConfig(hidden_layers=(16,), epochs=30, patience=None), x, y, x_scaler=xs, y_scaler=ys)
    assert a.train_loss[-1] < adam.train_loss[-1]


def test_lbfgs_early_stopping_restores_best_and_refuses_dropout():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (200, 2))
    y = x[:, 0] + rng.normal(0, 0.3, 200)
    xs, ys = fit_scaler(x), fit_scaler(y)
    res = train(ModelConfig(hidden_layers=(32, 32), optimizer="lbfgs", epochs=400, patience=20),
                x[:150], y[:150], x[150:], y[150:], x_scaler=xs, y_scaler=ys)
    assert res.best_epoch == int(np.argmin(res.dev_loss)) + 1
    with pytest.raises(ConfigError, match="dropout = 0 must hold for optimizer='lbfgs'"):
        train(ModelConfig(optimizer="lbfgs", dropout=0.1), x, y, x_scaler=xs, y_scaler=ys)


def test_lbfgs_monitor_records_the_validation_curve_and_changes_nothing():
    from calib.nn.training import MONITOR_EVERY

    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (240, 2))
    y = x[:, 0] - x[:, 1] ** 2 + rng.normal(0, 0.2, 240)
    xs, ys = fit_scaler(x[:150]), fit_scaler(y[:150])
    cfg = ModelConfig(hidden_layers=(16,), optimizer="lbfgs", epochs=200, patience=30)
    plain = train(cfg, x[:150], y[:150], x[150:200], y[150:200], x_scaler=xs, y_scaler=ys)
    mon = train(cfg, x[:150], y[:150], x[150:200], y[150:200], x_scaler=xs, y_scaler=ys,
                x_monitor=x[200:], y_monitor=y[200:])
    assert plain.monitor_loss == ()
    # the same run: weights, curves and stop are untouched by the monitor rows
    assert all(np.array_equal(a, b) for a, b in zip(plain.model.get_weights(), mon.model.get_weights()))
    assert (plain.dev_loss, plain.best_epoch, plain.epochs_run) == (mon.dev_loss, mon.best_epoch, mon.epochs_run)
    assert len(mon.monitor_loss) == mon.epochs_run // MONITOR_EVERY > 2
    # its last point is the loss (scaled units) of the last iterate on the monitor rows
    last = train(cfg.replace(epochs=mon.epochs_run // MONITOR_EVERY * MONITOR_EVERY, patience=None),
                 x[:150], y[:150], x_scaler=xs, y_scaler=ys)
    z = ys.transform(y[200:].reshape(-1, 1))[:, 0]
    pz = ys.transform(predict(last.model, x[200:]).reshape(-1, 1))[:, 0]
    assert mon.monitor_loss[-1] == pytest.approx(np.mean((pz - z) ** 2), rel=1e-3)
    # and its predictions there are the network's
    assert mon.monitor_pred.shape == (len(mon.monitor_loss), 40, 1) and mon.monitor_pred.dtype == np.float32
    np.testing.assert_allclose(mon.monitor_pred[-1, :, 0], predict(last.model, x[200:]).ravel(), rtol=1e-5, atol=1e-5)
    assert plain.monitor_pred is None
    # another optimizer ignores the monitor rows
    adam = train(ModelConfig(hidden_layers=(8,), epochs=3, patience=None), x, y, x_scaler=xs, y_scaler=ys,
                 x_monitor=x[:10], y_monitor=y[:10])
    assert adam.monitor_loss == ()


def test_lbfgs_with_the_flat_caller_trains_the_same_weights(monkeypatch):
    import calib.nn.tf as nntf

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (200, 3))
    y = np.tanh(x @ np.array([1.0, -2.0, 0.5])) + rng.normal(0, 0.05, 200)
    xs, ys = fit_scaler(x[:150]), fit_scaler(y[:150])
    cfg = ModelConfig(hidden_layers=(12, 12), optimizer="lbfgs", epochs=150, patience=20)
    fast = train(cfg, x[:150], y[:150], x[150:], y[150:], x_scaler=xs, y_scaler=ys)
    monkeypatch.setattr(nntf, "flat_caller", lambda concrete: concrete)
    public = train(cfg, x[:150], y[:150], x[150:], y[150:], x_scaler=xs, y_scaler=ys)
    assert (fast.train_loss, fast.dev_loss, fast.best_epoch) == (public.train_loss, public.dev_loss, public.best_epoch)
    assert all(np.array_equal(a, b) for a, b in zip(fast.model.get_weights(), public.model.get_weights()))
