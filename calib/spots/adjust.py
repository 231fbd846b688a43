"""Per-spot two-point adjustment of a batch calibration model.

batch artifact + two-point reference readings per spot (zero O2 and air-saturated water)
-> one child artifact per spot, ``models/<parent>.<spot>/<version>/``, that lab software
loads through ONNX exactly like the batch model.

A foil batch is calibrated once at many (T, O2) points; each spot cut from it then gets a
quick two-point check. Spot-to-spot variation (instrument phase offset, unquenched lifetime,
Stern-Volmer constants) is the largest error left in a batch model (about 3 hPa median, 6 hPa
at air, on the bundled simulated batch). The check removes most of it.

Methods
-------
``"spot_map"`` (default, and the only method, for a model trained on spot-normalised phases)
    ``O2 = batch(x * m + c)``: the parent was trained by ``calib calibrate`` with an ``[adjust]``
    table on phases mapped per spot onto batch-typical two-point anchors (:mod:`calib.spots.normalise`;
    ``calibration.json`` ``spot_normalisation``). The spot's zero and air readings ``r0``, ``r1``
    give the same map for each phase input, ``m = (B1 - B0) / (r1 - r0)`` and
    ``c = B0 - r0 * m`` (``m = 1``, ``c = 0`` for the other inputs), folded into the child's
    ONNX graph as a ``Mul`` and an ``Add`` on the input. The reference rows must be at the
    parent's reference temperature (within its tolerance) and at its zero and air levels.
    Held-out spot MAE on the bundled batch: 0.7 hPa, against 3.2 for a batch network on raw
    phases and 2.0 for that network with ``linear`` (``benchmarks/spot_adjust.py``). Such a
    parent must not be used on raw readings of an unchecked spot (about 5 hPa there):
    ``calib predict`` marks those rows ``adjusted = False``.
``"linear"`` (default for a plain batch model)
    ``O2 = a + b * batch(x)``: a two-point straight line on the output, exact at both points.
``"phase_scale"`` (physics)
    ``O2 = s * batch(x - delta * e_phase)``: the phase shift ``delta`` (deg, the same at every
    modulation frequency, as an instrument offset) is found by root-finding so that the batch
    model reads the zero reference as 0; the scale ``s`` (a Stern-Volmer constant ``k * Ksv``
    makes a spot read like the batch at ``k * pO2``) then makes it read the air reference.

Why ``spot_map`` on a spot-normalised network, and ``linear`` for a plain batch network
(``benchmarks/spot_adjust.py``, bundled data, 12 spots in 3 rotations of 4 held-out spots,
2 x 64 tanh networks, reference at 22.5 degC, MAE on the held-out spots' other rows, seeds 0-3):
batch network alone 2.8-3.6 hPa; with ``linear`` 2.4-4.3; the spot-normalised network with
``spot_map`` 0.96-1.13 (0.30-0.39 of the batch network); the lab's classical two-site
recalibration (theta0 + Ksv from the two points) 40-46 hPa on calib's two-site fit, 6.5-8.0
with theta0(T) measured. The network trained on normalised phases never has to learn the
spot-to-spot spread, and each spot's two points remove it per frequency before the network.
``phase_scale`` (an earlier version of the benchmark: 11.6 hPa against 4.29 for the batch
model alone) fails on a physical detail: at zero O2 a phase offset of 0.2 deg moves the
reading by only ~0.2 hPa (the phase is steep there), within the batch model's own error at
zero, so the root-found shift is poorly determined and, applied where the phase is flat (high
O2), costs more than it gains; a multi-frequency network has moreover learned to be nearly
invariant to a uniform phase shift of all its inputs (the training spots differ by such
offsets), so the root can lie degrees away or not exist (the reference is then refused).
``linear`` takes the information where it is strong: the air point fixes the scale, the zero
point a small intercept. No method removes what two points at one temperature do not show
(the simulated spots' site fraction ``f`` and their two independent Stern-Volmer constants
bend the curve between the points).

Reference file (``REF``)
------------------------
One row per reference reading; CSV, Parquet or Excel, read like any readings file:

- the spot column: the parent's group column (``calibration.json`` ``data.group``, e.g.
  ``spot_id``) or ``spot_column``;
- every feature of the model, by normalised name or source name, in any unit calib converts
  (exactly as for ``calib predict``);
- which level a row is, given by either or both of:

  - the target column (the model's target name, e.g. ``o2_hPa``): ``0`` for the zero
    reference, the air-saturated value for the air reference (any value > 0);
  - a ``level`` column with ``zero`` or ``air``. Without a target column the air value is
    computed from 100 % air saturation (Garcia & Gordon 1992, :func:`calib.units.convert_o2`)
    at the row's temperature (the model's first degC feature), an ``air_pressure_<unit>``
    column (e.g. ``air_pressure_hPa``, ``air_pressure_mbar``; needed for every target unit
    but % air saturation and % O2) and an optional ``salinity_psu`` column (default 0, fresh
    water).

Several rows per spot and level (replicates) are used together. The natural form is the
readings file's own columns: features + target + spot, e.g. the two-point rows cut out of a
calibration run::

    spot_id,phase_5000hz_deg,temperature_degC,o2_hPa
    S13,61.884,22.51,0
    S13,33.118,22.49,212

A reference must lie inside the model's calibrated ranges (inclusive bounds), both levels
must be present for every spot, cells must be numbers; each rule violated raises a one-line
:class:`~calib.errors.IngestError` naming the file, the row and the column.

Child artifacts
---------------
``models/<parent name>.<spot>/<version>/`` (next to the parent; versions start at 1.0.0 and
bump like any artifact, so re-checking a spot gives 1.1.0): ``model.onnx`` is the parent's
graph with the adjustment folded in (a ``Sub`` of the input offset before it, a ``Mul``/``Add``
on the outputs; the standard deviation output is scaled by ``|s|``), same input and outputs;
``model.keras`` is the parent's network wrapped between two ``Normalization`` layers doing
the same; ``calibration.json`` is the parent's with a ``spot_adjustment`` entry (spot, method,
numbers, parent name/version/model id and ONNX SHA-256, reference file and SHA-256, the
reference rows); the calibrated phase ranges are shifted by ``delta`` so that
``out_of_range`` stays about what the network saw. For ``spot_map`` the graph gets a ``Mul``
and an ``Add`` on the input ``readings`` (the spot's map) and unchanged outputs, the Keras
model one inverting ``Normalization`` layer; the calibrated ranges are mapped back to the
spot's raw readings, and ``spot_adjustment.normalisation`` records the anchors (the parent's
top-level ``spot_normalisation`` is not copied: the child takes raw readings). Each folder is
built under ``.tmp-*`` and renamed into place, like :func:`calib.artifact.export_artifact`.

Writing ``model.keras`` imports TensorFlow; computing adjustments, loading children and
predicting do not.

Examples
--------
>>> res = adjust_spots("models/sim-ptp-batch", "spot_checks.csv")      # doctest: +SKIP
>>> [(a.spot_id, round(a.intercept, 3), round(a.scale, 4)) for a in res.adjustments]  # doctest: +SKIP
[('S13', -0.412, 0.9712)]
>>> predict_spots("models/sim-ptp-batch", df)                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..constraints import StrOptions, check_param
from ..errors import ArtifactError, ConfigError, IngestError, clip_list
from ..runtime import NORMALISATION_KEY as NORM_KEY
from ..runtime import SPOT_ADJUSTMENT_KEY as META_KEY
from .reference import (
    LEVEL_COLUMN,
    Reference,
    check_ranges,
    read_reference,
    reference_dates,
    rows_text,
    temperature_index,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime import CalibrationModel

__all__ = [
    "METHODS",
    "SPOT_MAP",
    "ReferencePoint",
    "SpotAdjustment",
    "AdjustResult",
    "compute_adjustments",
    "child_name",
    "load_parent",
    "check_method",
]

#: Adjustment methods (see the module notes). Default: ``spot_map`` for a parent with
#: ``spot_normalisation``, the only method there; ``linear`` otherwise.
METHODS = ("linear", "phase_scale", "spot_map")
SPOT_MAP = "spot_map"
#: Largest phase shift (in the phase features' unit, deg) searched for the zero point.
MAX_PHASE_SHIFT = 5.0
#: Plausible range of the O2 scale (or slope of ``linear``); outside it the reference is
#: wrong (swapped levels, a leaking zero solution) rather than the spot.
SCALE_RANGE = (0.5, 2.0)
#: Air reference rows of one spot must agree within this relative spread.
AIR_SPREAD = 0.05

_PHASE_UNITS = ("deg", "us")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _fmt(v: float) -> str:
    return f"{v:.6g}"


# --------------------------------------------------------------------------- types
@dataclass(frozen=True)
class ReferencePoint:
    """One level of a spot's two-point check (its rows used together).

    Attributes
    ----------
    level : {"zero", "air"}
    rows : tuple of int
        Spreadsheet row numbers in the reference file (header = row 1).
    value : float
        Mean reference O2 of the rows, in the model's target unit.
    batch_reading : float
        Mean reading of the batch model for the rows, target unit.
    adjusted_reading : float
        Mean reading of the adjusted model for the rows, target unit.
    temperature_degC : float or None
        Mean of the model's first degC feature over the rows.
    """

    level: str
    rows: tuple[int, ...]
    value: float
    batch_reading: float
    adjusted_reading: float
    temperature_degC: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rows": list(self.rows), "value": self.value,
                "batch_reading": self.batch_reading, "adjusted_reading": self.adjusted_reading,
                "temperature_degC": self.temperature_degC}


@dataclass(frozen=True)
class SpotAdjustment:
    """The adjustment of one spot: ``y = intercept + scale * batch(x * input_scale - input_offset)``.

    Attributes
    ----------
    spot_id : str
    method : {"linear", "phase_scale", "spot_map"}
    features : tuple of str
        The model's inputs, in order.
    input_offset : tuple of float
        Subtracted from each input before the batch network, in the input's unit (the phase
        shift on the phase inputs, 0 elsewhere).
    phase_shift : float
        The phase shift (deg for phase inputs; 0 for ``linear``).
    scale : float
        Multiplies the primary target (dimensionless, > 0).
    intercept : float
        Added to the primary target after scaling, target unit (0 for ``phase_scale``).
    unit : str
        Target unit.
    zero, air : ReferencePoint
    input_scale : tuple of float, default=()
        ``spot_map``: multiplies each input before the offset is subtracted (the map scale
        ``(B1 - B0) / (r1 - r0)`` on the phase inputs, 1 elsewhere); empty for the other
        methods (all 1). ``spot_map`` has ``scale = 1`` and ``intercept = 0``.
    normalisation : dict or None, default=None
        ``spot_map``: the parent's anchors ``b0``, ``b1``, the spot's ``r0``, ``r1`` (mapped
        inputs), the mapped input names and the reference (temperature and levels).
    """

    spot_id: str
    method: str
    features: tuple[str, ...]
    input_offset: tuple[float, ...]
    phase_shift: float
    scale: float
    intercept: float
    unit: str
    zero: ReferencePoint
    air: ReferencePoint
    input_scale: tuple[float, ...] = ()
    normalisation: dict[str, Any] | None = None

    @property
    def input_add(self) -> tuple[float, ...]:
        """``-input_offset``: what the ``spot_map`` child's ``Add`` node adds after the ``Mul``."""
        return tuple(0.0 - v for v in self.input_offset)

    def map_inputs(self, x32: np.ndarray) -> np.ndarray:
        """Readings as the batch network sees them (float32, the child graph's own arithmetic)."""
        x32 = np.ascontiguousarray(x32, dtype=np.float32)
        if self.input_scale:
            return x32 * np.asarray(self.input_scale, dtype=np.float32) + np.asarray(self.input_add, dtype=np.float32)
        return x32.astype(np.float64) - np.asarray(self.input_offset)

    def apply(self, parent: CalibrationModel, X: Any) -> np.ndarray:
        """Adjusted prediction computed in Python from the batch model (reference for the ONNX child).

        Parameters
        ----------
        parent : CalibrationModel
            The batch model the adjustment was computed for.
        X : DataFrame, mapping or array_like
            Readings, see :meth:`calib.runtime.CalibrationModel.as_array`.

        Returns
        -------
        ndarray of float64
            Like ``parent.predict``: shape (n,) or (n, n_targets), target unit.
        """
        mapped = np.ascontiguousarray(self.map_inputs(parent.as_array(X)), dtype=np.float32)
        pred = parent.predict_graph(mapped, want_std=False)[0].astype(np.float64)
        if pred.ndim == 1:
            return self.intercept + self.scale * pred
        pred = pred.copy()
        pred[:, 0] = self.intercept + self.scale * pred[:, 0]
        return pred

    def to_dict(self) -> dict[str, Any]:
        if self.method == SPOT_MAP:
            return {
                "spot_id": self.spot_id,
                "method": self.method,
                "formula": "target = batch(readings * input_scale + input_add)",
                "phase_shift": self.phase_shift,
                "scale": self.scale,
                "intercept": self.intercept,
                "unit": self.unit,
                "input_scale": dict(zip(self.features, self.input_scale)),
                "input_add": dict(zip(self.features, self.input_add)),
                "normalisation": self.normalisation,
                "zero": self.zero.to_dict(),
                "air": self.air.to_dict(),
            }
        return {
            "spot_id": self.spot_id,
            "method": self.method,
            "formula": "target = intercept + scale * batch(readings - input_offset)",
            "phase_shift": self.phase_shift,
            "scale": self.scale,
            "intercept": self.intercept,
            "unit": self.unit,
            "input_offset": dict(zip(self.features, self.input_offset)),
            "zero": self.zero.to_dict(),
            "air": self.air.to_dict(),
        }


