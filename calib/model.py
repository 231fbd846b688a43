"""The feed-forward calibration network: configuration, construction and a fast training loop.

A :class:`ModelConfig` (frozen, validated) describes one network and how to train it.
:func:`build_model` turns it into a plain Keras functional model that maps raw readings
in physical units (deg, degC, ...) to the target in its unit (hPa, % air saturation, ...):
the feature scaling and the inverse target scaling are ``keras.layers.Normalization``
layers inside the graph, so the saved ``.keras`` file and its ONNX export need nothing
else. :func:`train` fits it with a compiled loop that runs a whole epoch per call;
:func:`predict` runs inference in large chunks; :func:`export_onnx` writes an ONNX file.

TensorFlow and Keras are imported inside the functions that need them, never at module
import time, so ``from calib.model import ModelConfig`` stays fast (``calib --help``).

Why a custom loop
-----------------
For the small networks used here (a few thousand weights) ``keras.Model.fit`` is bound by
its per-batch overhead (callbacks, logs, one function call per step): about 2 ms a step.
:func:`train` runs a whole epoch in one call of a ``tf.function``: the rows are shuffled
with a permutation drawn on the host from a seeded ``numpy`` generator, padded to whole
batches with zero-weight rows (so every mini-batch has a static shape and the last one
still averages over its real rows only), and a ``tf.while_loop`` takes one optimizer step
per batch on a single flat weight vector; the epoch's training loss, the dev loss and a
finiteness flag come back from the same call. The function takes the weights, the
optimizer state, the data and the hyper-parameters as arguments, so it is traced once per
network shape and batch layout and reused by later folds and trials (a small LRU cache,
no growth per model). Long runs are compiled with XLA (``jit_compile``), which makes a
step 2-4x cheaper again. ``benchmarks/train_speed.py`` compares the loop with ``model.fit``
and scikit-learn's ``MLPRegressor``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, TrainingError
from .scaling import Scaler

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps the import TF-free
    import keras

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
    "predict",
    "export_onnx",
    "ONNX_INPUT_NAME",
    "ONNX_OUTPUT_NAME",
]

ACTIVATIONS = ("relu", "elu", "tanh", "sigmoid", "identity")
INITS = ("glorot", "he", "truncated_normal")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "lbfgs")
LR_SCHEDULES = ("constant", "exponential", "inverse_time")
LOSSES = ("mse", "mae", "huber")
#: Model families: a plain network, the classical physics fit plus a network learning its
#: residual, or the classical physics fit alone (chosen by k-fold like any hyperparameter).
FAMILIES = ("mlp", "hybrid", "physics")
#: ``patience`` value meaning "derive it from the number of mini-batches per epoch".
AUTO = -1
#: Optimizer steps that ``epochs = "auto"`` aims at (clipped to 100..20000 epochs), and that
#: ``patience = "auto"`` waits for without improvement (at least 50 epochs).
AUTO_STEPS = 30_000
AUTO_PATIENCE_STEPS = 2_000
#: ``optimizer = "lbfgs"``: iterations of ``epochs = "auto"`` and of ``patience = "auto"``.
LBFGS_AUTO_ITERATIONS = 5_000
LBFGS_AUTO_PATIENCE = 500

#: Name of the single input of an ONNX file written by :func:`export_onnx`.
ONNX_INPUT_NAME = "readings"
#: Name of the single output of an ONNX file written by :func:`export_onnx`.
ONNX_OUTPUT_NAME = "prediction"

_INT_FIELDS = ("decay_steps", "seed")
_FLOAT_FIELDS = (
    "init_stddev",
    "learning_rate",
    "momentum",
    "beta_1",
    "beta_2",
    "rho",
    "epsilon",
    "decay_rate",
    "min_delta",
    "l1",
    "l2",
    "dropout",
)


def _fmt(value: Any) -> str:
    return repr(value)


def _err(rule: str, name: str, value: Any) -> ConfigError:
    return ConfigError(f"{rule} must hold, got {name}={_fmt(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


@dataclass(frozen=True)
class ModelConfig:
    """A feed-forward regressor and how to train it; validated on creation.

    Parameters
    ----------
    hidden_layers : tuple of int, default=(32, 32)
        Width of each hidden ``Dense`` layer, each >= 1. An empty tuple gives a linear model.
    activation : {"tanh", "relu", "elu", "sigmoid", "identity"}, default="tanh"
        Activation of the hidden layers. ``tanh`` is the default because calibration curves
        are smooth, low-dimensional and fitted from small data: tanh gives a smooth
        (infinitely differentiable), zero-centred fit without the kinks of ``relu`` (a
        piecewise-linear interpolant with visible corners and dead units in small networks),
        and pairs with the ``glorot`` initialisation that was derived for it.
    init : {"glorot", "he", "truncated_normal"}, default="glorot"
        Kernel initialisation: Glorot uniform, He normal, or a truncated normal with
        standard deviation ``init_stddev``. Biases start at zero.
    init_stddev : float, default=0.05
        Standard deviation of ``truncated_normal`` (> 0 must hold for that init).
    optimizer : {"adam", "sgd", "momentum", "rmsprop", "lbfgs"}, default="adam"
        ``sgd`` is plain mini-batch gradient descent, ``momentum`` is SGD with ``momentum``.
        ``lbfgs`` is full-batch L-BFGS (one epoch = one iteration; ``batch_size``,
        ``learning_rate`` and the schedule do not apply; no dropout); it often fits small,
        smooth calibration data best.
    learning_rate : float, default=1e-3
        Initial learning rate (> 0).
    momentum : float, default=0.9
        Momentum of the ``momentum`` optimizer, 0 <= momentum < 1.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates, each in [0, 1).
    rho : float, default=0.9
        RMSProp's decay rate, in [0, 1).
    epsilon : float, default=1e-7
        Adam's and RMSProp's denominator guard (> 0).
    lr_schedule : {"constant", "exponential", "inverse_time"}, default="constant"
        Learning-rate decay per optimizer step (iteration) ``t``:
        ``exponential``: ``lr * decay_rate ** (t / decay_steps)``;
        ``inverse_time``: ``lr / (1 + decay_rate * t / decay_steps)``.
    decay_rate : float, default=0.5
        Decay rate of the schedule (> 0).
    decay_steps : int, default=1000
        Decay period of the schedule in optimizer steps (>= 1).
    batch_size : int or None, default=64
        Rows per mini-batch (>= 1; 1 is stochastic gradient descent). ``None`` uses the full
        training set as one batch; a batch larger than the training set is the full batch.
    epochs : int or None, default=None ("auto")
        Maximum number of passes over the training rows (>= 1). ``None`` (``"auto"`` in
        TOML) adapts to the data: about 30000 optimizer steps, 100..20000 epochs (see
        :meth:`budget`), so small certificates and large batch files both train enough.
    patience : int, "auto" or None, default="auto"
        Stop after this many epochs (>= 1) without an improvement of the monitored loss
        (dev loss when dev data are given, else training loss) and restore the best weights.
        ``"auto"`` waits about 2000 optimizer steps (at least 50 epochs); ``None``
        (``"none"`` in TOML) disables early stopping: all epochs run, the last weights are kept.
    min_delta : float, default=0.0
        Smallest decrease of the monitored loss that counts as an improvement (>= 0).
    l1, l2 : float, default=0.0
        L1 and L2 penalty factors on the kernels of all Dense layers (>= 0).
    dropout : float, default=0.0
        Dropout rate after each hidden layer, 0 <= dropout < 1 (active in training only).
    loss : {"mse", "mae", "huber"}, default="mse"
        Data loss on the scaled target (``huber`` with delta 1 in scaled units).
    family : {"mlp", "hybrid", "physics"}, default="mlp"
        ``mlp``: the network maps readings to O2. ``hybrid``: the classical physics fit
        (:mod:`calib.physics`, fitted on the same training rows) plus a network that learns
        its residual. ``physics``: the classical fit alone. All three export to one ONNX
        graph; a sweep can choose between them by k-fold (see :mod:`calib.hybrid`).
    seed : int, default=0
        Seed (>= 0) of the initial weights, dropout masks and shuffling.

    Raises
    ------
    ConfigError
        If a value breaks its rule; the message names the parameter, the rule and the value.

    Examples
    --------
    >>> cfg = ModelConfig(hidden_layers=(16, 16), learning_rate=3e-3)
    >>> cfg.replace(epochs=50).epochs
    50
    """

    hidden_layers: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    init: str = "glorot"
    init_stddev: float = 0.05
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9
    epsilon: float = 1e-7
    lr_schedule: str = "constant"
    decay_rate: float = 0.5
    decay_steps: int = 1000
    batch_size: int | None = 64
    epochs: int | None = None
    patience: int | None = AUTO
    min_delta: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    loss: str = "mse"
    family: str = "mlp"
    seed: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        # ---- types (normalised so that equal configs compare and hash equal)
        layers = self.hidden_layers
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            if _is_int(layers):
                layers = (layers,)
            else:
                raise ConfigError(
                    f"hidden_layers must be a sequence of integers, got hidden_layers={layers!r}"
                )
        layers = tuple(layers)
        for w in layers:
            if not _is_int(w):
                raise ConfigError(
                    f"hidden_layers must be a sequence of integers, got hidden_layers={layers!r}"
                )
        put("hidden_layers", tuple(int(w) for w in layers))
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not _is_int(value):
                raise ConfigError(f"{name} must be an integer, got {name}={value!r}")
            put(name, int(value))
        for name in ("batch_size", "patience", "epochs"):
            value = getattr(self, name)
            if value is not None:
                if not _is_int(value):
                    raise ConfigError(f"{name} must be an integer or None, got {name}={value!r}")
                put(name, int(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(float(value)):
                raise ConfigError(f"{name} must be a finite number, got {name}={value!r}")
            put(name, float(value))
        for name, choices in (
            ("activation", ACTIVATIONS),
            ("init", INITS),
            ("optimizer", OPTIMIZERS),
            ("lr_schedule", LR_SCHEDULES),
            ("loss", LOSSES),
            ("family", FAMILIES),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(
                    f"{name} must be one of {', '.join(choices)}, got {name}={value!r}"
                )

        # ---- rules, one error each
        if any(w < 1 for w in self.hidden_layers):
            raise _err("every hidden layer width >= 1", "hidden_layers", self.hidden_layers)
        if self.init == "truncated_normal" and not self.init_stddev > 0:
            raise _err("init_stddev > 0", "init_stddev", self.init_stddev)
        if not self.learning_rate > 0:
            raise _err("learning_rate > 0", "learning_rate", self.learning_rate)
        if not 0 <= self.momentum < 1:
            raise _err("0 <= momentum < 1", "momentum", self.momentum)
        if not 0 <= self.beta_1 < 1:
            raise _err("0 <= beta_1 < 1", "beta_1", self.beta_1)
        if not 0 <= self.beta_2 < 1:
            raise _err("0 <= beta_2 < 1", "beta_2", self.beta_2)
        if not 0 <= self.rho < 1:
            raise _err("0 <= rho < 1", "rho", self.rho)
        if not self.epsilon > 0:
            raise _err("epsilon > 0", "epsilon", self.epsilon)
        if not self.decay_rate > 0:
            raise _err("decay_rate > 0", "decay_rate", self.decay_rate)
        if not self.decay_steps >= 1:
            raise _err("decay_steps >= 1", "decay_steps", self.decay_steps)
        if self.batch_size is not None and not self.batch_size >= 1:
            raise _err("batch_size >= 1 (or None for the full batch)", "batch_size", self.batch_size)
        if self.epochs is not None and not self.epochs >= 1:
            raise _err("epochs >= 1 (or \"auto\")", "epochs", self.epochs)
        if self.patience is not None and self.patience != AUTO and not self.patience >= 1:
            raise _err("patience >= 1 (or \"auto\", or \"none\" to disable early stopping)",
                       "patience", self.patience)
        if not self.min_delta >= 0:
            raise _err("min_delta >= 0", "min_delta", self.min_delta)
        if not self.l1 >= 0:
            raise _err("l1 >= 0", "l1", self.l1)
        if not self.l2 >= 0:
            raise _err("l2 >= 0", "l2", self.l2)
        if not 0 <= self.dropout < 1:
            raise _err("0 <= dropout < 1", "dropout", self.dropout)
        if not self.seed >= 0:
            raise _err("seed >= 0", "seed", self.seed)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Build a config from a mapping, e.g. a TOML ``[model]`` table or :meth:`to_dict` output.

        Parameters
        ----------
        d : Mapping
            Keys are the field names; missing keys take their defaults. Lists become tuples;
            ``batch_size = "full"`` or ``0`` means the full batch (``None``) and
            ``patience = "none"`` disables early stopping, since TOML has no null.

        Returns
        -------
        ModelConfig

        Raises
        ------
        ConfigError
            If ``d`` is not a mapping, has a key that is not a field (the message lists the
            valid keys), or a value breaks its rule.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"model config must be a table/mapping, got {type(d).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in d if k not in valid)
        if unknown:
            from .config import did_you_mean

            raise ConfigError(
                f"unknown model config key(s): {', '.join(unknown)}{did_you_mean(unknown[0], valid)} "
                f"(valid keys: {', '.join(valid)})"
            )
        kwargs = dict(d)
        if isinstance(kwargs.get("hidden_layers"), list):
            kwargs["hidden_layers"] = tuple(kwargs["hidden_layers"])
        bs = kwargs.get("batch_size", 64)
        if (isinstance(bs, str) and bs.strip().lower() == "full") or (_is_int(bs) and bs == 0):
            kwargs["batch_size"] = None
        pat = kwargs.get("patience", AUTO)
        if isinstance(pat, str) and pat.strip().lower() == "none":
            kwargs["patience"] = None
        elif isinstance(pat, str) and pat.strip().lower() == "auto":
            kwargs["patience"] = AUTO
        ep = kwargs.get("epochs")
        if isinstance(ep, str) and ep.strip().lower() == "auto":
            kwargs["epochs"] = None
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``hidden_layers`` as a list, ``None`` kept as ``null``)."""
        d = dataclasses.asdict(self)
        d["hidden_layers"] = list(self.hidden_layers)
        if self.patience == AUTO:
            d["patience"] = "auto"
        if self.epochs is None:
            d["epochs"] = "auto"
        return d

    def budget(self, n_batches: int) -> tuple[int, int | None]:
        """The epochs and patience a training with ``n_batches`` mini-batches per epoch runs.

        ``epochs = "auto"`` aims at :data:`AUTO_STEPS` optimizer steps (so a 40-row
        certificate trained full-batch gets as many updates as a 100k-row batch file),
        clipped to 100..20000 epochs; ``patience = "auto"`` waits
        :data:`AUTO_PATIENCE_STEPS` steps, at least 50 epochs.
        """
        nb = max(1, int(n_batches))
        epochs = self.epochs if self.epochs is not None else int(min(20_000, max(100, -(-AUTO_STEPS // nb))))
        if self.patience == AUTO:
            patience: int | None = int(max(50, -(-AUTO_PATIENCE_STEPS // nb)))
        else:
            patience = self.patience
        return epochs, patience

    def learning_rate_at(self, step: int) -> float:
        """Learning rate the schedule gives at optimizer step ``step`` (0-based iterations).

        The formulas of ``keras.optimizers.schedules`` (``staircase=False``), applied per
        optimizer step, not per epoch. ``train`` uses the same in its compiled loop.

        Examples
        --------
        >>> ModelConfig(lr_schedule="exponential", learning_rate=0.1, decay_rate=0.5,
        ...             decay_steps=10).learning_rate_at(20)
        0.025
        """
        if self.lr_schedule == "exponential":
            return self.learning_rate * self.decay_rate ** (step / self.decay_steps)
        if self.lr_schedule == "inverse_time":
            return self.learning_rate / (1.0 + self.decay_rate * step / self.decay_steps)
        return self.learning_rate

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with ``changes`` applied, validated like a new config.

        Raises
        ------
        ConfigError
            If a change names an unknown field or breaks a rule.
        """
        valid = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(k for k in changes if k not in valid)
        if unknown:
            from .config import did_you_mean

            raise ConfigError(
                f"unknown model config key(s): {', '.join(unknown)}{did_you_mean(unknown[0], valid)} "
                f"(valid keys: {', '.join(valid)})"
            )
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model : keras.Model
        The trained network, raw readings -> target in its unit; it holds the weights of
        ``best_epoch``.
    train_loss : tuple of float
        Per epoch: mean data loss over the epoch's mini-batches (as ``model.fit`` reports
        it), in scaled target units, penalties excluded, dropout active.
    dev_loss : tuple of float
        Per epoch: data loss on the dev rows after the epoch, scaled target units, inference
        mode. Empty without dev data.
    best_epoch : int
        1-based epoch whose weights ``model`` holds: the epoch of the lowest monitored loss
        when early stopping is on, else the last epoch. 0 for a ``hybrid`` that kept its
        initial weights (the physics fit: no epoch improved the monitored loss).
    epochs_run : int
        Epochs actually run (< ``config.epochs`` when early stopping ended training).
    seconds : float
        Wall time of :func:`train`, including model construction and graph tracing.
    iterations : int
        Optimizer steps taken.
    final_learning_rate : float
        Learning rate the schedule gives at step ``iterations``, i.e. for the next step (what
        a Keras optimizer's ``learning_rate`` reports after that many steps; equal to
        ``config.learning_rate`` for the constant schedule).
    """

    model: Any = field(repr=False)
    train_loss: tuple[float, ...]
    dev_loss: tuple[float, ...]
    best_epoch: int
    epochs_run: int
    seconds: float
    iterations: int = 0
    final_learning_rate: float = float("nan")


# --------------------------------------------------------------------------- building


def _layer_seeds(seed: int, n: int) -> list[int]:
    """``n`` well-separated 31-bit seeds derived from one user seed."""
    return [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(seed).generate_state(max(n, 1))][:n]


def _initializer(config: ModelConfig, seed: int):
    from ._tf import keras as _quiet_keras

    keras = _quiet_keras()

    if config.init == "glorot":
        return keras.initializers.GlorotUniform(seed=seed)
    if config.init == "he":
        return keras.initializers.HeNormal(seed=seed)
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=config.init_stddev, seed=seed)


def _check_scaler(scaler: Scaler, n: int, what: str) -> None:
    if not isinstance(scaler, Scaler):
        raise ConfigError(f"{what} must be a calib.scaling.Scaler, got {type(scaler).__name__}")
    if len(scaler.center) != n or len(scaler.scale) != n:
        raise ConfigError(
            f"{what} has {len(scaler.center)} column(s) but the model has {n}"
        )


def build_model(
    config: ModelConfig, n_inputs: int, n_outputs: int, x_scaler: Scaler, y_scaler: Scaler
) -> keras.Model:
    """Build the (untrained) network for ``config``.

    The graph is ``Input(n_inputs, float32, name="readings")`` -> ``Normalization``
    (``z = (x - center) / scale`` of ``x_scaler``) -> ``Dense`` hidden layers (each followed by
    ``Dropout`` when ``config.dropout > 0``) -> linear ``Dense(n_outputs)`` named
    ``"output_scaled"`` -> inverted ``Normalization`` (``y = z * scale + center`` of
    ``y_scaler``). Only built-in layers are used, so the model saves as ``.keras``, loads with
    ``keras.models.load_model(path, safe_mode=True)`` without ``custom_objects`` and exports to
    ONNX.

    Parameters
    ----------
    config : ModelConfig
    n_inputs : int
        Number of input columns (>= 1), raw readings in physical units.
    n_outputs : int
        Number of targets (>= 1): 1 = O2 only, 2 = O2 and temperature (multi-task).
    x_scaler, y_scaler : Scaler
        Fitted on the training rows; ``n_inputs`` and ``n_outputs`` columns.

    Returns
    -------
    keras.Model
        Deterministic in ``config.seed``: the same config gives the same initial weights.

    Raises
    ------
    ConfigError
        If ``n_inputs`` or ``n_outputs`` < 1 or a scaler has the wrong number of columns.
    """
    from ._tf import keras as _quiet_keras

    keras = _quiet_keras()

    if not _is_int(n_inputs) or n_inputs < 1:
        raise _err("n_inputs >= 1", "n_inputs", n_inputs)
    if not _is_int(n_outputs) or n_outputs < 1:
        raise _err("n_outputs >= 1", "n_outputs", n_outputs)
    _check_scaler(x_scaler, n_inputs, "x_scaler")
    _check_scaler(y_scaler, n_outputs, "y_scaler")

    n_dense = len(config.hidden_layers) + 1
    init_seeds = _layer_seeds(config.seed, 2 * n_dense)
    drop_seeds = init_seeds[n_dense:]
    reg = (
        keras.regularizers.L1L2(l1=config.l1, l2=config.l2)
        if (config.l1 > 0 or config.l2 > 0)
        else None
    )
    activation = "linear" if config.activation == "identity" else config.activation

    x_center = np.asarray(x_scaler.center, dtype=np.float64)
    x_var = np.asarray(x_scaler.scale, dtype=np.float64) ** 2
    y_center = np.asarray(y_scaler.center, dtype=np.float64)
    y_var = np.asarray(y_scaler.scale, dtype=np.float64) ** 2

    inputs = keras.Input(shape=(int(n_inputs),), dtype="float32", name="readings")
    h = keras.layers.Normalization(
        mean=x_center.tolist(), variance=x_var.tolist(), name="input_scaling"
    )(inputs)
    for i, width in enumerate(config.hidden_layers):
        h = keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=_initializer(config, init_seeds[i]),
            bias_initializer="zeros",
            kernel_regularizer=reg,
            name=f"hidden_{i + 1}",
        )(h)
        if config.dropout > 0:
            h = keras.layers.Dropout(config.dropout, seed=drop_seeds[i], name=f"dropout_{i + 1}")(h)
    z = keras.layers.Dense(
        int(n_outputs),
        activation=None,
        kernel_initializer=_initializer(config, init_seeds[n_dense - 1]),
        bias_initializer="zeros",
        kernel_regularizer=reg,
        name="output_scaled",
    )(h)
    outputs = keras.layers.Normalization(
        mean=y_center.tolist(), variance=y_var.tolist(), invert=True, name="output"
    )(z)
    model = keras.Model(inputs, outputs, name="calib_mlp")
    if config.family == "hybrid":
        zero_output(model, y_scaler, first_only=True)
    elif config.family == "physics":
        zero_output(model, y_scaler)
    return model


def zero_output(model: keras.Model, y_scaler: Scaler, first_only: bool = False) -> None:
    """Make the network's outputs (or only its first) exactly 0 in target units.

    Those columns of the ``output_scaled`` kernel are set to 0 and their biases to
    ``-center / scale``, so the inverted output scaling gives ``z * scale + center = 0``.
    A ``hybrid`` member (physics fit + network on its residual, O2 first) therefore starts
    as the physics fit itself, and training moves it away only as far as the data ask (the
    zero-initialised residual branch of ReZero/Fixup); the hidden layers keep their random
    initial weights, so gradients flow from the first step on. A ``physics`` member keeps
    all outputs at 0 (with an identity output scaling, exactly 0.0).
    """
    last = model.get_layer("output_scaled")
    kernel, bias = (w.copy() for w in last.get_weights())
    center = np.asarray(y_scaler.center, dtype=np.float64).reshape(-1)
    scale = np.asarray(y_scaler.scale, dtype=np.float64).reshape(-1)
    cols = slice(0, 1) if first_only else slice(None)
    kernel[:, cols] = 0.0
    bias[cols] = -center[cols] / scale[cols]
    last.set_weights([kernel, bias])


# --------------------------------------------------------------------------- training

# Indices into the float32 vector of hyper-parameters passed to the compiled epoch, so that
# configs differing only in these numbers share one traced (and XLA-compiled) function.
_H_LR, _H_DECAY_RATE, _H_DECAY_STEPS, _H_BETA_1, _H_BETA_2, _H_EPSILON = 0, 1, 2, 3, 4, 5
_H_MOMENTUM, _H_RHO, _H_L1, _H_L2, _H_DROPOUT = 6, 7, 8, 9, 10

#: Rows of a full batch and of the dev set are padded (with zero weight) to a multiple of
#: this, so that folds whose sizes differ by a row or two share one compiled function.
_PAD_ROWS = 64
#: Compiled epoch functions kept (least recently used dropped): bounded, no growth per model.
_CACHE_SIZE = 8
#: XLA compilation of the epoch costs 0.5-1.2 s more than tracing it (once per plan and
#: process) and makes each optimizer step 2-4x cheaper (30-40 instead of 90-120 us for 2x32
#: tanh, batch 32, on the shared 2-core development machine); it pays off from roughly this
#: many steps.
_XLA_MIN_STEPS = 15_000

_EPOCH_CACHE: OrderedDict[Any, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Plan:
    """Everything that shapes the traced epoch graph (hashable cache key)."""

    widths: tuple[int, ...]  # hidden widths + n_outputs
    n_inputs: int
    activation: str
    loss: str
    optimizer: str
    lr_schedule: str
    dropout: bool
    l1: bool
    l2: bool
    n_batches: int
    batch: int
    n_dev: int  # padded dev rows, 0 without dev data
    xla: bool


def _hyper_vector(config: ModelConfig) -> np.ndarray:
    h = np.zeros(11, dtype=np.float32)
    h[_H_LR] = config.learning_rate
    h[_H_DECAY_RATE] = config.decay_rate
    h[_H_DECAY_STEPS] = config.decay_steps
    h[_H_BETA_1] = config.beta_1
    h[_H_BETA_2] = config.beta_2
    h[_H_EPSILON] = config.epsilon
    h[_H_MOMENTUM] = config.momentum
    h[_H_RHO] = config.rho
    h[_H_L1] = config.l1
    h[_H_L2] = config.l2
    h[_H_DROPOUT] = config.dropout
    return h


def _n_slots(optimizer: str) -> int:
    return {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[optimizer]


def _tf_learning_rate(plan: _Plan, t, hyper):
    """Learning rate at optimizer step ``t`` (float32 tensor, 0-based), as Keras' schedules."""
    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    lr0 = hyper[_H_LR]
    if plan.lr_schedule == "exponential":
        return lr0 * tf.pow(hyper[_H_DECAY_RATE], t / hyper[_H_DECAY_STEPS])
    if plan.lr_schedule == "inverse_time":
        return lr0 / (1.0 + hyper[_H_DECAY_RATE] * t / hyper[_H_DECAY_STEPS])
    return lr0


def _tf_apply_updates(plan: _Plan, theta, slots, grad, t, hyper) -> None:
    """One optimizer step with the update rules of Keras 3's SGD, RMSprop and Adam.

    ``theta`` is the flat vector of all weights, ``slots`` the optimizer's flat state
    vectors, ``t`` the 0-based step (float32 tensor) before this update, like Keras'
    ``optimizer.iterations``. Written with plain ops on one flat vector instead of
    ``keras.optimizers`` (a dozen ops per weight tensor) so that a step costs a few ops,
    the epoch graph takes the optimizer state as arguments (one trace serves many models)
    and traces fast; ``tests/test_model.py`` checks it against the Keras optimizers.
    """
    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    lr = _tf_learning_rate(plan, t, hyper)
    if plan.optimizer == "sgd":
        theta.assign_sub(lr * grad)
    elif plan.optimizer == "momentum":
        (m,) = slots
        m.assign(m * hyper[_H_MOMENTUM] - lr * grad)
        theta.assign_add(m)
    elif plan.optimizer == "rmsprop":
        (v,) = slots
        rho = hyper[_H_RHO]
        v.assign(rho * v + (1.0 - rho) * tf.square(grad))
        theta.assign_sub(lr * grad / tf.sqrt(v + hyper[_H_EPSILON]))
    else:
        m, v = slots
        b1, b2 = hyper[_H_BETA_1], hyper[_H_BETA_2]
        local = t + 1.0
        alpha = lr * tf.sqrt(1.0 - tf.pow(b2, local)) / (1.0 - tf.pow(b1, local))
        m.assign_add((grad - m) * (1.0 - b1))
        v.assign_add((tf.square(grad) - v) * (1.0 - b2))
        theta.assign_sub(m * alpha / (tf.sqrt(v) + hyper[_H_EPSILON]))


def _weight_shapes(plan: _Plan) -> list[tuple[int, ...]]:
    """Shapes of (kernel, bias) of every Dense layer, in the order of the flat vector."""
    shapes: list[tuple[int, ...]] = []
    fan_in = plan.n_inputs
    for width in plan.widths:
        shapes += [(fan_in, width), (width,)]
        fan_in = width
    return shapes


def _build_epoch_fn(plan: _Plan):
    """Trace-once function: ``epoch(theta, slots, step, x, z, w, perm, xd, zd, wd, hyper, seed)``.

    ``theta`` is the flat weight vector (kernel and bias of each Dense layer in turn).
    ``x``/``z``/``w`` hold the scaled training rows padded to ``n_batches * batch`` rows
    (weight 0 on padding) and ``perm`` a permutation of the real rows followed by the padding
    rows, so every mini-batch has a static shape and the last one carries the leftover rows
    (its loss is the mean over its real rows, as for a partial batch). Returns
    ``(train_loss, dev_loss, finite, next_learning_rate)``.
    """
    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    activation = {
        "relu": tf.nn.relu,
        "elu": tf.nn.elu,
        "tanh": tf.tanh,
        "sigmoid": tf.sigmoid,
        "identity": lambda h: h,
    }[plan.activation]
    nb, bs, d, k = plan.n_batches, plan.batch, plan.n_inputs, plan.widths[-1]
    n_layers = len(plan.widths)
    shapes = _weight_shapes(plan)
    sizes = [int(np.prod(s)) for s in shapes]
    kernel_mask = np.concatenate(
        [np.full(size, 1.0 if len(s) == 2 else 0.0, np.float32) for s, size in zip(shapes, sizes)]
    )

    def forward(theta, x, training, hyper, seed, t):
        parts = tf.split(theta, sizes)
        h = x
        for i in range(n_layers):
            h = tf.matmul(h, tf.reshape(parts[2 * i], shapes[2 * i])) + parts[2 * i + 1]
            if i < n_layers - 1:
                h = activation(h)
                if training and plan.dropout:
                    rate = hyper[_H_DROPOUT]
                    u = tf.random.stateless_uniform(tf.shape(h), seed=tf.stack([seed, t * 64 + i]))
                    h = tf.where(u >= rate, h / (1.0 - rate), tf.zeros_like(h))
        return h

    def pointwise(diff):
        return _pointwise(plan.loss, diff, tf.math)

    def data_loss(pred, z, w):
        return tf.reduce_sum(w * pointwise(pred - z)) / (tf.reduce_sum(w) * float(k))

    def penalty(theta, hyper):
        # the formula of keras.regularizers.L1L2 summed over the kernels (biases are free)
        mask = tf.constant(kernel_mask)
        total = tf.constant(0.0, tf.float32)
        if plan.l1:
            total += hyper[_H_L1] * tf.reduce_sum(mask * tf.abs(theta))
        if plan.l2:
            total += hyper[_H_L2] * tf.reduce_sum(mask * tf.square(theta))
        return total

    def epoch(theta, slots, step, x, z, w, perm, xd, zd, wd, hyper, seed):
        xs = tf.reshape(tf.gather(x, perm), (nb, bs, d))
        zs = tf.reshape(tf.gather(z, perm), (nb, bs, k))
        ws = tf.reshape(tf.gather(w, perm), (nb, bs, 1))

        def cond(i, total, finite):
            return tf.logical_and(i < nb, finite)

        def body(i, total, finite):
            xb, zb, wb = xs[i], zs[i], ws[i]
            t = step.read_value()
            with tf.GradientTape() as tape:
                current = theta.read_value()
                tape.watch(current)
                pred = forward(current, xb, True, hyper, seed, t)
                data = data_loss(pred, zb, wb)
                objective = data + penalty(current, hyper) if plan.l1 or plan.l2 else data
            grad = tape.gradient(objective, current)
            _tf_apply_updates(plan, theta, slots, grad, tf.cast(t, tf.float32), hyper)
            step.assign_add(1)
            total += data * tf.reduce_sum(wb)
            return i + 1, total, tf.logical_and(finite, tf.math.is_finite(data))

        _, total, finite = tf.while_loop(
            cond, body, (tf.constant(0), tf.constant(0.0), tf.constant(True))
        )
        train_loss = total / tf.reduce_sum(w)
        if plan.n_dev:
            pred = forward(theta.read_value(), xd, False, hyper, seed, step.read_value())
            dev_loss = data_loss(pred, zd, wd)
        else:
            dev_loss = tf.constant(float("nan"))
        lr_next = _tf_learning_rate(plan, tf.cast(step.read_value(), tf.float32), hyper)
        return train_loss, dev_loss, finite, lr_next

    # autograph=False: the loop is an explicit tf.while_loop and every Python branch depends
    # only on the static plan; AutoGraph would add ~0.7 s of source transformation.
    return tf.function(epoch, jit_compile=plan.xla, autograph=False)


def _choose_xla(plan: _Plan, steps: int) -> bool:
    """Auto-select XLA from this run's own work only (``epochs * batches``), never from what
    ran before in the process, so the same config and data always take the same code path
    and give the same numbers whether they run first or fiftieth in a worker."""
    return steps >= _XLA_MIN_STEPS


def _epoch_fn(plan: _Plan):
    with _CACHE_LOCK:
        fn = _EPOCH_CACHE.get(plan)
        if fn is None:
            fn = _build_epoch_fn(plan)
            _EPOCH_CACHE[plan] = fn
            while len(_EPOCH_CACHE) > _CACHE_SIZE:
                _EPOCH_CACHE.popitem(last=False)
        else:
            _EPOCH_CACHE.move_to_end(plan)
        return fn


def _as_2d(a: Any, name: str, n_cols: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be 1-D or 2-D, got an array of shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ConfigError(f"{name} must have at least one row, got 0 rows")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ConfigError(f"{name} must have {n_cols} column(s), got {arr.shape[1]}")
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ConfigError(f"{name} must be finite, found {bad} NaN/inf value(s)")
    return arr


def _padded(a: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, a.shape[1]), dtype=np.float32)
    out[: a.shape[0]] = a
    return out


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _diverged(config: ModelConfig, epoch: int, value: float) -> TrainingError:
    what = "nan" if math.isnan(value) else "inf"
    init = (
        f"init_stddev={config.init_stddev:g}"
        if config.init == "truncated_normal"
        else f"init={config.init}"
    )
    return TrainingError(
        f"training diverged at epoch {epoch}: loss is {what}; likely causes: learning rate too "
        f"large (learning_rate={config.learning_rate:g}), unscaled inputs, initial weights too "
        f"large ({init})"
    )


def _initial_loss(config: ModelConfig, model: Any, x: np.ndarray, y: np.ndarray, y_scaler: Scaler) -> float:
    """The data loss (scaled target units, as the training loop computes it) of the initial weights."""
    pred = np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64).reshape(y.shape)
    return float(np.mean(_pointwise(config.loss, y_scaler.transform(pred) - y_scaler.transform(y), np)))


def _pointwise(loss: str, diff: Any, ops: Any) -> Any:
    """Per-element data loss of a scaled residual; ``ops`` is ``tf.math`` or ``numpy``.

    ``mse``: diff**2; ``mae``: |diff|; ``huber``: delta 1 scaled unit.
    """
    if loss == "mse":
        return ops.square(diff)
    a = ops.abs(diff)
    if loss == "mae":
        return a
    q = ops.minimum(a, 1.0)
    return 0.5 * ops.square(q) + (a - q)


def _starts_meaningful(config: ModelConfig) -> bool:
    """Whether the initial weights are a model worth keeping (epoch 0 is an early-stopping candidate).

    True for ``hybrid``: its residual network starts at exactly 0 (:func:`zero_output`),
    so the initial model is the physics fit, and early stopping may keep it when no epoch
    improves the monitored loss (``best_epoch = 0``).
    """
    return config.family == "hybrid"


def _train_lbfgs(config: ModelConfig, model: Any, x: np.ndarray, y: np.ndarray, xd: np.ndarray | None,
                 yd: np.ndarray | None, y_scaler: Scaler, t0: float, verbose: bool,
                 progress: Callable[[int, float, float | None], None] | None) -> TrainResult:
    """Full-batch L-BFGS (scipy's L-BFGS-B) on TensorFlow gradients; one "epoch" = one iteration.

    Small, smooth, low-noise calibration problems are where quasi-Newton methods shine
    (scikit-learn's ``MLPRegressor(solver="lbfgs")`` likewise). The data loss is the same as
    the other optimizers' on the scaled target, plus the L1/L2 penalties of the layers;
    early stopping watches the dev loss per iteration and restores the best weights.
    ``batch_size``, ``learning_rate`` and the schedule do not apply; dropout is refused.
    """
    from scipy.optimize import minimize

    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()
    if config.dropout > 0:
        raise ConfigError(f"dropout = 0 must hold for optimizer='lbfgs' (full-batch, deterministic), "
                          f"got dropout={config.dropout!r}")
    variables = list(model.trainable_variables)
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(sh)) for sh in shapes]
    center = tf.constant(np.asarray(y_scaler.center, dtype=np.float32))
    scale = tf.constant(np.asarray(y_scaler.scale, dtype=np.float32))
    xt = tf.constant(x.astype(np.float32))
    zt = tf.constant(y_scaler.transform(y).astype(np.float32))
    xdt = None if xd is None else tf.constant(xd.astype(np.float32))
    zdt = None if yd is None else tf.constant(y_scaler.transform(yd).astype(np.float32))

    def pointwise(diff: Any) -> Any:
        return _pointwise(config.loss, diff, tf.math)

    def data_loss(xx: Any, zz: Any) -> Any:
        pred = (model(xx, training=False) - center) / scale
        return tf.reduce_mean(pointwise(pred - zz))

    def assign(theta: np.ndarray) -> None:
        off = 0
        for v, sh, n in zip(variables, shapes, sizes):
            v.assign(theta[off:off + n].reshape(sh).astype(np.float32))
            off += n

    @tf.function(autograph=False, reduce_retracing=True)
    def value_and_grad() -> Any:
        with tf.GradientTape() as tape:
            data = data_loss(xt, zt)
            total = data + (tf.add_n(model.losses) if model.losses else 0.0)
        grads = tape.gradient(total, variables)
        return total, data, tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

    dev_fn = None if xdt is None else tf.function(lambda: data_loss(xdt, zdt), autograph=False)
    # iterations: "auto" = 5000 (quasi-Newton steps do far more than SGD steps), patience 500
    max_iter = config.epochs if config.epochs is not None else LBFGS_AUTO_ITERATIONS
    patience = LBFGS_AUTO_PATIENCE if config.patience == AUTO else config.patience
    train_hist: list[float] = []
    dev_hist: list[float] = []
    state = {"best": math.inf, "best_theta": None, "best_it": 0, "wait": 0, "last_data": math.nan}
    if patience is not None and _starts_meaningful(config):
        state.update(best=_initial_loss(config, model, *((xd, yd) if xd is not None else (x, y)), y_scaler),
                     best_theta=np.concatenate([v.numpy().ravel() for v in variables]).astype(np.float64))

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        assign(theta)
        total, data, grad = value_and_grad()
        total = float(total)
        state["last_data"] = float(data)
        if not math.isfinite(total):
            raise _diverged(config, len(train_hist) + 1, total)
        return total, grad.numpy().astype(np.float64)

    def callback(intermediate_result: Any) -> None:
        theta = intermediate_result.x
        it = len(train_hist) + 1
        assign(theta)
        tl = state["last_data"]  # data loss of the last evaluation: the accepted point
        train_hist.append(tl)
        dl = None
        if dev_fn is not None:
            dl = float(dev_fn())
            dev_hist.append(dl)
        if progress is not None:
            progress(it, tl, dl)
        if verbose and (it <= 10 or it % 10 == 0):
            print(f"iteration {it}/{max_iter}: train_loss={tl:.6g}"
                  + ("" if dl is None else f" dev_loss={dl:.6g}"), file=sys.stderr, flush=True)
        if patience is None:
            return
        current = dl if dl is not None else tl
        if current < state["best"] - config.min_delta:
            state.update(best=current, best_theta=np.array(theta, copy=True), best_it=it, wait=0)
        else:
            state["wait"] += 1
            if state["wait"] >= patience:
                raise StopIteration

    theta0 = np.concatenate([v.numpy().ravel() for v in variables]).astype(np.float64)
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                   options={"maxiter": int(max_iter), "maxfun": int(max_iter) * 2, "ftol": 0.0, "gtol": 1e-10})
    epochs_run = max(len(train_hist), 1)
    if patience is not None and state["best_theta"] is not None:
        assign(state["best_theta"])
        best_epoch = int(state["best_it"])
    else:
        assign(res.x)
        best_epoch = epochs_run
    if not train_hist:
        train_hist.append(state["last_data"])
    return TrainResult(model=model, train_loss=tuple(train_hist), dev_loss=tuple(dev_hist), best_epoch=best_epoch,
                       epochs_run=epochs_run, seconds=time.perf_counter() - t0, iterations=int(res.nit),
                       final_learning_rate=float("nan"))


def _dense_layers(model) -> list:
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    return hidden + [model.get_layer("output_scaled")]


def train(
    config: ModelConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_dev: np.ndarray | None = None,
    y_dev: np.ndarray | None = None,
    *,
    x_scaler: Scaler,
    y_scaler: Scaler,
    verbose: bool = False,
    progress: Callable[[int, float, float | None], None] | None = None,
    jit_compile: bool | None = None,
) -> TrainResult:
    """Build and train a network for ``config``.

    Parameters
    ----------
    config : ModelConfig
    x_train : ndarray of shape (n, n_inputs)
        Raw training readings in physical units (deg, degC, ...).
    y_train : ndarray of shape (n,) or (n, n_outputs)
        Reference values in the target's unit (e.g. hPa).
    x_dev, y_dev : ndarray, optional
        Dev rows for the per-epoch dev loss and early stopping; both or neither.
    x_scaler, y_scaler : Scaler
        Fitted on the training rows only; built into the model's graph.
    verbose : bool, default=False
        Print the losses after epochs 1-10, every 10th epoch and the last one.
    progress : callable, optional
        Called after every epoch as ``progress(epoch, train_loss, dev_loss_or_None)``.
    jit_compile : bool or None, default=None
        Compile the epoch with XLA. ``None`` decides by the work: compiling costs 0.5-1.2 s
        more than tracing (once per network shape and batch layout in a process) and makes
        each step 2-4x cheaper, so XLA is used when ``epochs * batches_per_epoch`` reaches
        15000. The choice depends on this call only, so results do not depend on what ran
        earlier in the process.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        If the arrays are empty, not finite, of mismatched shapes, or disagree with the
        scalers.
    TrainingError
        If a training or dev loss becomes NaN or infinite; training stops at once and the
        message names the epoch and the likely causes.

    Notes
    -----
    The whole epoch (shuffle, every mini-batch step, the epoch's losses) is one call of a
    compiled ``tf.function``; it takes the weights, the optimizer state, the data and the
    hyper-parameters as arguments, so later folds and trials with the same network shape
    and batch layout reuse its trace. Losses are in scaled target units
    (``(y - center) / scale``), so they compare across targets and folds. Shuffling uses
    ``numpy.random.default_rng(config.seed)``; the same config, data and seed give identical
    weights and predictions. The optimizers follow the update rules of Keras 3's ``SGD``,
    ``RMSprop`` and ``Adam`` and the schedules those of ``keras.optimizers.schedules``.
    """
    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    t0 = time.perf_counter()
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}")
    x = _as_2d(x_train, "x_train")
    y = _as_2d(y_train, "y_train")
    if y.shape[0] != x.shape[0]:
        raise ConfigError(
            f"x_train and y_train must have the same number of rows, got {x.shape[0]} and {y.shape[0]}"
        )
    n, n_in, n_out = x.shape[0], x.shape[1], y.shape[1]
    if (x_dev is None) != (y_dev is None):
        raise ConfigError("x_dev and y_dev must be given together")
    xd = yd = None
    if x_dev is not None:
        xd = _as_2d(x_dev, "x_dev", n_in)
        yd = _as_2d(y_dev, "y_dev", n_out)
        if yd.shape[0] != xd.shape[0]:
            raise ConfigError(
                f"x_dev and y_dev must have the same number of rows, got {xd.shape[0]} and {yd.shape[0]}"
            )

    model = build_model(config, n_in, n_out, x_scaler, y_scaler)
    if config.optimizer == "lbfgs":
        return _train_lbfgs(config, model, x, y, xd, yd, y_scaler, t0, verbose, progress)
    dense = _dense_layers(model)

    # Batch layout: full batch (padded to a multiple of _PAD_ROWS) or n_batches x batch.
    if config.batch_size is None or config.batch_size >= n:
        n_batches, batch = 1, _round_up(n, _PAD_ROWS)
    else:
        batch = config.batch_size
        n_batches = -(-n // batch)
    n_pad = n_batches * batch
    n_dev = _round_up(xd.shape[0], _PAD_ROWS) if xd is not None else 0
    plan = _Plan(
        widths=tuple(config.hidden_layers) + (n_out,),
        n_inputs=n_in,
        activation=config.activation,
        loss=config.loss,
        optimizer=config.optimizer,
        lr_schedule=config.lr_schedule,
        dropout=config.dropout > 0,
        l1=config.l1 > 0,
        l2=config.l2 > 0,
        n_batches=n_batches,
        batch=batch,
        n_dev=n_dev,
        xla=False,
    )
    max_epochs, patience = config.budget(n_batches)
    if jit_compile is None:
        jit_compile = _choose_xla(plan, max_epochs * n_batches)
    plan = dataclasses.replace(plan, xla=bool(jit_compile))

    # Training state: one flat tf.Variable of all weights (copied back into the Keras
    # model at the end) and the optimizer's flat state vectors.
    theta = tf.Variable(
        np.concatenate([v.numpy().ravel() for layer in dense for v in (layer.kernel, layer.bias)]),
        dtype=tf.float32,
        trainable=False,
    )
    slots = tuple(
        tf.Variable(tf.zeros_like(theta), trainable=False) for _ in range(_n_slots(config.optimizer))
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    x_t = tf.constant(_padded(x_scaler.transform(x), n_pad))
    z_t = tf.constant(_padded(y_scaler.transform(y), n_pad))
    w_t = tf.constant(_padded(np.ones((n, 1)), n_pad))
    if xd is not None:
        xd_t = tf.constant(_padded(x_scaler.transform(xd), n_dev))
        zd_t = tf.constant(_padded(y_scaler.transform(yd), n_dev))
        wd_t = tf.constant(_padded(np.ones((xd.shape[0], 1)), n_dev))
    else:
        xd_t = zd_t = wd_t = tf.zeros((0, 1), tf.float32)
    hyper = tf.constant(_hyper_vector(config))
    dropout_seed = int(np.random.SeedSequence((config.seed, 1)).generate_state(1)[0])
    seed_t = tf.constant(dropout_seed, dtype=tf.int64)
    epoch_fn = _epoch_fn(plan)

    rng = np.random.default_rng(config.seed)
    tail = np.arange(n, n_pad, dtype=np.int32)
    monitor_dev = xd is not None
    best = math.inf
    best_epoch = 0
    best_weights: np.ndarray | None = None
    wait = 0
    if patience is not None and _starts_meaningful(config):
        best = _initial_loss(config, model, *((xd, yd) if xd is not None else (x, y)), y_scaler)
        best_weights = theta.numpy()
    train_hist: list[float] = []
    dev_hist: list[float] = []
    lr_next = config.learning_rate
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        perm = tf.constant(np.concatenate([rng.permutation(n).astype(np.int32), tail]))
        out = epoch_fn(theta, slots, step, x_t, z_t, w_t, perm, xd_t, zd_t, wd_t, hyper, seed_t)
        tl, dl, finite, lr_t = (v.numpy() for v in out)
        tl, dl, lr_next = float(tl), float(dl), float(lr_t)
        if not bool(finite) or not math.isfinite(tl):
            raise _diverged(config, epoch, tl if not math.isfinite(tl) else float("nan"))
        if monitor_dev and not math.isfinite(dl):
            raise _diverged(config, epoch, dl)
        train_hist.append(tl)
        if monitor_dev:
            dev_hist.append(dl)
        if progress is not None:
            progress(epoch, tl, dl if monitor_dev else None)
        if verbose and (epoch <= 10 or epoch % 10 == 0 or epoch == max_epochs):
            dev_txt = f" dev_loss={dl:.6g}" if monitor_dev else ""
            print(f"epoch {epoch}/{max_epochs}: train_loss={tl:.6g}{dev_txt}", file=sys.stderr, flush=True)
        if patience is None:
            continue
        current = dl if monitor_dev else tl
        if current < best - config.min_delta:
            best, best_epoch, wait = current, epoch, 0
            best_weights = theta.numpy()
        else:
            wait += 1
            if wait >= patience:
                break

    epochs_run = epoch
    if patience is None or best_weights is None:
        best_epoch = epochs_run
        final = theta.numpy()
    else:
        final = best_weights
    offset = 0
    for layer in dense:
        for v in (layer.kernel, layer.bias):
            size = int(np.prod(v.shape))
            v.assign(final[offset : offset + size].reshape(v.shape))
            offset += size
    return TrainResult(
        model=model,
        train_loss=tuple(train_hist),
        dev_loss=tuple(dev_hist),
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=time.perf_counter() - t0,
        iterations=int(step.numpy()),
        final_learning_rate=lr_next,
    )


# --------------------------------------------------------------------------- inference


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Predict the target for raw readings, in chunks.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_model` / :func:`train` (or loaded from ``.keras``).
    x : ndarray of shape (n, n_inputs) or (n_inputs,)
        Raw readings in physical units; one 1-D row is treated as a single reading.
    batch_size : int, default=65536
        Rows per chunk (>= 1); the model is called directly on each chunk in inference mode.

    Returns
    -------
    ndarray of float64
        Shape (n,) for a single-output model, (n, n_outputs) otherwise, in the target's unit.

    Raises
    ------
    ConfigError
        If ``batch_size`` < 1 or ``x`` has the wrong number of columns.
    """
    if not _is_int(batch_size) or batch_size < 1:
        raise _err("batch_size >= 1", "batch_size", batch_size)
    n_in = int(model.inputs[0].shape[-1])
    n_out = int(model.outputs[0].shape[-1])
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_in:
        raise ConfigError(f"x must have shape (n, {n_in}), got {arr.shape}")
    out = np.empty((arr.shape[0], n_out), dtype=np.float64)
    for start in range(0, arr.shape[0], batch_size):
        chunk = arr[start : start + batch_size]
        out[start : start + len(chunk)] = np.asarray(model(chunk, training=False))
    return out[:, 0] if n_out == 1 else out


def export_onnx(model: keras.Model, path: str | Path, n_inputs: int) -> None:
    """Write ``model`` as an ONNX file for ONNX Runtime (no TensorFlow needed to run it).

    The file has one float32 input named ``"readings"`` (:data:`ONNX_INPUT_NAME`) of shape
    ``(batch, n_inputs)`` with a dynamic batch dimension, raw readings in physical units,
    and one float32 output named ``"prediction"`` (:data:`ONNX_OUTPUT_NAME`) of shape
    ``(batch, n_outputs)`` in the target's unit (2-D also for a single target). The input
    signature is passed explicitly so the batch dimension stays dynamic and the input name
    is stable.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        Destination ``.onnx`` file; its folder must exist.
    n_inputs : int
        Number of input columns.

    Raises
    ------
    ConfigError
        If ``n_inputs`` disagrees with the model.
    """
    from ._tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    n_model = int(model.inputs[0].shape[-1])
    if n_inputs != n_model:
        raise ConfigError(f"n_inputs={n_inputs!r} but the model takes {n_model} input column(s)")
    spec = tf.TensorSpec((None, int(n_inputs)), tf.float32, name=ONNX_INPUT_NAME)
    # A Normalization layer built from given mean/variance holds them as eager tensors;
    # the traced function captures those as extra placeholder inputs, which tf2onnx 1.17
    # then exports as required ONNX inputs. As numpy arrays they become graph constants,
    # so swap them in for the export only.
    swapped = []
    for layer in model.layers:
        if type(layer).__name__ == "Normalization" and getattr(layer, "mean", None) is not None:
            swapped.append((layer, layer.mean, layer.variance))
            layer.mean = np.asarray(layer.mean, dtype=np.float32)
            layer.variance = np.asarray(layer.variance, dtype=np.float32)
    try:
        with warnings.catch_warnings():
            # keras patches tf2onnx for numpy 2 and trips numpy's np.object FutureWarning
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(path), format="onnx", input_signature=[spec], verbose=False)
    finally:
        for layer, mean, variance in swapped:
            layer.mean, layer.variance = mean, variance
    _rename_onnx_output(path, ONNX_OUTPUT_NAME)


def _rename_onnx_output(path: str | Path, name: str) -> None:
    """Give the single graph output of an ONNX file a stable name (tf2onnx writes ``Identity:0``)."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        for i, out in enumerate(node.output):
            if out == old:
                node.output[i] = name
        for i, inp in enumerate(node.input):
            if inp == old:
                node.input[i] = name
    graph.output[0].name = name
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
