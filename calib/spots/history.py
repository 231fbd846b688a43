"""Dated two-point checks of a spot over time: acceptance, drift and the date the next check is due.

A sensor spot is checked again and again (``calib adjust`` with a new two-point reference):
each accepted check writes the next version of the spot's child,
``models/<parent>.<spot>/<version>/``, and that child records the check in its
``calibration.json`` (``spot_adjustment.check``: date, gain, offset, bounds, drift, due date).
**The history of a spot is the versions of its child**: nothing else is kept, so nothing
else can disagree with the artifacts (a child written before checks were dated counts
with its ``created_utc`` and the gain and offset of its two points).

Gain and offset
---------------
A check's *gain* ``g`` and *offset* ``o`` are the straight line that maps the batch model's
reading ``b`` onto the reference at the zero and air points, ``y = o + g * b`` (for the
``linear`` method exactly the child's scale and intercept; for ``spot_map`` and
``phase_scale`` the equivalent line at the two points). A spot like the batch has ``g = 1``,
``o = 0``.

Acceptance (``[check]`` table, :class:`calib.config.CheckSpec`)
--------------------------------------------------------------
Like an instrument vendor's calibration routine, a check whose gain leaves
``gain_min .. gain_max`` (default 0.85 .. 1.20, inclusive) or whose ``|offset|`` exceeds
``max_offset`` (default 5 % of the air reference) is *refused*: nothing is written and the
spot's previous child stays the one applied. ``force=True`` (``--force``) writes it anyway,
marked ``within_bounds: false, forced: true``.

Drift and the next check
------------------------
With two or more dated checks of a spot (against the same batch model id), gain and offset
are fitted as straight lines in time (least squares, per day). The child in use is the
latest check's, so at a time ``t`` after it a reading ``y`` of the child is off by about
``(t - t_last) * (dg/dt * (y - o_last) / g_last + do/dt)``; the projected error is its
largest absolute value over the batch model's calibrated target range (it is linear in
``y``, so at an end). The next check is due when that reaches the tolerance
(``[check] tolerance``, default ``[validate] tolerance``), and after at most
``interval_days`` (default 180): with one check, or a drift too small to matter, the
interval alone sets the date.

Examples
--------
>>> h = read_history("models", "foil-A", model_id, "S13")              # doctest: +SKIP
>>> fit_drift(h, (0.0, 300.0)).gain_per_day                             # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import ArtifactError, ConfigError
from ..runtime import SPOT_ADJUSTMENT_KEY as META_KEY
from .reference import CHECK_YEARS

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CheckSpec
    from .adjust import SpotAdjustment

__all__ = [
    "CheckRecord",
    "Drift",
    "CheckAssessment",
    "parse_date",
    "format_date",
    "gain_offset",
    "acceptance",
    "read_history",
    "fit_drift",
    "assess_check",
    "assess_checks",
    "refusal",
    "lineage",
]

_ISO = "%Y-%m-%dT%H:%M:%SZ"
_DAY = 86400.0


def parse_date(text: Any, what: str = "date") -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime (no zone: UTC).

    Raises
    ------
    ConfigError
        Not an ISO 8601 date ("2026-03-01", "2026-03-01T10:15", "2026-03-01T10:15+01:00"), or
        outside the years :data:`CHECK_YEARS`.
    """
    if isinstance(text, datetime):
        dt = text
    else:
        try:
            dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{what} must be an ISO 8601 date such as 2026-03-01 or 2026-03-01T10:15 "
                              f"(UTC unless a zone is given), got {what}={str(text)!r}") from None
    if not CHECK_YEARS[0] <= dt.year <= CHECK_YEARS[1]:
        raise ConfigError(f"{what} must lie in the years {CHECK_YEARS[0]}..{CHECK_YEARS[1]}, got {what}={str(text)!r}")
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def format_date(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return dt.astimezone(timezone.utc).strftime(_ISO)


# --------------------------------------------------------------------------- types
@dataclass(frozen=True)
class CheckRecord:
    """One dated two-point check of a spot.

    Attributes
    ----------
    spot_id : str
    date : datetime
        When the check was made (UTC).
    gain : float
        Dimensionless (see the module notes).
    offset : float
        Target unit.
    version : str or None
        The child version that holds it; None for a check not written (yet).
    within_bounds : bool
    forced : bool
        Written with ``force`` although out of bounds.
    """

    spot_id: str
    date: datetime
    gain: float
    offset: float
    version: str | None = None
    within_bounds: bool = True
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"spot_id": self.spot_id, "date": format_date(self.date), "gain": self.gain, "offset": self.offset,
                "version": self.version, "within_bounds": self.within_bounds, "forced": self.forced}


