"""Numbers a lab can sign: conformal prediction intervals and the applicability domain.

Out-of-fold results of the k-fold re-validation -> :class:`TrustSpec` (a few constants) ->
evaluated on new readings by :func:`evaluate` (numpy) and, identically, by the ONNX head
of the artifact (:mod:`calib.artifact.trust_graph`), so lab software gets the interval and
the domain flag from ``model.onnx`` alone.

Interval (normalised, Mondrian split conformal on grouped out-of-fold residuals)
    ``sigma(y) = max(a + b * y, floor)`` is the difficulty: the typical absolute error as a
    line in the prediction ``y`` (least squares on the out-of-fold ``|residual|``; a constant,
    their mean, below :func:`min_slope_rows` residuals). The
    nonconformity score of a calibration row is ``|y_true - y_oof| / sigma(y_oof)``; the
    rows are cut into Mondrian bins (terciles of the temperature input, else of the
    prediction) and each bin gets the conformal quantile ``q_b`` of its scores, the
    ``ceil((n_b + 1) * level)``-th smallest. A new reading in bin ``b`` gets
    ``y +- q_b * sigma(y)``. The folds respect the groups (GroupKFold by spot), so the
    residuals are those of unseen spots, as a new sensor's are (CV+ style: the final model
    is used with the fold models' residual quantiles). The caller passes the fold models'
    predictions where the final model is trained to (:attr:`calib.validate.CVResult.refit_oof`).

Applicability domain (bit mask ``domain_code``; 0 = calib vouches for the number)
    1  an input outside the range seen in training;
    2  *joint*: the reading is far from every calibration point in the standardised input
       space (``domain_distance`` > 1: the nearest-prototype distance divided by the
       largest out-of-fold distance of a calibration row);
    4  *output*: the prediction lies outside the calibrated target range widened by the
       95th percentile of the out-of-fold absolute error;
    8  *physical*: an impossible reading (phase outside 0..90 deg, ...), for callers of the
       bare graph (calib's own doors refuse such readings before predicting).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "ConformalSpec", "DomainSpec", "DomainGeometry", "TrustSpec", "fit_conformal", "fit_domain", "domain_geometry",
    "evaluate", "min_bin_rows", "min_slope_rows",
    "DOMAIN_BITS", "MIN_BIN_ROWS", "reasons", "two_point_residuals", "coverage_table", "uncertainty_budget",
]

#: Bits of ``domain_code`` and their names (the ``out_of_range_reason`` words).
DOMAIN_BITS = {1: "input", 2: "joint", 4: "output", 8: "physical"}
#: Most prototypes kept for the joint-space distance (k-means centres beyond this).
MAX_PROTOTYPES = 256
#: Fewest calibration rows per Mondrian bin at any level; fewer rows use fewer bins.
MIN_BIN_ROWS = 20


def min_bin_rows(level: float) -> int:
    """Fewest calibration rows a Mondrian bin needs at ``level``.

    A bin of ``n`` rows has a finite conformal quantile, the ``ceil((n + 1) * level)``-th
    smallest score, only when that rank is at most ``n``: ``n >= level / (1 - level)``
    (19 at 95 %, 99 at 99 %). One row more, and never fewer than :data:`MIN_BIN_ROWS`.
    """
    return max(MIN_BIN_ROWS, math.floor(level / (1.0 - level) + 1e-9) + 1)


def min_slope_rows(level: float) -> int:
    """Fewest calibration rows for which the difficulty gets its slope in the prediction.

    The line ``a + b * y`` is fitted to the same residuals whose scores it then normalises, so
    each calibration score leans towards its own fit, which a new reading's does not; the
    interval comes out narrower than its level promises. With a bin's rows per parameter
    (twice :func:`min_bin_rows`: 40 at 95 %) that lean is within the conformal rank's slack;
    with fewer, the difficulty is the mean absolute residual (a constant), which has no lean.
    On 19 calibration rows of a prediction-dependent error the line covered 93.8 % of fresh
    rows at 95 %, the constant 95.2 % (2,000 draws, ``tests/test_trust.py``).
    """
    return 2 * min_bin_rows(level)


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ConformalSpec:
    """Constants of the conformal interval (target unit).

    Attributes
    ----------
    level : float
        Nominal coverage (e.g. 0.95).
    bin_on : int
        Input column whose value picks the Mondrian bin, or -1 for the prediction itself.
    bin_name : str
        Name of that input (or ``prediction``).
    edges : tuple of float
        Bin edges (len = bins - 1, increasing); a value ``v`` is in bin ``sum(v > edges)``.
    q : tuple of float
        Conformal quantile of the normalised score per bin.
    a, b, floor : float
        Difficulty ``sigma(y) = max(a + b * y, floor)``, target unit.
    n : int
        Calibration residuals used.
    oof_coverage : float
        Fraction of the calibration residuals inside their own interval (>= level by construction).
    source : str
        ``out-of-fold`` or ``two-point adjusted out-of-fold``.
    """

    level: float
    bin_on: int
    bin_name: str
    edges: tuple[float, ...]
    q: tuple[float, ...]
    a: float
    b: float
    floor: float
    n: int
    oof_coverage: float
    source: str = "out-of-fold"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["edges"], d["q"] = list(self.edges), list(self.q)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConformalSpec":
        d = dict(d)
        d["edges"], d["q"] = tuple(map(float, d["edges"])), tuple(map(float, d["q"]))
        return cls(**d)

    def sigma(self, y: np.ndarray) -> np.ndarray:
        return np.maximum(np.float32(self.a) + np.float32(self.b) * y, np.float32(self.floor))

    def bins(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        v = y if self.bin_on < 0 else x[:, self.bin_on]
        return (v[:, None] > np.asarray(self.edges, dtype=np.float32)[None, :]).sum(axis=1)

    def half_width(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        q = np.asarray(self.q, dtype=np.float32)
        return q[self.bins(np.asarray(x, dtype=np.float32), y)] * self.sigma(y)


@dataclass(frozen=True)
class DomainSpec:
    """Constants of the applicability domain (inputs in the model's input space).

    Attributes
    ----------
    center, scale : tuple of float
        Standardisation of each input for the joint distance.
    prototypes : tuple of tuple of float
        Calibration points (or k-means centres of them), standardised, shape (P, n_features).
    threshold : float
        Largest out-of-fold nearest-prototype distance of a calibration row.
    lower, upper : tuple of float
        Range of each input seen in training.
    physical_lower, physical_upper : tuple of float
        Physically possible range of each input (+-inf when unbounded).
    y_lower, y_upper : float
        Calibrated target range widened by ``margin``.
    margin : float
        95th percentile of the out-of-fold absolute error (target unit).
    """

    center: tuple[float, ...]
    scale: tuple[float, ...]
    prototypes: tuple[tuple[float, ...], ...]
    threshold: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    physical_lower: tuple[float, ...]
    physical_upper: tuple[float, ...]
    y_lower: float
    y_upper: float
    margin: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("physical_lower", "physical_upper"):
            d[k] = [None if not math.isfinite(v) else v for v in d[k]]
        d["prototypes"] = [list(p) for p in self.prototypes]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DomainSpec":
        d = dict(d)
        for k in ("physical_lower", "physical_upper"):
            inf = -np.inf if k.endswith("lower") else np.inf
            d[k] = tuple(inf if v is None else float(v) for v in d[k])
        for k in ("center", "scale", "lower", "upper"):
            d[k] = tuple(map(float, d[k]))
        d["prototypes"] = tuple(tuple(map(float, p)) for p in d["prototypes"])
        return cls(**d)

    def with_inputs(self, lower: Sequence[float], upper: Sequence[float]) -> "DomainSpec":
        from dataclasses import replace

        return replace(self, lower=tuple(map(float, lower)), upper=tuple(map(float, upper)))

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Nearest-prototype distance / threshold, float32 like the graph."""
        z = (np.asarray(x, np.float32) - np.asarray(self.center, np.float32)) / np.asarray(self.scale, np.float32)
        return _nearest(z, np.asarray(self.prototypes, dtype=np.float32)) / np.float32(self.threshold)


@dataclass(frozen=True)
class TrustSpec:
    """Interval and domain of one artifact (``calibration.json`` keys ``conformal``, ``domain``
    and, with auxiliary targets, ``conformal_aux``).

    Attributes
    ----------
    conformal : ConformalSpec
        The primary target's interval.
    domain : DomainSpec
    aux : tuple of (str, ConformalSpec)
        Each auxiliary target's name and interval (its own out-of-fold residuals), in output order.
    """

    conformal: ConformalSpec
    domain: DomainSpec
    aux: tuple[tuple[str, ConformalSpec], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = {"conformal": self.conformal.to_dict(), "domain": self.domain.to_dict()}
        if self.aux:
            d["conformal_aux"] = {name: c.to_dict() for name, c in self.aux}
        return d

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "TrustSpec | None":
        if not isinstance(meta.get("conformal"), Mapping) or not isinstance(meta.get("domain"), Mapping):
            return None
        aux = meta.get("conformal_aux") or {}
        return cls(ConformalSpec.from_dict(meta["conformal"]), DomainSpec.from_dict(meta["domain"]),
                   tuple((str(k), ConformalSpec.from_dict(v)) for k, v in aux.items()))


# --------------------------------------------------------------------------- fitting
def _temperature_index(units: Sequence[str]) -> int:
    return next((j for j, u in enumerate(units) if u == "degC"), -1)


def _conformal_q(scores: np.ndarray, level: float) -> float:
    n = len(scores)
    k = math.ceil((n + 1) * level)
    s = np.sort(scores)
    return float(s[min(k, n) - 1])


def fit_conformal(y: np.ndarray, y_oof: np.ndarray, x: np.ndarray, units: Sequence[str], names: Sequence[str],
                  level: float = 0.95, bins: int = 3, source: str = "out-of-fold") -> ConformalSpec:
    """Fit the interval constants from out-of-fold predictions.

    Parameters
    ----------
    y, y_oof : ndarray (n,)
        Reference values and out-of-fold predictions, target unit.
    x : ndarray (n, n_features)
        The readings (model input space); the temperature input picks the Mondrian bins.
    units, names : sequence of str
        Unit and name of each input.
    level : float, default=0.95
    bins : int, default=3
        Mondrian bins (terciles); fewer when a bin would hold fewer than :func:`min_bin_rows`
        rows (20 at 95 %). With fewer than :func:`min_slope_rows` rows (40 at 95 %) the
        difficulty is a constant (``b = 0``).
    """
    y = np.asarray(y, np.float64)
    p = np.asarray(y_oof, np.float64)
    r = np.abs(y - p)
    mean_r = float(r.mean()) if len(r) else 0.0
    floor = max(0.1 * mean_r, 1e-6 * max(float(np.abs(y).max(initial=0.0)), 1.0), 1e-12)
    if len(p) >= min_slope_rows(level) and np.ptp(p) > 0:
        b, a = np.polyfit(p, r, 1)
    else:
        a, b = mean_r, 0.0
    a, b = float(a), float(b)
    sig = np.maximum(a + b * p, floor)
    scores = r / sig
    tj = _temperature_index(units)
    v = p if tj < 0 else x[:, tj]
    n_bins = max(1, min(int(bins), len(p) // min_bin_rows(level)))
    edges: tuple[float, ...] = ()
    if n_bins > 1 and np.ptp(v) > 0:
        edges = tuple(float(e) for e in np.unique(np.quantile(v, np.arange(1, n_bins) / n_bins)))
    idx = (v[:, None] > np.asarray(edges)[None, :]).sum(axis=1) if edges else np.zeros(len(p), int)
    q = []
    for bi in range(len(edges) + 1):
        s = scores[idx == bi]
        q.append(_conformal_q(s if len(s) else scores, level) if len(scores) else 0.0)
    # f32 like the graph, so the recorded coverage is what the artifact does
    spec = ConformalSpec(level=float(level), bin_on=tj, bin_name=names[tj] if tj >= 0 else "prediction",
                         edges=edges, q=tuple(q), a=a, b=b, floor=float(floor), n=int(len(p)),
                         oof_coverage=0.0, source=source)
    hw = spec.half_width(x, p.astype(np.float32)).astype(np.float64)
    cov = float(np.mean(r <= hw)) if len(r) else float("nan")
    from dataclasses import replace

    return replace(spec, oof_coverage=cov)


def _prototypes(z: np.ndarray, seed: int = 0) -> np.ndarray:
    uz = np.unique(z.round(9), axis=0)
    if len(uz) <= MAX_PROTOTYPES:
        return uz
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=MAX_PROTOTYPES, n_init=1, random_state=seed).fit(uz).cluster_centers_


def _nearest(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest prototype, in ``z``'s float type, as the ONNX head
    computes it: ``|z|^2 + min_j(|p_j|^2 - 2 z.p_j)``."""
    q = z @ (np.asarray(-2.0, z.dtype) * p.T) + (p * p).sum(axis=1)[None, :]
    return np.sqrt(np.maximum((z * z).sum(axis=1) + q.min(axis=1), 0))


@dataclass(frozen=True)
class DomainGeometry:
    """The part of the applicability domain that depends on the readings and folds alone (not on
    any model): what :func:`fit_domain` computes first, and may be given made ahead.

    Attributes
    ----------
    center, scale : ndarray (n_features,)
        Standardisation of the readings.
    distance : ndarray (n,)
        Each validation row's distance to the prototypes of its fold's training rows.
    prototypes : ndarray (m, n_features)
        Prototypes of all rows (standardised).
    """

    center: np.ndarray
    scale: np.ndarray
    distance: np.ndarray
    prototypes: np.ndarray


def domain_geometry(x: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> DomainGeometry:
    """The model-free part of :func:`fit_domain` (k-means prototypes; deterministic).

    Parameters
    ----------
    x : ndarray (n, n_features)
        Training readings (model input space).
    folds : sequence of (train, validation) index arrays
    """
    x = np.asarray(x, np.float64)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - center) / scale
    oof = np.zeros(len(x))
    for k, (tr, va) in enumerate(folds):
        oof[va] = _nearest(z[va], _prototypes(z[tr], seed=k))
    return DomainGeometry(center=center, scale=scale, distance=oof, prototypes=_prototypes(z))


def fit_domain(x: np.ndarray, y: np.ndarray, y_oof: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
               units: Sequence[str], geometry: DomainGeometry | None = None) -> DomainSpec:
    """Fit the applicability-domain constants.

    Parameters
    ----------
    x : ndarray (n, n_features)
        Training readings (model input space).
    y, y_oof : ndarray (n,)
        Reference values and out-of-fold predictions (target unit).
    folds : sequence of (train, validation) index arrays
        The folds of the re-validation: each validation row's distance is measured to the
        prototypes of its fold's training rows.
    units : sequence of str
        Canonical unit of each input (for the physical bounds).
    geometry : DomainGeometry, optional
        :func:`domain_geometry` of exactly ``x`` and ``folds``, made ahead; default: made here.
    """
    from .ingest import physical_bounds

    x = np.asarray(x, np.float64)
    g = geometry if geometry is not None else domain_geometry(x, folds)
    center, scale, oof, protos = g.center, g.scale, g.distance, g.prototypes
    threshold = float(oof.max()) if len(oof) else 1.0
    if threshold <= 0:  # every point seen twice: any new point is outside
        threshold = 1e-6
    bounds = [physical_bounds(u) for u in units]
    r = np.abs(np.asarray(y, np.float64) - np.asarray(y_oof, np.float64))
    margin = float(np.quantile(r, 0.95)) if len(r) else 0.0
    return DomainSpec(
        center=tuple(map(float, center)), scale=tuple(map(float, scale)),
        prototypes=tuple(tuple(map(float, p)) for p in protos), threshold=threshold,
        lower=tuple(map(float, x.min(axis=0))), upper=tuple(map(float, x.max(axis=0))),
        physical_lower=tuple(-np.inf if b is None else float(b[0]) for b in bounds),
        physical_upper=tuple(np.inf if b is None else float(b[1]) for b in bounds),
        y_lower=float(np.min(y)) - margin, y_upper=float(np.max(y)) + margin, margin=margin,
    )


# --------------------------------------------------------------------------- evaluation
def evaluate(spec: TrustSpec, x: np.ndarray, y: np.ndarray, x_domain: np.ndarray | None = None,
             y_aux: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The trust outputs in numpy (float32, as the ONNX head computes them).

    Parameters
    ----------
    x : ndarray (n, n_features)
        Raw readings (physical check).
    y : ndarray (n,)
        Primary prediction.
    x_domain : ndarray, optional
        Readings in the model's own input space (a spot child's mapped readings); default ``x``.
    y_aux : ndarray (n, n_aux), optional
        The auxiliary targets' predictions (``spec.aux`` order): adds ``aux_lo``, ``aux_hi``.

    Returns
    -------
    dict with ``lo``, ``hi``, ``domain_code`` (int32), ``domain_distance`` (and ``aux_lo``,
    ``aux_hi`` (n, n_aux) with ``y_aux``).
    """
    x = np.asarray(x, np.float32)
    xd = x if x_domain is None else np.asarray(x_domain, np.float32)
    y = np.asarray(y, np.float32)
    d = spec.domain
    hw = spec.conformal.half_width(xd, y)
    dist = d.distance(xd)
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    code = ((xd < f32(d.lower)) | (xd > f32(d.upper))).any(axis=1).astype(np.int32)
    code += 2 * (dist > 1).astype(np.int32)
    code += 4 * ((y < np.float32(d.y_lower)) | (y > np.float32(d.y_upper))).astype(np.int32)
    code += 8 * ((x < f32(d.physical_lower)) | (x > f32(d.physical_upper))).any(axis=1).astype(np.int32)
    out = {"lo": y - hw, "hi": y + hw, "domain_code": code, "domain_distance": dist}
    if y_aux is not None and spec.aux:
        ya = np.asarray(y_aux, np.float32).reshape(len(y), -1)
        hws = np.stack([c.half_width(xd, ya[:, j]) for j, (_n, c) in enumerate(spec.aux)], axis=1)
        out["aux_lo"], out["aux_hi"] = ya - hws, ya + hws
    return out


def reasons(code: np.ndarray, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
            names: Sequence[str]) -> np.ndarray:
    """Per row the words of ``domain_code`` (``""`` when 0), naming the inputs out of range.

    Words are joined by `` + `` (no CSV separator), e.g. ``temperature_degC above range + joint``.
    """
    out = np.full(len(code), "", dtype=object)
    for i in np.flatnonzero(code):
        words = []
        c = int(code[i])
        if c & 1:
            for j, n in enumerate(names):
                if x[i, j] < lower[j]:
                    words.append(f"{n} below range")
                elif x[i, j] > upper[j]:
                    words.append(f"{n} above range")
            if not words:
                words.append("input")
        for bit, word in ((2, "joint"), (4, "output"), (8, "physical")):
            if c & bit:
                words.append(word)
        out[i] = " + ".join(words)
    return out


# --------------------------------------------------------------------------- two-point checks
def two_point_residuals(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, temperature: np.ndarray | None,
                        reference_temperature: float | None = None,
                        air: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of each group after a two-point (zero and air) linear check.

    Per group: the rows at the temperature level nearest ``reference_temperature`` (default:
    the median temperature) with the group's lowest reference value (zero) and the value
    nearest ``air`` (default: the highest) are its two-point check; ``y = s * pred + c``
    through their means (the ``linear`` method of :mod:`calib.spots.adjust`) is applied to
    the group's other rows.

    Returns
    -------
    adjusted, mask : ndarray
        Adjusted predictions and the rows that were not check points (where to score).
    """
    adj = np.asarray(pred, np.float64).copy()
    keep = np.zeros(len(y), dtype=bool)
    t_ref = (float(np.median(temperature)) if temperature is not None else 0.0) \
        if reference_temperature is None else float(reference_temperature)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        if temperature is not None:
            tg = temperature[rows]
            near = rows[np.abs(tg - tg[np.argmin(np.abs(tg - t_ref))]) <= 1.0]
        else:
            near = rows
        z = near[y[near] == y[near].min()]
        top = y[near].max() if air is None else y[near][np.argmin(np.abs(y[near] - air))]
        a = near[y[near] == top]
        dm = pred[a].mean() - pred[z].mean()
        if len(near) < 2 or not dm > 0 or y[a].mean() <= y[z].mean():
            continue
        s = (y[a].mean() - y[z].mean()) / dm
        c = y[z].mean() - s * pred[z].mean()
        adj[rows] = s * pred[rows] + c
        m = np.ones(len(rows), bool)
        m[np.isin(rows, np.concatenate([z, a]))] = False
        keep[rows[m]] = True
    return adj, keep


def coverage_table(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, pred: np.ndarray,
                   bin_values: np.ndarray, bins: int = 3) -> dict[str, Any]:
    """Empirical coverage overall and per tercile of ``bin_values``, mean width / MAE."""
    y = np.asarray(y, float)
    inside = (y >= lo) & (y <= hi)
    mae = float(np.mean(np.abs(y - pred)))
    width = float(np.mean(hi - lo))
    edges = np.quantile(bin_values, np.arange(1, bins) / bins)
    idx = (bin_values[:, None] > edges[None, :]).sum(axis=1)
    return {
        "n": int(len(y)), "coverage": float(inside.mean()),
        "coverage_bins": [float(inside[idx == b].mean()) for b in range(bins) if (idx == b).any()],
        "mae": mae, "mean_width": width, "width_over_mae": width / mae if mae > 0 else float("nan"),
        "half_width_over_mae": 0.5 * width / mae if mae > 0 else float("nan"),
    }


# --------------------------------------------------------------------------- uncertainty budget
def uncertainty_budget(residuals: np.ndarray, *, reference: float = 0.0, input_noise: float | None = None,
                       drift: float = 0.0, k: float = 2.0) -> dict[str, Any]:
    """A GUM-style budget (target unit, standard uncertainties, combined in quadrature).

    Parameters
    ----------
    residuals : ndarray
        Out-of-fold residuals (``y - y_oof``): the fit component is their RMS.
    reference : float
        Standard uncertainty of the reference values (``[validate] reference_uncertainty``).
    input_noise : float or None
        Input noise propagated to the target, 1 sd (:func:`calib.floors.estimate_noise_floor`
        MAE / sqrt(2/pi)); None when unknown.
    drift : float
        Allowance for drift until the next check (``[validate] drift_allowance``).
    k : float, default=2
        Coverage factor of the expanded uncertainty.

    Returns
    -------
    dict
        ``components`` (name -> value), ``combined`` (u_c), ``k``, ``expanded`` (U = k u_c),
        ``oof_coverage`` (fraction of |residual| <= U). The fit component already holds the
        validation readings' own noise and reference error, so the sum is conservative.
    """
    r = np.asarray(residuals, float)
    comps = {
        "fit residual (k-fold RMSE)": float(np.sqrt(np.mean(r**2))) if len(r) else 0.0,
        "reference": float(reference),
        "input noise (propagated)": 0.0 if input_noise is None else float(input_noise),
        "drift allowance": float(drift),
    }
    uc = float(np.sqrt(sum(v**2 for v in comps.values())))
    U = k * uc
    return {"components": comps, "combined": uc, "k": float(k), "expanded": U,
            "oof_coverage": float(np.mean(np.abs(r) <= U)) if len(r) else float("nan"),
            "input_noise_known": input_noise is not None}
