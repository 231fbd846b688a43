"""Noise floors of a calibration: what the readings' own noise, and the spot-to-spot variation of
unseen spots, let no model beat (MAE in the target's unit).

:func:`estimate_noise_floor` from replicate readings (:func:`replicate_sets`) and the local
slope of the calibration; :func:`spot_floor` from the out-of-fold errors by group.
:func:`calib.validate.cross_validate` records both; :class:`calib.validate.Diagnosis` compares
the errors with them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["estimate_noise_floor", "replicate_sets", "spot_floor"]


def replicate_sets(ds: Any, rows: np.ndarray, temperature_gap: float = 0.5) -> np.ndarray:
    """Label replicate readings: same group, same reference O2 value, temperatures within
    ``temperature_gap`` degC of each other. Returns an int label per row (-1 = no replicate)."""
    import pandas as pd

    f = ds.frame.iloc[rows]
    keys = pd.DataFrame({"t": f[ds.target.name].to_numpy()})
    keys["g"] = ds.groups(rows) if ds.group else "all"
    # the temperature of a reading: a temperature input, else a temperature output (aux target)
    temp = next((c.name for c in (*ds.features, *ds.aux_targets) if c.unit == "degC"), None)
    keys["T"] = f[temp].to_numpy() if temp else 0.0
    keys["pos"] = np.arange(len(rows))
    keys = keys.sort_values(["g", "t", "T"], kind="mergesort")
    new = (keys["g"] != keys["g"].shift()) | (keys["t"] != keys["t"].shift()) | (keys["T"].diff().abs() > temperature_gap)
    cluster = new.cumsum().to_numpy()
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy()
    labels = np.full(len(rows), -1)
    labels[keys["pos"].to_numpy()] = np.where(sizes >= 2, cluster, -1)
    return labels


def _poly_design(u: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    cols = [u**a for a in range(5)]
    if t is not None:
        cols += [t, t**2, u * t, u**2 * t, u**3 * t, u * t**2]
    return np.column_stack(cols)


def _input_jacobian(x: np.ndarray, y: np.ndarray, tj: int | None, t_out: np.ndarray | None = None) -> np.ndarray:
    """d input / d (target[, temperature]) at each row: a smooth polynomial of each input in
    (u, T), ``u = log1p(target / scale)`` (Stern-Volmer-like curvature), differentiated numerically.
    The temperature is input ``tj``, or, when no input measures it, ``t_out`` (a temperature
    output: an unknown the inversion solves for together with the target)."""
    scale = max(float(np.median(np.abs(y))), 1e-9)
    y0 = max(-float(np.min(y)), 0.0)  # keep log1p's argument > -1

    def u_of(v: np.ndarray) -> np.ndarray:
        return np.log1p((v + y0) / scale)

    t = x[:, tj] if tj is not None else (None if t_out is None else np.asarray(t_out, dtype=np.float64))
    t_mu, t_sd = (0.0, 1.0) if t is None else (float(t.mean()), float(t.std()) or 1.0)

    def design(v: np.ndarray, tt: np.ndarray | None) -> np.ndarray:
        return _poly_design(u_of(v), None if tt is None else (tt - t_mu) / t_sd)

    A = design(y, t)
    h_y = 1e-3 * (float(np.ptp(y)) or 1.0)
    h_t = 1e-3 * t_sd
    n_par = 1 if t is None else 2
    J = np.zeros((len(y), x.shape[1], n_par))
    for j in range(x.shape[1]):
        if j == tj:
            J[:, j, 1] = 1.0
            continue
        coef, *_ = np.linalg.lstsq(A, x[:, j], rcond=None)
        J[:, j, 0] = (design(y + h_y, t) @ coef - design(y - h_y, t) @ coef) / (2 * h_y)
        if t is not None:
            J[:, j, 1] = (design(y, t + h_t) @ coef - design(y, t - h_t) @ coef) / (2 * h_t)
    return J


def estimate_noise_floor(ds: Any, rows: np.ndarray, pred: np.ndarray | None = None) -> float | None:
    """Estimate the MAE that input noise alone sets (target unit), from replicate readings.

    Replicates (same group, same reference value, temperatures within 0.5 degC) share their
    true condition, so their spread is the readings' noise: a pooled variance per input.
    The noise is carried to the target as the best (generalised least-squares) inversion of
    the readings does: with ``J`` the sensitivity of each input to the target (and to the
    temperature, itself a noisy input), fitted as a smooth polynomial of each input in the
    target and temperature, the target's variance is ``[(J' S^-1 J)^-1]_00`` (``S`` the
    diagonal noise covariance). The floor is the mean standard deviation times sqrt(2/pi)
    (MAE of normal errors). This is what :func:`calib.simulate.noise_floor_hPa` computes from
    the simulator's known noise. ``None`` with fewer than 10 replicate sets. ``pred`` is
    unused (kept for callers of the former model-based estimate).
    """
    labels = replicate_sets(ds, rows)
    m = labels >= 0
    if m.sum() < 20:
        return None
    import pandas as pd

    x, y = ds.x(rows), ds.y(rows)[:, 0]
    lab = labels[m]
    if len(np.unique(lab)) < 10:
        return None
    xm = pd.DataFrame(x[m])
    dev = xm - xm.groupby(lab).transform("mean")
    dof = float(len(lab) - len(np.unique(lab)))
    var = (dev.to_numpy() ** 2).sum(axis=0) / dof
    units = [c.unit for c in ds.features]
    tj = units.index("degC") if "degC" in units else None
    floor_var = 1e-12 * np.maximum(np.abs(x).mean(axis=0), 1.0) ** 2  # a noiseless input: tiny, not 0
    s_inv = 1.0 / np.maximum(var, floor_var)
    t_out = None
    if tj is None:  # no temperature input: a temperature output is solved for with the target
        tcol = next((j for j, c in enumerate(ds.aux_targets, start=1) if c.unit == "degC"), None)
        t_out = None if tcol is None else ds.y(rows)[:, tcol]
    J = _input_jacobian(x, y, tj, t_out)
    fisher = np.einsum("nip,i,niq->npq", J, s_inv, J)
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return None
    sd = np.sqrt(np.clip(cov[:, 0, 0], 0, None))
    if not np.isfinite(sd).all():
        return None
    return float(sd.mean() * math.sqrt(2 / math.pi))


def spot_floor(y: np.ndarray, oof: np.ndarray, groups: np.ndarray) -> float | None:
    """MAE of the spot-to-spot part of the out-of-fold error (target unit): unseen-spot floor.

    Per group, the out-of-fold residual's gain-and-offset line in the prediction (what a
    two-point check per spot removes) minus the line common to all groups (a bias any
    model could remove); the MAE of that spot-specific part is the error no model of these
    inputs avoids on a spot it has not seen. None with fewer than 3 groups.
    """
    ug = np.unique(groups)
    if len(ug) < 3:
        return None
    r = np.asarray(y, float) - np.asarray(oof, float)
    p = np.asarray(oof, float)
    comp = np.zeros(len(r))
    for g in ug:
        i = groups == g
        if i.sum() < 3 or np.ptp(p[i]) == 0:
            comp[i] = r[i].mean()
            continue
        b, a = np.polyfit(p[i], r[i], 1)
        comp[i] = a + b * p[i]
    B, A = np.polyfit(p, comp, 1) if np.ptp(p) > 0 else (0.0, comp.mean())
    return float(np.mean(np.abs(comp - (A + B * p))))
