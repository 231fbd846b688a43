"""The classical physics calibration (SVU, two-site, SBE63, poly) reported beside every network.

A lab calibrates an optode today with a closed-form physics model fitted by
least squares. This module fits such a model on the same k-fold folds as the
network, so that every run can say how much the network gains over it. It uses
numpy, scipy and scikit-learn only (no TensorFlow) and stores a fitted model as
plain JSON numbers (:meth:`PhysicsModel.to_dict`), never as a pickle.

Kinds
-----
``"svu"``
    The Aanderaa SVU form, with ``P`` the phase in deg and ``T`` in degC::

        O2 = ((c3 + c4*T) / (c5 + c6*P) - 1) / (c0 + c1*T + c2*T**2)

    The form is invariant under scaling ``(c3, c4, c5, c6)`` together, so the
    fit fixes ``c6 = 1`` and reports the six others relative to it.
``"two_site"``
    The two-site Stern-Volmer model on ``tan(theta)``::

        tan(P)/tan(theta0(T)) = f(T)/(1 + K1(T)*O2) + (1 - f(T))/(1 + K2(T)*O2)

    with ``theta0`` (deg) and ``f`` linear in T, ``K1`` quadratic in T and
    ``K2`` linear in T (the quadratic ``K1`` absorbs the solubility when the
    target is a concentration). O2 is found per reading as the root of a
    quadratic, in closed form (see :func:`two_site_inverse`).
``"sbe63"``
    The Sea-Bird SBE63 form (application note 64), for a phase *delay* in us::

        V = delay / 39.457071
        O2 = ((a0 + a1*T + a2*V**2) / (b0 + b1*V) - 1) / (c0 + c1*T + c2*T**2)

    again with the scale redundancy removed by fixing ``b1 = 1``.
``"poly"``
    Polynomial ridge regression on all standardised columns (degree 1 to 3,
    chosen by inner cross-validation), for data without a phase/temperature
    pair. Stored as powers, coefficients, centres and scales.
``"auto"``
    ``"sbe63"`` for a phase delay in us; ``"svu"`` or ``"two_site"``
    (whichever has the lower inner-CV RMSE) for a phase in deg; ``"poly"``
    otherwise, and also when a physics fit fails.

All physics forms are unit-agnostic in O2: the target may be hPa, umol/L,
mL/L, percent air saturation...; the temperature terms absorb the solubility.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from .constraints import NAME, StrOptions, check_params
from .errors import ArtifactError, ConfigError, IncompatibleArtifactError, TrainingError

__all__ = [
    "PHYSICS_KINDS",
    "PhysicsModel",
    "fit_physics",
    "two_site_inverse",
    "SBE63_US_PER_VOLT",
]

PHYSICS_KINDS = ("auto", "svu", "two_site", "sbe63", "poly")
"""Accepted values of ``kind`` in :func:`fit_physics`."""

SBE63_US_PER_VOLT = 39.457071
"""Sea-Bird's conversion of the SBE63 phase delay (us) to its voltage (V = delay / this)."""

_FORMAT = "calib.baseline"  # the format id in calibration.json (stable since schema 1.0; the module is calib.physics)
_VERSION = 1

_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "svu": ("c0", "c1", "c2", "c3", "c4", "c5", "c6"),
    "two_site": (
        "theta0_0", "theta0_1",
        "f_0", "f_1",
        "ksv1_0", "ksv1_1", "ksv1_2",
        "ksv2_0", "ksv2_1",
    ),
    "sbe63": ("a0", "a1", "a2", "b0", "b1", "c0", "c1", "c2", "us_per_volt"),
    "poly": ("degree", "center", "scale", "powers", "coef", "intercept", "y_center", "y_scale"),
}
# Free parameters of each physics fit (fixed normalisations excluded).
_N_FREE = {"svu": 6, "two_site": 9, "sbe63": 7}