@dataclass(frozen=True)
class Drift:
    """Gain and offset of a spot fitted as straight lines in time.

    Attributes
    ----------
    n_checks : int
    span_days : float
        First to last check, days.
    gain_per_day : float
        1/day.
    offset_per_day : float
        Target unit per day.
    error_per_day : float
        Growth of the projected error of the latest check's child, target unit per day
        (largest over the calibrated target range).
    """

    n_checks: int
    span_days: float
    gain_per_day: float
    offset_per_day: float
    error_per_day: float

    def to_dict(self) -> dict[str, Any]:
        return {"n_checks": self.n_checks, "span_days": self.span_days, "gain_per_day": self.gain_per_day,
                "offset_per_day": self.offset_per_day, "error_per_day": self.error_per_day}


@dataclass(frozen=True)
class CheckAssessment:
    """A new check judged against the bounds and the spot's history.

    Attributes
    ----------
    record : CheckRecord
        The new check (``version`` None until written).
    reasons : tuple of str
        Bounds it breaks (empty: within bounds).
    bounds : dict
        ``gain_min``, ``gain_max``, ``max_offset`` (target unit) applied.
    history : tuple of CheckRecord
        The spot's earlier checks, oldest first.
    drift : Drift or None
        Over ``history`` and the new check; None with fewer than two dates.
    tolerance : float
        Target unit.
    interval_days : float
    due : datetime
        When the next check is due.
    projected_error : float or None
        Projected error at ``due``, target unit (None without a drift).
    unit : str
    previous : CheckRecord or None
        The spot's current check before this one (its child stays current if this one is refused).
    """

    record: CheckRecord
    reasons: tuple[str, ...]
    bounds: dict[str, float]
    history: tuple[CheckRecord, ...]
    drift: Drift | None
    tolerance: float
    interval_days: float
    due: datetime
    projected_error: float | None
    unit: str

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def previous(self) -> CheckRecord | None:
        return self.history[-1] if self.history else None

    def to_dict(self, forced: bool = False) -> dict[str, Any]:
        """The ``spot_adjustment.check`` entry of the child's ``calibration.json``."""
        return {
            "date": format_date(self.record.date),
            "gain": self.record.gain,
            "offset": self.record.offset,
            "unit": self.unit,
            "within_bounds": self.accepted,
            "forced": bool(forced and not self.accepted),
            "reasons": list(self.reasons),
            "bounds": dict(self.bounds),
            "tolerance": self.tolerance,
            "interval_days": self.interval_days,
            "previous_checks": len(self.history),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "due": format_date(self.due),
            "projected_error_at_due": self.projected_error,
        }


# --------------------------------------------------------------------------- one check
def gain_offset(adj: SpotAdjustment) -> tuple[float, float]:
    """The check's line ``reference = offset + gain * batch reading`` through its zero and air points."""
    z, a = adj.zero, adj.air
    db = a.batch_reading - z.batch_reading
    gain = (a.value - z.value) / db if db else float("nan")
    return float(gain), float(z.value - gain * z.batch_reading)


