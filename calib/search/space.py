"""The search space of a sweep: :class:`ParamSpec` and :class:`SearchSpace` (``[sweep.space]``).

One entry per :class:`~calib.nn.ModelConfig` field: a list of choices or a numeric range,
validated where it enters and checked against ``ModelConfig``'s rules (one config per choice
and bound) before any trial starts. A value has three forms: the *file form* as written in the
config (:func:`file_form`: lists for ``hidden_layers``, ``"full"`` for ``batch_size``), an
Optuna categorical value (:func:`encode_value`) and what ``ModelConfig`` takes
(:meth:`SearchSpace.to_config`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constraints import Boolean, Interval, Satisfies, StrOptions, check_keys, check_param, require
from ..errors import ConfigError
from ..nn import ModelConfig

if TYPE_CHECKING:  # pragma: no cover - typing only; optuna is imported where it is used
    import optuna


STRATEGIES = ("grid", "random", "bayes")
#: Parameters whose ranges are log-uniform unless ``log = false`` (or a ``step``) is given.
LOG_BY_DEFAULT = ("learning_rate", "l1", "l2", "decay_rate", "init_stddev", "epsilon")

_RANGE_KEYS = ("low", "high", "log", "step", "num")


def _distinct(values: Sequence[Any]) -> bool:
    keys = [value_key(c) for c in values]
    return len(set(keys)) == len(keys)


#: Rule of a ``choices`` list (values compared by their JSON form).
CHOICES = [Satisfies(lambda c: isinstance(c, Sequence) and not isinstance(c, (str, bytes)) and len(c) >= 1
                     and _distinct(c), "{name} is a non-empty list, no value repeated")]
#: Rules of the keys of a range entry (``low < high`` and the step's fit are checked together).
RANGE_RULES: Mapping[str, list] = {
    "low": [Interval(Real, None, None)],
    "high": [Interval(Real, None, None)],
    "log": [Boolean()],
    "step": [None, Interval(Real, 0, None, closed="neither")],
    "num": [None, Interval(Integral, 2, None)],
}


# --------------------------------------------------------------------------- small helpers
def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (a bool is not)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_num(v: Any) -> bool:
    """Whether ``v`` is a finite real number (a bool is not)."""
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
        if f.name in ("batch_size", "patience", "epochs") or is_num(f.default):
            out.add(f.name)
    return out


def _tidy(v: float) -> float:
    """Round away float noise from linspace/geomspace (12 significant digits)."""
    return float(f"{float(v):.12g}")


def value_key(v: Any) -> str:
    """A canonical text form of ``v`` to compare values by (JSON, keys sorted)."""
    return json.dumps(v, sort_keys=True, default=repr)


def file_form(name: str, value: Any) -> Any:
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
        (isinstance(value, str) and value.strip().lower() == "full") or (is_int(value) and value == 0)
    ):
        return None
    if name == "patience" and isinstance(value, str) and value.strip().lower() == "none":
        return None
    return value


def encode_value(name: str, value: Any) -> Any:
    """File form -> an Optuna categorical value (None/bool/int/float/str only)."""
    if name == "hidden_layers":
        return json.dumps(list(value) if isinstance(value, (list, tuple)) else value)
    return value


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
        check_keys("sweep.space", [n], _model_fields())
        where = f" in [sweep.space.{n}]"
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.num is not None:
                raise ConfigError(
                    f"[sweep.space] {n} must give either choices or a range (low, high), not both"
                )
            check_param("choices", list(self.choices), CHOICES, note=where)
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
        for key, rules in RANGE_RULES.items():
            check_param(key, getattr(self, key), rules, note=where)
        require(self.low < self.high, "low < high", note=where, low=self.low, high=self.high)
        require(not self.log or self.low > 0, "low > 0 for a log range", low=self.low,
                note=f"{where} (log = true); use log = false, or choices = [0.0, ...] to include 0")
        if self.step is not None:
            if self.log:
                raise ConfigError(
                    f"[sweep.space] {n}: step and log = true cannot be combined; set log = false"
                )
            k = (self.high - self.low) / self.step
            require(abs(k - round(k)) <= 1e-9 * max(1.0, abs(k)), "high - low is a multiple of step",
                    note=where, low=self.low, high=self.high, step=self.step)

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
        check_keys(f"sweep.space.{name}", spec, ("choices", *_RANGE_KEYS))
        if "choices" in spec:
            raw = spec["choices"]
            check_param("choices", raw, CHOICES, note=f" in [sweep.space.{name}]")
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
            if is_int(c):
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
            return {"choices": [file_form(self.name, c) for c in self.choices]}
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
            and is_int(self.low)
            and is_int(self.high)
            and (self.step is None or is_int(self.step))
        )

    def grid_values(self) -> list[Any]:
        """The points this parameter takes in a grid (file form).

        Raises
        ------
        ConfigError
            A range without ``num`` or ``step``, or an integer range with repeated points.
        """
        if self.choices is not None:
            return [file_form(self.name, c) for c in self.choices]
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
            require(len(set(vals)) == len(vals), f"num <= {int(self.high) - int(self.low) + 1}", num=self.num,
                    note=f" in [sweep.space.{self.name}] (the integer range {self.low}..{self.high}: points repeat)")
            return vals
        return [_tidy(p) for p in pts]

    def check_values(self, strategy: str) -> list[Any]:
        """Values that must each give a valid config: every choice, both bounds, grid points."""
        if strategy == "grid":
            return self.grid_values()
        if self.choices is not None:
            return [file_form(self.name, c) for c in self.choices]
        return [self.low, self.high]

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        """Draw this parameter in an Optuna trial; returns the file-form value."""
        if self.choices is not None:
            enc = [encode_value(self.name, file_form(self.name, c)) for c in self.choices]
            return file_form(self.name, trial.suggest_categorical(self.name, enc))
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

    def suggest(self, trial: optuna.trial.Trial, base: ModelConfig | None = None) -> dict[str, Any]:
        """Draw the parameters in an Optuna trial; file-form values by name.

        With ``base``, a parameter that cannot change the training of the config drawn so far
        (:meth:`calib.nn.ModelConfig.inert_fields`: the learning rate of an L-BFGS trial, the
        network of a ``physics`` trial) is not drawn and keeps ``base``'s value. The settings that
        decide what is inert (``family``, ``optimizer``, ``lr_schedule``, ``init``) are drawn
        first. So a sampler does not spend trials on configs that differ only in inert settings.
        """
        if base is None:
            return {p.name: p.suggest(trial) for p in self.params}
        out: dict[str, Any] = {}
        rank = {name: i for i, name in enumerate(_DECIDERS)}
        for p in sorted(self.params, key=lambda q: rank.get(q.name, len(rank))):
            try:
                inert = self.to_config(base, out).inert_fields()
            except ConfigError:  # a combination the trial will refuse anyway: draw everything
                inert = frozenset()
            if p.name not in inert:
                out[p.name] = p.suggest(trial)
        return {p.name: out[p.name] for p in self.params if p.name in out}

    def point_of(self, config: ModelConfig) -> dict[str, Any] | None:
        """``config`` as a point of this space, in the form Optuna's ``enqueue_trial`` takes, or
        ``None`` when one of its values is not in the space (not a choice, outside a range, off a
        step). Parameters inert for ``config`` (:meth:`~calib.nn.ModelConfig.inert_fields`) are
        left out, as :meth:`suggest` leaves them undrawn.
        """
        inert = config.inert_fields()
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in inert:
                continue
            value = getattr(config, p.name)
            if p.choices is not None:
                hit = [c for c in p.choices
                       if getattr(self.to_config(config, {p.name: file_form(p.name, c)}), p.name) == value]
                if not hit:
                    return None
                out[p.name] = encode_value(p.name, file_form(p.name, hit[0]))
                continue
            if not is_num(value) or not p.low <= value <= p.high or (p.is_int and not is_int(value)):
                return None
            if p.step is not None and not math.isclose((value - p.low) / p.step, round((value - p.low) / p.step),
                                                       abs_tol=1e-9):
                return None
            out[p.name] = int(value) if p.is_int else float(value)
        return out

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
            ``[sweep.space] activation: activation in {...} must hold, got activation='swish'``.
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


#: Settings that decide which others are inert (:meth:`calib.nn.ModelConfig.inert_fields`).
_DECIDERS = ("family", "optimizer", "lr_schedule", "init")


def check_strategy(strategy: Any) -> None:
    """Raise :class:`~calib.errors.ConfigError` unless ``strategy`` is one of :data:`STRATEGIES`."""
    check_param("strategy", strategy, [StrOptions(STRATEGIES)])
