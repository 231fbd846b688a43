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
    table on phases mapped per spot onto batch-typical two-point anchors (:mod:`calib.spotnorm`;
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
built under ``.tmp-*`` and renamed into place, like :func:`calib.export.export_artifact`.

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
import errno
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .errors import ArtifactError, ConfigError, IngestError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .export import Artifact, CalibrationModel
    from .ingest import RawTable

__all__ = [
    "METHODS",
    "ReferencePoint",
    "SpotAdjustment",
    "AdjustResult",
    "compute_adjustments",
    "adjust_spots",
    "write_spot_artifact",
    "find_spot_models",
    "predict_spots",
    "format_adjustment",
]

#: Adjustment methods (see the module notes). Default: ``spot_map`` for a parent with
#: ``spot_normalisation`` (the only method there), ``linear`` otherwise.
METHODS = ("linear", "phase_scale", "spot_map")
SPOT_MAP = "spot_map"
#: Key of a spot-normalised parent's normalisation in ``calibration.json`` (:mod:`calib.spotnorm`).
NORM_KEY = "spot_normalisation"
#: Name of the optional level column of a reference file and its values.
LEVEL_COLUMN = "level"
LEVELS = ("zero", "air")
#: Largest phase shift (in the phase features' unit, deg) searched for the zero point.
MAX_PHASE_SHIFT = 5.0
#: Plausible range of the O2 scale (or slope of ``linear``); outside it the reference is
#: wrong (swapped levels, a leaking zero solution) rather than the spot.
SCALE_RANGE = (0.5, 2.0)
#: Air reference rows of one spot must agree within this relative spread.
AIR_SPREAD = 0.05
#: Output column that says whether a row was predicted with its spot's child artifact.
ADJUSTED_COLUMN = "adjusted"
META_KEY = "spot_adjustment"

_PHASE_UNITS = ("deg", "us")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


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
            Readings, see :meth:`calib.export.CalibrationModel.as_array`.

        Returns
        -------
        ndarray of float64
            Like ``parent.predict``: shape (n,) or (n, n_targets), target unit.
        """
        pred = parent.predict(self.map_inputs(parent.as_array(X)))
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
    """

    parent: dict[str, Any]
    reference: dict[str, Any]
    method: str
    adjustments: tuple[SpotAdjustment, ...]
    artifacts: tuple[Any, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        arts = list(self.artifacts) + [None] * (len(self.adjustments) - len(self.artifacts))
        return {
            "parent": self.parent,
            "reference": self.reference,
            "method": self.method,
            "spots": [
                {**a.to_dict(), **({} if art is None else
                                   {"artifact": str(art.path), "name": art.name, "version": art.version,
                                    "model_id": art.metadata.get("model_id")})}
                for a, art in zip(self.adjustments, arts)
            ],
        }


# --------------------------------------------------------------------------- reading the reference
def _rows_text(rows: Sequence[int]) -> str:
    rows = sorted(rows)
    if len(rows) > 1 and rows[-1] - rows[0] == len(rows) - 1:
        return f"rows {rows[0]}-{rows[-1]}"
    if len(rows) > 6:
        return "rows " + ", ".join(map(str, rows[:6])) + ", ..."
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows))


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _cells(table: RawTable, col: str) -> np.ndarray:
    s = table.frame[col]
    return s.astype(object).where(s.notna(), "").astype(str).str.strip().to_numpy()


def _spot_column(parent: CalibrationModel, spot_column: str | None) -> str:
    if spot_column is not None:
        if not isinstance(spot_column, str) or not spot_column.strip():
            raise ConfigError(f"spot_column must be a non-empty column name, got spot_column={spot_column!r}")
        return spot_column
    group = (parent.metadata.get("data") or {}).get("group")
    if not group:
        raise ConfigError(
            f"model {parent.name} {parent.version} names no group (spot) column in its metadata; "
            "give spot_column (--spot-column COL)"
        )
    return str(group)


def _target_column(parent: CalibrationModel, table: RawTable) -> str | None:
    t = parent.metadata["target"]
    if t["name"] in table.columns:
        return str(t["name"])
    src, src_unit = t.get("source"), t.get("source_unit")
    if src and src in table.columns:
        if src_unit and src_unit != t["unit"]:
            raise IngestError(
                f"{table.name} row 1, column {src}: the reference O2 must be in the model's unit "
                f"{t['unit']}; give it as column {t['name']!r} (or give a {LEVEL_COLUMN!r} column "
                "with zero/air and the air pressure)"
            )
        return str(src)
    return None


def _temperature_index(parent: CalibrationModel) -> int | None:
    for j, u in enumerate(parent.feature_units):
        if u == "degC":
            return j
    return None


def _condition_column(table: RawTable, stem: str, unit_kind: str) -> tuple[str, str] | None:
    """A column ``<stem>_<unit>`` whose unit is of quantity ``unit_kind``: (column, unit)."""
    from . import units as U

    for c in table.columns:
        parsed = U.unit_from_column_name(c)
        if parsed is None or U.UNITS.get(parsed[0]) != unit_kind:
            continue
        if c[: -len(parsed[0]) - 1].lower() == stem:
            return c, parsed[0]
    return None