def acceptance(gain: float, offset: float, air_value: float, spec: CheckSpec, unit: str) -> tuple[list[str], dict]:
    """The bounds a check breaks (``[check]``), and the bounds applied."""
    limit = spec.offset_limit(air_value)
    bounds = {"gain_min": float(spec.gain_min), "gain_max": float(spec.gain_max), "max_offset": float(limit)}
    reasons = []
    if not spec.gain_min <= gain <= spec.gain_max:
        reasons.append(f"gain {gain:.4f} outside {spec.gain_min:g}..{spec.gain_max:g}")
    if not abs(offset) <= limit:
        reasons.append(f"offset {offset:+.4g} {unit} beyond +-{limit:.4g} {unit}")
    return reasons, bounds


# --------------------------------------------------------------------------- history
def _record_of(meta: Mapping[str, Any], version: str) -> CheckRecord | None:
    a = meta.get(META_KEY)
    if not isinstance(a, Mapping):
        return None
    chk = a.get("check")
    try:
        if isinstance(chk, Mapping):
            return CheckRecord(str(a["spot_id"]), parse_date(chk["date"]), float(chk["gain"]), float(chk["offset"]),
                               version, bool(chk.get("within_bounds", True)), bool(chk.get("forced", False)))
        # a child written before checks were dated: its creation time and its two points
        z, air = a["zero"], a["air"]
        db = float(air["batch_reading"]) - float(z["batch_reading"])
        gain = (float(air["value"]) - float(z["value"])) / db
        return CheckRecord(str(a["spot_id"]), parse_date(meta["created_utc"]), gain,
                           float(z["value"]) - gain * float(z["batch_reading"]), version)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, ConfigError):
        return None


def read_history(models_dir: str | Path, parent_name: str, parent_model_id: str, spot: str) -> tuple[CheckRecord, ...]:
    """Every recorded check of a spot against one batch model, oldest first.

    Parameters
    ----------
    models_dir : str or Path
        The folder holding ``<parent>.<spot>/``.
    parent_name, parent_model_id : str
        The batch model; checks made against another model id (another version of the batch
        model) are not this spot's drift against this model and are left out.
    spot : str
        The spot id.

    Returns
    -------
    tuple of CheckRecord
        By date, then version. Unreadable versions are skipped.
    """
    from ..artifact.store import list_versions, read_metadata, semver_key
    from .adjust import child_name

    folder = Path(models_dir) / child_name(parent_name, spot)
    out = []
    for v in list_versions(folder):
        try:
            meta = read_metadata(folder / v)
        except ArtifactError:
            continue
        a = meta.get(META_KEY) or {}
        if (a.get("parent") or {}).get("model_id") != parent_model_id or str(a.get("spot_id")) != spot:
            continue
        rec = _record_of(meta, v)
        if rec is not None:
            out.append(rec)
    return tuple(sorted(out, key=lambda r: (r.date, semver_key(r.version or "0.0.0"))))


def fit_drift(records: Sequence[CheckRecord], target_range: tuple[float, float]) -> Drift | None:
    """Gain and offset as straight lines in time, and the growth of the latest child's error.

    Parameters
    ----------
    records : sequence of CheckRecord
        Oldest first; the last one is the child in use.
    target_range : (float, float)
        The batch model's calibrated target range (target unit), where the error is projected.

    Returns
    -------
    Drift or None
        None with fewer than two distinct dates.
    """
    if len(records) < 2:
        return None
    t0 = records[0].date
    t = np.array([(r.date - t0).total_seconds() / _DAY for r in records])
    if np.ptp(t) <= 0:
        return None
    g = np.array([r.gain for r in records])
    o = np.array([r.offset for r in records])
    dg = float(np.polyfit(t, g, 1)[0])
    do = float(np.polyfit(t, o, 1)[0])
    last = records[-1]
    rate = max(abs(dg * (y - last.offset) / last.gain + do) for y in target_range)
    return Drift(len(records), float(np.ptp(t)), dg, do, float(rate))


