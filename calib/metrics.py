"""Regression metrics in the target's unit."""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

__all__ = ["Metrics", "score"]


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