@dataclass(frozen=True)
class AdjustResult:
    """What :func:`adjust_spots` did.

    Attributes
    ----------
    parent : dict
        ``name``, ``version``, ``model_id``, ``path`` of the batch model.
    reference : dict
        ``file``, ``sha256``, ``spot_column``, ``rows``.
    method : str
    adjustments : tuple of SpotAdjustment
    artifacts : tuple of Artifact
        The child artifacts written, in the order of ``adjustments`` (empty with ``write=False``).
    note : str or None
        What a user must know, e.g. that children written outside the parent's models folder
        are not applied by the batch model.
    checks : tuple of dict
        Per adjustment, the dated check (:meth:`calib.spots.history.CheckAssessment.to_dict`:
        date, gain, offset, bounds, drift, due date), in the order of ``adjustments``.
    """

    parent: dict[str, Any]
    reference: dict[str, Any]
    method: str
    adjustments: tuple[SpotAdjustment, ...]
    artifacts: tuple[Any, ...] = field(default=())
    note: str | None = None
    checks: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        arts = list(self.artifacts) + [None] * (len(self.adjustments) - len(self.artifacts))
        checks = list(self.checks) + [None] * (len(self.adjustments) - len(self.checks))
        return {
            "parent": self.parent,
            "reference": self.reference,
            "method": self.method,
            "note": self.note,
            "spots": [
                {**a.to_dict(), **({} if chk is None else {"check": chk}),
                 **({} if art is None else {"artifact": str(art.path), "name": art.name, "version": art.version,
                                            "model_id": art.metadata.get("model_id")})}
                for a, art, chk in zip(self.adjustments, arts, checks)
            ],
        }



