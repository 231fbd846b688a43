"""The network's configuration: :class:`ModelConfig`, one network and how to train it.

A frozen, validated dataclass: every rule is checked once, on creation, and a broken rule names
the parameter, the rule and the value. Every fold and trial builds a fresh network from it
(:func:`calib.nn.build_model`). The module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..constraints import SEED, Interval, Options, SeqOf, StrOptions, check_keys, check_param, check_params
from ..errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "AUTO",
    "AUTO_PATIENCE_STEPS",
    "AUTO_STEPS",
    "FAMILIES",
    "INITS",
    "LBFGS_AUTO_ITERATIONS",
    "LBFGS_AUTO_PATIENCE",
    "LOSSES",
    "LR_SCHEDULES",
    "MAX_PARAMETERS",
    "OPTIMIZERS",
    "RULES",
    "ModelConfig",
    "is_int",
    "parameter_count",
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

#: Most weights and biases a network may have (its Dense layers, counted with one input and
#: one output; :func:`parameter_count`). Checked when a config is created, before TensorFlow
#: is imported: 5 million float32 parameters are 20 MB per model, and an artifact holds the
#: final model and the fold models (see :data:`calib.artifact.store.MAX_ONNX_BYTES`).
MAX_PARAMETERS = 5_000_000

_INT_FIELDS = ("decay_steps", "seed", "batch_size", "patience", "epochs")
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

_POSITIVE = [Interval(Real, 0, None, closed="neither")]
_NON_NEGATIVE = [Interval(Real, 0, None)]
_RATE = [Interval(Real, 0, 1, closed="left")]

#: The rule of each :class:`ModelConfig` field (``init_stddev > 0`` holds only for the
#: ``truncated_normal`` init, which uses it).
#: Classical forms a ``physics_kind`` may name (``polynomial`` is ``poly``; see :mod:`calib.physics`).
PHYSICS_FORMS = ("auto", "svu", "two_site", "sbe63", "poly", "polynomial")

RULES: Mapping[str, list] = {
    "hidden_layers": [SeqOf(Interval(Integral, 1, None), what="{name} is a list of layer widths >= 1")],
    "activation": [StrOptions(ACTIVATIONS)],
    "init": [StrOptions(INITS)],
    "init_stddev": [Interval(Real, None, None)],
    "optimizer": [StrOptions(OPTIMIZERS)],
    "learning_rate": _POSITIVE,
    "momentum": _RATE,
    "beta_1": _RATE,
    "beta_2": _RATE,
    "rho": _RATE,
    "epsilon": _POSITIVE,
    "lr_schedule": [StrOptions(LR_SCHEDULES)],
    "decay_rate": _POSITIVE,
    "decay_steps": [Interval(Integral, 1, None)],
    "batch_size": [Interval(Integral, 1, None), Options([None], label="None for the full batch")],
    "epochs": [Interval(Integral, 1, None), Options([None], label='"auto"')],
    "patience": [Interval(Integral, 1, None), Options([AUTO], label='"auto"'),
                 Options([None], label='"none" to disable early stopping')],
    "min_delta": _NON_NEGATIVE,
    "l1": _NON_NEGATIVE,
    "l2": _NON_NEGATIVE,
    "dropout": _RATE,
    "loss": [StrOptions(LOSSES)],
    "family": [StrOptions(FAMILIES)],
    "physics_kind": [StrOptions(PHYSICS_FORMS)],
    "seed": SEED,
}


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def parameter_count(hidden_layers: tuple[int, ...], n_inputs: int = 1, n_outputs: int = 1) -> int:
    """Weights and biases of the Dense layers of a network with these hidden widths.

    Examples
    --------
    >>> parameter_count((32, 32), n_inputs=5)   # (5*32+32) + (32*32+32) + (32*1+1)
    1281
    """
    widths = [int(n_inputs), *map(int, hidden_layers), int(n_outputs)]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


@dataclass(frozen=True)
class ModelConfig:
    """A feed-forward regressor and how to train it; validated on creation.

    Parameters
    ----------
    hidden_layers : tuple of int, default=(32, 32)
        Width of each hidden ``Dense`` layer, each >= 1. An empty tuple gives a linear model.
        The network has at most :data:`MAX_PARAMETERS` (5 million) weights and biases,
        counted with one input and one output (:func:`parameter_count`).
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
        graph; a sweep can choose between them by k-fold (see :mod:`calib.nn.family`).
    physics_kind : {"auto", "svu", "two_site", "sbe63", "poly"}, default="auto"
        The classical form of the ``physics`` and ``hybrid`` families and of the physics fit
        reported beside every model (:func:`calib.physics.fit_physics`): the Aanderaa SVU
        form, two-site Stern-Volmer, the Sea-Bird SBE63 form, a polynomial
        (``"polynomial"`` is accepted), or ``auto`` (chosen by inner CV).
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
    physics_kind: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        # a bare width is one layer; any sequence of widths is kept as a tuple
        layers = self.hidden_layers
        if is_int(layers):
            layers = (layers,)
        elif not isinstance(layers, (str, bytes)) and hasattr(layers, "__iter__"):
            layers = tuple(layers)
        check_params({f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"hidden_layers": layers},
                     RULES)
        if self.init == "truncated_normal":
            check_param("init_stddev", self.init_stddev, _POSITIVE)
        n_params = parameter_count(layers)
        if n_params > MAX_PARAMETERS:
            raise ConfigError(
                f"hidden_layers has at most {MAX_PARAMETERS:,} parameters (MAX_PARAMETERS) must hold, got "
                f"{n_params:,} parameters for hidden_layers={list(layers)} (weights and biases, with one "
                "input and one output)"
            )

        # normalised so that equal configs compare and hash equal
        put("hidden_layers", tuple(int(w) for w in layers))
        if self.physics_kind == "polynomial":
            put("physics_kind", "poly")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                put(name, int(value))
        for name in _FLOAT_FIELDS:
            put(name, float(getattr(self, name)))

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
        check_keys("model", d, [f.name for f in dataclasses.fields(cls)])
        kwargs = dict(d)
        if isinstance(kwargs.get("hidden_layers"), list):
            kwargs["hidden_layers"] = tuple(kwargs["hidden_layers"])
        bs = kwargs.get("batch_size", 64)
        if (isinstance(bs, str) and bs.strip().lower() == "full") or (is_int(bs) and bs == 0):
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

    def inert_fields(self) -> frozenset[str]:
        """The settings that cannot change this config's training (what :meth:`effective` resets).

        ``lbfgs`` is full batch and has no step size: ``learning_rate``, the schedule, ``batch_size``
        and the other optimizers' constants do not apply. The ``physics`` family trains no network:
        every setting but ``family``, ``physics_kind`` and ``seed`` is inert. A sweep does not draw
        an inert parameter (:meth:`calib.search.SearchSpace.suggest`).

        Examples
        --------
        >>> sorted(ModelConfig(optimizer="lbfgs").inert_fields())[:3]
        ['batch_size', 'beta_1', 'beta_2']
        """
        names = {f.name for f in dataclasses.fields(self)}
        if self.family == "physics":
            return frozenset(names - {"family", "physics_kind", "seed"})
        unused = set()
        if self.optimizer == "lbfgs":
            unused |= {"learning_rate", "momentum", "beta_1", "beta_2", "rho", "epsilon", "lr_schedule",
                       "decay_rate", "decay_steps", "batch_size"}
        if self.lr_schedule == "constant":
            unused |= {"decay_rate", "decay_steps"}
        unused |= {"momentum"} if self.optimizer != "momentum" else set()
        unused |= {"rho"} if self.optimizer != "rmsprop" else set()
        unused |= {"beta_1", "beta_2"} if self.optimizer != "adam" else set()
        if self.init != "truncated_normal":
            unused.add("init_stddev")
        return frozenset(unused & names)

    def effective(self) -> ModelConfig:
        """This config with every setting that cannot change its training reset to the default.

        The reset settings are :meth:`inert_fields`. Two configs with equal ``effective()`` train
        to the same model (a sweep reuses such a trial's score).

        Examples
        --------
        >>> a = ModelConfig(optimizer="lbfgs", learning_rate=0.1)
        >>> a.effective() == ModelConfig(optimizer="lbfgs", learning_rate=0.003).effective()
        True
        """
        d = ModelConfig()
        return dataclasses.replace(self, **{k: getattr(d, k) for k in self.inert_fields()})

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with ``changes`` applied, validated like a new config.

        Raises
        ------
        ConfigError
            If a change names an unknown field or breaks a rule.
        """
        check_keys("model", changes, [f.name for f in dataclasses.fields(self)])
        return dataclasses.replace(self, **changes)
