"""Feature and target scaling, fitted on training rows only and stored as plain numbers.

A :class:`Scaler` holds one ``center`` and one ``scale`` per column, so that
``z = (x - center) / scale``. Standard, min-max and robust scaling all reduce to
this form, which is what the network embeds in its graph (a Keras
``Normalization`` layer with ``mean=center`` and ``variance=scale**2``). It is
saved as JSON (:meth:`Scaler.to_dict`), never as a pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .constraints import StrOptions, check_param, require
from .errors import ConfigError

__all__ = ["Scaler", "fit_scaler", "SCALING_KINDS", "SCALING"]

SCALING_KINDS = ("standard", "minmax", "robust", "none")
#: The rule of a ``scaling`` parameter.
SCALING = [StrOptions(SCALING_KINDS)]


@dataclass(frozen=True)
class Scaler:
    """An affine per-column scaling ``z = (x - center) / scale``.

    Parameters
    ----------
    kind : {"standard", "minmax", "robust", "none"}
        How the numbers were fitted (informational once fitted).
    center : tuple of float
        Per-column offset, in the column's unit.
    scale : tuple of float
        Per-column divisor, in the column's unit; always > 0.
    """

    kind: str
    center: tuple[float, ...]
    scale: tuple[float, ...]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale ``x`` (rows x columns) to ``(x - center) / scale``."""
        x = np.asarray(x, dtype=np.float64)
        return (x - np.asarray(self.center)) / np.asarray(self.scale)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`: ``z * scale + center``."""
        z = np.asarray(z, dtype=np.float64)
        return z * np.asarray(self.scale) + np.asarray(self.center)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: ``{"kind": ..., "center": [...], "scale": [...]}``."""
        return {"kind": self.kind, "center": list(self.center), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scaler":
        """Rebuild a scaler from :meth:`to_dict` output, checking its shape."""
        try:
            kind = str(d["kind"])
            center = tuple(float(v) for v in d["center"])
            scale = tuple(float(v) for v in d["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"scaler must have kind, center and scale, got {d!r}") from exc
        if len(center) != len(scale):
            raise ConfigError(
                f"scaler center and scale must have equal length, got {len(center)} and {len(scale)}"
            )
        require(all(np.isfinite(center)) and all(s > 0 and np.isfinite(s) for s in scale),
                "finite center and scale > 0", center=center, scale=scale)
        return cls(kind, center, scale)


def fit_scaler(x: np.ndarray, kind: str = "standard") -> Scaler:
    """Fit a per-column scaler on training rows.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_columns) or (n_rows,)
        Training values only (never dev or test rows).
    kind : {"standard", "minmax", "robust", "none"}, default="standard"
        ``standard``: mean and standard deviation; ``minmax``: min and range (to [0, 1]);
        ``robust``: median and inter-quartile range; ``none``: 0 and 1.

    Returns
    -------
    Scaler
        A column with zero spread gets scale 1 (it is only shifted).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown or ``x`` has no rows.
    """
    check_param("scaling", kind, SCALING)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] == 0:
        raise ConfigError("cannot fit a scaler on zero rows")
    if kind == "standard":
        center, scale = x.mean(axis=0), x.std(axis=0)
    elif kind == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        center, scale = lo, hi - lo
    elif kind == "robust":
        q1, med, q3 = np.percentile(x, [25, 50, 75], axis=0)
        center, scale = med, q3 - q1
        # fall back to the standard deviation where the IQR collapses
        sd = x.std(axis=0)
        scale = np.where(scale > 0, scale, sd)
    else:
        center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
    return Scaler(kind, tuple(float(v) for v in center), tuple(float(v) for v in scale))