# --------------------------------------------------------------------------- computing
def _phase_mask(parent: CalibrationModel) -> np.ndarray:
    units = np.array(parent.feature_units)
    mask = np.isin(units, _PHASE_UNITS)
    if not mask.any():
        raise ConfigError(
            f"method='phase_scale' needs a phase input (unit deg or us); model {parent.name} has "
            f"{', '.join(f'{n} ({u})' for n, u in zip(parent.features, parent.feature_units))}; "
            "use method='linear'"
        )
    if len(set(units[mask])) > 1:
        raise ConfigError(
            "method='phase_scale' shifts every phase input by one offset, so they must share a unit, "
            f"got {sorted(set(units[mask]))}; use method='linear'"
        )
    return mask.astype(np.float64)


def _primary(pred: np.ndarray) -> np.ndarray:
    return pred if pred.ndim == 1 else pred[:, 0]


def _batch(parent: CalibrationModel, x: np.ndarray) -> np.ndarray:
    pred, _ = parent.predict_graph(np.ascontiguousarray(x, dtype=np.float32), want_std=False)
    return _primary(pred).astype(np.float64)


def _solve_shift(parent: CalibrationModel, x0: np.ndarray, y0: float, mask: np.ndarray, where: str) -> float:
    """Phase shift d with mean(batch(x0 - d*mask)) = y0, the root nearest 0 in +-MAX_PHASE_SHIFT."""
    from scipy.optimize import brentq

    grid = np.linspace(-MAX_PHASE_SHIFT, MAX_PHASE_SHIFT, 401)
    xs = x0[None, :, :] - grid[:, None, None] * mask[None, None, :]
    g = _batch(parent, xs.reshape(-1, x0.shape[1])).reshape(len(grid), len(x0)).mean(axis=1) - y0
    if np.any(g == 0.0):
        cand = grid[g == 0.0]
        return float(cand[np.argmin(np.abs(cand))])
    change = np.flatnonzero(np.sign(g[:-1]) != np.sign(g[1:]))
    if change.size == 0:
        reading = float(_batch(parent, x0).mean())
        raise IngestError(
            f"{where}: the batch model reads {_fmt(reading)} {parent.unit} and no phase shift within "
            f"+-{_fmt(MAX_PHASE_SHIFT)} deg brings it to {_fmt(y0)} {parent.unit}; is this really a "
            "zero-O2 reading of this foil?"
        )
    k = change[np.argmin(np.abs(grid[change] + grid[change + 1]))]

    def f(d: float) -> float:
        return float(_batch(parent, x0 - d * mask).mean()) - y0

    return float(brentq(f, grid[k], grid[k + 1], xtol=1e-7, rtol=1e-10, maxiter=200))