def assess_check(adj: SpotAdjustment, date: datetime, history: Sequence[CheckRecord], spec: CheckSpec,
                 tolerance: float, target_range: tuple[float, float]) -> CheckAssessment:
    """Judge a new check: bounds, drift over the spot's history and it, the next due date.

    Raises
    ------
    ConfigError
        The check is dated before the spot's latest recorded check (checks are recorded in
        date order: the newest child is the one applied).
    """
    gain, offset = gain_offset(adj)
    reasons, bounds = acceptance(gain, offset, adj.air.value, spec, adj.unit)
    rec = CheckRecord(adj.spot_id, date, gain, offset, None, not reasons)
    if history and date < history[-1].date:
        last = history[-1]
        raise ConfigError(
            f"the check of spot {adj.spot_id!r} is dated {format_date(date)}, before its latest recorded check "
            f"{format_date(last.date)} (version {last.version}); checks are recorded in date order (give --date "
            "or the reference's date column)"
        )
    drift = fit_drift([*history, rec], target_range)
    interval = float(spec.interval_days)
    days, err = interval, None
    if drift is not None:
        if drift.error_per_day > 0:
            days = min(interval, tolerance / drift.error_per_day)
        err = drift.error_per_day * days
    due = date + timedelta(days=days)
    return CheckAssessment(rec, tuple(reasons), bounds, tuple(history), drift, float(tolerance), interval, due,
                           err, adj.unit)


# --------------------------------------------------------------------------- lineage
def _days(a: datetime, b: datetime) -> int:
    return int(math.floor((a - b).total_seconds() / _DAY))


