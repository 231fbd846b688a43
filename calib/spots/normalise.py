"""Spot normalisation: each spot's phases mapped onto batch-typical two-point anchors.

Spots cut from one foil differ (instrument phase offset, unquenched lifetime, Stern-Volmer
constants); that spot-to-spot spread, not the network, dominates the error of a batch model on
a spot it has not seen. Every spot gets a two-point check anyway (zero O2 and air-saturated
water at one temperature), so the network can be trained on readings that are already
corrected by that check:

1. for each spot, its *anchors* ``r0`` and ``r1`` are the mean readings of its rows at the
   zero level (target = ``zero``) and at the air level (target = ``air``), both within
   ``temperature_tolerance_degC`` of the reference temperature (:class:`SpotReference`);
2. the batch-typical anchors ``B0``, ``B1`` are the means of the calibration spots' anchors;
3. each phase-like input (unit ``deg`` or ``us``; temperature and other inputs stay as they
   are) is mapped per spot, column by column::

       x' = B0 + (x - r0) * (B1 - B0) / (r1 - r0)

   so that every spot reads exactly ``B0`` at its zero anchor and ``B1`` at its air anchor.

The network is trained on ``x'``. A new spot is normalised with its *own* anchors, from its own
two-point check (:mod:`calib.spots`, method ``spot_map``, folds the map into the spot's
child ONNX graph). On the bundled simulated batch (12 spots, 3 rotations of 4 held-out spots,
held-out spots' rows other than the reference rows) the held-out MAE falls from 3.2 hPa (batch
network on raw phases) to about 0.7 hPa (see ``benchmarks/spot_adjust.py``).

A model trained this way must not be used on raw readings of an unchecked spot: the map is
then the identity and the error is *larger* than a plain batch model's (about 5 hPa on the
bundled batch).

Configuration: the optional ``[adjust]`` table of the config file::

    [adjust]
    temperature_degC = 22.5            # the two-point check's temperature
    temperature_tolerance_degC = 1.0   # rows within +-1 degC count (inclusive)
    zero = 0.0                         # target value of the zero level, target unit
    air = 212.0                        # target value of the air level, target unit (required)
    level_tolerance = 1e-6             # relative to air: |target - level| <= 1e-6 * air

Examples
--------
>>> ref = SpotReference(temperature_degC=22.5, air=212.0)          # doctest: +SKIP
>>> norm = fit_normalisation(ds, splits.train_dev, ref)            # doctest: +SKIP
>>> ds_n = norm.apply(ds)  # every spot mapped with its own anchors  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..constraints import Interval, check_keys, check_params, require
from ..errors import ArtifactError, ConfigError, IngestError

__all__ = [
    "PHASE_UNITS",
    "SCALE_RANGE",
    "SpotReference",
    "SpotNormalisation",
    "spot_anchors",
    "fit_normalisation",
]

#: Units of the inputs that are mapped (phase angle, phase delay).
PHASE_UNITS = ("deg", "us")
#: Plausible range of a spot's map scale ``(B1 - B0) / (r1 - r0)``; outside it a level is
#: wrong (swapped zero and air, a leaking zero solution) rather than the spot.
SCALE_RANGE = (0.5, 2.0)
#: Key of the normalisation in ``calibration.json``.
META_KEY = "spot_normalisation"
_FORMAT = "calib.spotnorm"  # the format name in calibration.json (stable; the module moved)
_VERSION = 1
_FORMULA = "x' = b0 + (x - r0) * (b1 - b0) / (r1 - r0) for each mapped input; other inputs unchanged"


# --------------------------------------------------------------------------- the reference
@dataclass(frozen=True)
class SpotReference:
    """Where a spot's two-point check is taken: temperature and the two target levels.

    Parameters
    ----------
    temperature_degC : float
        Temperature of the check (degC), e.g. 22.5.
    air : float
        Target value of the air level, in the model's target unit (e.g. 212.0 hPa); > ``zero``.
    temperature_tolerance_degC : float, default=1.0
        Rows within this distance of ``temperature_degC`` count (inclusive bound), > 0.
    zero : float, default=0.0
        Target value of the zero level, target unit; >= 0.
    level_tolerance : float, default=1e-6
        Relative to ``air``: a row is at a level when ``|target - level| <= level_tolerance * air``
        (inclusive); 0 <= level_tolerance < 0.1.

    Raises
    ------
    ConfigError
        A value that breaks its rule, e.g. ``"air > zero must hold, got air=0.0, zero=0.0"``.
    """

    temperature_degC: float
    air: float
    temperature_tolerance_degC: float = 1.0
    zero: float = 0.0
    level_tolerance: float = 1e-6

    rules: ClassVar[Mapping[str, list]] = {
        "temperature_degC": [Interval(Real, -50, 150, closed="both")],
        "air": [Interval(Real, None, None)],
        "temperature_tolerance_degC": [Interval(Real, 0, None, closed="neither")],
        "zero": [Interval(Real, 0, None)],
        "level_tolerance": [Interval(Real, 0, 0.1, closed="left")],
    }

    def __post_init__(self) -> None:
        values = dataclasses.asdict(self)
        check_params(values, self.rules)
        require(self.air > self.zero, "air > zero", air=self.air, zero=self.zero)
        for name, value in values.items():
            object.__setattr__(self, name, float(value))

    @property
    def level_abs_tolerance(self) -> float:
        """Absolute level tolerance in the target unit (``level_tolerance * air``)."""
        return self.level_tolerance * self.air

    def level_of(self, level: str) -> float:
        """Target value of ``"zero"`` or ``"air"``."""
        return self.zero if level == "zero" else self.air

    def at_level(self, y: np.ndarray, level: str) -> np.ndarray:
        """Bool mask: target values at ``level`` within the tolerance (inclusive)."""
        return np.abs(np.asarray(y, dtype=np.float64) - self.level_of(level)) <= self.level_abs_tolerance

    def at_temperature(self, t: np.ndarray) -> np.ndarray:
        """Bool mask: temperatures (degC) within the tolerance of the reference (inclusive)."""
        return np.abs(np.asarray(t, dtype=np.float64) - self.temperature_degC) <= self.temperature_tolerance_degC

    def describe(self, level: str, unit: str, target: str = "target", tcol: str = "temperature") -> str:
        return (f"{target} = {self.level_of(level):g} {unit} at {tcol} "
                f"{self.temperature_degC:g} +- {self.temperature_tolerance_degC:g} degC")

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "adjust") -> "SpotReference":
        """Build from the ``[adjust]`` table (or a ``to_dict`` result).

        Raises
        ------
        ConfigError
            Unknown or missing key, or a value that breaks its rule.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"[{where}] must be a table, got {d!r:.80}")
        check_keys(where, d, [f.name for f in dataclasses.fields(cls)])
        missing = [k for k in ("temperature_degC", "air") if k not in d]
        if missing:
            raise ConfigError(f"[{where}] must give {' and '.join(missing)} (the two-point check's "
                              "temperature in degC and the air level in the target unit)")
        return cls(**dict(d))

    @classmethod
    def from_config(cls, cfg: Any) -> "SpotReference | None":
        """The ``[adjust]`` table of a :class:`~calib.config.Config`, or ``None`` without one."""
        table = getattr(cfg, "adjust", None)
        return None if not table else cls.from_dict(table)