def _point(level: str, ref: Reference, rows: np.ndarray, before: np.ndarray, after: np.ndarray,
           tj: int | None) -> ReferencePoint:
    return ReferencePoint(
        level=level,
        rows=tuple(int(r) + 2 for r in rows),
        value=float(ref.y[rows].mean()),
        batch_reading=float(before.mean()),
        adjusted_reading=float(after.mean()),
        temperature_degC=None if tj is None else float(ref.x[rows, tj].astype(np.float64).mean()),
    )


def _adjust_one(parent: CalibrationModel, ref: Reference, spot: str, method: str) -> SpotAdjustment:
    name = ref.table.name
    rows = np.flatnonzero(ref.spot == spot)
    zero = rows[ref.level[rows] == "zero"]
    air = rows[ref.level[rows] == "air"]
    col = ref.target_column or LEVEL_COLUMN
    for lev, r in (("zero", zero), ("air", air)):
        if r.size == 0:
            raise IngestError(
                f"{name} {rows_text(rows + 2)}, column {col}: spot {spot!r} has no {lev} reference "
                "row; a two-point check needs one zero-O2 and one air-saturated level"
            )
    ya = ref.y[air]
    if np.ptp(ya) > AIR_SPREAD * float(ya.mean()):
        raise IngestError(
            f"{name} {rows_text(air + 2)}, column {col}: the air references of spot {spot!r} differ "
            f"({_fmt(ya.min())}..{_fmt(ya.max())} {parent.unit}, more than {AIR_SPREAD:.0%}); a two-point "
            "check has one air level"
        )
    if method == SPOT_MAP:
        return _spot_map_one(parent, ref, spot, rows, zero, air)
    check_ranges(parent, ref, rows)
    x0 = ref.x[zero].astype(np.float64)
    xa = ref.x[air].astype(np.float64)
    y0 = float(ref.y[zero].mean())
    m0_batch = _batch(parent, x0)
    ma_batch = _batch(parent, xa)
    n = len(parent.features)
    where_zero = f"{name} {rows_text(zero + 2)} (spot {spot!r}, zero)"
    where_air = f"{name} {rows_text(air + 2)} (spot {spot!r}, air)"
    if method == "phase_scale":
        mask = _phase_mask(parent)
        shift = _solve_shift(parent, x0, y0, mask, where_zero)
        offset = shift * mask
        ma = _batch(parent, xa - offset)
        if not float(ma.mean()) > 0:
            raise IngestError(
                f"{where_air}: the batch model reads {_fmt(float(ma.mean()))} {parent.unit} after the "
                "phase shift; an air reference must read above the zero reference"
            )
        scale = float(np.dot(ya, ma) / np.dot(ma, ma))
        intercept = 0.0
    else:
        offset, shift = np.zeros(n), 0.0
        dm = float(ma_batch.mean() - m0_batch.mean())
        if not dm > 0:
            raise IngestError(
                f"{where_air}: the batch model reads {_fmt(float(ma_batch.mean()))} {parent.unit} at air "
                f"and {_fmt(float(m0_batch.mean()))} at zero; the air reference must read above the zero one"
            )
        scale = float((ya.mean() - y0) / dm)
        intercept = float(y0 - scale * m0_batch.mean())
    lo, hi = SCALE_RANGE
    if not lo <= scale <= hi:
        raise IngestError(
            f"{where_air}: the adjustment would scale O2 by {_fmt(scale)}, outside the plausible "
            f"{_fmt(lo)}..{_fmt(hi)} (batch reads {_fmt(float(ma_batch.mean()))} {parent.unit}, "
            f"reference {_fmt(float(ya.mean()))}); check the levels and the air value"
        )
    tj = temperature_index(parent)
    adj0 = intercept + scale * _batch(parent, x0 - offset)
    adja = intercept + scale * _batch(parent, xa - offset)
    return SpotAdjustment(
        spot_id=spot,
        method=method,
        features=tuple(parent.features),
        input_offset=tuple(float(v) for v in offset),
        phase_shift=float(shift),
        scale=scale,
        intercept=intercept,
        unit=parent.unit,
        zero=_point("zero", ref, zero, m0_batch, adj0, tj),
        air=_point("air", ref, air, ma_batch, adja, tj),
    )


