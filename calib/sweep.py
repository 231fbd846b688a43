"""Hyperparameter sweep: a search space over :class:`~calib.nn.ModelConfig` -> :class:`SweepResult`.

Dataset + rows (the train part) + base config + :class:`SearchSpace` -> trials, each one
config scored by k-fold validation (:func:`calib.validate.cross_validate`, mean validation
MAE in the target's unit), recorded durably in an `Optuna <https://optuna.org>`_ study.

The search space comes from the ``[sweep.space]`` table of the TOML config, one entry per
``ModelConfig`` field::

    [sweep]
    strategy = "bayes"           # grid | random | bayes
    trials = 40                  # the TOTAL the study should reach (resumes count)
    seed = 0
    folds = 5                    # default: [validate] folds
    jobs = 2                     # parallel worker processes on this machine
    storage = "runs/sweep.journal"   # a journal file, or an RDB URL (sqlite:///.., postgresql://..)
    study = "calib"

    [sweep.space]
    learning_rate = { low = 1e-4, high = 3e-2 }            # log scale by default
    l2 = { choices = [0.0, 1e-6, 1e-5, 1e-4] }             # a log range cannot hold 0
    hidden_layers = { choices = [[16], [32, 32], [64, 64]] }
    batch_size = { choices = [16, 32, "full"] }
    dropout = { low = 0.0, high = 0.3, step = 0.1 }
    epochs = { low = 100, high = 400, step = 100 }         # integer bounds: an integer range

Strategies: ``grid`` (the product of the choices; a range needs ``num = N`` points, spaced
geometrically for a log range, or a ``step``), ``random`` (uniform, log-uniform for log
ranges) and ``bayes`` (Optuna's TPE sampler). Random and TPE draws are seeded per trial
number, so a sequential sweep with the same seed tries the same configs and gets the same
scores, and a resumed sweep does not repeat the draws it already made.

Durability and resuming
-----------------------
Every trial is written to the storage as it finishes: a journal file (Optuna's
``JournalStorage`` over ``JournalFileBackend``, the default, ``runs/sweep.journal``) or a
database URL that several machines can share. Running the same call again resumes: finished
trials are kept; a trial left RUNNING by a process that was killed (Ctrl-C, SIGKILL, a lost
machine) is marked FAIL with the reason ``"interrupted"`` and does not count; ``n_trials`` is
the total the study should reach, so a larger ``n_trials`` adds only the missing trials.
Resuming with another search space, strategy, seed, folds, base config, scaling or data is a
:class:`~calib.errors.ConfigError`.

Processes
---------
Trials run in worker processes (joblib's loky), ``jobs`` of them, each limited to one
TensorFlow thread (:func:`calib.validate.limit_threads`); a worker is replaced by a fresh
process every ``recycle_every`` trials, so memory stays flat whatever TensorFlow keeps per
traced model (each trial also ends with ``keras.backend.clear_session``). With
``scheduler="tcp://HOST:PORT"`` the trials run on an existing Dask cluster through joblib's
dask backend instead; every worker shares the same storage (use an RDB URL, or a journal
file on a filesystem all workers see).

A diverging trial (:class:`~calib.errors.TrainingError`, NaN loss) is recorded FAIL with its
reason and the sweep goes on; a :class:`~calib.errors.ConfigError` stops the sweep before any
trial starts: the whole space is checked up front by building one config per choice and bound.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import hashlib
import io
import itertools
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CalibError, ConfigError, TrainingError
from .progress import Progress
from .nn import ModelConfig

if TYPE_CHECKING:  # pragma: no cover - typing only; optuna is imported where it is used
    import optuna

__all__ = [
    "STRATEGIES",
    "LOG_BY_DEFAULT",
    "DEFAULT_STORAGE",
    "DEFAULT_SPACE",
    "ParamSpec",
    "SearchSpace",
    "SweepSettings",
    "TrialRecord",
    "SweepResult",
    "SIMPLICITY",
    "one_se_choice",
    "run_sweep",
    "load_result",
    "preview_trials",
    "leaderboard",
    "format_leaderboard",
    "write_leaderboard",
    "make_progress",
]

_log = logging.getLogger(__name__)

STRATEGIES = ("grid", "random", "bayes")
#: Parameters whose ranges are log-uniform unless ``log = false`` (or a ``step``) is given.
LOG_BY_DEFAULT = ("learning_rate", "l1", "l2", "decay_rate", "init_stddev", "epsilon")
#: Where trials are recorded when no storage is given (relative to the working folder).
DEFAULT_STORAGE = "runs/sweep.journal"
#: Seconds between heartbeats of a running trial.
HEARTBEAT_S = 30.0
#: A RUNNING trial of another machine without a heartbeat for this long counts as interrupted.
STALE_AFTER_S = 300.0
#: FAIL reasons (prefixes) that do not count toward ``n_trials``: such a trial is re-run.
_UNCOUNTED = ("interrupted", "surplus", "error")
_RANGE_KEYS = ("low", "high", "log", "step", "num")
_SWEEP_KEYS = ("strategy", "trials", "seed", "folds", "jobs", "storage", "study", "space")
_URL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


# --------------------------------------------------------------------------- small helpers
def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, (bool, np.bool_))
        and math.isfinite(float(v))
    )


def _model_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(ModelConfig)]


def _numeric_fields() -> set[str]:
    out = set()
    for f in dataclasses.fields(ModelConfig):
        if f.name in ("batch_size", "patience", "epochs") or _is_num(f.default):
            out.add(f.name)
    return out


def _tidy(v: float) -> float:
    """Round away float noise from linspace/geomspace (12 significant digits)."""
    return float(f"{float(v):.12g}")


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=repr)


def _file_form(name: str, value: Any) -> Any:
    """A sampled value as written in the config file (lists for hidden_layers, JSON-able)."""
    if name == "hidden_layers":
        if isinstance(value, str):
            return json.loads(value)
        return list(value) if isinstance(value, (list, tuple)) else value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _config_value(name: str, value: Any) -> Any:
    """A file-form value as ``ModelConfig`` takes it ("full" -> None, lists -> tuples)."""
    if name == "hidden_layers" and isinstance(value, list):
        return tuple(value)
    if name == "batch_size" and (
        (isinstance(value, str) and value.strip().lower() == "full") or (_is_int(value) and value == 0)
    ):
        return None
    if name == "patience" and isinstance(value, str) and value.strip().lower() == "none":
        return None
    return value


def _encode(name: str, value: Any) -> Any:
    """File form -> an Optuna categorical value (None/bool/int/float/str only)."""
    if name == "hidden_layers":
        return json.dumps(list(value) if isinstance(value, (list, tuple)) else value)
    return value


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


# --------------------------------------------------------------------------- search space
@dataclass(frozen=True)
class ParamSpec:
    """One searched ``ModelConfig`` parameter: a list of choices or a numeric range.

    Parameters
    ----------
    name : str
        A :class:`~calib.nn.ModelConfig` field.
    choices : tuple, optional
        Candidate values as written in the config (``hidden_layers`` choices are lists,
        ``batch_size`` may be ``"full"``). Exclusive with ``low``/``high``.
    low, high : int or float, optional
        Inclusive bounds of a range, ``low < high``. Both integers: an integer range.
    log : bool, default: True for learning_rate, l1, l2, decay_rate, init_stddev, epsilon
        Sample ``log(value)`` uniformly (needs ``low > 0``; not with ``step``).
    step : int or float, optional
        Spacing of a discrete range (``high - low`` must be a multiple of it).
    num : int, optional
        Number of grid points of a range for the ``grid`` strategy (>= 2): ``linspace``, or
        ``geomspace`` for a log range; rounded for an integer range.

    Raises
    ------
    ConfigError
        A rule is broken; the message names the parameter, the rule and the value.
    """

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    num: int | None = None

    def __post_init__(self) -> None:
        n = self.name
        valid = _model_fields()
        if n not in valid:
            raise ConfigError(
                f"unknown search-space parameter {n!r} in [sweep.space]; valid parameters are: "
                f"{', '.join(valid)}"
            )
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.num is not None:
                raise ConfigError(
                    f"[sweep.space] {n} must give either choices or a range (low, high), not both"
                )
            if len(self.choices) == 0:
                raise ConfigError(f"[sweep.space] {n} choices must be a non-empty list, got choices=[]")
            keys = [_key(c) for c in self.choices]
            if len(set(keys)) != len(keys):
                raise ConfigError(
                    f"[sweep.space] {n} choices must not repeat a value, got choices={list(self.choices)!r}"
                )
            return
        if self.low is None or self.high is None:
            raise ConfigError(
                f"[sweep.space] {n} needs choices = [...] or both low and high, got "
                f"low={self.low!r}, high={self.high!r}"
            )
        if n not in _numeric_fields():
            raise ConfigError(
                f"[sweep.space] {n} takes choices, not a range: write {n} = {{ choices = [...] }}"
            )
        for key in ("low", "high"):
            v = getattr(self, key)
            if not _is_num(v):
                raise ConfigError(f"[sweep.space] {n} {key} must be a finite number, got {key}={v!r}")
        if not isinstance(self.log, bool):
            raise ConfigError(f"[sweep.space] {n} log must be true or false, got log={self.log!r}")
        if not self.low < self.high:
            raise ConfigError(
                f"low < high must hold, got {n} low={self.low!r}, high={self.high!r}"
            )
        if self.log and not self.low > 0:
            raise ConfigError(
                f"low > 0 must hold for a log range, got {n} low={self.low!r} (log = true); "
                f"use log = false, or choices = [0.0, ...] to include 0"
            )
        if self.step is not None:
            if not _is_num(self.step) or not self.step > 0:
                raise ConfigError(f"step > 0 must hold, got {n} step={self.step!r}")
            if self.log:
                raise ConfigError(
                    f"[sweep.space] {n}: step and log = true cannot be combined; set log = false"
                )
            k = (self.high - self.low) / self.step
            if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
                raise ConfigError(
                    f"high - low must be a multiple of step, got {n} low={self.low!r}, "
                    f"high={self.high!r}, step={self.step!r}"
                )
        if self.num is not None and (not _is_int(self.num) or self.num < 2):
            raise ConfigError(f"num >= 2 must hold, got {n} num={self.num!r}")

    # ---- construction
    @classmethod
    def from_dict(cls, name: str, spec: Any) -> ParamSpec:
        """Build from one ``[sweep.space]`` entry, e.g. ``{"low": 1e-4, "high": 1e-2}``.

        Raises
        ------
        ConfigError
            If the entry is not a table, has an unknown key, or breaks a rule.
        """
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"[sweep.space] {name} must be a table such as {{ choices = [...] }} or "
                f"{{ low = .., high = .. }}, got {name}={spec!r}"
            )
        allowed = ("choices", *_RANGE_KEYS)
        unknown = sorted(str(k) for k in spec if k not in allowed)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))} in [sweep.space] {name}; "
                f"valid keys: {', '.join(allowed)}"
            )
        if "choices" in spec:
            raw = spec["choices"]
            if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
                raise ConfigError(
                    f"[sweep.space] {name} choices must be a non-empty list, got choices={raw!r}"
                )
            choices = tuple(cls._norm_choice(name, c) for c in raw)
            return cls(name, choices=choices, low=spec.get("low"), high=spec.get("high"),
                       step=spec.get("step"), num=spec.get("num"))
        step = spec.get("step")
        log = spec.get("log", name in LOG_BY_DEFAULT and step is None)
        return cls(name, low=spec.get("low"), high=spec.get("high"), log=log, step=step,
                   num=spec.get("num"))

    @staticmethod
    def _norm_choice(name: str, c: Any) -> Any:
        if name == "hidden_layers":
            if _is_int(c):
                return (int(c),)
            if isinstance(c, (list, tuple)):
                return tuple(c)
        if name == "batch_size" and isinstance(c, str) and c.strip().lower() == "full":
            return "full"
        if name == "patience" and isinstance(c, str) and c.strip().lower() == "none":
            return "none"
        return c

    def to_dict(self) -> dict[str, Any]:
        """The entry as a TOML/JSON table (lists for hidden_layers choices)."""
        if self.choices is not None:
            return {"choices": [_file_form(self.name, c) for c in self.choices]}
        d: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            d["step"] = self.step
        if self.num is not None:
            d["num"] = self.num
        return d

    # ---- properties
    @property
    def is_int(self) -> bool:
        """Whether this is an integer range (integer bounds and step)."""
        return (
            self.choices is None
            and _is_int(self.low)
            and _is_int(self.high)
            and (self.step is None or _is_int(self.step))
        )

    def grid_values(self) -> list[Any]:
        """The points this parameter takes in a grid (file form).

        Raises
        ------
        ConfigError
            A range without ``num`` or ``step``, or an integer range with repeated points.
        """
        if self.choices is not None:
            return [_file_form(self.name, c) for c in self.choices]
        if self.num is None and self.step is None:
            raise ConfigError(
                f"grid strategy needs num = N points for the range {self.name} "
                f"(e.g. {self.name} = {{ low = {self.low!r}, high = {self.high!r}, num = 4 }}) "
                "or a step, or choices"
            )
        if self.num is None:
            k = int(round((self.high - self.low) / self.step))
            pts = [self.low + i * self.step for i in range(k + 1)]
        elif self.log:
            pts = list(np.geomspace(self.low, self.high, self.num))
        else:
            pts = list(np.linspace(self.low, self.high, self.num))
        if self.is_int:
            vals = [int(round(p)) for p in pts]
            if len(set(vals)) != len(vals):
                raise ConfigError(
                    f"num <= {int(self.high) - int(self.low) + 1} must hold for the integer range "
                    f"{self.name} {self.low}..{self.high}, got num={self.num!r} (points repeat)"
                )
            return vals
        return [_tidy(p) for p in pts]

    def check_values(self, strategy: str) -> list[Any]:
        """Values that must each give a valid config: every choice, both bounds, grid points."""
        if strategy == "grid":
            return self.grid_values()
        if self.choices is not None:
            return [_file_form(self.name, c) for c in self.choices]
        return [self.low, self.high]

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        """Draw this parameter in an Optuna trial; returns the file-form value."""
        if self.choices is not None:
            enc = [_encode(self.name, _file_form(self.name, c)) for c in self.choices]
            return _file_form(self.name, trial.suggest_categorical(self.name, enc))
        if self.is_int:
            return int(trial.suggest_int(self.name, int(self.low), int(self.high),
                                         step=int(self.step or 1), log=self.log))
        return float(trial.suggest_float(self.name, float(self.low), float(self.high),
                                         step=None if self.step is None else float(self.step),
                                         log=self.log))


@dataclass(frozen=True)
class SearchSpace:
    """The searched ``ModelConfig`` parameters (``[sweep.space]``), validated.

    Parameters
    ----------
    params : tuple of ParamSpec
        One entry per parameter, names unique.

    Examples
    --------
    >>> space = SearchSpace.from_dict({"learning_rate": {"low": 1e-4, "high": 1e-2},
    ...                                "activation": {"choices": ["tanh", "relu"]}})
    >>> space.params[0].log, space.names
    (True, ('learning_rate', 'activation'))
    """

    params: tuple[ParamSpec, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if not names:
            raise ConfigError("[sweep.space] must name at least one parameter, got an empty table")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"[sweep.space] names a parameter twice: {', '.join(dup)}")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> SearchSpace:
        """Build from the ``[sweep.space]`` table: ``{name: {choices = [...]} | {low, high, ...}}``.

        Raises
        ------
        ConfigError
            If ``mapping`` is not a table, names a parameter that is not a ``ModelConfig``
            field (the message lists the valid ones) or an entry breaks a rule.
        """
        if isinstance(mapping, SearchSpace):
            return mapping
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"[sweep.space] must be a table, got {mapping!r}")
        return cls(tuple(ParamSpec.from_dict(str(k), v) for k, v in mapping.items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML form; ``SearchSpace.from_dict(space.to_dict()) == space``."""
        return {p.name: p.to_dict() for p in self.params}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the grid (the product of :meth:`ParamSpec.grid_values`)."""
        values = [p.grid_values() for p in self.params]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*values)]

    def grid_size(self) -> int:
        return int(np.prod([len(p.grid_values()) for p in self.params]))

    def suggest(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        """Draw every parameter in an Optuna trial; file-form values by name."""
        return {p.name: p.suggest(trial) for p in self.params}

    def to_config(self, base: ModelConfig, params: Mapping[str, Any]) -> ModelConfig:
        """``base.replace(**params)`` with file-form values converted ("full" -> None).

        Raises
        ------
        ConfigError
            If a value breaks a ``ModelConfig`` rule.
        """
        return base.replace(**{k: _config_value(k, v) for k, v in params.items()})

    def check(self, base: ModelConfig, strategy: str = "random") -> None:
        """Build one config per choice, bound (and grid point) to catch errors before any trial.

        Raises
        ------
        ConfigError
            Naming the parameter and ``ModelConfig``'s rule, e.g.
            ``[sweep.space] activation: activation must be one of ..., got activation='swish'``.
        """
        first: dict[str, Any] = {}
        for p in self.params:
            values = p.check_values(strategy)
            for v in values:
                try:
                    self.to_config(base, {p.name: v})
                except ConfigError as exc:
                    raise ConfigError(f"[sweep.space] {p.name}: {exc}") from None
                except TypeError as exc:  # e.g. an unhashable choice
                    raise ConfigError(f"[sweep.space] {p.name}: invalid value {v!r} ({exc})") from None
            first[p.name] = values[0]
        try:
            self.to_config(base, first)
        except ConfigError as exc:
            raise ConfigError(f"[sweep.space]: the first choices together break a rule: {exc}") from None


DEFAULT_SPACE = SearchSpace.from_dict(
    {
        "learning_rate": {"low": 1e-4, "high": 3e-2, "log": True},
        "hidden_layers": {"choices": [[16], [32, 32], [64, 64], [32, 32, 32]]},
        "activation": {"choices": ["tanh", "elu", "relu"]},
        "l2": {"choices": [0.0, 1e-6, 1e-5, 1e-4]},
        "batch_size": {"choices": [16, 32, 64]},
        "family": {"choices": ["mlp", "hybrid", "physics"]},
        "optimizer": {"choices": ["adam", "lbfgs"]},
    }
)


@dataclass(frozen=True)
class SweepSettings:
    """The ``[sweep]`` table: how to search, validated.

    Parameters
    ----------
    strategy : {"random", "grid", "bayes"}, default="random"
    trials : int, default=20
        Total trials the study should reach (>= 1); for ``grid`` at most the grid size.
    seed : int, default=0
        Seed of the sampler and of the fold assignment (>= 0).
    folds : int or None, default=None
        k of the k-fold (>= 2); ``None`` takes ``[validate] folds``.
    jobs : int, default=1
        Parallel worker processes (>= 1, or -1 for every core).
    storage : str, default="runs/sweep.journal"
        A journal file path or an RDB URL (``sqlite:///sweep.db``, ``postgresql://...``).
    study : str, default="calib"
        Study name inside the storage.
    space : SearchSpace, default=DEFAULT_SPACE

    Raises
    ------
    ConfigError
        If a value breaks its rule (one message per rule).
    """

    strategy: str = "random"
    trials: int = 20
    seed: int = 0
    folds: int | None = None
    jobs: int = 1
    storage: str = DEFAULT_STORAGE
    study: str = "calib"
    space: SearchSpace = DEFAULT_SPACE

    def __post_init__(self) -> None:
        _check_strategy(self.strategy)
        if not _is_int(self.trials) or self.trials < 1:
            raise ConfigError(f"trials >= 1 must hold, got trials={self.trials!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got seed={self.seed!r}")
        if self.folds is not None and (not _is_int(self.folds) or self.folds < 2):
            raise ConfigError(f"folds >= 2 must hold, got folds={self.folds!r}")
        _check_jobs(self.jobs)
        if not isinstance(self.storage, str) or not self.storage.strip():
            raise ConfigError(f"storage must be a file path or a database URL, got storage={self.storage!r}")
        _storage_spec(self.storage)
        if not isinstance(self.study, str) or not self.study.strip():
            raise ConfigError(f"study must be a non-empty name, got study={self.study!r}")
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", SearchSpace.from_dict(self.space))
        if self.strategy == "grid":
            for p in self.space.params:
                p.grid_values()

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> SweepSettings:
        """Build from the ``[sweep]`` table (its ``space`` sub-table included).

        Raises
        ------
        ConfigError
            If ``mapping`` has an unknown key (the message lists the valid ones) or a value
            breaks its rule.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"[sweep] must be a table, got {mapping!r}")
        unknown = sorted(str(k) for k in mapping if k not in _SWEEP_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                f"[sweep]; valid keys: {', '.join(_SWEEP_KEYS)}"
            )
        kw = dict(mapping)
        if "space" in kw:
            kw["space"] = SearchSpace.from_dict(kw["space"])
        return cls(**kw)