# --------------------------------------------------------------------------- anchors
def _rows_text(rows: np.ndarray) -> str:
    rows = np.sort(np.asarray(rows)) + 2  # file rows (header = row 1)
    if rows.size == 0:
        return "no rows"
    if rows.size > 1 and rows[-1] - rows[0] == rows.size - 1:
        return f"rows {rows[0]}-{rows[-1]}"
    return ("row " if rows.size == 1 else "rows ") + ", ".join(map(str, rows[:6])) + (", ..." if rows.size > 6 else "")


def _temperature_index(ds: Any) -> int:
    for j, c in enumerate(ds.features):
        if c.unit == "degC":
            return j
    raise ConfigError(
        "spot normalisation needs a temperature input (unit degC) to find the two-point rows, got "
        + ", ".join(f"{c.name} ({c.unit})" for c in ds.features)
    )


def mapped_indices(units: Sequence[str]) -> tuple[int, ...]:
    """Indices of the inputs that are mapped (unit ``deg`` or ``us``)."""
    return tuple(j for j, u in enumerate(units) if u in PHASE_UNITS)


def spot_anchors(ds: Any, rows: np.ndarray | None, ref: SpotReference) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each spot's mean readings at the zero and the air level at the reference temperature.

    Parameters
    ----------
    ds : calib.ingest.Dataset
        With a group (spot) column and a degC input.
    rows : ndarray of int or None
        Rows to use (their spots get anchors); ``None`` = every row.
    ref : SpotReference

    Returns
    -------
    dict of str to (ndarray, ndarray)
        Spot id -> ``(r0, r1)``: mean feature vectors (all inputs, model order and units) of
        the spot's rows at the zero and at the air level; in sorted spot order.

    Raises
    ------
    ConfigError
        The dataset has no group column or no degC input.
    IngestError
        A spot has no row at a level; names the file, the spot's rows, the level and the rule.
    """
    if ds.group is None:
        raise ConfigError("spot normalisation needs a group (spot) column; give [data] group (e.g. 'spot_id')")
    tj = _temperature_index(ds)
    idx = np.arange(ds.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    x, y, g = ds.x(idx), ds.y(idx)[:, 0], ds.groups(idx)
    at_t = ref.at_temperature(x[:, tj])
    masks = {lev: at_t & ref.at_level(y, lev) for lev in ("zero", "air")}
    name = Path(ds.source).name or "data"
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for spot in sorted(np.unique(g).tolist()):
        mine = g == spot
        pair = []
        for lev in ("zero", "air"):
            sel = mine & masks[lev]
            if not sel.any():
                raise IngestError(
                    f"{name} {_rows_text(idx[mine])}, column {ds.target.name}: spot {spot!r} has no row at the "
                    f"{lev} level ({ref.describe(lev, ds.target.unit, ds.target.name, ds.features[tj].name)}); "
                    "spot normalisation ([adjust]) needs every spot's two-point check in the data"
                )
            pair.append(x[sel].mean(axis=0))
        out[str(spot)] = (pair[0], pair[1])
    return out


# --------------------------------------------------------------------------- the normalisation
@dataclass(frozen=True)
class SpotNormalisation:
    """A fitted spot normalisation (plain numbers; stored in ``calibration.json``).

    Attributes
    ----------
    features : tuple of str
        Every input of the model, in order.
    units : tuple of str
        Unit of each input.
    mapped : tuple of int
        Indices (into ``features``) of the mapped inputs (unit ``deg`` or ``us``).
    b0, b1 : tuple of float
        Batch-typical zero and air anchors of each mapped input (its unit): the means of the
        calibration spots' anchors.
    reference : SpotReference
    target, unit : str
        The target column and its unit (``reference.zero``/``air`` are in it).
    anchors : mapping of str to (tuple, tuple)
        Calibration spot -> its ``(r0, r1)`` anchors of the mapped inputs.
    """

    features: tuple[str, ...]
    units: tuple[str, ...]
    mapped: tuple[int, ...]
    b0: tuple[float, ...]
    b1: tuple[float, ...]
    reference: SpotReference
    target: str
    unit: str
    anchors: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", MappingProxyType(dict(self.anchors)))
        n = len(self.features)
        if len(self.units) != n:
            raise ConfigError(f"units must have one entry per feature ({n}), got {len(self.units)}")
        if not self.mapped or any(not 0 <= j < n for j in self.mapped):
            raise ConfigError(f"mapped must be a non-empty list of feature indices in 0..{n - 1}, got {list(self.mapped)}")
        if len(self.b0) != len(self.mapped) or len(self.b1) != len(self.mapped):
            raise ConfigError(f"b0 and b1 must have one value per mapped input ({len(self.mapped)}), "
                              f"got {len(self.b0)} and {len(self.b1)}")
        if any(a == b for a, b in zip(self.b0, self.b1)):
            raise ConfigError("b1 != b0 must hold for every mapped input (the zero and air anchors differ)")

    @property
    def mapped_names(self) -> tuple[str, ...]:
        return tuple(self.features[j] for j in self.mapped)

    def coefficients(self, r0: Sequence[float], r1: Sequence[float], where: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Per-input affine map ``x' = x * scale + shift`` of a spot with anchors ``r0``, ``r1``.

        Parameters
        ----------
        r0, r1 : array_like
            The spot's zero and air anchors: either every input (length ``len(features)``) or
            the mapped inputs only (length ``len(mapped)``), in their units.
        where : str, optional
            Prefix of the error message (file, rows, spot).

        Returns
        -------
        scale, shift : ndarray of float64, shape (len(features),)
            1 and 0 for the inputs that are not mapped.

        Raises
        ------
        IngestError
            A mapped input's scale ``(b1 - b0) / (r1 - r0)`` lies outside :data:`SCALE_RANGE`
            (e.g. the spot's zero and air readings swapped or equal).
        """
        r0 = np.asarray(r0, dtype=np.float64)
        r1 = np.asarray(r1, dtype=np.float64)
        n = len(self.features)
        if r0.shape == (n,):
            r0, r1 = r0[list(self.mapped)], r1[list(self.mapped)]
        b0, b1 = np.asarray(self.b0), np.asarray(self.b1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (b1 - b0) / (r1 - r0)
        lo, hi = SCALE_RANGE
        bad = np.flatnonzero(~((s >= lo) & (s <= hi)))
        if bad.size:
            k = int(bad[0])
            j = self.mapped[k]
            raise IngestError(
                f"{where + ': ' if where else ''}{self.features[j]} moves {r1[k] - r0[k]:+.6g} {self.units[j]} "
                f"from zero to air, the batch-typical {b1[k] - b0[k]:+.6g}: map scale {s[k]:.6g} is outside the "
                f"plausible {lo:g}..{hi:g}; check that the rows are at {self.reference.zero:g} and "
                f"{self.reference.air:g} {self.unit}"
            )
        scale, shift = np.ones(n), np.zeros(n)
        scale[list(self.mapped)] = s
        shift[list(self.mapped)] = b0 - r0 * s
        return scale, shift

    def apply(self, ds: Any, anchors: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Any:
        """A new :class:`~calib.ingest.Dataset` with every spot's mapped inputs normalised.

        Every spot is mapped with its own anchors (its two-point check), also the spots the
        normalisation was not fitted on.

        Parameters
        ----------
        ds : calib.ingest.Dataset
            Same inputs (names and units) as the normalisation.
        anchors : mapping, optional
            Spot -> ``(r0, r1)`` (as :func:`spot_anchors` returns); default: computed from ``ds``.

        Returns
        -------
        calib.ingest.Dataset
            Same columns, units, rows, order, group, source and SHA-256; mapped inputs replaced.

        Raises
        ------
        ConfigError
            ``ds`` has other inputs than the normalisation.
        IngestError
            A spot without a zero or air row, or with an implausible map (see :meth:`coefficients`).
        """
        names = tuple(ds.feature_names)
        units = tuple(c.unit for c in ds.features)
        if names != self.features or units != self.units:
            raise ConfigError(f"the dataset's inputs {list(zip(names, units))} differ from the normalisation's "
                              f"{list(zip(self.features, self.units))}")
        if anchors is None:
            anchors = spot_anchors(ds, None, self.reference)
        frame = ds.frame.copy()
        x = np.array(ds.x(), dtype=np.float64, copy=True)
        g = ds.groups()
        name = Path(ds.source).name or "data"
        for spot in np.unique(g).tolist():
            if spot not in anchors:
                raise IngestError(f"{name}, column {ds.group}: no anchors for spot {spot!r}")
            rows = np.flatnonzero(g == spot)
            scale, shift = self.coefficients(*anchors[spot], where=f"{name} {_rows_text(rows)} (spot {spot!r})")
            x[rows] = x[rows] * scale + shift
        for j in self.mapped:
            frame[names[j]] = x[:, j]
        return dataclasses.replace(ds, frame=frame)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the ``spot_normalisation`` entry of ``calibration.json``)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "formula": _FORMULA,
            "features": list(self.features),
            "units": list(self.units),
            "mapped": [self.features[j] for j in self.mapped],
            "mapped_indices": list(self.mapped),
            "b0": [float(v) for v in self.b0],
            "b1": [float(v) for v in self.b1],
            "target": self.target,
            "unit": self.unit,
            "reference": self.reference.to_dict(),
            "anchors": {s: {"zero": [float(v) for v in a[0]], "air": [float(v) for v in a[1]]}
                        for s, a in self.anchors.items()},
            "note": "the model's inputs are spot-normalised phases; readings of a spot must be mapped with its "
                    "own two-point anchors (calib adjust, method spot_map) before the model is used; on raw "
                    "readings (identity map) it is worse than a plain batch model",
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpotNormalisation":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ArtifactError
            Not a spot normalisation of this format, or inconsistent numbers.
        """
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise ArtifactError(f"spot_normalisation must be an object of format {_FORMAT!r}, got {d!r:.80}")
        if int(d.get("version", 0)) > _VERSION:
            raise ArtifactError(f"spot_normalisation version {d.get('version')} is newer than this calib "
                                f"reads ({_VERSION}); upgrade calib")
        try:
            feats = tuple(str(f) for f in d["features"])
            anchors = {str(s): (tuple(float(v) for v in a["zero"]), tuple(float(v) for v in a["air"]))
                       for s, a in dict(d.get("anchors") or {}).items()}
            return cls(
                features=feats,
                units=tuple(str(u) for u in d["units"]),
                mapped=tuple(int(j) for j in d["mapped_indices"]),
                b0=tuple(float(v) for v in d["b0"]),
                b1=tuple(float(v) for v in d["b1"]),
                reference=SpotReference.from_dict(d["reference"], where="spot_normalisation.reference"),
                target=str(d["target"]),
                unit=str(d["unit"]),
                anchors=anchors,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"spot_normalisation is malformed ({type(exc).__name__}: {exc})") from None


def fit_normalisation(ds: Any, rows: np.ndarray | None, ref: SpotReference) -> SpotNormalisation:
    """Fit the batch-typical anchors on the spots of ``rows``.

    Parameters
    ----------
    ds : calib.ingest.Dataset
        With a group (spot) column, a degC input and at least one ``deg``/``us`` input.
    rows : ndarray of int or None
        The calibration rows (train + dev); only their spots define ``B0``/``B1``. ``None`` =
        every row.
    ref : SpotReference

    Returns
    -------
    SpotNormalisation

    Raises
    ------
    ConfigError
        No group column, no degC or no phase input.
    IngestError
        A spot without a zero or air row, or with an implausible map.
    """
    if not isinstance(ref, SpotReference):
        raise ConfigError(f"ref must be a SpotReference, got {type(ref).__name__}")
    units = tuple(c.unit for c in ds.features)
    mapped = mapped_indices(units)
    if not mapped:
        raise ConfigError(
            "spot normalisation needs a phase input (unit deg or us), got "
            + ", ".join(f"{c.name} ({c.unit})" for c in ds.features)
        )
    anchors = spot_anchors(ds, rows, ref)
    cols = list(mapped)
    b0 = np.mean([a[0][cols] for a in anchors.values()], axis=0)
    b1 = np.mean([a[1][cols] for a in anchors.values()], axis=0)
    norm = SpotNormalisation(
        features=tuple(ds.feature_names), units=units, mapped=mapped,
        b0=tuple(float(v) for v in b0), b1=tuple(float(v) for v in b1), reference=ref,
        target=ds.target.name, unit=ds.target.unit,
        anchors={s: (tuple(float(v) for v in a[0][cols]), tuple(float(v) for v in a[1][cols]))
                 for s, a in anchors.items()},
    )
    name = Path(ds.source).name or "data"
    g = ds.groups()
    for spot, a in anchors.items():
        norm.coefficients(*a, where=f"{name} {_rows_text(np.flatnonzero(g == spot))} (spot {spot!r})")
    return norm