def lineage(models_dir: str | Path, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Every artifact under ``models_dir`` with its lineage and, for a spot child, its check status.

    Parameters
    ----------
    models_dir : str or Path
    now : datetime, optional
        Default: now (UTC); a check is overdue when its due date is before ``now``.

    Returns
    -------
    dict
        ``name -> {"versions", "current", "parent" (a child: name, version, model_id),
        "spot", "children" (a batch model: child names), "check" (a child's latest: date,
        gain, offset, due, overdue, days (until due, negative when overdue), forced,
        n_checks), "problem" (why the current version cannot be loaded: unreadable or malformed
        ``calibration.json``, a version that differs from its folder's name; else None)}``.
        Unreadable versions count as versions but give no lineage.

    Raises
    ------
    ArtifactError
        If ``models_dir`` is not a folder (missing, or a file).
    """
    from ..artifact.store import list_artifacts, read_metadata

    now = parse_date(now) if now is not None else datetime.now(timezone.utc)
    if not Path(models_dir).is_dir():
        what = "a file" if Path(models_dir).exists() else "no such folder"
        raise ArtifactError(f"{models_dir}: {what}; expected the folder that holds the calibration models "
                            "(such as models/)")
    out: dict[str, dict[str, Any]] = {}
    for name, versions in list_artifacts(models_dir).items():
        entry: dict[str, Any] = {"versions": versions, "current": versions[-1], "parent": None, "spot": None,
                                 "children": [], "check": None, "problem": None}
        try:
            meta = read_metadata(Path(models_dir) / name / versions[-1])
        except ArtifactError as exc:  # listed, with why calib would refuse to load it
            entry["problem"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out[name] = entry
            continue
        a = meta.get(META_KEY)
        if isinstance(a, Mapping):
            p = a.get("parent") or {}
            entry["parent"] = {k: p.get(k) for k in ("name", "version", "model_id")}
            entry["spot"] = a.get("spot_id")
            hist = read_history(models_dir, str(p.get("name")), str(p.get("model_id")), str(a.get("spot_id")))
            chk = a.get("check") if isinstance(a.get("check"), Mapping) else None
            last = _record_of(meta, versions[-1])
            if last is not None:
                due = parse_date(chk["due"]) if chk and chk.get("due") else None
                entry["check"] = {
                    "date": format_date(last.date), "gain": last.gain, "offset": last.offset,
                    "due": None if due is None else format_date(due),
                    "overdue": None if due is None else due < now,
                    "days": None if due is None else _days(due, now),
                    "forced": last.forced, "n_checks": len(hist),
                }
        out[name] = entry
    for name, entry in out.items():
        parent = entry["parent"]
        if parent and parent.get("name") in out:
            out[parent["name"]]["children"].append(name)
    return out


# --------------------------------------------------------------------------- a run of calib adjust
def assess_checks(parent: Any, reference: Mapping[str, Any], adjustments: Sequence[SpotAdjustment], *,
                  date: Any = None, spec: CheckSpec | None = None, tolerance: float | None = None,
                  models_dir: str | Path | None = None, now: datetime | None = None) -> tuple[CheckAssessment, ...]:
    """Date and judge every spot's check of a ``calib adjust`` run (nothing is written).

    Parameters
    ----------
    parent : CalibrationModel
        The batch model.
    reference : mapping
        ``compute_adjustments``' first result (its ``dates``: the reference's date column).
    adjustments : sequence of SpotAdjustment
    date : str or datetime, optional
        The check date for every spot (ISO 8601); not together with a date column.
        Default: the reference's ``date``/``time`` column, else ``now``.
    spec : CheckSpec, optional
        ``[check]``; default :class:`calib.config.CheckSpec`.
    tolerance : float, optional
        Target unit; default ``spec.tolerance``, else the ``[validate] tolerance`` default
        (1 hPa of pO2 in the target unit).
    models_dir : str or Path, optional
        Where the children are; default the parent's models folder.
    now : datetime, optional
        Default: now (UTC).

    Raises
    ------
    ConfigError
        A bad ``date``; both ``date`` and a date column; a check dated before the spot's
        latest one.
    """
    from ..config import CheckSpec, auto_tolerance

    spec = spec if spec is not None else CheckSpec()
    col_dates = reference.get("dates")
    if date is not None and col_dates:
        raise ConfigError(f"the check date is given twice: date={str(date)!r} and the date column of "
                          f"{reference.get('file')}; give one of them")
    when = parse_date(date) if date is not None else (parse_date(now) if now is not None
                                                      else datetime.now(timezone.utc).replace(microsecond=0))
    tol = tolerance if tolerance is not None else spec.tolerance
    tol = float(tol) if tol is not None else auto_tolerance(parent.unit)
    t = parent.metadata.get("target") or {}
    rng = (float(t.get("min", 0.0)), float(t.get("max", 0.0)))
    root = Path(models_dir) if models_dir is not None else parent.path.parent.parent
    out = []
    for adj in adjustments:
        d = parse_date(col_dates[adj.spot_id]) if col_dates else when
        hist = read_history(root, parent.name, parent.model_id, adj.spot_id)
        out.append(assess_check(adj, d, hist, spec, tol, rng))
    return tuple(out)


def refusal(parent: Any, reference: Mapping[str, Any], refused: Sequence[CheckAssessment]) -> str:
    """The one-line message of refused checks: what is out of bounds, what stays current."""
    from .adjust import child_name

    a = refused[0]
    spot = a.record.spot_id
    prev = a.previous
    keeps = (f"spot {spot!r} keeps {child_name(parent.name, spot)} {prev.version} (checked "
             f"{format_date(prev.date)[:10]})" if prev is not None else f"spot {spot!r} stays unadjusted")
    more = f" (and {len(refused) - 1} more spot(s))" if len(refused) > 1 else ""
    return (f"{reference.get('file')} (spot {spot!r}): check refused: {'; '.join(a.reasons)} ([check] bounds){more}; "
            f"nothing written, {keeps}; use --force to record it anyway")