def _check_strategy(strategy: Any) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got strategy={strategy!r}")


def _check_jobs(jobs: Any) -> None:
    if not _is_int(jobs) or jobs == 0 or jobs < -1:
        raise ConfigError(f"jobs >= 1 (or -1 for every core) must hold, got jobs={jobs!r}")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TrialRecord:
    """One trial as recorded in the storage.

    Attributes
    ----------
    number : int
        Optuna trial number (0-based, unique in the study).
    params : dict
        Sampled values as written in the search space (``hidden_layers`` a list,
        ``batch_size`` possibly ``"full"``).
    state : str
        ``COMPLETE``, ``FAIL`` or ``RUNNING`` (another process is still on it).
    score : float or None
        Mean validation MAE over the folds, target unit; ``None`` unless COMPLETE.
    score_std : float or None
        Standard deviation of the fold MAEs (ddof=1), target unit.
    seconds : float or None
        Wall time of the trial's k-fold validation (or until it failed).
    reason : str or None
        Why a FAIL trial failed (``"interrupted"`` for one left running by a killed process).
    best_epochs : tuple of int
        Per fold, the epoch whose weights were kept.
    """

    number: int
    params: dict[str, Any]
    state: str
    score: float | None
    score_std: float | None
    seconds: float | None
    reason: str | None
    best_epochs: tuple[int, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether this trial counts toward ``n_trials`` (finished, not interrupted)."""
        return self.state == "COMPLETE" or (self.state == "FAIL" and _counted_reason(self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "state": self.state,
            "score": self.score,
            "score_std": self.score_std,
            "seconds": self.seconds,
            "reason": self.reason,
            "best_epochs": list(self.best_epochs),
        }


@dataclass(frozen=True)
class SweepResult:
    """Every trial of a study (resumed ones included) and the best one.

    Attributes
    ----------
    trials : tuple of TrialRecord
        By trial number.
    best : TrialRecord or None
        The COMPLETE trial the sweep keeps (``None`` if none): the lowest score, except that a
        ``physics`` trial within one standard error of it wins (:func:`one_se_choice`);
        lowest number on ties.
    best_config : ModelConfig or None
        ``base_config`` with the best trial's parameters.
    storage : str
        Journal file path or database URL (password masked).
    study_name, strategy : str
    seconds : float
        Wall time of this call.
    unit : str
        Unit of the scores (the target's unit, e.g. ``hPa``).
    """

    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    best_config: ModelConfig | None
    storage: str
    study_name: str
    strategy: str
    seconds: float
    unit: str = ""

    @property
    def n_counted(self) -> int:
        """Trials that count toward ``n_trials`` (COMPLETE + FAIL with a real reason)."""
        return sum(t.counts for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """``{"trials": [...], "best": {...}, ...}``, JSON-able."""
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "strategy": self.strategy,
            "unit": self.unit,
            "seconds": self.seconds,
            "trials": [t.to_dict() for t in self.trials],
            "best": None if self.best is None else self.best.to_dict(),
            "best_config": None if self.best_config is None else self.best_config.to_dict(),
        }


def _counted_reason(reason: Any) -> bool:
    return isinstance(reason, str) and bool(reason) and not reason.startswith(_UNCOUNTED)


# --------------------------------------------------------------------------- storage
def _mask(spec: str) -> str:
    """Hide a password in a database URL."""
    if "://" not in spec:
        return spec
    scheme, rest = spec.split("://", 1)
    if "@" in rest:
        cred, host = rest.rsplit("@", 1)
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":***"
        rest = f"{cred}@{host}"
    return f"{scheme}://{rest}"


def _storage_spec(storage: str | os.PathLike[str] | None) -> str:
    """Normalise a storage argument: an absolute journal path or a checked RDB URL."""
    if storage is None:
        storage = DEFAULT_STORAGE
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    if not isinstance(storage, str) or not storage.strip():
        raise ConfigError(f"storage must be a file path or a database URL, got storage={storage!r}")
    s = storage.strip()
    if "://" in s:
        scheme = s.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in _URL_SCHEMES:
            raise ConfigError(
                f"storage URL scheme must be one of {', '.join(_URL_SCHEMES)} (or give a journal file "
                f"path), got storage={_mask(s)!r}"
            )
        return s
    return str(Path(s).expanduser().resolve())


def _is_url(spec: str) -> bool:
    return "://" in spec


def _repair_journal(path: Path) -> None:
    """Drop a torn last line (a process killed mid-write) so the journal stays readable."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
    lock = JournalFileSymlinkLock(str(path))
    if not lock.acquire():  # pragma: no cover - acquire blocks until it succeeds
        return
    try:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(path, "r+b") as fh:
                fh.truncate(cut)
            _log.warning("%s: dropped a torn last record (%d bytes)", path, len(data) - cut)
    finally:
        lock.release()


_STUDIES: dict[tuple[str, str], Any] = {}


def _open_storage(spec: str) -> Any:
    import optuna

    if _is_url(spec):
        try:
            return optuna.storages.RDBStorage(spec)
        except Exception as exc:  # sqlalchemy errors: bad URL, unreachable server, no driver
            raise ConfigError(f"cannot open storage {_mask(spec)}: {type(exc).__name__}: {exc}") from None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CalibError(f"{path}: cannot create folder {path.parent} ({exc.strerror or exc})") from None
    _repair_journal(path)
    return JournalStorage(JournalFileBackend(str(path)))


def _file_id(spec: str) -> tuple[int, int] | None:
    try:
        st = os.stat(spec)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def _load_study(spec: str, study_name: str, sampler: Any = None, *, create: bool = False) -> Any:
    """The study in ``spec``, with ``sampler`` set when given.

    Cached per process (a journal is replayed once); ``create=True`` (the start of a sweep)
    always opens the storage afresh, so a journal deleted and written anew is not mixed up
    with the old one.
    """
    import optuna

    key = (spec, study_name)
    study = None if create else _STUDIES.get(key)
    if study is not None and not _is_url(spec) and getattr(study, "_calib_file_id", None) != _file_id(spec):
        study = None
    if study is None:
        storage = _open_storage(spec)
        if create:
            study = optuna.create_study(storage=storage, study_name=study_name,
                                        direction="minimize", load_if_exists=True)
        else:
            try:
                study = optuna.load_study(study_name=study_name, storage=storage)
            except KeyError:
                raise ConfigError(f"storage {_mask(spec)} holds no study named {study_name!r}") from None
        study._calib_file_id = None if _is_url(spec) else _file_id(spec)
        _STUDIES[key] = study
    if sampler is not None:
        study.sampler = sampler
    return study


@contextlib.contextmanager
def _claim_lock(spec: str, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" among the processes of this machine."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the post-ask check still prevents overshoot
        yield
        return
    if _is_url(spec):
        import tempfile

        digest = hashlib.sha1(f"{spec}\0{study_name}".encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"calib-sweep-{digest}.lock"
    else:
        path = Path(spec)
    with open(path, "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes
def _proc_start(pid: int) -> str | None:
    """A token that tells process ``pid`` apart from a later one with the same id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :].split()[19]
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return repr(psutil.Process(pid).create_time())
    except Exception:
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        stat = None
    if stat is not None:
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] in ("Z", "X"):  # zombie: dead, not yet reaped
            return False
        return start is None or (len(fields) > 19 and fields[19] == start)
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return start is None or repr(p.create_time()) == start
    except ImportError:
        pass
    except Exception:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_id() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _proc_start(pid)}


def _is_stale(t: Any, now: float, host: str) -> bool:
    """A RUNNING trial whose process is gone (this machine) or silent (another machine)."""
    from optuna.trial import TrialState

    if t.state != TrialState.RUNNING:
        return False
    w = t.user_attrs.get("worker")
    if isinstance(w, dict) and w.get("host") == host and _is_int(w.get("pid")):
        return not _process_alive(int(w["pid"]), w.get("start"))
    beat = t.user_attrs.get("heartbeat")
    if not isinstance(beat, (int, float)):
        beat = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
    return now - float(beat) > STALE_AFTER_S


def _counts(t: Any) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.COMPLETE or (
        t.state == TrialState.FAIL and _counted_reason(t.user_attrs.get("reason"))
    )


def _counts_or_runs(t: Any, now: float, host: str) -> bool:
    from optuna.trial import TrialState

    return _counts(t) or (t.state == TrialState.RUNNING and not _is_stale(t, now, host))


def _mark_interrupted(study: Any, reason: str = "interrupted") -> int:
    """Mark RUNNING trials of dead processes FAIL with ``reason``; returns how many."""
    from optuna.trial import TrialState

    now, host, n = time.time(), socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _is_stale(t, now, host):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "reason", reason)
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            n += 1
        except Exception as exc:  # finished meanwhile by its owner
            _log.debug("could not mark trial %d interrupted: %s", t.number, exc)
    return n


def _rss_mb() -> tuple[float | None, float | None]:
    """(current, peak) resident memory of this process in MiB."""
    cur = peak = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        try:
            import psutil

            cur = psutil.Process().memory_info().rss / 2**20
        except Exception:
            pass
    if peak is None:
        try:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = r / 2**20 if sys.platform == "darwin" else r / 1024
        except Exception:
            pass
    return cur, peak


class _Heartbeat:
    """While a trial runs: record a heartbeat every HEARTBEAT_S in the trial's user attrs."""

    def __init__(self, trial: Any) -> None:
        self._trial = trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calib-sweep-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self._trial.set_user_attr("heartbeat", time.time())

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


_WATCHING = False


def _watch_parent(pid: int) -> None:
    """Exit this worker at once when the sweep's main process ``pid`` dies (SIGKILL, crash):
    a running trial stays RUNNING and the next run marks it interrupted."""
    while True:
        if os.getppid() != pid:
            os._exit(70)
        time.sleep(0.5)


def _init_worker(watch_pid: int | None = None) -> None:
    """First thing in a worker process: one TF thread, quiet Optuna, watch the parent."""
    global _WATCHING
    from .validate import limit_threads

    limit_threads()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if watch_pid is not None and not _WATCHING:
        _WATCHING = True
        threading.Thread(target=_watch_parent, args=(watch_pid,), name="calib-sweep-watchdog",
                         daemon=True).start()


def _release_tf() -> None:
    if "keras" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["keras"].backend.clear_session(free_memory=True)
    gc.collect()


# --------------------------------------------------------------------------- samplers
def _trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def _make_random(seed: int) -> Any:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


def _make_tpe(seed: int) -> Any:
    from optuna.samplers import TPESampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TPESampler(seed=seed)


def _make_sampler(strategy: str, space: SearchSpace, seed: int) -> Any:
    import optuna

    class PerTrialSampler(optuna.samplers.BaseSampler):
        """Delegates to a fresh sampler seeded by (sweep seed, trial number): the same draws
        whatever process or resume a trial lands in."""

        def __init__(self, factory: Callable[[int], Any], seed: int) -> None:
            self._factory, self._seed = factory, seed
            self._inner = factory(seed)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._inner = self._factory(_trial_seed(self._seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return self._inner.sample_independent(study, trial, name, dist)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:  # pragma: no cover - seeds come from trial numbers
            pass

    class Grid(optuna.samplers.GridSampler):
        """Optuna's GridSampler, but an interrupted grid point is run again, and telling the
        last point does not call ``study.stop()`` (which only works inside ``optimize``)."""

        def __init__(self, space: SearchSpace, seed: int) -> None:
            names = sorted(space.names)
            by_name = {p.name: [_encode(p.name, v) for v in p.grid_values()] for p in space.params}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super().__init__({n: by_name[n] for n in names}, seed=seed)
            self._names = names
            self._points = list(itertools.product(*(by_name[n] for n in names)))
            self._order = np.random.RandomState(seed).permutation(len(self._points)).tolist()
            self._space_attr = {n: by_name[n] for n in names}

        def before_trial(self, study: Any, trial: Any) -> None:
            if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
                return
            from optuna.trial import TrialState

            now, host = time.time(), socket.gethostname()
            taken, done = set(), set()
            for t in study.get_trials(deepcopy=False):
                gid = t.system_attrs.get("grid_id")
                if gid is None or t.number == trial.number:
                    continue
                if _counts(t):
                    done.add(gid)
                    taken.add(gid)
                elif t.state == TrialState.RUNNING and not _is_stale(t, now, host):
                    taken.add(gid)
            free = [i for i in self._order if i not in taken] or [i for i in self._order if i not in done]
            gid = free[0] if free else self._order[0]
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._space_attr)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", int(gid))

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            gid = trial.system_attrs["grid_id"]
            return self._points[gid][self._names.index(name)]

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    if strategy == "grid":
        return Grid(space, seed)
    if strategy == "random":
        return PerTrialSampler(_make_random, seed)
    return PerTrialSampler(_make_tpe, seed)


def preview_trials(space: SearchSpace | Mapping[str, Any], n: int, *, strategy: str = "random",
                   seed: int = 0) -> list[dict[str, Any]]:
    """The parameters the first ``n`` trials of a sweep would draw, without training.

    Runs the sweep's sampler on an in-memory study with a dummy objective (0.0), so it
    shows exactly the ``random`` and ``grid`` draws of :func:`run_sweep` with this ``seed``
    (``bayes`` draws depend on the scores and only its first, random, trials match).

    Parameters
    ----------
    space : SearchSpace or mapping
    n : int
        Number of trials (>= 1); for ``grid`` at most the grid size.
    strategy : {"random", "grid", "bayes"}, default="random"
    seed : int, default=0

    Returns
    -------
    list of dict
        File-form parameters, one dict per trial.

    Raises
    ------
    ConfigError
        Bad strategy, ``n`` or space.
    """
    import optuna

    _check_strategy(strategy)
    space = SearchSpace.from_dict(space)
    if not _is_int(n) or n < 1:
        raise ConfigError(f"n >= 1 must hold, got n={n!r}")
    if strategy == "grid":
        n = min(n, space.grid_size())
    with _quiet_optuna():
        study = optuna.create_study(sampler=_make_sampler(strategy, space, seed), direction="minimize")
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(space.suggest(trial))
            study.tell(trial, 0.0)
    return out


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


# --------------------------------------------------------------------------- one trial
@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to run one trial (picklable)."""

    storage: str
    study_name: str
    n_trials: int
    strategy: str
    space: SearchSpace
    seed: int
    base: dict[str, Any]
    ds: Any
    rows: np.ndarray
    folds: int
    tolerance: float
    scaling: str
    noise_floor: float | None
    in_worker: bool
    watch_pid: int | None


def _run_one_trial(job: _Job) -> dict[str, Any] | None:
    """Claim one trial in the shared study, run it, record it. ``None``: the total is reached.

    Runs in a worker process (or in the caller for ``jobs=1, recycle_every=None``).
    """
    if job.in_worker:
        _init_worker(job.watch_pid)
    from optuna.trial import TrialState

    from .validate import cross_validate

    sampler = _make_sampler(job.strategy, job.space, job.seed)
    study = _load_study(job.storage, job.study_name, sampler)
    host = socket.gethostname()
    with _claim_lock(job.storage, job.study_name):
        now = time.time()
        if sum(_counts_or_runs(t, now, host) for t in study.get_trials(deepcopy=False)) >= job.n_trials:
            return None
        trial = study.ask()
        try:
            trial.set_user_attr("worker", _worker_id())
            trial.set_user_attr("heartbeat", time.time())
        except BaseException:  # Ctrl-C right after ask: do not leave an anonymous RUNNING trial
            with contextlib.suppress(Exception):
                trial.set_user_attr("reason", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
            raise
    # another machine may have asked at the same time (RDB storage, no shared lock)
    now = time.time()
    ahead = sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and _counts_or_runs(t, now, host)
    )
    if ahead >= job.n_trials:
        trial.set_user_attr("reason", f"surplus: the study already had {job.n_trials} trials")
        study.tell(trial, state=TrialState.FAIL)
        return None

    base = ModelConfig.from_dict(job.base)
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"number": trial.number, "state": "FAIL", "score": None, "reason": None}
    pending: BaseException | None = None
    with _Heartbeat(trial):
        try:
            params = job.space.suggest(trial)
            config = job.space.to_config(base, params)
            cv = cross_validate(job.ds, job.rows, config, folds=job.folds, jobs=1,
                                tolerance=job.tolerance, scaling=job.scaling, seed=job.seed,
                                noise_floor=job.noise_floor, baseline=False)
            score, std = cv.score, cv.mean_std("mae")[1]
            trial.set_user_attr("score_std", float(std))
            trial.set_user_attr("best_epochs", [int(e) for e in cv.best_epochs])
            trial.set_user_attr("train_mae", float(cv.mean_std("mae", "train")[0]))
            if math.isfinite(score):
                outcome.update(state="COMPLETE", score=float(score))
            else:
                outcome["reason"] = f"validation MAE is {score} (non-finite predictions)"
        except TrainingError as exc:
            outcome["reason"] = str(exc)
        except ConfigError as exc:
            outcome["reason"] = f"config error: {exc}"
            pending = exc
        except Exception as exc:  # a bug or an environment problem: record it, stop the sweep
            outcome["reason"] = f"error: {type(exc).__name__}: {exc}"
            pending = exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit
            outcome["reason"] = "interrupted"
            pending = exc
    outcome["seconds"] = time.perf_counter() - t0
    cur, peak = _rss_mb()
    try:
        trial.set_user_attr("seconds", outcome["seconds"])
        if cur is not None:
            trial.set_user_attr("rss_mb", round(cur, 1))
        if peak is not None:
            trial.set_user_attr("peak_rss_mb", round(peak, 1))
        if outcome["state"] == "COMPLETE":
            study.tell(trial, outcome["score"])
        else:
            trial.set_user_attr("reason", outcome["reason"])
            study.tell(trial, state=TrialState.FAIL)
    except Exception as exc:  # marked interrupted by another process meanwhile
        _log.warning("trial %d could not be recorded: %s", trial.number, exc)
    finally:
        _release_tf()
    if pending is not None:
        raise pending
    return outcome


# --------------------------------------------------------------------------- the sweep
def _data_fingerprint(ds: Any, rows: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.x(rows), dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(ds.y(rows), dtype=np.float64).tobytes())
    g = ds.groups(rows)
    if g is not None:
        h.update("\0".join(map(str, g)).encode())
    h.update(json.dumps([list(ds.feature_names), list(ds.target_names)]).encode())
    return h.hexdigest()[:16]


def _bind_study(study: Any, spec: str, study_name: str, attrs: dict[str, Any]) -> None:
    """Record the sweep's identity on a new study; refuse to resume a different one."""
    have = study.user_attrs
    if "strategy" not in have:
        for k, v in attrs.items():
            study.set_user_attr(k, v)
        return
    labels = {
        "space": "search space", "strategy": "strategy", "folds": "number of folds", "seed": "seed",
        "base_config": "base model config", "scaling": "scaling", "data": "data (rows or values)",
    }
    for k, label in labels.items():
        if k in have and _key(have[k]) != _key(attrs[k]):
            detail = "" if k in ("space", "base_config", "data") else f" ({have[k]!r}, now {attrs[k]!r})"
            raise ConfigError(
                f"storage {_mask(spec)} holds a study {study_name!r} with another {label}{detail}; "
                "use a new --storage (or another --study name)"
            )


def _records(study: Any, space: SearchSpace) -> tuple[TrialRecord, ...]:
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        ua = t.user_attrs
        params = {k: _file_form(k, v) for k, v in t.params.items()}
        score = float(t.value) if t.state.name == "COMPLETE" and t.value is not None else None
        std = ua.get("score_std")
        secs = ua.get("seconds")
        if secs is None and t.datetime_start is not None and t.datetime_complete is not None:
            secs = (t.datetime_complete - t.datetime_start).total_seconds()
        out.append(TrialRecord(
            number=int(t.number),
            params={n: params[n] for n in space.names if n in params} | {
                k: v for k, v in params.items() if k not in space.names},
            state=t.state.name,
            score=score,
            score_std=None if std is None or score is None else float(std),
            seconds=None if secs is None else float(secs),
            reason=ua.get("reason") if t.state.name != "COMPLETE" else None,
            best_epochs=tuple(int(e) for e in ua.get("best_epochs", ())),
        ))
    return tuple(out)


#: Rank of each model family for the one-standard-error rule: the physics fit (a handful of
#: parameters) is simpler than the network families (``hybrid`` and ``mlp``, thousands).
SIMPLICITY = {"physics": 0, "hybrid": 1, "mlp": 1}


def one_se_choice(entries: Sequence[tuple[str, float, float | None, int]]) -> int:
    """Index of the entry the sweep keeps: the one-standard-error rule on the model family.

    Parameters
    ----------
    entries : sequence of (family, score, score_std, n_folds)
        Per candidate: its model family, mean k-fold MAE (target unit), the standard deviation
        of its fold MAEs (``None`` if unknown) and its number of folds.

    Returns
    -------
    int
        Among the candidates whose score is within one standard error (``std / sqrt(k)``) of
        the lowest score, the one of the simplest family (:data:`SIMPLICITY`: ``physics``
        before the network families ``hybrid`` and ``mlp``, which rank equal); within a rank,
        the lowest score; on ties, the first entry.

    Notes
    -----
    Breiman's one-standard-error rule, applied to the physics-vs-network choice only: a
    network (alone or on the physics residual) must beat the physics fit by more than the
    fold-to-fold noise of the score to be chosen over it. On small certificates (24-63
    points) picking the bare lowest score lets a hybrid win by noise and lose on new rows;
    between network configs, and with a network far better than the physics fit (a large
    multi-frequency batch), the rule changes nothing.
    """
    if not entries:
        raise ValueError("no candidates to choose from")
    lowest = min(range(len(entries)), key=lambda i: (entries[i][1], i))
    _, score, std, k = entries[lowest]
    se = 0.0 if std is None or not math.isfinite(std) or k < 2 else float(std) / math.sqrt(k)
    near = [i for i, e in enumerate(entries) if e[1] <= score + se]

    def rank(i: int) -> tuple[int, float, int]:
        return (SIMPLICITY.get(entries[i][0], 1), entries[i][1], i)

    return min(near, key=rank)


def _family(space: SearchSpace, base: ModelConfig, params: dict[str, Any]) -> str:
    try:
        return space.to_config(base, params).family
    except ConfigError:  # pragma: no cover - every sampled config was built once already
        return str(params.get("family", base.family))


def _result(study: Any, space: SearchSpace, base: ModelConfig, spec: str, study_name: str,
            strategy: str, seconds: float, unit: str) -> SweepResult:
    recs = _records(study, space)
    done = sorted((r for r in recs if r.state == "COMPLETE"), key=lambda r: r.number)
    best = None
    if done:
        entries = [(_family(space, base, r.params), float(r.score), r.score_std, max(1, len(r.best_epochs)))
                   for r in done]
        best = done[one_se_choice(entries)]
    best_config = None
    if best is not None:
        try:
            best_config = space.to_config(base, best.params)
        except ConfigError:  # pragma: no cover - every sampled config was built once already
            best_config = None
    return SweepResult(trials=recs, best=best, best_config=best_config, storage=_mask(spec),
                       study_name=study_name, strategy=strategy, seconds=seconds, unit=unit)


def _progress_state(study: Any) -> tuple[int, float | None]:
    done, best = 0, None
    for t in study.get_trials(deepcopy=False):
        if _counts(t):
            done += 1
            if t.state.name == "COMPLETE" and t.value is not None and (best is None or t.value < best):
                best = float(t.value)
    return done, best


def run_sweep(
    ds: Any,
    rows: np.ndarray,
    base_config: ModelConfig,
    space: SearchSpace | Mapping[str, Any] | None = None,
    *,
    strategy: str = "random",
    n_trials: int = 20,
    folds: int = 5,
    jobs: int = 1,
    storage: str | os.PathLike[str] | None = None,
    study_name: str = "calib",
    seed: int = 0,
    tolerance: float = 1.0,
    scaling: str = "standard",
    noise_floor: float | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int, float | None], None] | None = None,
    recycle_every: int | None = 10,
) -> SweepResult:
    """Search hyperparameters: each trial is one config scored by k-fold validation.

    Parameters
    ----------
    ds : Dataset
    rows : ndarray of int
        Rows to validate on (train and dev parts; never the test rows).
    base_config : ModelConfig
        Every trial is ``base_config.replace(**params)``; fix epochs, patience, ... here.
    space : SearchSpace or mapping, optional
        The ``[sweep.space]`` table; :data:`DEFAULT_SPACE` when ``None``.
    strategy : {"random", "grid", "bayes"}, default="random"
    n_trials : int, default=20
        Total trials the study should reach (>= 1), resumed ones included; trials
        interrupted by a killed process do not count. ``grid``: at most the grid size.
    folds : int, default=5
        k of the k-fold (>= 2; GroupKFold with a group column).
    jobs : int, default=1
        Trials run at once: worker processes on this machine (-1: one per core), or
        concurrent tasks on the Dask cluster with ``scheduler`` (1 or -1: one per worker
        thread of the cluster).
    storage : str or path, optional
        Journal file (default ``runs/sweep.journal``; its folder is created) or an RDB URL
        (``sqlite:///sweep.db``, ``postgresql://user:pw@host/db``) that several machines share.
    study_name : str, default="calib"
    seed : int, default=0
        Seed of the sampler and of the fold assignment (>= 0).
    tolerance : float, default=1.0
        Error Limited Accuracy bound (target unit), recorded with each fold.
    scaling : str, default="standard"
        Input/target scaling fitted per fold.
    noise_floor : float, optional
        Best achievable MAE (target unit), passed to validation.
    scheduler : str, optional
        ``"tcp://HOST:PORT"`` of a Dask scheduler: run the trials there (joblib's dask
        backend) instead of in local worker processes.
    progress : callable, optional
        ``progress(done, total, best_score)``: once at the start (trials already done when
        resuming) and after each trial; see :func:`make_progress`.
    recycle_every : int or None, default=10
        Replace a local worker process by a fresh one after this many trials, which keeps
        memory flat. ``None`` keeps workers for the whole sweep, and with ``jobs=1`` runs the
        trials in this process. Not used with ``scheduler``.

    Returns
    -------
    SweepResult
        Every trial in the study, the best one and its config.

    Raises
    ------
    ConfigError
        Before any trial starts: an invalid argument or space entry, more folds than groups,
        a storage holding this study with another space/strategy/seed/folds/config/data, an
        unreachable scheduler. During the sweep: a trial's config error (recorded, then raised).
    CalibError
        Worker processes keep dying (e.g. out of memory).

    Examples
    --------
    >>> res = run_sweep(ds, splits.train_dev, ModelConfig(epochs=200), strategy="bayes",
    ...                 n_trials=30, storage="runs/foil7.journal", jobs=2)  # doctest: +SKIP
    >>> print(format_leaderboard(res, top=5))  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    # ---- validate everything before touching the storage
    _check_strategy(strategy)
    if not isinstance(base_config, ModelConfig):
        raise ConfigError(f"base_config must be a ModelConfig, got {type(base_config).__name__}")
    space = DEFAULT_SPACE if space is None else SearchSpace.from_dict(space)
    if not _is_int(n_trials) or n_trials < 1:
        raise ConfigError(f"n_trials >= 1 must hold, got n_trials={n_trials!r}")
    if not _is_int(folds) or folds < 2:
        raise ConfigError(f"folds >= 2 must hold, got folds={folds!r}")
    _check_jobs(jobs)
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got seed={seed!r}")
    if not _is_num(tolerance) or not tolerance > 0:
        raise ConfigError(f"tolerance > 0 must hold, got tolerance={tolerance!r}")
    from .scaling import SCALING_KINDS

    if scaling not in SCALING_KINDS:
        raise ConfigError(f"scaling must be one of {', '.join(SCALING_KINDS)}, got scaling={scaling!r}")
    if noise_floor is not None and (not _is_num(noise_floor) or noise_floor < 0):
        raise ConfigError(f"noise_floor >= 0 must hold, got noise_floor={noise_floor!r}")
    if recycle_every is not None and (not _is_int(recycle_every) or recycle_every < 1):
        raise ConfigError(f"recycle_every >= 1 (or None) must hold, got recycle_every={recycle_every!r}")
    if not isinstance(study_name, str) or not study_name.strip():
        raise ConfigError(f"study_name must be a non-empty name, got study_name={study_name!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise ConfigError(f"scheduler must be an address such as tcp://host:8786, got scheduler={scheduler!r}")
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress must be callable, got {type(progress).__name__}")
    space.check(base_config, strategy)
    rows = np.asarray(rows)
    from .validate import make_folds

    make_folds(len(rows), folds, ds.groups(rows), seed)  # ConfigError: too few rows/groups
    spec = _storage_spec(storage)
    total = n_trials
    if strategy == "grid":
        size = space.grid_size()
        if n_trials > size:
            _log.info("grid has %d points: running %d trials, not %d", size, size, n_trials)
        total = min(n_trials, size)

    # ---- open the study, check it is this sweep, mark interrupted trials
    with _quiet_optuna():
        study = _load_study(spec, study_name, _make_sampler(strategy, space, seed), create=True)
    attrs = {
        "strategy": strategy, "space": space.to_dict(), "folds": int(folds), "seed": int(seed),
        "base_config": base_config.to_dict(), "scaling": scaling, "data": _data_fingerprint(ds, rows),
    }
    _bind_study(study, spec, study_name, attrs)
    n_int = _mark_interrupted(study)
    done0, best0 = _progress_state(study)
    if done0 or n_int:
        _log.info("resuming study %r in %s: %d of %d trials done, %d interrupted trial(s) marked failed",
                  study_name, _mask(spec), done0, total, n_int)
    if progress is not None:
        progress(done0, total, best0)

    job = _Job(storage=spec, study_name=study_name, n_trials=total, strategy=strategy, space=space,
               seed=int(seed), base=base_config.to_dict(), ds=ds, rows=rows, folds=int(folds),
               tolerance=float(tolerance), scaling=scaling, noise_floor=noise_floor,
               in_worker=True, watch_pid=os.getpid())

    def after_trial() -> None:
        if progress is not None:
            progress(*_with_total(_progress_state(study), total))

    now, host = time.time(), socket.gethostname()
    busy = sum(_counts_or_runs(t, now, host) for t in study.get_trials(deepcopy=False))
    missing = max(0, total - busy)
    if missing:
        if scheduler is not None:
            _run_dask(job, missing, jobs, scheduler, after_trial)
        elif jobs == 1 and recycle_every is None:
            _run_here(dataclasses.replace(job, in_worker=False, watch_pid=None), missing, after_trial)
        else:
            n_workers = (os.cpu_count() or 1) if jobs == -1 else jobs
            _run_local(job, missing, min(n_workers, missing), recycle_every, study, after_trial)
    unit = getattr(getattr(ds, "target", None), "unit", "") or ""
    return _result(study, space, base_config, spec, study_name, strategy,
                   time.perf_counter() - t_start, unit)


def _with_total(state: tuple[int, float | None], total: int) -> tuple[int, int, float | None]:
    return state[0], total, state[1]


def _run_here(job: _Job, missing: int, after_trial: Callable[[], None]) -> None:
    for _ in range(missing):
        if _run_one_trial(job) is None:
            return
        after_trial()


class _Slot:
    """One local worker process (a single-worker loky executor), replaced every M trials."""

    def __init__(self) -> None:
        self.executor: Any = None
        self.ran = 0
        self.retired = False

    def submit(self, job: _Job, recycle_every: int | None) -> Any:
        from joblib.externals.loky import ProcessPoolExecutor

        if self.executor is not None and recycle_every is not None and self.ran >= recycle_every:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.executor is None:
            self.executor = ProcessPoolExecutor(
                max_workers=1, initializer=_init_worker, initargs=(job.watch_pid,),
                env={"TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1",
                     "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
            )
            self.ran = 0
        self.ran += 1
        return self.executor.submit(_run_one_trial, job)

    def kill(self) -> None:
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.shutdown(wait=True, kill_workers=True)
            self.executor = None


def _run_local(job: _Job, missing: int, n_workers: int, recycle_every: int | None, study: Any,
               after_trial: Callable[[], None]) -> None:
    """``n_workers`` worker processes pull trials until the study holds ``job.n_trials``."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool as _StdBroken

    from joblib.externals.loky.process_executor import BrokenProcessPool

    slots = [_Slot() for _ in range(n_workers)]
    pending: dict[Any, _Slot] = {}
    submitted, crashes = 0, 0
    ok = False
    try:
        for slot in slots:
            pending[slot.submit(job, recycle_every)] = slot
            submitted += 1
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                slot = pending.pop(fut)
                try:
                    out = fut.result()
                except (BrokenProcessPool, _StdBroken) as exc:
                    crashes += 1
                    slot.kill()
                    _mark_interrupted(study, "interrupted: worker process died")
                    if crashes > max(2, n_workers):
                        raise CalibError(f"sweep worker processes keep dying ({crashes} times; last: "
                                         f"{exc}); out of memory? lower jobs or the network size") from None
                    out = {}
                if out is None:
                    slot.retired = True
                    continue
                if out:
                    after_trial()
                done, _ = _progress_state(study)
                if done + len(pending) < job.n_trials and not slot.retired:
                    pending[slot.submit(job, recycle_every)] = slot
                    submitted += 1
        ok = True
    finally:
        for slot in slots:
            if ok:
                if slot.executor is not None:
                    slot.executor.shutdown(wait=True)
            else:
                slot.kill()
        if not ok:
            _mark_interrupted(study)


def _run_dask(job: _Job, missing: int, jobs: int, scheduler: str, after_trial: Callable[[], None]) -> None:
    """Run the trials as joblib tasks on an existing Dask cluster."""
    import joblib

    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("scheduler needs dask.distributed: pip install 'calib[cluster]'") from None
    try:
        client = Client(scheduler, set_as_default=False, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler} ({exc})") from None
    job = dataclasses.replace(job, watch_pid=None)
    # joblib runs n_jobs=1 sequentially in this process: jobs=1 means the whole cluster here
    n_jobs = -1 if jobs == 1 else jobs
    try:
        with joblib.parallel_config(backend="dask", client=client):
            par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="n_jobs")
            for out in par(joblib.delayed(_run_one_trial)(job) for _ in range(missing)):
                if out is not None:
                    after_trial()
    finally:
        client.close()


def load_result(storage: str | os.PathLike[str] | None = None, study_name: str = "calib") -> SweepResult:
    """Read a sweep's trials back from its storage (no training).

    Raises
    ------
    ConfigError
        If the storage holds no such study, or the study was not written by :func:`run_sweep`.
    """
    spec = _storage_spec(storage)
    if not _is_url(spec) and not Path(spec).exists():
        raise ConfigError(f"storage {spec} does not exist")
    with _quiet_optuna():
        study = _load_study(spec, study_name)
    ua = study.user_attrs
    if "space" not in ua or "base_config" not in ua:
        raise ConfigError(f"study {study_name!r} in {_mask(spec)} was not written by calib's sweep")
    return _result(study, SearchSpace.from_dict(ua["space"]), ModelConfig.from_dict(ua["base_config"]),
                   spec, study_name, ua.get("strategy", ""), 0.0, "")


# --------------------------------------------------------------------------- output
def leaderboard(result: SweepResult) -> list[dict[str, Any]]:
    """COMPLETE trials, best first (lowest mean validation MAE; ties by trial number).

    Returns
    -------
    list of dict
        ``rank`` (1 = best), ``number``, ``params``, ``mae`` (mean over folds, target unit),
        ``mae_std``, ``seconds``, ``best_epochs``.
    """
    done = sorted((t for t in result.trials if t.state == "COMPLETE"), key=lambda t: (t.score, t.number))
    return [
        {"rank": i, "number": t.number, "params": dict(t.params), "mae": t.score,
         "mae_std": t.score_std, "seconds": t.seconds, "best_epochs": list(t.best_epochs)}
        for i, t in enumerate(done, start=1)
    ]


def format_leaderboard(result: SweepResult, top: int = 10) -> str:
    """An aligned text table of the ``top`` best trials, with a line on the failed ones.

    Examples
    --------
    ::

        rank  trial  MAE hPa           s  learning_rate  hidden_layers  activation
           1      7  0.412 +/- 0.031  41  0.00412        [32, 32]       tanh
    """
    rows = leaderboard(result)[: max(0, int(top))]
    names: list[str] = []
    for r in rows:
        names += [k for k in r["params"] if k not in names]
    unit = f" {result.unit}" if result.unit else ""
    head = ["rank", "trial", f"MAE{unit}", "s", *names]
    body = []
    for r in rows:
        std = "" if r["mae_std"] is None else f" +/- {r['mae_std']:.4g}"
        body.append([str(r["rank"]), str(r["number"]), f"{r['mae']:.4g}{std}",
                     "" if r["seconds"] is None else f"{r['seconds']:.0f}",
                     *(_fmt_value(r["params"].get(n, "")) for n in names)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {0, 1, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(head), *(line(b) for b in body)]
    if not rows:
        out = ["no completed trials"]
    failed = [t for t in result.trials if t.state == "FAIL" and t.counts]
    if failed:
        out.append(f"{len(failed)} failed trial(s): " + "; ".join(
            f"#{t.number} {(t.reason or '').splitlines()[0][:80]}" for t in failed[:3])
            + (" ..." if len(failed) > 3 else ""))
    return "\n".join(out)


def write_leaderboard(result: SweepResult, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` (one row per completed trial, one column per parameter) and
    ``leaderboard.json`` (the leaderboard, every trial and the best config) atomically.

    Parameters
    ----------
    result : SweepResult
    folder : str or path
        Created if missing; usually the folder of the journal file.

    Returns
    -------
    (csv_path, json_path)

    Raises
    ------
    CalibError
        If the folder cannot be created or written.
    """
    from .fsutil import atomic_write

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CalibError(f"{folder}: cannot create folder ({exc.strerror or exc})") from None
    rows = leaderboard(result)
    names: list[str] = []
    for t in result.trials:
        names += [k for k in t.params if k not in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "number", "mae", "mae_std", "seconds", *names])
    for r in rows:
        w.writerow([r["rank"], r["number"], repr(r["mae"]),
                    "" if r["mae_std"] is None else repr(r["mae_std"]),
                    "" if r["seconds"] is None else f"{r['seconds']:.3f}",
                    *(json.dumps(r["params"][n]) if isinstance(r["params"].get(n), list)
                      else r["params"].get(n, "") for n in names)])
    doc = {"unit": result.unit, "leaderboard": rows, **result.to_dict()}
    csv_path = atomic_write(folder / "leaderboard.csv", lambda p: p.write_text(buf.getvalue(), encoding="utf-8"))
    json_path = atomic_write(folder / "leaderboard.json",
                             lambda p: p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"))
    return csv_path, json_path


def make_progress(total: int, enabled: bool = True, stream: Any = None) -> Progress:
    """A ``progress`` callable for :func:`run_sweep`.

    On a terminal (``stream.isatty()``) it draws a live tqdm bar: trials done, best MAE so far,
    ETA; otherwise (a log file, CI) it prints one plain line per trial, e.g.
    ``sweep: 3/20 trials done, best MAE 0.4123, elapsed 0:01:02, ETA 0:05:51``.

    Parameters
    ----------
    total : int
        Trials the study should reach.
    enabled : bool, default=True
        ``False`` gives a silent callable.
    stream : file, optional
        Where to draw; standard error by default.

    Returns
    -------
    callable
        ``progress(done, total, best_score)``, with a ``close()`` method.
    """
    return Progress(total, label="sweep", unit="trial", metric="best MAE", enabled=enabled, stream=stream)