def _normalisation(parent: CalibrationModel) -> Any:
    from .normalise import SpotNormalisation

    try:
        norm = SpotNormalisation.from_dict(parent.metadata[NORM_KEY])
    except ArtifactError as exc:
        raise ArtifactError(f"{parent.path}: {exc}") from None
    if norm.features != tuple(parent.features):
        raise ArtifactError(f"{parent.path}: spot_normalisation features {list(norm.features)} differ from the "
                            f"model's {list(parent.features)}")
    return norm


def _spot_map_one(parent: CalibrationModel, ref: Reference, spot: str, rows: np.ndarray, zero: np.ndarray,
                  air: np.ndarray) -> SpotAdjustment:
    """``spot_map``: the parent's two-point phase map with this spot's anchors."""
    from ..readings import resolve_feature_columns

    norm = _normalisation(parent)
    sref = norm.reference
    name = ref.table.name
    col = ref.target_column or LEVEL_COLUMN
    check_ranges(parent, ref, rows, skip=norm.mapped)
    tj = temperature_index(parent)
    if tj is None:  # pragma: no cover - a normalised parent always has one
        raise ArtifactError(f"{parent.path}: spot_normalisation without a degC input")
    t = ref.x[rows, tj].astype(np.float64)
    off = np.flatnonzero(~sref.at_temperature(t))
    if off.size:
        i = int(off[0])
        tcol = resolve_feature_columns(parent.feature_specs, ref.table.columns)[tj][0]
        raise IngestError(
            f"{name} row {int(rows[i]) + 2}, column {tcol}: {_fmt(t[i])} degC is not the reference temperature "
            f"{_fmt(sref.temperature_degC)} +- {_fmt(sref.temperature_tolerance_degC)} degC of model {parent.name} "
            f"{parent.version} (its spot normalisation's anchors); take the spot's two-point check there"
        )
    for lev, r in (("zero", zero), ("air", air)):
        y = ref.y[r]
        bad = np.flatnonzero(~sref.at_level(y, lev))
        if bad.size:
            i = int(bad[0])
            raise IngestError(
                f"{name} row {int(r[i]) + 2}, column {col}: the {lev} reference is {_fmt(y[i])} {parent.unit}, but "
                f"model {parent.name} {parent.version} is normalised at {lev} = {_fmt(sref.level_of(lev))} "
                f"{parent.unit} (tolerance {_fmt(sref.level_abs_tolerance)}); give the spot's readings at that level"
            )
    x0 = ref.x[zero].astype(np.float64)
    xa = ref.x[air].astype(np.float64)
    r0, r1 = x0.mean(axis=0), xa.mean(axis=0)
    scale, shift = norm.coefficients(r0, r1, where=f"{name} {rows_text(rows + 2)} (spot {spot!r})")
    m = list(norm.mapped)
    proto = SpotAdjustment(
        spot_id=spot, method=SPOT_MAP, features=tuple(parent.features),
        input_offset=tuple(float(-v) for v in shift), phase_shift=0.0, scale=1.0, intercept=0.0,
        unit=parent.unit, zero=None, air=None,  # type: ignore[arg-type]
        input_scale=tuple(float(v) for v in scale),
        normalisation={"mapped": list(norm.mapped_names), "b0": list(norm.b0), "b1": list(norm.b1),
                       "r0": [float(v) for v in r0[m]], "r1": [float(v) for v in r1[m]],
                       "reference": sref.to_dict()},
    )
    before0, beforea = _batch(parent, x0), _batch(parent, xa)
    after0 = _batch(parent, proto.map_inputs(ref.x[zero]))
    aftera = _batch(parent, proto.map_inputs(ref.x[air]))
    return dataclasses.replace(proto, zero=_point("zero", ref, zero, before0, after0, tj),
                               air=_point("air", ref, air, beforea, aftera, tj))


