"""Regression metrics in the target's unit."""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

__all__ = ["Metrics", "Objective", "score"]


@dataclass(frozen=True)
class Metrics:
    """Error metrics of predictions against reference values.

    Attributes
    ----------
    mae, rmse, max_abs : float
        Mean absolute, root-mean-square and largest absolute error, in the target's unit.
    r2 : float
        Coefficient of determination (1 is perfect).
    ela : float
        Error Limited Accuracy: share of readings with ``|error| <= tolerance`` (0..1).
    tolerance : float
        The tolerance used for ``ela``, in the target's unit (inclusive bound).
    n : int
        Number of readings scored.
    """

    mae: float
    rmse: float
    max_abs: float
    r2: float
    ela: float
    tolerance: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def score(y_true: np.ndarray, y_pred: np.ndarray, tolerance: float = 1.0) -> Metrics:
    """Score predictions of one target.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Reference and predicted values, same unit.
    tolerance : float, default=1.0
        Bound for the Error Limited Accuracy, in the target's unit (inclusive).

    Returns
    -------
    Metrics
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    err = p - t
    abs_err = np.abs(err)
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2)) if t.size else 0.0
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return Metrics(
        mae=float(abs_err.mean()) if t.size else float("nan"),
        rmse=float(np.sqrt(np.mean(err**2))) if t.size else float("nan"),
        max_abs=float(abs_err.max()) if t.size else float("nan"),
        r2=r2,
        ela=float(np.mean(abs_err <= tolerance)) if t.size else float("nan"),
        tolerance=float(tolerance),
        n=int(t.size),
    )


@dataclass(frozen=True)
class Objective:
    """What a validation scores and a sweep minimises when a model has several outputs.

    The value of a fold is the weighted mean of each output's MAE divided by its tolerance,
    expressed in the primary target's unit (multiplied by the primary tolerance)::

        objective = tol_0 * sum_i(w_i * MAE_i / tol_i) / sum_i(w_i)

    With one output (or every auxiliary weight 0) it is the primary target's MAE, so a
    single-target model is scored exactly as before.

    Attributes
    ----------
    names, units : tuple of str
        The outputs, primary target first (e.g. ``("o2_hPa", "temperature_degC")``).
    tolerances : tuple of float
        Each output's tolerance in its own unit (> 0): the Error Limited Accuracy bound and
        the scale that makes the MAEs comparable (e.g. 1 hPa and 0.1 degC).
    weights : tuple of float
        Each output's weight (>= 0, the primary's > 0).

    Examples
    --------
    >>> o = Objective(("o2_hPa", "temperature_degC"), ("hPa", "degC"), (1.0, 0.1), (1.0, 1.0))
    >>> round(o.value([2.0, 0.05]), 6)   # (2/1 + 0.05/0.1) / 2 * 1 hPa
    1.25
    >>> Objective.single("o2_hPa", "hPa", 1.0).value([2.0])
    2.0
    """

    names: tuple[str, ...]
    units: tuple[str, ...]
    tolerances: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        from .errors import ConfigError

        n = len(self.names)
        if n < 1 or not (len(self.units) == len(self.tolerances) == len(self.weights) == n):
            raise ConfigError(f"objective: names, units, tolerances and weights must have one entry per output, "
                              f"got {len(self.names)}/{len(self.units)}/{len(self.tolerances)}/{len(self.weights)}")
        for name, t, w in zip(self.names, self.tolerances, self.weights):
            if not (isinstance(t, (int, float)) and t > 0 and t < float("inf")):
                raise ConfigError(f"tolerance of output {name!r} > 0 must hold, got {t!r}")
            if not (isinstance(w, (int, float)) and 0 <= w < float("inf")):
                raise ConfigError(f"objective weight of output {name!r} >= 0 must hold, got {w!r}")
        if not self.weights[0] > 0:
            raise ConfigError(f"objective weight of the target {self.names[0]!r} > 0 must hold, got {self.weights[0]!r}")
        object.__setattr__(self, "tolerances", tuple(float(t) for t in self.tolerances))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    @classmethod
    def single(cls, name: str, unit: str, tolerance: float) -> "Objective":
        """The objective of a single-target model: its MAE."""
        return cls((name,), (unit,), (tolerance,), (1.0,))

    @property
    def multi(self) -> bool:
        """Whether more than the primary target enters the value."""
        return any(w > 0 for w in self.weights[1:])

    @property
    def label(self) -> str:
        """``MAE`` for one output, ``objective`` for several."""
        return "objective" if self.multi else "MAE"

    def value(self, maes: "np.ndarray | list[float] | tuple[float, ...]") -> float:
        """The objective of one set of per-output MAEs (primary first; primary unit)."""
        m = np.asarray(maes, dtype=np.float64)
        if not self.multi:
            return float(m[0])
        w, t = np.asarray(self.weights), np.asarray(self.tolerances)
        return float(t[0] * np.sum(w * m / t) / np.sum(w))

    def describe(self) -> str:
        """The formula in words, e.g. ``(1 x MAE(o2_hPa)/1 hPa + 1 x MAE(temperature_degC)/0.1 degC) / 2 x 1 hPa``."""
        if not self.multi:
            return f"MAE({self.names[0]}) [{self.units[0]}]"
        terms = " + ".join(f"{w:g} x MAE({n})/{t:g} {u}"
                           for n, u, t, w in zip(self.names, self.units, self.tolerances, self.weights) if w > 0)
        return f"({terms}) / {sum(self.weights):g} x {self.tolerances[0]:g} {self.units[0]}"

    def to_dict(self) -> dict:
        return {"outputs": [{"name": n, "unit": u, "tolerance": t, "weight": w}
                            for n, u, t, w in zip(self.names, self.units, self.tolerances, self.weights)],
                "formula": self.describe(), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> "Objective":
        outs = d["outputs"]
        return cls(tuple(o["name"] for o in outs), tuple(o["unit"] for o in outs),
                   tuple(o["tolerance"] for o in outs), tuple(o["weight"] for o in outs))
