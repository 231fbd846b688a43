"""The optimizer update rules of the compiled training loop, on one flat weight vector.

The first-order optimizers (``sgd``, ``momentum``, ``rmsprop``, ``adam``) and the learning-rate
schedules follow Keras 3's ``SGD``, ``RMSprop``, ``Adam`` and ``keras.optimizers.schedules``,
written as plain TensorFlow ops on the flat vector of all weights (scikit-learn likewise keeps
its ``_stochastic_optimizers.py`` apart from the network). The numeric hyper-parameters travel as
one float32 vector (:func:`hyper_vector`, indexed by the ``H_*`` constants) so that configs
differing only in these numbers share one traced epoch graph (:mod:`calib.nn.training`).
Full-batch L-BFGS is a training loop of its own (scipy drives the iterations, early stopping
runs in its callback) and lives in :mod:`calib.nn.training`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ModelConfig

__all__ = [
    "H_BETA_1",
    "H_BETA_2",
    "H_DECAY_RATE",
    "H_DECAY_STEPS",
    "H_DROPOUT",
    "H_EPSILON",
    "H_L1",
    "H_L2",
    "H_LR",
    "H_MOMENTUM",
    "H_RHO",
    "hyper_vector",
    "n_slots",
    "tf_apply_updates",
    "tf_learning_rate",
    "tf_updates",
]

# Indices into the float32 vector of hyper-parameters passed to the compiled epoch, so that
# configs differing only in these numbers share one traced (and XLA-compiled) function.
H_LR, H_DECAY_RATE, H_DECAY_STEPS, H_BETA_1, H_BETA_2, H_EPSILON = 0, 1, 2, 3, 4, 5
H_MOMENTUM, H_RHO, H_L1, H_L2, H_DROPOUT = 6, 7, 8, 9, 10


def hyper_vector(config: ModelConfig) -> np.ndarray:
    """The float32 vector of ``config``'s numeric hyper-parameters, indexed by the ``H_*`` constants."""
    h = np.zeros(11, dtype=np.float32)
    h[H_LR] = config.learning_rate
    h[H_DECAY_RATE] = config.decay_rate
    h[H_DECAY_STEPS] = config.decay_steps
    h[H_BETA_1] = config.beta_1
    h[H_BETA_2] = config.beta_2
    h[H_EPSILON] = config.epsilon
    h[H_MOMENTUM] = config.momentum
    h[H_RHO] = config.rho
    h[H_L1] = config.l1
    h[H_L2] = config.l2
    h[H_DROPOUT] = config.dropout
    return h


def n_slots(optimizer: str) -> int:
    """Number of flat state vectors (slots) the first-order ``optimizer`` keeps."""
    return {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[optimizer]


def tf_learning_rate(plan: Any, t, hyper):
    """Learning rate at optimizer step ``t`` (float32 tensor, 0-based), as Keras' schedules.

    ``plan`` is the epoch plan of :mod:`calib.nn.training`; only its ``lr_schedule`` is read.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    lr0 = hyper[H_LR]
    if plan.lr_schedule == "exponential":
        return lr0 * tf.pow(hyper[H_DECAY_RATE], t / hyper[H_DECAY_STEPS])
    if plan.lr_schedule == "inverse_time":
        return lr0 / (1.0 + hyper[H_DECAY_RATE] * t / hyper[H_DECAY_STEPS])
    return lr0


def tf_updates(plan: Any, theta, slots, grad, t, hyper):
    """One optimizer step as a function: ``(theta, slots)`` after the step, inputs unchanged.

    The update rules of Keras 3's SGD, RMSprop and Adam on the flat weight vector ``theta``
    and the optimizer's flat state vectors ``slots``; ``t`` is the 0-based step (float32)
    before this update, like Keras' ``optimizer.iterations``. ``hyper[H_*]`` may be scalars
    (one model) or columns of shape ``(K, 1)`` broadcasting against ``theta`` of shape
    ``(K, P)``, with ``t`` of shape ``(K, 1)``: K models stacked, each with its own
    hyper-parameters and step (:mod:`calib.nn.stacked`). ``plan`` is an epoch plan; only
    its ``optimizer`` and ``lr_schedule`` are read.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    lr = tf_learning_rate(plan, t, hyper)
    if plan.optimizer == "sgd":
        return theta - lr * grad, ()
    if plan.optimizer == "momentum":
        (m,) = slots
        m = m * hyper[H_MOMENTUM] - lr * grad
        return theta + m, (m,)
    if plan.optimizer == "rmsprop":
        (v,) = slots
        rho = hyper[H_RHO]
        v = rho * v + (1.0 - rho) * tf.square(grad)
        return theta - lr * grad / tf.sqrt(v + hyper[H_EPSILON]), (v,)
    m, v = slots
    b1, b2 = hyper[H_BETA_1], hyper[H_BETA_2]
    local = t + 1.0
    alpha = lr * tf.sqrt(1.0 - tf.pow(b2, local)) / (1.0 - tf.pow(b1, local))
    m = m + (grad - m) * (1.0 - b1)
    v = v + (tf.square(grad) - v) * (1.0 - b2)
    return theta - m * alpha / (tf.sqrt(v) + hyper[H_EPSILON]), (m, v)


def tf_apply_updates(plan: Any, theta, slots, grad, t, hyper) -> None:
    """One optimizer step with the update rules of Keras 3's SGD, RMSprop and Adam, in place.

    ``theta`` is the flat ``tf.Variable`` of all weights, ``slots`` the optimizer's flat
    state variables, ``t`` the 0-based step (float32 tensor) before this update, like Keras'
    ``optimizer.iterations``. Written with plain ops on one flat vector instead of
    ``keras.optimizers`` (a dozen ops per weight tensor) so that a step costs a few ops,
    the epoch graph takes the optimizer state as arguments (one trace serves many models)
    and traces fast; ``tests/test_nn_optimizers.py`` checks it against the Keras optimizers.
    The arithmetic is :func:`tf_updates`'. ``plan`` is the epoch plan of
    :mod:`calib.nn.training`; only its ``optimizer`` and ``lr_schedule`` are read.
    """
    new_theta, new_slots = tf_updates(plan, theta.read_value(), tuple(s.read_value() for s in slots), grad, t, hyper)
    for var, value in zip(slots, new_slots):
        var.assign(value)
    theta.assign(new_theta)
