"""Declarative parameter rules with one message template.

A parameter's rules are written once, as data, next to the dataclass or function
that takes it (the style of scikit-learn's ``_param_validation``), and one function
checks them::

    check_params({"folds": folds, "seed": seed},
                 {"folds": [Interval(Integral, 2, None)],
                  "seed": [Interval(Integral, 0, None)]})

Every broken rule gives the same one-line message, naming the parameter, the rule
and the value::

    folds >= 2 must hold, got folds=1
    tolerance > 0 (or "auto") must hold, got tolerance=0
    scaling in {'standard', 'minmax', 'robust', 'none'} must hold, got scaling='log'

A value of the wrong type adds what it is not (``got folds=2.5 (not an integer)``).
A rule between parameters (``test_fraction + dev_fraction < 1``) uses
:func:`require`, which writes the same message. Unknown keys of a table are checked
by :func:`check_keys` (one message, with a "did you mean" hint).

This module is the lowest layer: it imports only :mod:`calib.errors`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

from .errors import ConfigError

__all__ = [
    "ARTIFACT_NAME",
    "COLUMN",
    "FOLDS",
    "JOBS",
    "NAME",
    "SEED",
    "Boolean",
    "Interval",
    "Options",
    "SeqOf",
    "StrOptions",
    "Satisfies",
    "check_keys",
    "check_params",
    "did_you_mean",
    "require",
    "rule_error",
]


class Constraint:
    """One rule a value may satisfy (a parameter's value is valid if it satisfies any)."""

    #: What a value of the wrong kind is not, e.g. ``"not an integer"``; ``None``: no note.
    not_a: str | None = None

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def right_type(self, value: Any) -> bool:
        """Whether ``value`` is of the kind this rule speaks about (e.g. a number)."""
        return True

    def describe(self, name: str) -> str:  # pragma: no cover - abstract
        """The rule as text, e.g. ``"folds >= 2"``."""
        raise NotImplementedError


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class Interval(Constraint):
    """A number in a range.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real}
        ``Integral``: an ``int`` (not a ``bool``); ``Real``: a finite ``int`` or ``float``.
    low, high : float or None
        Bounds; ``None`` means unbounded on that side.
    closed : {"left", "right", "both", "neither"}, default="left"
        Which bounds are inclusive.

    Examples
    --------
    >>> Interval(Integral, 2, None).describe("folds")
    'folds >= 2'
    >>> Interval(Real, 0, 1, closed="left").describe("test_fraction")
    '0 <= test_fraction < 1'
    """

    def __init__(self, type: type, low: float | None, high: float | None, *, closed: str = "left") -> None:
        if type not in (Integral, Real):
            raise TypeError(f"type must be numbers.Integral or numbers.Real, got {type!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be left, right, both or neither, got {closed!r}")
        self.type, self.low, self.high, self.closed = type, low, high, closed
        self.not_a = "not an integer" if type is Integral else "not a number"

    def right_type(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.type is Integral:
            return isinstance(value, Integral)
        return isinstance(value, Real) and math.isfinite(value)

    def is_satisfied_by(self, value: Any) -> bool:
        if not self.right_type(value):
            return False
        lo_in = self.closed in ("left", "both")
        hi_in = self.closed in ("right", "both")
        if self.low is not None and not (value >= self.low if lo_in else value > self.low):
            return False
        if self.high is not None and not (value <= self.high if hi_in else value < self.high):
            return False
        return True

    def describe(self, name: str) -> str:
        lo_op = "<=" if self.closed in ("left", "both") else "<"
        hi_op = "<=" if self.closed in ("right", "both") else "<"
        if self.low is not None and self.high is not None:
            return f"{_fmt(self.low)} {lo_op} {name} {hi_op} {_fmt(self.high)}"
        if self.low is not None:
            return f"{name} {'>=' if lo_op == '<=' else '>'} {_fmt(self.low)}"
        if self.high is not None:
            return f"{name} {hi_op} {_fmt(self.high)}"
        return f"{name} is {'an integer' if self.type is Integral else 'a finite number'}"


class Options(Constraint):
    """One of a fixed set of values.

    Parameters
    ----------
    options : iterable
        The allowed values (kept in the given order for the message).
    label : str, optional
        How the rule reads when it is an alternative, e.g. ``"-1 for every core"`` gives
        ``"jobs >= 1 (or -1 for every core)"``.
    """

    def __init__(self, options: Iterable[Any], *, label: str | None = None) -> None:
        self.options = tuple(options)
        self.label = label

    def is_satisfied_by(self, value: Any) -> bool:
        # True == 1 in Python: a bool is only an option when it is listed as one
        return any(value == o and isinstance(value, bool) == isinstance(o, bool) for o in self.options)

    def describe(self, name: str) -> str:
        if self.label is not None:
            return self.label
        return f"{name} in {{{', '.join(map(repr, self.options))}}}"


class StrOptions(Options):
    """One of a fixed set of strings.

    Examples
    --------
    >>> StrOptions(["standard", "none"]).describe("scaling")
    "scaling in {'standard', 'none'}"
    """

    def __init__(self, options: Iterable[str], *, label: str | None = None) -> None:
        super().__init__(options, label=label)
        self.not_a = "not a string"

    def right_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options


class Boolean(Constraint):
    """``True`` or ``False`` (not 0 or 1)."""

    not_a = "not a bool"

    def right_type(self, value: Any) -> bool:
        return isinstance(value, bool)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self, name: str) -> str:
        return f"{name} in {{true, false}}"


class SeqOf(Constraint):
    """A list or tuple whose items all satisfy a rule.

    Parameters
    ----------
    item : Constraint or type
        Rule of each item; a type means ``isinstance`` (``str``: a non-empty string).
    min_len : int, default=0
        Fewest items (inclusive).
    unique : bool, default=False
        Whether an item may repeat.
    what : str, optional
        The rule as text; default: built from the above.
    """

    not_a = "not a list"

    def __init__(self, item: Constraint | type, *, min_len: int = 0, unique: bool = False,
                 what: str | None = None) -> None:
        self.item, self.min_len, self.unique, self.what = item, min_len, unique, what

    def right_type(self, value: Any) -> bool:
        return isinstance(value, (list, tuple))

    def _item_ok(self, v: Any) -> bool:
        if isinstance(self.item, Constraint):
            return self.item.is_satisfied_by(v)
        if self.item is str:
            return isinstance(v, str) and bool(v)
        return isinstance(v, self.item) and not (isinstance(v, bool) and self.item is not bool)

    def is_satisfied_by(self, value: Any) -> bool:
        if not self.right_type(value) or len(value) < self.min_len:
            return False
        if self.unique and len(set(map(repr, value))) != len(value):
            return False
        return all(self._item_ok(v) for v in value)

    def describe(self, name: str) -> str:
        if self.what is not None:
            return self.what.format(name=name)
        item = self.item.describe("x") if isinstance(self.item, Constraint) else (
            "non-empty string" if self.item is str else self.item.__name__)
        parts = [f"{name} is a list of {item}"]
        if self.min_len:
            parts.append(f"with >= {self.min_len} item{'s' if self.min_len > 1 else ''}")
        if self.unique:
            parts.append("none repeated")
        return " ".join(parts)


class Satisfies(Constraint):
    """A rule given as a test function and its text.

    Parameters
    ----------
    test : callable
        ``test(value) -> bool``.
    rule : str
        The rule as text, ``{name}`` standing for the parameter, e.g.
        ``"{name} is a non-empty string"``.
    """

    def __init__(self, test: Callable[[Any], bool], rule: str) -> None:
        self.test, self.rule = test, rule

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def describe(self, name: str) -> str:
        return self.rule.format(name=name)


def _fmt_value(name: str, value: Any) -> str:
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # a NumPy scalar reads as the number it is
    return f"{name}={value!r}"


def rule_error(rule: str, values: Mapping[str, Any], note: str = "",
               error: type[ConfigError] = ConfigError) -> ConfigError:
    """The one message: ``"<rule> must hold, got <name>=<value>, ..."`` as ``error``.

    Examples
    --------
    >>> str(rule_error("folds >= 2", {"folds": 1}))
    'folds >= 2 must hold, got folds=1'
    """
    got = ", ".join(_fmt_value(k, v) for k, v in values.items())
    return error(f"{rule} must hold, got {got}{note}")


def require(ok: bool, rule: str, *, error: type[ConfigError] = ConfigError, note: str = "",
            **values: Any) -> None:
    """Raise the one message if ``ok`` is false: for a rule between parameters.

    Examples
    --------
    >>> require(0.6 + 0.5 < 1, "test_fraction + dev_fraction < 1", test_fraction=0.6, dev_fraction=0.5)
    Traceback (most recent call last):
    ...
    calib.errors.ConfigError: test_fraction + dev_fraction < 1 must hold, got test_fraction=0.6, dev_fraction=0.5
    """
    if not ok:
        raise rule_error(rule, values, note, error)


def _as_constraint(c: Any) -> Constraint | None:
    if c is None or isinstance(c, Constraint):
        return c
    if c == "boolean":
        return Boolean()
    raise TypeError(f"not a constraint: {c!r}")


def check_param(name: str, value: Any, constraints: Sequence[Any], *, error: type[ConfigError] = ConfigError,
                note: str = "") -> None:
    """Check one value against its rules (valid if any rule holds; ``None`` in the list allows None).

    Raises
    ------
    ConfigError
        ``"<first rule> (or <other rules>) must hold, got <name>=<value>"``.
    """
    cs = [_as_constraint(c) for c in constraints]
    if value is None and None in cs:
        return
    real = [c for c in cs if c is not None]
    if any(c.is_satisfied_by(value) for c in real):
        return
    rule = real[0].describe(name)
    alts = [c.describe(name) for c in real[1:]]  # None is no rule a user writes (TOML has no null)
    if alts:
        rule += f" (or {' or '.join(alts)})"
    kind = "" if any(c.right_type(value) for c in real) or value is None else next(
        (f" ({c.not_a})" for c in real if c.not_a), "")
    raise rule_error(rule, {name: value}, kind + note, error)


def check_params(params: Mapping[str, Any], constraints: Mapping[str, Sequence[Any]], *,
                 error: type[ConfigError] = ConfigError) -> None:
    """Check every parameter of ``params`` that has rules in ``constraints``.

    Parameters
    ----------
    params : mapping of str to object
        Parameter names and values (e.g. a dataclass's fields).
    constraints : mapping of str to list
        Each parameter's rules: a value is valid if it satisfies any of them; ``None`` in
        the list allows ``None``. Parameters without an entry are not checked.
    error : type, default=ConfigError
        The exception raised (e.g. :class:`~calib.errors.UnitError`).

    Raises
    ------
    ConfigError
        For the first parameter that breaks its rules (in the order of ``constraints``).

    Examples
    --------
    >>> check_params({"folds": 1}, {"folds": [Interval(Integral, 2, None)]})
    Traceback (most recent call last):
    ...
    calib.errors.ConfigError: folds >= 2 must hold, got folds=1
    """
    for name, cs in constraints.items():
        if name in params:
            check_param(name, params[name], cs, error=error)


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""``.

    Examples
    --------
    >>> did_you_mean("targett", ["target", "group"])
    "; did you mean 'target'?"
    """
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(where: str, given: Iterable[Any], allowed: Sequence[str]) -> None:
    """Reject keys of a table that are not in ``allowed`` (the one unknown-key check).

    Parameters
    ----------
    where : str
        The table, as the message names it (``"data"`` gives ``[data]``).
    given : iterable of str
        The keys given (a mapping's keys).
    allowed : sequence of str
        The valid keys, in the order the message lists them.

    Raises
    ------
    ConfigError
        ``"unknown key 'targett' in [data]; did you mean 'target'? (valid keys: ...)"``.
    """
    unknown = sorted(str(k) for k in given if k not in allowed)
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in [{where}]"
            f"{did_you_mean(unknown[0], allowed)} (valid keys: {', '.join(allowed)})"
        )


# --------------------------------------------------------------------------- shared rules
#: Rules of parameters that several stages take (written once).
#: Seeds reach numpy's legacy ``RandomState`` (Optuna's samplers), which takes 0 .. 2**32 - 1,
#: and the stages derive more by adding small offsets (one per fold): below 2**31 leaves room.
SEED = [Interval(Integral, 0, 2**31)]
FOLDS = [Interval(Integral, 2, None)]
JOBS = [Interval(Integral, 1, None), Options([-1], label="-1 for every core")]
NAME = [Satisfies(lambda v: isinstance(v, str) and bool(v.strip()), "{name} is a non-empty string")]
COLUMN = [Satisfies(lambda v: isinstance(v, str) and bool(v.strip()), "{name} is a non-empty column name")]
ARTIFACT_NAME = [Satisfies(lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", v) is not None,
                           "{name} is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")]
