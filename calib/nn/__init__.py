"""The calibration network: its configuration, construction, training loop and model family.

A :class:`ModelConfig` (frozen, validated) describes one network and how to train it.
:func:`build_model` turns it into a plain Keras functional model that maps raw readings in
physical units (deg, degC, ...) to the target in its unit (hPa, % air saturation, ...): the
feature scaling and the inverse target scaling are ``keras.layers.Normalization`` layers inside
the graph, so the saved ``.keras`` file and its ONNX export need nothing else. :func:`train`
fits it with a compiled loop that runs a whole epoch per call; :func:`predict` runs inference
in large chunks; :func:`export_onnx` writes an ONNX file. A :class:`Member` of the model family
(``mlp``, ``hybrid``, ``physics``) is a network plus an optional classical physics fit
(:func:`fit_member`, :func:`predict_member`).

Modules
-------
:mod:`calib.nn.config`
    :class:`ModelConfig` and its validation.
:mod:`calib.nn.network`
    :func:`build_model`, :func:`zero_output`, :func:`predict`, :func:`export_onnx`.
:mod:`calib.nn.optimizers`
    The update rules of the first-order optimizers and the learning-rate schedules.
:mod:`calib.nn.training`
    :func:`train` (compiled epoch loop, full-batch L-BFGS, early stopping) and
    :class:`TrainResult`.
:mod:`calib.nn.stacked`
    :func:`train_stacked`: K networks of one shape (the folds of a trial) in one compiled call.
:mod:`calib.nn.family`
    The model family: :class:`Member`, :func:`fit_member`, :func:`fit_members`, :func:`refit_config`, ...
:mod:`calib.nn.tf`
    TensorFlow and Keras, imported lazily and quietly.

TensorFlow and Keras are imported inside the functions that need them, never at import time,
so ``from calib.nn import ModelConfig`` stays fast (``calib --help``).
"""

from __future__ import annotations

from .config import (
    ACTIVATIONS,
    AUTO,
    FAMILIES,
    INITS,
    LOSSES,
    LR_SCHEDULES,
    OPTIMIZERS,
    ModelConfig,
)
from .family import Member, fit_member, fit_members, predict_member, rebuild_member, refit_config
from .network import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, build_model, export_onnx, onnx_model, predict, zero_output
from .stacked import train_stacked
from .training import TrainResult, train

__all__ = [
    "ACTIVATIONS",
    "AUTO",
    "FAMILIES",
    "INITS",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "LOSSES",
    "ModelConfig",
    "TrainResult",
    "build_model",
    "train",
    "train_stacked",
    "predict",
    "export_onnx",
    "onnx_model",
    "zero_output",
    "ONNX_INPUT_NAME",
    "ONNX_OUTPUT_NAME",
    "Member",
    "fit_member",
    "fit_members",
    "predict_member",
    "rebuild_member",
    "refit_config",
]
