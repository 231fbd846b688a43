"""What a report reads from an artifact's metadata and a sweep view, read tolerantly.

``calibration.json`` may come from an older calib, be hand-edited or lack a part: every accessor
here returns None, an empty list or a plain default instead of raising, so that a missing entry
gives a note in its section, never an error. Shared by :mod:`calib.report.figures` and
:mod:`calib.report.page`; plain text only (no HTML, no matplotlib).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["as_number", "format_value", "lookup", "target_unit", "with_unit", "prediction_columns",
           "sweep_params", "leaderboard_rows", "param_kind"]

#: Parameters drawn on a log axis when the sweep records no space (``calib.sweep.LOG_BY_DEFAULT``).
_LOG_NAMES = ("learning_rate", "l1", "l2", "decay_rate", "init_stddev", "epsilon")


def as_number(v: Any) -> float | None:
    """``v`` as a finite float, or None (bools, text, None, NaN and inf are not numbers here)."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, str)):  # numpy scalar
        try:
            v = v.item()
        except (TypeError, ValueError):
            return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def format_value(v: Any) -> str:
    """A hyperparameter value as plain text (lists as ``[16, 16]``)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return "none" if v is None else str(v)


def lookup(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def target_unit(meta: Mapping[str, Any]) -> str:
    return str(lookup(meta, "target", "unit") or lookup(meta, "cv", "unit") or "")


def with_unit(label: str, unit: str) -> str:
    """``label (unit)`` with the unit typeset (``umol_per_L`` -> ``µmol/L``)."""
    from ..units import display_unit

    shown = display_unit(unit) if unit else ""
    return f"{label} ({shown})" if shown else label


def prediction_columns(meta: Mapping[str, Any], frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """Reference, predicted, std, group and temperature columns of the test predictions."""
    if frame is None or len(frame) == 0:
        return None
    target = lookup(meta, "target", "name") or lookup(meta, "cv", "target")
    if not isinstance(target, str):
        return None
    ref, pred = target, f"{target}_pred"
    if ref not in frame.columns or pred not in frame.columns:
        return None
    std = f"{target}_std" if f"{target}_std" in frame.columns else None
    group = lookup(meta, "data", "group")
    group = group if isinstance(group, str) and group in frame.columns else None
    temp = None
    feats = meta.get("features") if isinstance(meta.get("features"), list) else []
    candidates = [f for f in feats if isinstance(f, Mapping) and f.get("quantity") == "temperature"]
    candidates += [f for f in feats if isinstance(f, Mapping) and str(f.get("unit")) in ("degC", "K", "degF")]
    candidates += [f for f in feats if isinstance(f, Mapping) and "temp" in str(f.get("name", "")).lower()]
    for f in candidates:
        for col in (f.get("name"), f.get("source")):
            if isinstance(col, str) and col in frame.columns:
                temp = (col, str(f.get("unit") if col == f.get("name") else f.get("source_unit") or ""))
                break
        if temp:
            break
    return {"ref": ref, "pred": pred, "std": std, "group": group, "temp": temp}


def sweep_params(sweep: Mapping[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """``[(param, space entry or None)]``: the space's params first, then any others seen."""
    space = sweep.get("space") if isinstance(sweep.get("space"), Mapping) else {}
    out: list[tuple[str, dict[str, Any] | None]] = [
        (str(k), dict(v) if isinstance(v, Mapping) else None) for k, v in space.items()]
    seen = {k for k, _ in out}
    for r in leaderboard_rows(sweep):
        for k in r["params"]:
            if k not in seen:
                seen.add(k)
                out.append((k, None))
    return out


def leaderboard_rows(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = sweep.get("leaderboard") if isinstance(sweep, Mapping) else None
    out = []
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, Mapping) and as_number(r.get("mae")) is not None:
            p = r.get("params")
            out.append({**r, "params": dict(p) if isinstance(p, Mapping) else {}})
    return out


def param_kind(name: str, spec: Mapping[str, Any] | None, values: Sequence[Any]) -> str:
    """``log``, ``linear`` or ``categorical`` axis for a parameter."""
    if spec is not None and "choices" in spec:
        return "categorical"
    nums = [as_number(v) for v in values]
    if any(v is None for v in nums):
        return "categorical"
    if spec is not None and ("low" in spec or "high" in spec):
        return "log" if spec.get("log") else "linear"
    if name in _LOG_NAMES and nums and min(nums) > 0:  # no space known: calib's default
        return "log"
    return "linear"


