"""Finding a quantity's column: by its name, its source name, or its stem with another unit.

One rule for every door that maps columns onto declared quantities: ``calib predict`` and the
Python API finding a model's inputs (:mod:`calib.readings`, :mod:`calib.runtime`) and training
finding a declared feature in another unit (:mod:`calib.ingest`). A lowest layer: it imports
only :mod:`calib.units` and :mod:`calib.errors`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import units as U
from .errors import IngestError, clip_list

__all__ = ["find_feature_column", "resolve_feature_columns"]


def _stem(name: str, unit: str) -> str | None:
    """``temp_degC`` -> ``temp`` when ``name`` ends in ``_<unit>`` (case-insensitive)."""
    suffix = "_" + unit.lower()
    if name.lower().endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def _stem_key(stem: str) -> str:
    """A stem up to case, spaces and underscores: ``"Phase 5 kHz"`` and ``"phase_5khz"`` match."""
    return _fold(U.snake_stem(stem)).replace(" ", "_")


def _fold(name: str) -> str:
    """A column name up to case and spaces: ``' Temperature_degC'`` -> ``'temperature_degc'``."""
    return " ".join(str(name).casefold().split())


def find_feature_column(feature: Mapping[str, Any], columns: Sequence[str], where: str = "input"
                        ) -> tuple[str, str | None] | None:
    """The column of one feature and the unit to convert it from, as :func:`resolve_feature_columns`
    finds it; None when no column could be it.

    Raises
    ------
    IngestError
        Two columns could both be it, or a column with the feature's stem has a unit that does
        not convert to the feature's.
    """
    cols = list(columns)
    f = feature
    name, unit = str(f["name"]), str(f["unit"])
    source = str(f.get("source") or name)
    source_unit = str(f.get("source_unit") or unit)
    freq = f.get("frequency_hz")
    # every column that could hold this feature: its name or source name (also up to case
    # and spaces), or the same stem with another unit that converts to the feature's unit
    found: list[tuple[str, str | None]] = []
    keys: dict[str, str | None] = {_fold(source): None if source_unit == unit else source_unit}
    keys[_fold(name)] = None  # the feature's own name wins over a source of the same spelling
    for c in cols:
        if _fold(c) in keys:
            found.append((c, keys[_fold(c)]))
    stem = _stem(name, unit)
    wrong_unit: list[tuple[str, str]] = []  # same stem, a unit that does not convert
    if stem is not None:
        for c in cols:
            split = U.split_unit_suffix(c)
            if split is None or _fold(c) in keys:
                continue
            cstem, cunit, cfreq, bracketed = split
            if _stem_key(cstem) != _stem_key(stem):
                continue
            if cunit == unit:  # "Phase [deg]" for phase_deg (the suffix form is the name itself)
                if bracketed:
                    found.append((c, None))
                continue
            parsed = (cunit, cfreq)
            try:
                canonical = U.canonical_unit(parsed[0], freq if freq else parsed[1])
            except Exception:  # unit without a conversion to this feature's unit
                canonical = None
            if canonical == unit:
                found.append((c, parsed[0]))
            else:
                wrong_unit.append((c, parsed[0]))
    if len(found) > 1:
        raise IngestError(
            f"{where}: feature {name} ({unit}) could be any of the columns "
            f"{', '.join(repr(c) for c, _ in found)}; keep only one of them"
        )
    if not found and wrong_unit:
        c, u = wrong_unit[0]
        raise IngestError(
            f"{where}, column {c}: {u} cannot be converted to {unit}; expected feature {name} "
            f"in {unit} (or in a unit calib converts to {unit})"
        )
    return found[0] if found else None


def resolve_feature_columns(
    features: Sequence[Mapping[str, Any]], columns: Sequence[str], where: str = "input"
) -> list[tuple[str, str | None]]:
    """Find the column of each feature, and the unit to convert it from.

    A feature's column is the one column with the feature's normalised ``name`` (values in
    its ``unit``, no conversion), with its ``source`` name (values in ``source_unit``), both
    up to case and spaces, or with the same stem and another unit suffix that converts to
    the feature's unit (e.g. ``temp_K`` for ``temp_degC``), or the same stem with the unit in
    brackets or parentheses (``Temp (°C)``, ``temp [K]`` and ``TEMP (degC)`` for ``temp_degC``;
    :func:`calib.units.split_unit_suffix`). Two such columns (the same
    quantity twice, e.g. ``temperature_degC`` and ``temperature_K``, or ``temperature_degC``
    and ``Temperature_degC``) are refused, naming both: calib never guesses which one is meant.

    Parameters
    ----------
    features : sequence of mapping
        ``calibration.json`` feature entries (``name``, ``unit``, ``source``, ``source_unit``,
        ``frequency_hz``).
    columns : sequence of str
        Column names available.
    where : str, default="input"
        How to name the data in error messages (e.g. ``"readings.csv row 1"``).

    Returns
    -------
    list of (column, from_unit or None)
        ``from_unit`` is None when the column is already in the feature's unit.

    Raises
    ------
    IngestError
        A feature has no column, or two columns could both be it.
    """
    cols = list(columns)
    out: list[tuple[str, str | None]] = []
    for f in features:
        hit = find_feature_column(f, cols, where)
        if hit is not None:
            out.append(hit)
            continue
        import difflib

        name, unit = str(f["name"]), str(f["unit"])
        source = str(f.get("source") or name)
        source_unit = str(f.get("source_unit") or unit)
        alt = f" or {source} in {source_unit}" if source != name else ""
        # hint only at columns that are not themselves inputs of the model
        taken = {str(g["name"]) for g in features} | {str(g.get("source") or g["name"]) for g in features}
        close = difflib.get_close_matches(name, [c for c in cols if c not in taken], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise IngestError(
            f"{where}: missing column {name!r} (feature in {unit}{alt}){hint} (columns present: {clip_list(cols)})"
        )
    return out