def load_parent(model: Any) -> CalibrationModel:
    from ..runtime import CalibrationModel, load_model

    if isinstance(model, CalibrationModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    raise ConfigError(f"model must be a path or a CalibrationModel, got {type(model).__name__}")


def check_method(method: Any, parent: CalibrationModel | None = None) -> str:
    """The method to use: ``None`` picks ``spot_map`` for a spot-normalised parent, else ``linear``."""
    check_param("method", method, [None, StrOptions(METHODS)])
    if parent is None:
        return str(method)
    normalised = bool(parent.metadata.get(NORM_KEY))
    if method is None:
        return SPOT_MAP if normalised else METHODS[0]
    if normalised and method != SPOT_MAP:
        raise ConfigError(
            f"method={method!r} cannot adjust model {parent.name} {parent.version}: it takes spot-normalised "
            f"phases (calibration.json {NORM_KEY}); use method='spot_map' (the default for it)"
        )
    if not normalised and method == SPOT_MAP:
        raise ConfigError(
            f"method='spot_map' needs a model trained on spot-normalised phases (calib calibrate with an "
            f"[adjust] table; calibration.json {NORM_KEY}); model {parent.name} {parent.version} has none, "
            "use method='linear'"
        )
    return str(method)


def compute_adjustments(
    model: CalibrationModel | str | Path,
    reference: str | Path,
    *,
    method: str | None = None,
    spots: Sequence[str] | None = None,
    spot_column: str | None = None,
    sep: str | None = None,
    decimal: str | None = None,
) -> tuple[dict[str, Any], tuple[SpotAdjustment, ...]]:
    """Compute the two-point adjustment of every spot of a reference file (nothing is written).

    Parameters
    ----------
    model : CalibrationModel or path
        The batch model (``models/<name>`` or ``models/<name>/<version>``).
    reference : str or Path
        Reference readings (see the module notes for the format).
    method : {"linear", "phase_scale", "spot_map"} or None, default=None
        ``None``: ``spot_map`` for a parent trained on spot-normalised phases (the only method
        allowed there), ``linear`` otherwise.
    spots : sequence of str, optional
        Only these spots (each must have rows in ``reference``); default: every spot there.
    spot_column : str, optional
        Spot column of ``reference``; default: the model's group column.
    sep, decimal : str, optional
        CSV separator and decimal mark (detected when not given).

    Returns
    -------
    reference_info : dict
        ``file``, ``sha256``, ``spot_column``, ``rows``, ``dates`` (``{spot: ISO date}`` from a
        ``date``/``time`` column, :func:`calib.spots.reference.reference_dates`; None without one).
    adjustments : tuple of SpotAdjustment
        In order of first appearance in ``reference`` (or of ``spots``).

    Raises
    ------
    IngestError
        Unreadable reference; a missing column; an empty, non-numeric or impossible cell; an
        unknown level; a spot without a zero or air level; a reference outside the model's
        calibrated range; an unknown spot; a reference the batch model cannot be adjusted to;
        for ``spot_map`` a row off the parent's reference temperature or levels, or an
        implausible map. Each names the file, the row(s) and the column.
    ConfigError
        Unknown method; no spot column known; a model that is itself a spot adjustment;
        ``phase_scale`` for a model without a phase input; ``spot_map`` for a model without
        ``spot_normalisation``, another method for a model with it.
    ArtifactError
        The model cannot be loaded or verified.
    """
    check_method(method)
    parent = load_parent(model)
    if parent.metadata.get(META_KEY):
        par = parent.metadata[META_KEY].get("parent") or {}
        raise ConfigError(
            f"model {parent.name} {parent.version} is already the spot adjustment of "
            f"{par.get('name')} {par.get('version')}; adjust that batch model instead"
        )
    method = check_method(method, parent)
    if method == SPOT_MAP:
        _normalisation(parent)
    if method == "phase_scale":
        _phase_mask(parent)
    ref = read_reference(parent, reference, spot_column=spot_column, sep=sep, decimal=decimal)
    present = list(dict.fromkeys(ref.spot.tolist()))
    if spots is None:
        chosen = present
    else:
        if isinstance(spots, str):
            spots = [spots]
        chosen = [str(s).strip() for s in spots]
        for s in chosen:
            if s not in present:
                shown = clip_list(present)
                raise IngestError(
                    f"{ref.table.name}, column {ref.spot_column}: no reference rows for spot {s!r} "
                    f"(spots in the file: {shown})"
                )
        chosen = list(dict.fromkeys(chosen))
    names: dict[str, str] = {}
    for s in chosen:
        other = names.setdefault(child_name(parent.name, s), s)
        if other != s:
            raise IngestError(
                f"{ref.table.name}, column {ref.spot_column}: spots {other!r} and {s!r} would share the "
                f"artifact name {child_name(parent.name, s)!r}; rename one of them"
            )
    adjustments = tuple(_adjust_one(parent, ref, s, method) for s in chosen)
    info = {"file": ref.table.name, "path": str(Path(reference)), "sha256": ref.table.sha256,
            "spot_column": ref.spot_column, "rows": int(len(ref.spot)), "dates": reference_dates(ref, chosen)}
    return info, adjustments


def child_name(parent_name: str, spot: str) -> str:
    """Artifact name of a spot's child: ``<parent>.<spot>`` (other characters -> ``_``)."""
    from ..artifact.store import check_name

    return check_name(f"{parent_name}.{_BAD_NAME_CHARS.sub('_', spot)}"[:128])