def _column_at(table: RawTable, col: str, rows: np.ndarray) -> np.ndarray:
    """Numbers of ``col`` at ``rows`` (other rows may be empty), errors naming the file row."""
    from .ingest import parse_numeric

    s = table.frame[col].astype(object).copy()
    others = np.ones(len(s), dtype=bool)
    others[rows] = False
    s[others] = "0"
    return parse_numeric(s, table, col)


def _air_values(parent: CalibrationModel, table: RawTable, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Air-saturated O2 (target unit) of ``rows`` from 100 % air saturation, T, P and S."""
    from . import units as U
    from .ingest import check_physical

    unit = parent.unit
    needs = U.o2_conversion_needs("percent_airsat", unit)
    kwargs: dict[str, Any] = {}
    if "temperature_degC" in needs:
        j = _temperature_index(parent)
        if j is None:
            raise IngestError(
                f"{table.name} row 1: the air level in {unit} needs the water temperature, but the "
                f"model has no degC input; give the air value in a column {parent.target!r}"
            )
        kwargs["temperature_degC"] = x[rows, j].astype(np.float64)
    if "pressure_hPa" in needs:
        found = _condition_column(table, "air_pressure", "pressure") or _condition_column(table, "pressure", "pressure")
        if found is None:
            raise IngestError(
                f"{table.name} row 1: missing column 'air_pressure_hPa' (air pressure of the air "
                f"reference rows, needed to compute the air-saturated level in {unit}); or give the "
                f"air value in a column {parent.target!r}"
            )
        col, pu = found
        raw = _column_at(table, col, rows)
        p, _ = U.to_canonical(raw, pu)
        check_physical(p, table, col, "hPa", source_values=raw, source_unit=pu)
        p = p[rows]
        if np.any(p < 500.0) or np.any(p > 1100.0):
            i = int(np.flatnonzero((p < 500.0) | (p > 1100.0))[0])
            raise IngestError(
                f"{table.name} row {int(rows[i]) + 2}, column {col}: {_fmt(p[i])} hPa is not an air "
                "pressure at the surface; expected 500..1100 hPa"
            )
        kwargs["pressure_hPa"] = p
    if "salinity_psu" in needs:
        found = _condition_column(table, "salinity", "salinity")
        if found is None:
            kwargs["salinity_psu"] = np.zeros(len(rows))
        else:
            s = _column_at(table, found[0], rows)
            check_physical(s, table, found[0], "psu")
            kwargs["salinity_psu"] = s[rows]
    return np.asarray(U.convert_o2(np.full(len(rows), 100.0), "percent_airsat", unit, **kwargs), dtype=np.float64)


@dataclass(frozen=True)
class _Reference:
    table: Any
    spot_column: str
    x: np.ndarray  # (n, n_features) float32, model units
    y: np.ndarray  # (n,) reference O2, target unit
    level: np.ndarray  # (n,) "zero"/"air"
    spot: np.ndarray  # (n,) str
    target_column: str | None


def _read_reference(
    parent: CalibrationModel,
    reference: str | Path,
    *,
    spot_column: str | None,
    sep: str | None,
    decimal: str | None,
) -> _Reference:
    from .ingest import check_physical, parse_numeric, read_table
    from .predict import _readings

    scol = _spot_column(parent, spot_column)
    table = read_table(reference, sep=sep, decimal=decimal)
    if scol not in table.columns:
        import difflib

        close = difflib.get_close_matches(scol, table.columns, n=1, cutoff=0.6)
        raise IngestError(
            f"{table.name} row 1: missing column {scol!r} (the spot id of each reference row)"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (columns present: {', '.join(table.columns[:20])})"
        )
    spot = _cells(table, scol)
    empty = np.flatnonzero(spot == "")
    if empty.size:
        raise IngestError(f"{table.name} row {int(empty[0]) + 2}, column {scol}: empty cell; expected a spot id")
    x = _readings(parent, table)

    tcol = _target_column(parent, table)
    y = None
    if tcol is not None:
        y = parse_numeric(table.frame[tcol], table, tcol)
        check_physical(y, table, tcol, parent.unit, o2=True)
    level = None
    if LEVEL_COLUMN in table.columns:
        raw = _cells(table, LEVEL_COLUMN)
        level = np.char.lower(raw.astype(str))
        bad = np.flatnonzero(~np.isin(level, LEVELS))
        if bad.size:
            i = int(bad[0])
            raise IngestError(
                f"{table.name} row {i + 2}, column {LEVEL_COLUMN}: {raw[i]!r} is not a reference level; "
                f"expected {' or '.join(LEVELS)}"
            )
        if y is not None:
            clash = np.flatnonzero(((level == "zero") & (y > 0)) | ((level == "air") & (y <= 0)))
            if clash.size:
                i = int(clash[0])
                raise IngestError(
                    f"{table.name} row {i + 2}, column {tcol}: {_fmt(y[i])} {parent.unit} contradicts "
                    f"{LEVEL_COLUMN} {str(level[i])!r}; expected 0 for zero and > 0 for air"
                )
    if y is None and level is None:
        raise IngestError(
            f"{table.name} row 1: missing column {parent.target!r} (reference O2 in {parent.unit}: 0 for "
            f"the zero point, the air-saturated value for air) or {LEVEL_COLUMN!r} (zero/air); one of them "
            "says which level each row is"
        )
    if level is None:
        level = np.where(y > 0, "air", "zero")
    if y is None:
        y = np.zeros(len(level))
        air = np.flatnonzero(level == "air")
        if air.size:
            y[air] = _air_values(parent, table, x, air)
    return _Reference(table=table, spot_column=scol, x=x, y=np.asarray(y, dtype=np.float64),
                      level=np.asarray(level), spot=spot, target_column=tcol)


def _check_ranges(parent: CalibrationModel, ref: _Reference, rows: np.ndarray,
                  skip: Sequence[int] = ()) -> None:
    from .export import resolve_feature_columns

    table = ref.table
    x = ref.x[rows].astype(np.float64)
    lo = parent.lower
    hi = parent.upper
    bad = (x < lo.astype(np.float32)) | (x > hi.astype(np.float32))
    bad[:, list(skip)] = False  # spot_map: the parent's phase ranges are of mapped phases
    if bad.any():
        i, j = np.argwhere(bad)[0]
        col = resolve_feature_columns(parent._feature_specs, table.columns)[j][0]
        raise IngestError(
            f"{table.name} row {int(rows[i]) + 2}, column {col}: {_fmt(x[i, j])} {parent.feature_units[j]} "
            f"is outside the model's calibrated range {_fmt(lo[j])}..{_fmt(hi[j])} "
            f"{parent.feature_units[j]} ({parent.name} {parent.version}); a reference must lie inside it"
        )
    t = parent.metadata["target"]
    tlo, thi = float(t["min"]), float(t["max"])
    y = ref.y[rows]
    out = np.flatnonzero((y < tlo) | (y > thi))
    if out.size:
        i = int(out[0])
        col = ref.target_column or LEVEL_COLUMN
        raise IngestError(
            f"{table.name} row {int(rows[i]) + 2}, column {col}: reference {_fmt(y[i])} {parent.unit} is "
            f"outside the model's calibrated range {_fmt(tlo)}..{_fmt(thi)} {parent.unit}"
        )


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
    pred, _ = parent._run(np.ascontiguousarray(x, dtype=np.float32), want_std=False)
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


def _point(level: str, ref: _Reference, rows: np.ndarray, before: np.ndarray, after: np.ndarray,
           tj: int | None) -> ReferencePoint:
    return ReferencePoint(
        level=level,
        rows=tuple(int(r) + 2 for r in rows),
        value=float(ref.y[rows].mean()),
        batch_reading=float(before.mean()),
        adjusted_reading=float(after.mean()),
        temperature_degC=None if tj is None else float(ref.x[rows, tj].astype(np.float64).mean()),
    )


def _adjust_one(parent: CalibrationModel, ref: _Reference, spot: str, method: str) -> SpotAdjustment:
    name = ref.table.name
    rows = np.flatnonzero(ref.spot == spot)
    zero = rows[ref.level[rows] == "zero"]
    air = rows[ref.level[rows] == "air"]
    col = ref.target_column or LEVEL_COLUMN
    for lev, r in (("zero", zero), ("air", air)):
        if r.size == 0:
            raise IngestError(
                f"{name} {_rows_text(rows + 2)}, column {col}: spot {spot!r} has no {lev} reference "
                "row; a two-point check needs one zero-O2 and one air-saturated level"
            )
    ya = ref.y[air]
    if np.ptp(ya) > AIR_SPREAD * float(ya.mean()):
        raise IngestError(
            f"{name} {_rows_text(air + 2)}, column {col}: the air references of spot {spot!r} differ "
            f"({_fmt(ya.min())}..{_fmt(ya.max())} {parent.unit}, more than {AIR_SPREAD:.0%}); a two-point "
            "check has one air level"
        )
    if method == SPOT_MAP:
        return _spot_map_one(parent, ref, spot, rows, zero, air)
    _check_ranges(parent, ref, rows)
    x0 = ref.x[zero].astype(np.float64)
    xa = ref.x[air].astype(np.float64)
    y0 = float(ref.y[zero].mean())
    m0_batch = _batch(parent, x0)
    ma_batch = _batch(parent, xa)
    n = len(parent.features)
    where_zero = f"{name} {_rows_text(zero + 2)} (spot {spot!r}, zero)"
    where_air = f"{name} {_rows_text(air + 2)} (spot {spot!r}, air)"
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
    tj = _temperature_index(parent)
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
    from .spotnorm import SpotNormalisation

    try:
        norm = SpotNormalisation.from_dict(parent.metadata[NORM_KEY])
    except ArtifactError as exc:
        raise ArtifactError(f"{parent.path}: {exc}") from None
    if norm.features != tuple(parent.features):
        raise ArtifactError(f"{parent.path}: spot_normalisation features {list(norm.features)} differ from the "
                            f"model's {list(parent.features)}")
    return norm


def _spot_map_one(parent: CalibrationModel, ref: _Reference, spot: str, rows: np.ndarray, zero: np.ndarray,
                  air: np.ndarray) -> SpotAdjustment:
    """``spot_map``: the parent's two-point phase map with this spot's anchors."""
    from .export import resolve_feature_columns

    norm = _normalisation(parent)
    sref = norm.reference
    name = ref.table.name
    col = ref.target_column or LEVEL_COLUMN
    _check_ranges(parent, ref, rows, skip=norm.mapped)
    tj = _temperature_index(parent)
    if tj is None:  # pragma: no cover - a normalised parent always has one
        raise ArtifactError(f"{parent.path}: spot_normalisation without a degC input")
    t = ref.x[rows, tj].astype(np.float64)
    off = np.flatnonzero(~sref.at_temperature(t))
    if off.size:
        i = int(off[0])
        tcol = resolve_feature_columns(parent._feature_specs, ref.table.columns)[tj][0]
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
    scale, shift = norm.coefficients(r0, r1, where=f"{name} {_rows_text(rows + 2)} (spot {spot!r})")
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


def _load(model: Any) -> CalibrationModel:
    from .export import CalibrationModel, load_model

    if isinstance(model, CalibrationModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    raise ConfigError(f"model must be a path or a CalibrationModel, got {type(model).__name__}")


def _check_method(method: Any, parent: CalibrationModel | None = None) -> str:
    """The method to use: ``None`` picks ``spot_map`` for a spot-normalised parent, else ``linear``."""
    if method is not None and method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got method={method!r}")
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
        ``file``, ``sha256``, ``spot_column``, ``rows``.
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
    _check_method(method)
    parent = _load(model)
    if parent.metadata.get(META_KEY):
        par = parent.metadata[META_KEY].get("parent") or {}
        raise ConfigError(
            f"model {parent.name} {parent.version} is already the spot adjustment of "
            f"{par.get('name')} {par.get('version')}; adjust that batch model instead"
        )
    method = _check_method(method, parent)
    if method == SPOT_MAP:
        _normalisation(parent)
    if method == "phase_scale":
        _phase_mask(parent)
    ref = _read_reference(parent, reference, spot_column=spot_column, sep=sep, decimal=decimal)
    present = list(dict.fromkeys(ref.spot.tolist()))
    if spots is None:
        chosen = present
    else:
        if isinstance(spots, str):
            spots = [spots]
        chosen = [str(s).strip() for s in spots]
        for s in chosen:
            if s not in present:
                shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
                raise IngestError(
                    f"{ref.table.name}, column {ref.spot_column}: no reference rows for spot {s!r} "
                    f"(spots in the file: {shown})"
                )
        chosen = list(dict.fromkeys(chosen))
    names: dict[str, str] = {}
    for s in chosen:
        other = names.setdefault(_child_name(parent.name, s), s)
        if other != s:
            raise IngestError(
                f"{ref.table.name}, column {ref.spot_column}: spots {other!r} and {s!r} would share the "
                f"artifact name {_child_name(parent.name, s)!r}; rename one of them"
            )
    adjustments = tuple(_adjust_one(parent, ref, s, method) for s in chosen)
    info = {"file": ref.table.name, "path": str(Path(reference)), "sha256": ref.table.sha256,
            "spot_column": ref.spot_column, "rows": int(len(ref.spot))}
    return info, adjustments


# --------------------------------------------------------------------------- the child artifact
def _child_onnx(parent: CalibrationModel, adj: SpotAdjustment) -> Any:
    """The parent's ONNX graph with the adjustment folded in (same input and output names)."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_model_from_string(parent._onnx)
    g = proto.graph
    inp = parent.input_name
    pre = "calib_spot/"
    if adj.method == SPOT_MAP:
        # readings * input_scale + input_add -> the parent graph (outputs unchanged)
        for node in g.node:
            for i, name in enumerate(node.input):
                if name == inp:
                    node.input[i] = f"{pre}{inp}"
        g.initializer.extend([
            numpy_helper.from_array(np.asarray(adj.input_scale, dtype=np.float32), f"{pre}input_scale"),
            numpy_helper.from_array(np.asarray(adj.input_add, dtype=np.float32), f"{pre}input_add"),
        ])
        g.node.insert(0, helper.make_node("Add", [f"{pre}{inp}_scaled", f"{pre}input_add"], [f"{pre}{inp}"],
                                          name=f"{pre}map_add"))
        g.node.insert(0, helper.make_node("Mul", [inp, f"{pre}input_scale"], [f"{pre}{inp}_scaled"],
                                          name=f"{pre}map_mul"))
        onnx.checker.check_model(proto, full_check=True)
        return proto
    outs = [parent.output_name] + ([parent.std_name] if parent.std_name else [])
    raw = {o: f"{pre}{o}_batch" for o in outs}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == inp:
                node.input[i] = f"{pre}{inp}"
            elif name in raw:
                node.input[i] = raw[name]
        for i, name in enumerate(node.output):
            if name in raw:
                node.output[i] = raw[name]
    n_out = len(parent.targets)
    if n_out == 1:
        scale = np.array(adj.scale, dtype=np.float32)
        intercept = np.array(adj.intercept, dtype=np.float32)
    else:
        scale = np.ones(n_out, dtype=np.float32)
        scale[0] = adj.scale
        intercept = np.zeros(n_out, dtype=np.float32)
        intercept[0] = adj.intercept
    g.initializer.extend([
        numpy_helper.from_array(np.asarray(adj.input_offset, dtype=np.float32), f"{pre}input_offset"),
        numpy_helper.from_array(scale, f"{pre}scale"),
        numpy_helper.from_array(intercept, f"{pre}intercept"),
        numpy_helper.from_array(np.array(abs(adj.scale), dtype=np.float32), f"{pre}std_scale"),
    ])
    g.node.insert(0, helper.make_node("Sub", [inp, f"{pre}input_offset"], [f"{pre}{inp}"], name=f"{pre}shift"))
    target = parent.output_name
    g.node.extend([
        helper.make_node("Mul", [raw[target], f"{pre}scale"], [f"{pre}scaled"], name=f"{pre}scale"),
        helper.make_node("Add", [f"{pre}scaled", f"{pre}intercept"], [target], name=f"{pre}intercept"),
    ])
    if parent.std_name:
        g.node.append(helper.make_node("Mul", [raw[parent.std_name], f"{pre}std_scale"], [parent.std_name],
                                       name=f"{pre}std"))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _child_keras(parent_keras: Any, adj: SpotAdjustment, n_targets: int) -> Any:
    """The parent's Keras network between an input offset and an output scale (built-in layers only)."""
    from .nn.tf import keras as _quiet_keras

    keras = _quiet_keras()
    n = len(adj.input_offset)
    mean_out = np.zeros(n_targets)
    mean_out[0] = adj.intercept
    var_out = np.ones(n_targets)
    var_out[0] = adj.scale ** 2
    inp = keras.Input(shape=(n,), dtype="float32", name="readings")
    if adj.input_scale:  # spot_map: x * m + c (invert: x * sqrt(variance) + mean; m > 0)
        h = keras.layers.Normalization(mean=list(map(float, adj.input_add)),
                                       variance=[float(v) ** 2 for v in adj.input_scale], invert=True,
                                       name="spot_input_map")(inp)
    else:
        h = keras.layers.Normalization(mean=list(map(float, adj.input_offset)), variance=[1.0] * n,
                                       name="spot_input_offset")(inp)
    y = parent_keras(h)
    out = keras.layers.Normalization(mean=mean_out.tolist(), variance=var_out.tolist(), invert=True,
                                     name="spot_output_scale")(y)
    return keras.Model(inp, out, name="calib_spot")


def _child_name(parent_name: str, spot: str) -> str:
    from .export import _NAME

    name = f"{parent_name}.{_BAD_NAME_CHARS.sub('_', spot)}"[:128]
    if not _NAME.match(name):  # pragma: no cover - the substitution keeps it valid
        raise ConfigError(f"cannot make an artifact name for spot {spot!r}, got {name!r}")
    return name


def _child_metadata(parent: CalibrationModel, adj: SpotAdjustment, ref_info: Mapping[str, Any],
                    spot_column: str) -> dict[str, Any]:
    import hashlib

    meta = parent.metadata
    for key in ("schema_version", "model_id", "name", "version", "created_utc", "versions"):
        meta.pop(key, None)
    feats = []
    scales = adj.input_scale or (1.0,) * len(adj.input_offset)
    for f, off, m in zip(meta["features"], adj.input_offset, scales):
        f = dict(f)
        if off or m != 1.0:  # the parent's range in the child's raw readings (m > 0)
            f["min"], f["max"] = (float(f["min"]) + off) / m, (float(f["max"]) + off) / m
        feats.append(f)
    meta["features"] = feats
    # the child takes raw readings: the parent's normalisation is recorded in spot_adjustment
    meta.pop(NORM_KEY, None)
    meta[META_KEY] = {
        **adj.to_dict(),
        "spot_column": spot_column,
        "parent": {"name": parent.name, "version": parent.version, "model_id": parent.model_id,
                   "path": str(parent.path), "onnx_sha256": hashlib.sha256(parent._onnx).hexdigest()},
        "reference": {"file": ref_info["file"], "sha256": ref_info["sha256"]},
        "note": ("features[].min/max are the parent's calibrated ranges mapped back to this spot's raw "
                 "readings; metrics (cv, test, baseline) are the parent's on spot-normalised readings"
                 if adj.method == SPOT_MAP else
                 "features[].min/max are the parent's calibrated ranges shifted by input_offset; "
                 "metrics (cv, test, baseline) are the parent batch model's"),
    }
    return meta


def _card_section(meta: Mapping[str, Any]) -> str:
    a = meta[META_KEY]
    p = a["parent"]
    unit = a["unit"]
    lines = [
        "",
        "## Spot adjustment",
        "",
        f"This model is the batch model `{p['name']}` {p['version']} (model id `{p['model_id']}`) "
        f"adjusted to spot **{a['spot_id']}** (column `{a['spot_column']}`) by a two-point check "
        f"(method `{a['method']}`):",
        "",
        f"    {a['formula']}",
        "",
        (f"- input map (scale, add): " + ", ".join(f"{k} ({a['input_scale'][k]:.6g}, {v:+.6g})"
                                                   for k, v in a["input_add"].items())
         + f"; the parent takes spot-normalised phases, anchored at {a['normalisation']['reference']['zero']:g} "
         f"and {a['normalisation']['reference']['air']:g} {unit} at "
         f"{a['normalisation']['reference']['temperature_degC']:g} degC."
         if a["method"] == SPOT_MAP else
         f"- phase shift {a['phase_shift']:.6g}, scale {a['scale']:.6g}, intercept {a['intercept']:.6g} {unit}; "
         "input offset " + ", ".join(f"{k} {v:.6g}" for k, v in a["input_offset"].items()) + "."),
        f"- Zero reference: {a['zero']['value']:.6g} {unit} (batch read {a['zero']['batch_reading']:.6g}); "
        f"air reference: {a['air']['value']:.6g} {unit} (batch read {a['air']['batch_reading']:.6g}).",
        f"- Reference file `{a['reference']['file']}`, SHA-256 `{a['reference']['sha256']}`, rows "
        f"{', '.join(map(str, a['zero']['rows'] + a['air']['rows']))}.",
        "- Metrics above are those of the batch model across spots; the two points fit exactly, so "
        "they do not validate the adjustment. The calibrated input ranges are the parent's, mapped to "
        "this spot's raw readings.",
        "- Use this model only for readings of this spot; `calib predict` with the batch model picks "
        "it for rows whose spot column names this spot.",
        "",
    ]
    return "\n".join(lines)


def write_spot_artifact(
    parent: CalibrationModel,
    adjustment: SpotAdjustment,
    reference: Mapping[str, Any],
    *,
    models_dir: str | Path | None = None,
    spot_column: str | None = None,
    parent_keras: Any = None,
) -> Artifact:
    """Write the child artifact of one spot (atomically, next version of its name).

    Parameters
    ----------
    parent : CalibrationModel
        The batch model.
    adjustment : SpotAdjustment
        From :func:`compute_adjustments` for this ``parent``.
    reference : mapping
        ``file`` and ``sha256`` of the reference data (``compute_adjustments``' first result).
    models_dir : str or Path, optional
        Default: the parent's models folder (``models`` of ``models/<name>/<version>``).
    spot_column : str, optional
        Spot column name recorded in the metadata; default: the parent's group column.
    parent_keras : keras.Model, optional
        The parent's ``model.keras`` already loaded (saves reloading it per spot).

    Returns
    -------
    calib.export.Artifact

    Raises
    ------
    ArtifactError
        The folder cannot be written, or the parent's Keras file is unsafe.
    """
    from . import export as E

    if adjustment.features != tuple(parent.features):
        raise ConfigError(
            f"adjustment features {list(adjustment.features)} differ from the model's {list(parent.features)}"
        )
    scol = spot_column or _spot_column(parent, None)
    models_dir = Path(models_dir) if models_dir is not None else parent.path.parent.parent
    name = _child_name(parent.name, adjustment.spot_id)
    meta = _child_metadata(parent, adjustment, reference, scol)
    proto = _child_onnx(parent, adjustment)
    if parent_keras is None:
        parent_keras = _load_parent_keras(parent)
    name_dir = models_dir / name
    if models_dir.exists() and not models_dir.is_dir():
        raise ArtifactError(f"cannot write artifact {name!r}: models folder {models_dir} is a file")
    with E._writing(models_dir, name):
        name_dir.mkdir(parents=True, exist_ok=True)
        E._clean_stale_tmp(name_dir)
        tmp = name_dir / f"{E.TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
    try:
        with E._writing(name_dir, name):
            child_k = _child_keras(parent_keras, adjustment, len(parent.targets))
            child_k.save(str(tmp / E.KERAS_FILE))
            E._check_keras_file(tmp / E.KERAS_FILE)
            meta.update(model_id=str(uuid.uuid4()), name=name, schema_version=E.SCHEMA_VERSION,
                        versions=E._software_versions())
            meta["onnx"] = {**meta["onnx"], "opset": E._opset(proto)}
            signature = E._signature(meta)
            for _attempt in range(1000):
                version = E._next_version(name_dir, signature)
                vdir = name_dir / version
                if vdir.exists():
                    continue
                meta["version"] = version
                meta["created_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                ordered = E._ordered(meta)
                (tmp / E.METADATA_FILE).write_bytes(E._dumps(ordered))
                (tmp / E.ONNX_FILE).write_bytes(_stamp_child(proto, ordered))
                card = E._model_card(ordered, []).decode("utf-8") + _card_section(ordered)
                (tmp / E.CARD_FILE).write_text(card, encoding="utf-8")
                E._write_sums(tmp)
                try:
                    os.rename(tmp, vdir)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or vdir.exists():
                        continue
                    raise
                return E.Artifact(path=vdir, name=name, version=version, metadata=ordered)
            raise ArtifactError(f"cannot find a free version for {name!r} in {name_dir}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _stamp_child(proto: Any, meta: Mapping[str, Any]) -> bytes:
    from .export import _stamp_onnx

    _stamp_onnx(proto, meta)  # model version, doc string, standard properties
    a = meta[META_KEY]
    proto.doc_string += (f"; spot {a['spot_id']} adjustment ({a['method']}) of "
                         f"{a['parent']['name']} {a['parent']['version']}")
    for k, v in (("spot_id", a["spot_id"]), ("parent_model_id", a["parent"]["model_id"]),
                 ("parent_version", a["parent"]["version"]), ("reference_sha256", a["reference"]["sha256"]),
                 ("spot_adjustment", _json_dumps(a))):
        e = proto.metadata_props.add()
        e.key, e.value = k, str(v)
    return proto.SerializeToString()


def _json_dumps(obj: Any) -> str:
    import json

    from .export import _jsonable

    return json.dumps(_jsonable(obj), sort_keys=True)


def _load_parent_keras(parent: CalibrationModel) -> Any:
    from . import export as E
    from .nn.tf import keras as _quiet_keras

    path = parent.path / E.KERAS_FILE
    E._check_keras_file(path)
    keras = _quiet_keras()
    try:
        return keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises its own types
        raise ArtifactError(f"{path}: Keras cannot load it ({type(exc).__name__}: {exc})") from None


def adjust_spots(
    model: CalibrationModel | str | Path,
    reference: str | Path,
    *,
    method: str | None = None,
    spots: Sequence[str] | None = None,
    spot_column: str | None = None,
    models_dir: str | Path | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    write: bool = True,
) -> AdjustResult:
    """Adjust a batch model to each spot of a two-point reference file and write the children.

    Every spot is computed and checked before anything is written, so bad reference data
    leaves the models folder unchanged.

    Parameters
    ----------
    model : CalibrationModel or path
        The batch model (``models/<name>`` -> latest version, or ``models/<name>/<version>``).
    reference : str or Path
        Reference readings, see the module notes.
    method : {"linear", "phase_scale", "spot_map"} or None, default=None
        ``None``: ``spot_map`` for a parent with ``spot_normalisation``, else ``linear``.
    spots : sequence of str, optional
        Only these spots; default every spot of ``reference``.
    spot_column : str, optional
        Default: the model's group column (``calibration.json`` ``data.group``).
    models_dir : str or Path, optional
        Where the children go; default: the parent's models folder.
    sep, decimal : str, optional
        CSV separator and decimal mark of ``reference``.
    write : bool, default=True
        False computes and reports only.

    Returns
    -------
    AdjustResult

    Raises
    ------
    IngestError, ConfigError, ArtifactError
        See :func:`compute_adjustments` and :func:`write_spot_artifact`.
    """
    parent = _load(model)
    info, adjustments = compute_adjustments(parent, reference, method=method, spots=spots,
                                            spot_column=spot_column, sep=sep, decimal=decimal)
    method = _check_method(method, parent)
    arts: list[Any] = []
    if write and adjustments:
        pk = _load_parent_keras(parent)
        for adj in adjustments:
            arts.append(write_spot_artifact(parent, adj, info, models_dir=models_dir,
                                            spot_column=info["spot_column"], parent_keras=pk))
    return AdjustResult(
        parent={"name": parent.name, "version": parent.version, "model_id": parent.model_id,
                "path": str(parent.path)},
        reference=info,
        method=method,
        adjustments=adjustments,
        artifacts=tuple(arts),
    )


def format_adjustment(result: AdjustResult) -> str:
    """Plain-text summary of :func:`adjust_spots` (for ``calib adjust``), one line per spot."""
    p = result.parent
    lines = [f"{p['name']} {p['version']}: {len(result.adjustments)} spot(s) adjusted from "
             f"{result.reference['file']} (method {result.method})"]
    arts = list(result.artifacts) + [None] * (len(result.adjustments) - len(result.artifacts))
    for a, art in zip(result.adjustments, arts):
        u = a.unit
        if a.method == SPOT_MAP:
            ms = [a.input_scale[j] for j, s in enumerate(a.input_scale) if a.input_offset[j] or s != 1.0]
            what = f"phase map of {len(ms)} input(s), scale {min(ms):.5f}..{max(ms):.5f}"
        elif a.method == "phase_scale":
            what = f"phase shift {a.phase_shift:+.4f}, scale {a.scale:.5f}"
        else:
            what = f"O2 = {a.intercept:+.4g} {u} + {a.scale:.5f} x batch"
        lines.append(
            f"  {a.spot_id}: {what}; batch read zero {a.zero.batch_reading:.4g} / air "
            f"{a.air.batch_reading:.4g} {u}" + (f", adjusted {a.zero.adjusted_reading:.4g} / "
                                                f"{a.air.adjusted_reading:.4g}" if a.method == SPOT_MAP else "")
            + f" (references {a.zero.value:.4g} / {a.air.value:.4g})"
            + ("" if art is None else f" -> {art.path}")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- prediction
def find_spot_models(parent: CalibrationModel | str | Path, models_dir: str | Path | None = None) -> dict[str, Path]:
    """The child artifacts of a batch model: spot id -> newest version folder made for it.

    Only children whose metadata names this parent's model id count (a child of another
    version of the batch model is ignored). Reads ``calibration.json`` files only.

    Parameters
    ----------
    parent : CalibrationModel or path
    models_dir : str or Path, optional
        Default: the parent's models folder.

    Returns
    -------
    dict of str to Path
    """
    from .export import list_versions, read_metadata

    if isinstance(parent, (str, Path)):
        from .export import resolve_artifact

        vdir = resolve_artifact(parent)
        meta = read_metadata(vdir)
        pname, pid = str(meta.get("name", vdir.parent.name)), str(meta["model_id"])
    else:
        vdir, pname, pid = parent.path, parent.name, parent.model_id
    root = Path(models_dir) if models_dir is not None else Path(vdir).parent.parent
    found: dict[str, tuple[tuple[int, int, int], Path]] = {}
    if not root.is_dir():
        return {}
    prefix = f"{pname}."
    for entry in sorted(root.iterdir()):
        if not (entry.name.startswith(prefix) and entry.is_dir()):
            continue
        for version in reversed(list_versions(entry)):
            try:
                meta = read_metadata(entry / version)
            except ArtifactError:
                continue
            a = meta.get(META_KEY)
            if not isinstance(a, dict) or (a.get("parent") or {}).get("model_id") != pid:
                continue
            key = tuple(int(v) for v in version.split("."))
            spot = str(a.get("spot_id"))
            if spot not in found or key > found[spot][0]:
                found[spot] = (key, entry / version)
    return {s: p for s, (_, p) in sorted(found.items())}


def spot_predictions(
    parent: CalibrationModel,
    x32: np.ndarray,
    spot_ids: np.ndarray,
    children: Mapping[str, Path],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, dict[str, str]]:
    """Predict each row with its spot's child, the batch model elsewhere.

    Parameters
    ----------
    parent : CalibrationModel
    x32 : ndarray (n, n_features) float32
        Validated readings in the model's order and units.
    spot_ids : ndarray of str, shape (n,)
    children : mapping of spot id -> child version folder (:func:`find_spot_models`)

    Returns
    -------
    pred, std, out_of_range, adjusted, used
        As ``CalibrationModel._run`` plus the per-row out-of-range flag (each row against the
        ranges of the model that predicted it), the ``adjusted`` flags and ``{spot: child
        version}`` of the children used.
    """
    from .export import load_model

    pred, std = parent._run(x32, want_std=True)
    oor = parent._out_of_range(x32)
    adjusted = np.zeros(len(x32), dtype=bool)
    used: dict[str, str] = {}
    for spot in sorted(set(spot_ids.tolist()) & set(children)):
        rows = np.flatnonzero(spot_ids == spot)
        child = load_model(children[spot])
        if child.features != parent.features or child.targets != parent.targets:
            raise ArtifactError(f"{child.path}: inputs/outputs differ from the batch model {parent.name}")
        p, s = child._run(np.ascontiguousarray(x32[rows]), want_std=True)
        pred[rows] = p
        if std is not None and s is not None:
            std[rows] = s
        oor[rows] = child._out_of_range(x32[rows])
        adjusted[rows] = True
        used[spot] = child.version
    return pred, std, oor, adjusted, used


def _spot_ids(values: Any) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values)
    return s.astype(object).where(s.notna(), "").astype(str).str.strip().to_numpy()


def predict_spots(
    model: CalibrationModel | str | Path,
    df: pd.DataFrame,
    *,
    spot_column: str | None = None,
    models_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Predict readings of several spots, each with its spot's adjusted model.

    Rows whose spot has a child artifact of this batch model are predicted with the newest
    such child; the other rows (spot without a two-point check, empty spot cell) with the
    batch model.

    Parameters
    ----------
    model : CalibrationModel or path
        The batch model.
    df : pandas.DataFrame
        Readings (features as for :meth:`CalibrationModel.predict_frame`) and the spot column.
    spot_column : str, optional
        Default: the model's group column.
    models_dir : str or Path, optional
        Where to look for children; default: the batch model's models folder.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` plus ``<target>_pred`` (and aux), ``<target>_std`` (with fold
        models), ``out_of_range`` and ``adjusted`` (bool: predicted by the spot's child).

    Raises
    ------
    IngestError
        Missing spot or feature column, non-finite reading, or an output column already in ``df``.
    ConfigError
        No spot column known.
    """
    parent = _load(model)
    scol = _spot_column(parent, spot_column)
    if scol not in df.columns:
        raise IngestError(f"input: missing column {scol!r} (the spot id of each reading)")
    new = [*parent.output_columns(), ADJUSTED_COLUMN]
    clash = [c for c in new if c in df.columns]
    if clash:
        raise IngestError(f"input already has column(s) {', '.join(clash)}; rename or drop them before predicting")
    x32 = parent.as_array(df)
    children = find_spot_models(parent, models_dir)
    pred, std, oor, adjusted, _ = spot_predictions(parent, x32, _spot_ids(df[scol]), children)
    out = df.copy()
    for k, v in parent._result_columns(pred, std, oor).items():
        out[k] = v
    out[ADJUSTED_COLUMN] = adjusted
    return out


def predict_file_spots(model: CalibrationModel, table: RawTable, x32: np.ndarray) -> dict[str, Any] | None:
    """Spot-adjusted results for :func:`calib.predict.predict_file`, or None when not applicable.

    Applies when ``model`` is a batch model (not itself a child), the readings have its
    group column and at least one child of it exists in its models folder; and always for a
    model trained on spot-normalised phases (``spot_normalisation``), which is only right for
    a checked spot: rows without their spot's child (or without a spot column) are predicted
    by the parent on raw readings and marked ``adjusted = False``.

    Returns
    -------
    dict or None
        ``columns`` (name -> values, including ``adjusted``), ``adjusted`` (count) and
        ``spot_models`` ({spot: child version}).

    Raises
    ------
    IngestError
        The readings already have an ``adjusted`` column.
    """
    meta = model.metadata
    if meta.get(META_KEY):
        return None
    normalised = bool(meta.get(NORM_KEY))
    group = (meta.get("data") or {}).get("group")
    has_group = bool(group) and group in table.columns
    if not has_group and not normalised:
        return None
    children = find_spot_models(model) if has_group else {}
    if not children and not normalised:
        return None
    if ADJUSTED_COLUMN in table.columns:
        raise IngestError(
            f"{table.name} row 1: column {ADJUSTED_COLUMN} already exists; rename it (or predict from "
            "the original readings file)"
        )
    spot_ids = _spot_ids(table.frame[group]) if has_group else np.full(len(x32), "", dtype=object)
    pred, std, oor, adjusted, used = spot_predictions(model, x32, spot_ids, children)
    cols = model._result_columns(pred, std, oor)
    cols[ADJUSTED_COLUMN] = adjusted
    return {"columns": cols, "adjusted": int(adjusted.sum()), "spot_models": used}
