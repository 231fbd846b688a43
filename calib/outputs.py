"""What the one inference path (:meth:`calib.runtime.CalibrationModel.run`) returns for a block of readings.

A lowest layer: numpy only. :mod:`calib.runtime` re-exports :class:`Prediction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """What the one inference path returns for a block of readings.

    Attributes
    ----------
    values : ndarray of float32
        Shape (n,) for one target, (n, n_targets) with auxiliary targets, in the targets' units.
    std : ndarray of float32 or None
        Spread (standard deviation, ddof=0) of the fold models' primary-target predictions,
        in the target's unit; None without fold models.
    out_of_range : ndarray of bool
        Per row: calib cannot vouch for the number (see :mod:`calib.runtime`).
    adjusted : ndarray of bool or None
        Per row: predicted by its spot's child; None for a model without spot routing.
    spot_models : dict of str to str
        ``{spot: child version}`` of the children used.
    lo, hi : ndarray of float32 or None
        Conformal interval of the primary target (None for an artifact without one).
    reason : ndarray of str or None
        Per row why ``out_of_range`` is set (``""`` when it is not).
    distance : ndarray of float32 or None
        ``domain_distance``: nearest calibration point / out-of-fold threshold (<= 1 in domain).
    aux_lo, aux_hi : ndarray of float32 or None
        Conformal intervals of the auxiliary targets, shape (n, n_aux) (None without them).
    """

    values: np.ndarray
    std: np.ndarray | None
    out_of_range: np.ndarray
    adjusted: np.ndarray | None = None
    spot_models: Mapping[str, str] = field(default_factory=dict)
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    reason: np.ndarray | None = None
    distance: np.ndarray | None = None
    aux_lo: np.ndarray | None = None
    aux_hi: np.ndarray | None = None
