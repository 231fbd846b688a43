"""Tests of calib.nn.optimizers: the flat-vector update rules equal the Keras optimizers."""

from __future__ import annotations

import numpy as np
import pytest

from calib.nn import ModelConfig

def test_optimizer_steps_match_keras_optimizers():
    """The compiled loop's update rules equal Keras 3's SGD/RMSprop/Adam with their schedules."""
    import keras
    import tensorflow as tf

    from calib.nn.optimizers import hyper_vector, tf_apply_updates
    from calib.nn.training import _Plan

    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=12).astype(np.float32)
    grads = [rng.normal(size=12).astype(np.float32) for _ in range(6)]
    for name, schedule in [("sgd", "constant"), ("momentum", "exponential"), ("rmsprop", "inverse_time"), ("adam", "exponential")]:
        cfg = ModelConfig(optimizer=name, learning_rate=0.05, lr_schedule=schedule, decay_rate=0.5, decay_steps=2, momentum=0.8, rho=0.85, beta_1=0.8, beta_2=0.95, epsilon=1e-6)
        plan = _Plan((1,), 12, "tanh", "mse", name, schedule, False, False, False, 1, 1, 0, False)
        theta = tf.Variable(theta0)
        slots = [tf.Variable(tf.zeros(12)) for _ in range({"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[name])]
        hyper = tf.constant(hyper_vector(cfg))
        lr = {"constant": 0.05,
              "exponential": keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5),
              "inverse_time": keras.optimizers.schedules.InverseTimeDecay(0.05, 2, 0.5)}[schedule]
        opt = {"sgd": lambda: keras.optimizers.SGD(lr),
               "momentum": lambda: keras.optimizers.SGD(lr, momentum=0.8),
               "rmsprop": lambda: keras.optimizers.RMSprop(lr, rho=0.85, epsilon=1e-6),
               "adam": lambda: keras.optimizers.Adam(lr, beta_1=0.8, beta_2=0.95, epsilon=1e-6)}[name]()
        ref = keras.Variable(theta0)
        for t, g in enumerate(grads):
            tf_apply_updates(plan, theta, slots, tf.constant(g), tf.constant(float(t)), hyper)
            opt.apply_gradients([(tf.constant(g), ref)])
        np.testing.assert_allclose(theta.numpy(), ref.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
        assert float(opt.learning_rate) == pytest.approx(cfg.learning_rate_at(len(grads)), rel=1e-6)