_PHASE_UNIT = "deg"
_DELAY_UNIT = "us"
_TEMP_UNIT = "degC"
_MIN_TEMPERATURES = 3
_CV_MAX_ROWS = 500
_CV_FOLDS = 5
_POLY_DEGREES = (1, 2, 3)
_POLY_ALPHA = 1e-6
_FREQ_RE = re.compile(r"(?:^|_)(\d+(?:\.\d+)?)(k?)hz(?:_|$)", re.IGNORECASE)


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class PhysicsModel:
    """A fitted classical calibration model.

    Parameters
    ----------
    kind : {"svu", "two_site", "sbe63", "poly"}
        The model form (never ``"auto"`` once fitted).
    params : dict
        The fitted numbers, plain JSON: floats for the physics kinds (raw units:
        T in degC, phase in deg, delay in us via ``us_per_volt``, O2 in
        ``target_unit``); for ``"poly"`` also lists of floats and of int powers.
    columns : tuple of int
        Indices of the columns of ``x`` the model uses: ``(phase, temperature)``
        for the physics kinds, all columns for ``"poly"``.
    n_features : int
        Number of columns ``x`` must have in :meth:`predict`.
    feature_names, feature_units : tuple of str
        Names and unit tokens of all ``n_features`` columns, as fitted.
    target_unit : str
        Unit of the predictions, e.g. ``"umol/L"`` or ``"hPa"``.
    train_rmse : float
        RMSE on the training rows, in ``target_unit``.
    selection_rmse : dict of str to float
        RMSE of each candidate kind that ``"auto"`` compared (inner-CV RMSE for
        up to 500 rows, training RMSE above), in ``target_unit``; empty when the
        kind was given explicitly.
    """

    kind: str
    params: dict[str, Any]
    columns: tuple[int, ...]
    n_features: int
    feature_names: tuple[str, ...]
    feature_units: tuple[str, ...]
    target_unit: str
    train_rmse: float
    selection_rmse: dict[str, float] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict O2 for readings ``x``.

        Parameters
        ----------
        x : ndarray of shape (n, n_features)
            Readings, the columns in the order and units used for fitting.

        Returns
        -------
        ndarray of shape (n,)
            O2 in ``target_unit``. Readings beyond the calibrated range are
            extrapolated (the physics forms may give negative O2 for a phase
            above the zero-O2 phase).

        Raises
        ------
        ConfigError
            If ``x`` is not 2-D with ``n_features`` columns.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ConfigError(
                f"x must be 2-D with n_features={self.n_features} columns, got shape {x.shape}"
            )
        return _PREDICTORS[self.kind](self.params, x[:, list(self.columns)])

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``json.dumps`` works on it; floats round-trip exactly)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "kind": self.kind,
            "params": _plain(self.params),
            "columns": [int(c) for c in self.columns],
            "n_features": int(self.n_features),
            "feature_names": list(self.feature_names),
            "feature_units": list(self.feature_units),
            "target_unit": self.target_unit,
            "train_rmse": float(self.train_rmse),
            "selection_rmse": {k: float(v) for k, v in self.selection_rmse.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PhysicsModel":
        """Rebuild a model from :meth:`to_dict` output.

        Raises
        ------
        IncompatibleArtifactError
            If ``d["version"]`` is newer than this code understands.
        ArtifactError
            If a key is missing, the kind is unknown or the params do not fit it.
        """
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise ArtifactError(f"physics fit format must be {_FORMAT!r}, got {got!r}")
        version = d.get("version")
        if not isinstance(version, int) or version < 1:
            raise ArtifactError(f"physics fit version must be an integer >= 1, got {version!r}")
        if version > _VERSION:
            raise IncompatibleArtifactError(
                f"physics fit version {version} is newer than supported version {_VERSION}"
            )
        try:
            kind = str(d["kind"])
            params = dict(d["params"])
            columns = tuple(int(c) for c in d["columns"])
            n_features = int(d["n_features"])
            names = tuple(str(s) for s in d["feature_names"])
            units = tuple(str(s) for s in d["feature_units"])
            target_unit = str(d["target_unit"])
            train_rmse = float(d["train_rmse"])
            selection = {str(k): float(v) for k, v in dict(d.get("selection_rmse", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"physics fit dict is malformed: {exc!r}") from exc
        if kind not in _PARAM_NAMES:
            raise ArtifactError(f"physics fit kind must be one of {sorted(_PARAM_NAMES)}, got {kind!r}")
        missing = [p for p in _PARAM_NAMES[kind] if p not in params]
        if missing:
            raise ArtifactError(f"physics fit params of kind {kind!r} lack {missing}")
        if len(names) != n_features or len(units) != n_features:
            raise ArtifactError(
                f"physics fit feature_names and feature_units must have n_features={n_features} "
                f"entries, got {len(names)} and {len(units)}"
            )
        if not columns or any(c < 0 or c >= n_features for c in columns):
            raise ArtifactError(
                f"physics fit columns must lie in 0..{n_features - 1}, got {list(columns)}"
            )
        return cls(kind, params, columns, n_features, names, units, target_unit, train_rmse, selection)


# ------------------------------------------------------------------ public fitting
def fit_physics(
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    feature_units: Sequence[str],
    target_unit: str,
    *,
    kind: str = "auto",
) -> PhysicsModel:
    """Fit the classical physics calibration.

    Parameters
    ----------
    x : ndarray of shape (n, k)
        Readings. The physics kinds use one phase column (unit ``"deg"``, or
        ``"us"`` for ``"sbe63"``) and one temperature column (unit ``"degC"``).
        With several phase columns, the one whose name says a frequency
        (``..._<f>hz_...`` or ``..._<f>khz_...``) nearest 5000 Hz is used, else
        the first; with several ``"degC"`` columns, the first.
    y : ndarray of shape (n,)
        Reference O2 in ``target_unit``.
    feature_names : sequence of str
        The k column names.
    feature_units : sequence of str
        The k canonical unit tokens ("deg", "degC", "us", "hPa", "psu", "1", ...).
    target_unit : str
        Unit of ``y`` (any; the physics forms do not depend on it).
    kind : {"auto", "svu", "two_site", "sbe63", "poly"}, default="auto"
        Model form; see the module docstring. ``"auto"`` never raises for a
        failed physics fit: it falls back to ``"poly"``.

    Returns
    -------
    PhysicsModel

    Raises
    ------
    ConfigError
        If the shapes, names, units or ``kind`` are invalid, ``x`` or ``y``
        holds a non-finite value, or an explicit physics kind lacks its columns,
        rows (more than its free parameters) or 3 distinct temperatures, or
        ``"two_site"`` gets a phase outside 0 < phase < 90 deg.
    TrainingError
        If an explicitly requested physics fit does not converge to finite
        predictions.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0.0, 1.0, 20)[:, None]
    >>> m = fit_physics(x, 2.0 * x[:, 0] + 1.0, ["amplitude"], ["1"], "hPa")
    >>> m.kind, round(float(m.predict(np.array([[0.5]]))[0]), 3)
    ('poly', 2.0)
    """
    x, y, names, units = _validate(x, y, feature_names, feature_units, target_unit, kind)
    common = dict(n_features=x.shape[1], feature_names=names, feature_units=units,
                  target_unit=target_unit)

    if kind == "poly":
        return _finish("poly", _fit_poly(x, y), tuple(range(x.shape[1])), x, y, {}, common)

    phase_deg = _pick_phase(names, units, _PHASE_UNIT)
    phase_us = _pick_phase(names, units, _DELAY_UNIT)
    temp = units.index(_TEMP_UNIT) if _TEMP_UNIT in units else None

    if kind == "auto":
        model = None
        if temp is not None and _physics_possible(x[:, temp], y, "svu"):
            if phase_us is not None and phase_deg is None:
                model = _auto_physics(x, y, (phase_us, temp), ("sbe63",), common)
            elif phase_deg is not None:
                model = _auto_physics(x, y, (phase_deg, temp), ("svu", "two_site"), common)
        if model is not None:
            return model
        return _finish("poly", _fit_poly(x, y), tuple(range(x.shape[1])), x, y, {}, common)

    # explicit physics kind
    phase = phase_us if kind == "sbe63" else phase_deg
    want = _DELAY_UNIT if kind == "sbe63" else _PHASE_UNIT
    if phase is None or temp is None:
        raise ConfigError(
            f"kind={kind!r} needs a phase column with unit {want!r} and a temperature column "
            f"with unit {_TEMP_UNIT!r}, got feature_units={list(units)}"
        )
    n_temps = np.unique(np.round(x[:, temp], 1)).size
    if n_temps < _MIN_TEMPERATURES:
        raise ConfigError(
            f"kind={kind!r} needs >= {_MIN_TEMPERATURES} distinct temperatures (0.1 degC apart), "
            f"got {n_temps}"
        )
    if x.shape[0] <= _N_FREE[kind]:
        raise ConfigError(
            f"kind={kind!r} needs n > {_N_FREE[kind]} rows (its free parameters), got n={x.shape[0]}"
        )
    if kind == "two_site":
        lo, hi = float(np.min(x[:, phase])), float(np.max(x[:, phase]))
        if lo <= 0.0 or hi >= 90.0:
            raise ConfigError(
                f"kind='two_site' needs 0 < phase < 90 deg (tan must be finite and positive), "
                f"got {names[phase]!r} in [{lo}, {hi}]"
            )
    cols = (phase, temp)
    params = _FITTERS[kind](x[:, phase], x[:, temp], y)
    if params is None:
        raise TrainingError(f"the {kind!r} fit did not converge to finite predictions")
    return _finish(kind, params, cols, x, y, {}, common)


def two_site_inverse(
    r: np.ndarray, f: np.ndarray, k1: np.ndarray, k2: np.ndarray
) -> np.ndarray:
    """Solve the two-site equation for O2, per reading, in closed form.

    ``r = f/(1 + k1*O2) + (1 - f)/(1 + k2*O2)`` is, after multiplying out,
    ``r*k1*k2*O2**2 + (r*(k1 + k2) - f*k2 - (1 - f)*k1)*O2 + (r - 1) = 0``.
    For ``0 < r <= 1`` (with ``k1, k2 > 0``, ``0 < f < 1``) the product of the
    roots ``(r - 1)/(r*k1*k2)`` is <= 0, so exactly one root is >= 0: the
    physical one. It is computed as ``-2*C/(B + sqrt(B**2 - 4*A*C))``, which is
    free of cancellation, is continuous through ``r = 1`` (O2 = 0) and stays
    right when ``k2 -> 0`` (then ``O2 = -C/B``). For ``r > 1`` (phase above
    the zero-O2 phase, e.g. noise at zero O2) it gives the small negative root
    on the same branch.

    Parameters
    ----------
    r : ndarray
        ``tan(theta)/tan(theta0)`` per reading (dimensionless).
    f, k1, k2 : ndarray
        Quenchable fraction (dimensionless) and the two Stern-Volmer constants
        (1/O2 unit) per reading, broadcastable to ``r``.

    Returns
    -------
    ndarray
        O2 per reading, in the unit the ``k`` are per.
    """
    r, f, k1, k2 = (np.asarray(a, dtype=np.float64) for a in (r, f, k1, k2))
    a = r * k1 * k2
    b = r * (k1 + k2) - f * k2 - (1.0 - f) * k1
    c = r - 1.0
    disc = np.maximum(b * b - 4.0 * a * c, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.0 * c / (b + np.sqrt(disc))


# ------------------------------------------------------------------ validation
def _validate(x, y, feature_names, feature_units, target_unit, kind):
    check_params({"kind": kind, "target_unit": target_unit},
                 {"kind": [StrOptions(PHYSICS_KINDS)], "target_unit": NAME})
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ConfigError(f"x must be 2-D with >= 2 rows and >= 1 column, got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"y must be 1-D with n={x.shape[0]} values (rows of x), got shape {y.shape}")
    names = tuple(str(s) for s in feature_names)
    units = tuple(str(s) for s in feature_units)
    if len(names) != x.shape[1]:
        raise ConfigError(
            f"feature_names must have k={x.shape[1]} entries (columns of x), got {len(names)}"
        )
    if len(units) != x.shape[1]:
        raise ConfigError(
            f"feature_units must have k={x.shape[1]} entries (columns of x), got {len(units)}"
        )
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise ConfigError(f"x must be finite, got {x[i, j]} at row {i}, column {names[j]!r}")
    bad_y = np.flatnonzero(~np.isfinite(y))
    if bad_y.size:
        raise ConfigError(f"y must be finite, got {y[bad_y[0]]} at row {bad_y[0]}")
    return x, y, names, units


def _pick_phase(names: tuple[str, ...], units: tuple[str, ...], unit: str) -> int | None:
    idx = [i for i, u in enumerate(units) if u == unit]
    if not idx:
        return None
    best, best_d = idx[0], math.inf
    for i in idx:
        m = _FREQ_RE.search(names[i])
        if m:
            hz = float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
            if abs(hz - 5000.0) < best_d:
                best, best_d = i, abs(hz - 5000.0)
    return best


def _physics_possible(t: np.ndarray, y: np.ndarray, kind: str) -> bool:
    return (np.unique(np.round(t, 1)).size >= _MIN_TEMPERATURES
            and t.size > _N_FREE[kind] + 1 and np.ptp(y) > 0)


# ------------------------------------------------------------------ auto selection
def _auto_physics(x, y, cols, kinds, common) -> PhysicsModel | None:
    phase, temp = cols
    p, t = x[:, phase], x[:, temp]
    fits = {k: _FITTERS[k](p, t, y) for k in kinds if t.size > _N_FREE[k] + 1}
    fits = {k: v for k, v in fits.items() if v is not None}
    if not fits:
        return None
    selection: dict[str, float] = {}
    if len(fits) == 1:
        (kind, params), = fits.items()
    else:
        n = y.size
        if n <= _CV_MAX_ROWS:
            folds = _kfold(n, min(_CV_FOLDS, n))
            for k, full in fits.items():
                err = np.empty(n)
                for tr, te in folds:
                    # Each fold is a fresh fit on its training rows only.
                    prm = _FITTERS[k](p[tr], t[tr], y[tr])
                    prm = full if prm is None else prm
                    err[te] = _PREDICTORS[k](prm, x[te][:, list(cols)]) - y[te]
                selection[k] = _rmse(err)
        else:
            for k, prm in fits.items():
                selection[k] = _rmse(_PREDICTORS[k](prm, x[:, list(cols)]) - y)
        kind = min(selection, key=lambda k: (selection[k], _kind_order(k)))
        params = fits[kind]
    return _finish(kind, params, cols, x, y, selection, common)


def _kind_order(kind: str) -> int:
    return PHYSICS_KINDS.index(kind)


def _kfold(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(0).permutation(n)
    parts = np.array_split(order, k)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1:])), np.sort(parts[i])) for i in range(k)]


def _finish(kind, params, cols, x, y, selection, common) -> PhysicsModel:
    params = _plain(params)
    pred = _PREDICTORS[kind](params, x[:, list(cols)])
    return PhysicsModel(
        kind=kind,
        params=params,
        columns=tuple(int(c) for c in cols),
        selection_rmse={k: float(v) for k, v in selection.items()},
        train_rmse=_rmse(pred - y),
        **common,
    )


def _rmse(err: np.ndarray) -> float:
    err = np.asarray(err, dtype=np.float64)
    return float(np.sqrt(np.mean(err**2))) if np.all(np.isfinite(err)) else math.inf


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    return float(obj)


# ------------------------------------------------------------------ helpers
class _TScale:
    """Centre and scale T for conditioning; converts fitted polynomials back to raw T."""

    def __init__(self, t: np.ndarray):
        self.c = float(np.mean(t))
        s = float(np.std(t))
        self.s = s if s > 0 else 1.0

    def z(self, t: np.ndarray) -> np.ndarray:
        return (t - self.c) / self.s

    def raw(self, coefs_z: Sequence[float]) -> list[float]:
        """Coefficients (ascending) of p(z(T)) as a polynomial in raw T."""
        p = np.polynomial.Polynomial(np.asarray(coefs_z, dtype=np.float64))
        q = p(np.polynomial.Polynomial([-self.c / self.s, 1.0 / self.s]))
        out = np.zeros(len(coefs_z))
        out[: q.coef.size] = q.coef
        return [float(v) for v in out]


def _lm(fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray):
    """Levenberg-Marquardt refine; returns the parameters or None if the result is not finite."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = least_squares(fun, x0, method="lm", x_scale="jac", max_nfev=200 * (x0.size + 1))
        except (ValueError, np.linalg.LinAlgError):
            return None
    if res.status < 0 or not np.all(np.isfinite(res.x)) or not np.all(np.isfinite(res.fun)):
        return None
    return res.x


# ------------------------------------------------------------------ SVU / SBE63
def _fit_rational(p: np.ndarray, tz: np.ndarray, ys: np.ndarray, quad_numer: bool):
    """Fit ``ys = (N/(b + p) - 1)/D`` with N = a0 + a1*tz (+ a2*p**2), D quadratic in tz.

    Initialised by a grid over the offset ``b``: for fixed ``b`` the equation
    ``N - ys*(b + p)*D = b + p`` is linear in the a's and d's (a linearised
    Stern-Volmer fit). The best grid point is refined in O2 space by LM.
    Returns ``(a, b, d)`` or None.
    """
    n_a = 3 if quad_numer else 2

    def model(theta):
        a, b, d = theta[:n_a], theta[n_a], theta[n_a + 1:]
        num = a[0] + a[1] * tz + (a[2] * p * p if quad_numer else 0.0)
        den = d[0] + d[1] * tz + d[2] * tz * tz
        return (num / (b + p) - 1.0) / den

    span = float(np.max(np.abs(p)))
    if not span > 0:
        return None
    best, best_err = None, math.inf
    cols_a = [np.ones_like(p), tz] + ([p * p] if quad_numer else [])
    for g in np.geomspace(0.01, 30.0, 48):
        b = -float(np.min(p)) + g * span
        u = b + p
        design = np.column_stack(cols_a + [-ys * u, -ys * u * tz, -ys * u * tz * tz])
        norm = np.linalg.norm(design, axis=0)
        norm[norm == 0] = 1.0
        sol = np.linalg.lstsq(design / norm, u, rcond=None)[0] / norm
        theta = np.concatenate([sol[:n_a], [b], sol[n_a:]])
        with np.errstate(all="ignore"):
            err = _rmse(model(theta) - ys)
        if err < best_err:
            best, best_err = theta, err
    if best is None:
        return None
    refined = _lm(lambda th: model(th) - ys, best)
    if refined is not None:
        with np.errstate(all="ignore"):
            if _rmse(model(refined) - ys) <= best_err:
                best = refined
    return best[:n_a], best[n_a], best[n_a + 1:]


def _fit_svu(p: np.ndarray, t: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    ts = _TScale(t)
    yscale = float(np.max(np.abs(y))) or 1.0
    out = _fit_rational(p, ts.z(t), y / yscale, quad_numer=False)
    if out is None:
        return None
    a, b, d = out
    c3, c4 = ts.raw(a)
    c0, c1, c2 = (v / yscale for v in ts.raw(d))
    params = {"c0": c0, "c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": float(b), "c6": 1.0}
    return params if np.all(np.isfinite(_predict_svu(params, np.column_stack([p, t])))) else None


def _predict_svu(params: Mapping[str, float], pt: np.ndarray) -> np.ndarray:
    c = [float(params[f"c{i}"]) for i in range(7)]
    p, t = pt[:, 0], pt[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((c[3] + c[4] * t) / (c[5] + c[6] * p) - 1.0) / (c[0] + c[1] * t + c[2] * t * t)


def _fit_sbe63(delay: np.ndarray, t: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    v = delay / SBE63_US_PER_VOLT
    ts = _TScale(t)
    yscale = float(np.max(np.abs(y))) or 1.0
    out = _fit_rational(v, ts.z(t), y / yscale, quad_numer=True)
    if out is None:
        return None
    a, b, d = out
    a0, a1 = ts.raw(a[:2])
    c0, c1, c2 = (x / yscale for x in ts.raw(d))
    params = {"a0": a0, "a1": a1, "a2": float(a[2]), "b0": float(b), "b1": 1.0,
              "c0": c0, "c1": c1, "c2": c2, "us_per_volt": SBE63_US_PER_VOLT}
    return params if np.all(np.isfinite(_predict_sbe63(params, np.column_stack([delay, t])))) else None


def _predict_sbe63(params: Mapping[str, float], dt: np.ndarray) -> np.ndarray:
    g = {k: float(params[k]) for k in _PARAM_NAMES["sbe63"]}
    v, t = dt[:, 0] / g["us_per_volt"], dt[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ksv = g["c0"] + g["c1"] * t + g["c2"] * t * t
        return ((g["a0"] + g["a1"] * t + g["a2"] * v * v) / (g["b0"] + g["b1"] * v) - 1.0) / ksv


# ------------------------------------------------------------------ two-site
def _two_site_terms(theta: np.ndarray, tz: np.ndarray):
    th0 = theta[0] + theta[1] * tz
    f = theta[2] + theta[3] * tz
    k1 = theta[4] + theta[5] * tz + theta[6] * tz * tz
    k2 = theta[7] + theta[8] * tz
    return th0, f, k1, k2


def _fit_two_site(p: np.ndarray, t: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    if np.any(p <= 0.0) or np.any(p >= 90.0):
        return None  # tan(theta) needs 0 < theta < 90 deg
    ts = _TScale(t)
    tz = ts.z(t)
    yscale = float(np.max(np.abs(y))) or 1.0
    ys = y / yscale
    tanp = np.tan(np.radians(p))

    # theta0(T) from the linearised SVU fit at O2 = 0: P0 = (a0 + a1*tz) - b.
    svu = _fit_rational(p, tz, ys, quad_numer=False)
    if svu is None:
        return None
    a, b, _ = svu
    th0 = np.array([a[0] - b, a[1]])
    if not np.all((th0[0] + th0[1] * tz > 0) & (th0[0] + th0[1] * tz < 90)):
        return None
    # Single-site Ksv per reading (tan-space), regressed on tz: the low-O2 slope.
    tan0 = np.tan(np.radians(th0[0] + th0[1] * tz))
    use = ys > 0.05
    if use.sum() < 3:
        return None
    k_row = (tan0[use] / tanp[use] - 1.0) / ys[use]
    k_sv = np.polynomial.polynomial.polyfit(tz[use], k_row, 1)
    k_med = float(np.median(k_row))
    if not k_med > 0:
        return None

    def forward(theta):  # phase-space residual, deg
        th0_, f, k1, k2 = _two_site_terms(theta, tz)
        r = f / (1.0 + k1 * ys) + (1.0 - f) / (1.0 + k2 * ys)
        return np.degrees(np.arctan(np.tan(np.radians(th0_)) * r)) - p

    def inverse(theta):  # O2-space residual, scaled unit
        th0_, f, k1, k2 = _two_site_terms(theta, tz)
        return two_site_inverse(tanp / np.tan(np.radians(th0_)), f, k1, k2) - ys

    best, best_cost = None, math.inf
    for f0 in (0.6, 0.8, 0.95):
        for q in (0.02, 0.1):
            s = 1.0 / (f0 + (1.0 - f0) * q)  # keep the low-O2 slope f*K1 + (1-f)*K2
            # The single-site fit under-reads K1 of a curved SV plot: start a bit above it.
            k1 = np.array([k_sv[0] * s * 1.5, k_sv[1] * s * 1.5, 0.0])
            x0 = np.concatenate([th0, [f0, 0.0], k1, [q * k1[0], q * k1[1]]])
            sol = _lm(forward, x0)
            if sol is None:
                continue
            with np.errstate(all="ignore"):
                cost = _rmse(inverse(sol))
            if cost < best_cost:
                best, best_cost = sol, cost
    if best is None:
        return None
    polished = _lm(inverse, best)
    if polished is not None:
        with np.errstate(all="ignore"):
            if _rmse(inverse(polished)) <= best_cost:
                best = polished
    th0_raw = ts.raw(best[0:2])
    f_raw = ts.raw(best[2:4])
    k1_raw = [v / yscale for v in ts.raw(best[4:7])]
    k2_raw = [v / yscale for v in ts.raw(best[7:9])]
    params = {
        "theta0_0": th0_raw[0], "theta0_1": th0_raw[1],
        "f_0": f_raw[0], "f_1": f_raw[1],
        "ksv1_0": k1_raw[0], "ksv1_1": k1_raw[1], "ksv1_2": k1_raw[2],
        "ksv2_0": k2_raw[0], "ksv2_1": k2_raw[1],
    }
    pred = _predict_two_site(params, np.column_stack([p, t]))
    return params if np.all(np.isfinite(pred)) else None


def _predict_two_site(params: Mapping[str, float], pt: np.ndarray) -> np.ndarray:
    g = {k: float(params[k]) for k in _PARAM_NAMES["two_site"]}
    p, t = pt[:, 0], pt[:, 1]
    th0 = g["theta0_0"] + g["theta0_1"] * t
    f = g["f_0"] + g["f_1"] * t
    k1 = g["ksv1_0"] + g["ksv1_1"] * t + g["ksv1_2"] * t * t
    k2 = g["ksv2_0"] + g["ksv2_1"] * t
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.tan(np.radians(p)) / np.tan(np.radians(th0))
    return two_site_inverse(r, f, k1, k2)


# ------------------------------------------------------------------ polynomial
def _poly_features(z: np.ndarray, powers: np.ndarray) -> np.ndarray:
    return np.prod(z[:, None, :] ** powers[None, :, :], axis=2)


def _fit_poly(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import PolynomialFeatures

    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    y_center = float(y.mean())
    y_scale = float(y.std()) or 1.0
    z = (x - center) / scale
    yz = (y - y_center) / y_scale
    n, k = x.shape

    def fit(deg, rows):
        pf = PolynomialFeatures(degree=deg, include_bias=False).fit(z[:1])
        reg = Ridge(alpha=_POLY_ALPHA).fit(_poly_features(z[rows], pf.powers_), yz[rows])
        return pf.powers_, reg

    n_folds = min(_CV_FOLDS, n)
    folds = _kfold(n, n_folds) if n >= 2 * _CV_FOLDS else []
    n_train = n - int(math.ceil(n / max(n_folds, 1)))
    degrees = [d for d in _POLY_DEGREES if math.comb(k + d, d) <= max(n_train, 2)] or [1]
    best_deg = degrees[0]
    if folds and len(degrees) > 1:
        cv = {}
        for d in degrees:
            err = np.empty(n)
            for tr, te in folds:
                powers, reg = fit(d, tr)
                err[te] = reg.predict(_poly_features(z[te], powers)) - yz[te]
            cv[d] = _rmse(err)
        best_deg = min(cv, key=lambda d: (cv[d], d))
    powers, reg = fit(best_deg, np.arange(n))
    return {
        "degree": int(best_deg),
        "center": [float(v) for v in center],
        "scale": [float(v) for v in scale],
        "powers": [[int(v) for v in row] for row in powers],
        "coef": [float(v) for v in reg.coef_],
        "intercept": float(reg.intercept_),
        "y_center": y_center,
        "y_scale": y_scale,
    }


def _predict_poly(params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    center = np.asarray(params["center"], dtype=np.float64)
    z = (x - center) / np.asarray(params["scale"], dtype=np.float64)
    powers = np.asarray(params["powers"], dtype=np.int64).reshape(-1, x.shape[1])
    coef = np.asarray(params["coef"], dtype=np.float64)
    yz = _poly_features(z, powers) @ coef + float(params["intercept"])
    return yz * float(params["y_scale"]) + float(params["y_center"])


_FITTERS: dict[str, Callable[..., dict[str, float] | None]] = {
    "svu": _fit_svu,
    "two_site": _fit_two_site,
    "sbe63": _fit_sbe63,
}
_PREDICTORS: dict[str, Callable[[Mapping[str, Any], np.ndarray], np.ndarray]] = {
    "svu": _predict_svu,
    "two_site": _predict_two_site,
    "sbe63": _predict_sbe63,
    "poly": _predict_poly,
}
