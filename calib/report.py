"""Self-contained HTML reports of a calibration artifact or of a hyperparameter sweep.

artifact (``calibration.json`` + ``test_predictions.csv``) or sweep record -> one HTML file.

The file holds everything it shows: figures are PNG images drawn with matplotlib's Agg
canvas and embedded as base64 ``data:`` URIs, the style sheet is inline, and there is no
script, web font or link to anything outside the file, so it opens the same offline, in a
mail attachment or in an archive years later. Every text taken from the metadata is
HTML-escaped.

An artifact report has the sections (``<section id=...>``, in this order)
``metadata`` (ids, versions, data checksum, inputs with units and calibrated ranges),
``cv-metrics`` (k-fold metrics of the network beside the classical baseline, and both on the
test part), ``diagnosis`` (bias / variance / dev-overfitting against the noise floor),
``learning-curves`` (per fold, training vs dev loss, log scale, kept epoch marked),
``parity`` and ``residuals`` (test part, coloured by group, fold-model spread as error
bars), ``leaderboard`` and ``hyperparameters`` (the sweep: score vs each searched
parameter, log x-axis for log ranges, strip plots for choices). A sweep record alone gives
only the last two.

Matplotlib's pyplot is never used: figures are plain :class:`matplotlib.figure.Figure`
objects on their own Agg canvas, so reports can be drawn from several threads at once and
the global backend of the caller is left alone. Importing this module imports neither
matplotlib nor TensorFlow.

Examples
--------
>>> write_report("models/foil-A", Path("report.html"))         # doctest: +SKIP
>>> write_report("runs/foil-A/sweep-1d41.journal", Path("sweep.html"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import ArtifactError, CalibError, ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "SECTION_IDS",
    "SWEEP_SECTION_IDS",
    "build_report",
    "write_report",
    "render_report",
    "artifact_report",
    "report_figures",
]

#: Section ids of an artifact report, in page order.
SECTION_IDS = ("metadata", "cv-metrics", "diagnosis", "learning-curves", "parity", "residuals",
               "leaderboard", "hyperparameters")
#: Section ids of a report of a sweep record alone.
SWEEP_SECTION_IDS = ("leaderboard", "hyperparameters")

_NAV = {"metadata": "Artifact", "cv-metrics": "Metrics", "diagnosis": "Diagnosis",
        "learning-curves": "Learning curves", "parity": "Parity", "residuals": "Residuals",
        "leaderboard": "Leaderboard", "hyperparameters": "Hyperparameters"}
_TITLES = {
    "metadata": "Artifact",
    "cv-metrics": "Metrics: network vs classical baseline",
    "diagnosis": "Bias / variance diagnosis",
    "learning-curves": "Learning curves",
    "parity": "Predicted vs reference (test part)",
    "residuals": "Residuals (test part)",
    "leaderboard": "Sweep leaderboard",
    "hyperparameters": "Score vs hyperparameters",
}
_METRICS = (("mae", "MAE", True), ("rmse", "RMSE", True), ("max_abs", "max |error|", True),
            ("r2", "R\u00b2", False), ("ela", "within tolerance", False))
#: Rows of the leaderboard table shown (the plots show every completed trial).
LEADERBOARD_ROWS = 25
_DPI = 96
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")
_LOG_NAMES = ("learning_rate", "l1", "l2", "decay_rate", "init_stddev", "epsilon")  # sweep.LOG_BY_DEFAULT
_REPORT_FILE = "report.html"
_PRED_FILE = "test_predictions.csv"

_CSS = """
:root{--ink:#1d2330;--muted:#5b6475;--line:#e3e7ee;--bg:#f6f8fb;--card:#fff;--accent:#2b6cb0;
--good:#2f855a;--warn:#b7791f;--bad:#c53030}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 -apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"DejaVu Sans",sans-serif}
header{background:#1d2b45;color:#fff;padding:28px 0 22px}
.wrap{max-width:1120px;margin:0 auto;padding:0 24px}
h1{margin:0 0 4px;font-size:26px;font-weight:600}
header .sub{color:#c9d3e6;font-size:13px}
header .sub code{color:#fff}
nav{background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
nav a{display:inline-block;padding:9px 10px;color:var(--accent);text-decoration:none;font-size:13px}
nav a:hover{background:var(--bg)}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin-top:18px}
.kpi{background:rgba(255,255,255,.1);border-radius:8px;padding:10px 14px;min-width:150px}
.kpi .v{font-size:21px;font-weight:600}
.kpi .l{font-size:12px;color:#c9d3e6}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;margin:18px 0;
padding:6px 22px 18px}
h2{font-size:18px;margin:14px 0 10px;font-weight:600}
h3{font-size:14px;margin:16px 0 6px;color:var(--muted);font-weight:600}
p.note{color:var(--muted);margin:6px 0}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:var(--bg);font-weight:600;border-bottom:2px solid var(--line)}
th.c{text-align:center}
th small{font-weight:400;color:var(--muted)}
tbody tr:nth-child(even){background:#fafbfd}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.best td{background:#ebf4ff}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.mono{word-break:break-all}
table.metrics td:first-child,table.metrics th:first-child{white-space:nowrap}
.wide{overflow-x:auto}
figure{margin:8px 0;text-align:center}
figure img{max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:8px}
.verdict{border-left:5px solid var(--warn);background:#fffaf0;padding:10px 14px;margin:10px 0;
border-radius:4px}
.verdict.good{border-color:var(--good);background:#f0fff4}
.verdict.bad{border-color:var(--bad);background:#fff5f5}
.kv th{color:var(--muted);font-weight:500;white-space:nowrap}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:0 28px}
details summary{cursor:pointer;color:var(--accent);margin:6px 0}
footer{color:var(--muted);font-size:12px;padding:8px 0 30px}
"""


# --------------------------------------------------------------------------- small helpers
def _e(x: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attribute values)."""
    return html.escape("" if x is None else str(x), quote=True)


def _num(v: Any) -> float | None:
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


def _fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (whole numbers below 1e7 without exponent);
    an em dash when missing or not finite. Escaped HTML."""
    x = _num(v)
    if x is None:
        return "\u2014" if v is None or isinstance(v, (int, float)) else _e(v)
    if x == round(x) and abs(x) < 1e7:
        return str(int(round(x)))
    if 10 ** digits <= abs(x) < 1e7:
        return f"{x:.0f}"
    return _e(f"{x:.{digits}g}")


def _fmt_value(v: Any) -> str:
    """A hyperparameter value as plain text (lists as ``[16, 16]``)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return "none" if v is None else str(v)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _mean_std(entry: Any, pct: bool = False) -> str:
    """``mean +/- std`` cell text of a ``{mean, std}`` entry."""
    m, s = _num(_get(entry, "mean")), _num(_get(entry, "std"))
    if m is None:
        return "\u2014"
    k = 100.0 if pct else 1.0
    return _fmt(m * k) + ("" if s is None else f" \u00b1 {_fmt(s * k, 2)}")


def _single(v: Any, pct: bool = False) -> str:
    x = _num(v)
    return "\u2014" if x is None else _fmt(x * (100.0 if pct else 1.0))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
           row_class: Sequence[str] | None = None, cls: str = "") -> str:
    """An HTML table; ``head`` and ``rows`` are already-escaped HTML fragments."""
    num = set(numeric)
    th = "".join(f'<th class="n">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(head))
    body = []
    for r, row in enumerate(rows):
        rc = f' class="{row_class[r]}"' if row_class and row_class[r] else ""
        tds = "".join(f'<td class="n">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{rc}>{tds}</tr>")
    c = f' class="{cls}"' if cls else ""
    return f'<div class="wide"><table{c}><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    """A two-column key/value table; values are already-escaped HTML."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _img(fig: Figure, alt: str, caption: str | None = None, attrs: Mapping[str, str] | None = None) -> str:
    """The figure as an ``<img>`` with a base64 PNG ``data:`` URI inside a ``<figure>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    w, h = (int(round(v)) for v in fig.get_size_inches() * _DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    extra = "".join(f' data-{_e(k)}="{_e(v)}"' for k, v in (attrs or {}).items())
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
            f'alt="{_e(alt)}"{extra}>{cap}</figure>')


def _new_figure(w: float, h: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, color="#e3e7ee", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _unit(meta: Mapping[str, Any]) -> str:
    return str(_get(meta, "target", "unit") or _get(meta, "cv", "unit") or "")


def _with_unit(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


# --------------------------------------------------------------------------- figures
def _fold_curves(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    folds = _get(meta, "cv", "folds")
    out = []
    for i, f in enumerate(folds if isinstance(folds, list) else []):
        if not isinstance(f, Mapping):
            continue
        tr = [_num(v) for v in f.get("train_loss") or []]
        dv = [_num(v) for v in f.get("dev_loss") or []]
        if tr or dv:
            out.append({"fold": f.get("fold", i), "train": tr, "dev": dv, "best": _num(f.get("best_epoch"))})
    return out


def _fig_learning_curves(meta: Mapping[str, Any]) -> Figure | None:
    curves = _fold_curves(meta)
    if not curves:
        return None
    n = len(curves)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(3.6 * ncols + 0.4, 2.7 * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, c in enumerate(curves):
        ax = axes[k // ncols][k % ncols]
        _style(ax)
        for key, color, ls, label in (("train", _PALETTE[0], "-", "train"), ("dev", _PALETTE[1], "--", "dev")):
            ys = [(i + 1, v) for i, v in enumerate(c[key]) if v is not None and v > 0]
            if ys:
                ax.plot([p[0] for p in ys], [p[1] for p in ys], ls, color=color, lw=1.4, label=label)
        if c["best"] is not None:
            ax.axvline(c["best"], color="#c53030", lw=1, ls=":", label=f"kept epoch {int(c['best'])}")
        if ax.has_data():
            ax.set_yscale("log")
        ax.set_title(f"fold {c['fold']}", fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("loss (scaled units)", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    return fig


def _prediction_columns(meta: Mapping[str, Any], frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """Reference, predicted, std, group and temperature columns of the test predictions."""
    if frame is None or len(frame) == 0:
        return None
    target = _get(meta, "target", "name") or _get(meta, "cv", "target")
    if not isinstance(target, str):
        return None
    ref, pred = target, f"{target}_pred"
    if ref not in frame.columns or pred not in frame.columns:
        return None
    std = f"{target}_std" if f"{target}_std" in frame.columns else None
    group = _get(meta, "data", "group")
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


def _groups(frame: pd.DataFrame, group: str | None) -> list[tuple[str | None, Any]]:
    """``[(label, row mask)]``: one entry per group (sorted), or one for all rows."""
    import numpy as np

    if group is None:
        return [(None, np.ones(len(frame), dtype=bool))]
    g = frame[group].astype(str).to_numpy()
    return [(str(v), g == v) for v in sorted(set(g))]


def _scatter_groups(ax: Any, frame: pd.DataFrame, cols: Mapping[str, Any], x: Any, y: Any, legend: bool) -> None:
    import numpy as np

    std = frame[cols["std"]].to_numpy(dtype=float) if cols["std"] else None
    groups = _groups(frame, cols["group"])
    for k, (label, mask) in enumerate(groups):
        color = _PALETTE[k % len(_PALETTE)]
        lab = None if label is None else f"{cols['group']} {label}"
        if std is not None:
            ax.errorbar(x[mask], y[mask], yerr=np.where(np.isfinite(std[mask]), std[mask], 0.0), fmt="o",
                        ms=3.5, color=color, ecolor=color, elinewidth=0.8, alpha=0.8, capsize=0, label=lab)
        else:
            ax.plot(x[mask], y[mask], "o", ms=3.5, color=color, alpha=0.8, label=lab)
    if legend and cols["group"] is not None and len(groups) <= 12:
        ax.legend(fontsize=8, frameon=False, loc="upper left")


def _fig_parity(meta: Mapping[str, Any], frame: pd.DataFrame | None) -> Figure | None:
    import numpy as np

    cols = _prediction_columns(meta, frame)
    if cols is None:
        return None
    unit = _unit(meta)
    ref = frame[cols["ref"]].to_numpy(dtype=float)
    pred = frame[cols["pred"]].to_numpy(dtype=float)
    fig = _new_figure(5.6, 5.2)
    ax = fig.add_subplot()
    _style(ax)
    finite = np.concatenate([ref[np.isfinite(ref)], pred[np.isfinite(pred)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.04 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="#555", lw=1, label="1:1")
    _scatter_groups(ax, frame, cols, ref, pred, legend=True)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(_with_unit(f"reference {cols['ref']}", unit), fontsize=9)
    ax.set_ylabel(_with_unit(f"predicted {cols['ref']}", unit), fontsize=9)
    return fig


def _fig_residuals(meta: Mapping[str, Any], frame: pd.DataFrame | None) -> Figure | None:
    cols = _prediction_columns(meta, frame)
    if cols is None:
        return None
    unit = _unit(meta)
    ref = frame[cols["ref"]].to_numpy(dtype=float)
    res = frame[cols["pred"]].to_numpy(dtype=float) - ref
    panels: list[tuple[Any, str]] = [(ref, _with_unit(f"reference {cols['ref']}", unit))]
    if cols["temp"] is not None:
        tcol, tunit = cols["temp"]
        panels.append((frame[tcol].to_numpy(dtype=float), _with_unit(tcol, tunit)))
    fig = _new_figure(5.2 * len(panels) + 0.4, 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for k, (x, label) in enumerate(panels):
        ax = axes[k]
        _style(ax)
        ax.axhline(0.0, color="#555", lw=1)
        _scatter_groups(ax, frame, cols, x, res, legend=False)
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel(_with_unit("predicted \u2212 reference", unit), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if cols["group"] is not None and 0 < len(labels) <= 12:  # one legend above both panels, off the data
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), fontsize=8,
                   frameon=False)
    return fig


def _sweep_params(sweep: Mapping[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """``[(param, space entry or None)]``: the space's params first, then any others seen."""
    space = sweep.get("space") if isinstance(sweep.get("space"), Mapping) else {}
    out: list[tuple[str, dict[str, Any] | None]] = [
        (str(k), dict(v) if isinstance(v, Mapping) else None) for k, v in space.items()]
    seen = {k for k, _ in out}
    for r in _leaderboard_rows(sweep):
        for k in r["params"]:
            if k not in seen:
                seen.add(k)
                out.append((k, None))
    return out


def _leaderboard_rows(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = sweep.get("leaderboard") if isinstance(sweep, Mapping) else None
    out = []
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, Mapping) and _num(r.get("mae")) is not None:
            p = r.get("params")
            out.append({**r, "params": dict(p) if isinstance(p, Mapping) else {}})
    return out


def _param_kind(name: str, spec: Mapping[str, Any] | None, values: Sequence[Any]) -> str:
    """``log``, ``linear`` or ``categorical`` axis for a parameter."""
    if spec is not None and "choices" in spec:
        return "categorical"
    nums = [_num(v) for v in values]
    if any(v is None for v in nums):
        return "categorical"
    if spec is not None and ("low" in spec or "high" in spec):
        return "log" if spec.get("log") else "linear"
    if name in _LOG_NAMES and nums and min(nums) > 0:  # no space known: calib's default
        return "log"
    return "linear"


def _fig_param(name: str, spec: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]],
               unit: str) -> tuple[Figure, str] | None:
    import numpy as np

    pts = [(r["params"][name], float(r["mae"]), _num(r.get("mae_std")), r.get("rank"))
           for r in rows if name in r["params"]]
    if not pts:
        return None
    kind = _param_kind(name, spec, [p[0] for p in pts])
    fig = _new_figure(4.3, 3.1)
    ax = fig.add_subplot()
    _style(ax)
    y = np.array([p[1] for p in pts])
    yerr = np.array([p[2] if p[2] is not None else 0.0 for p in pts])
    if kind == "categorical":
        cats: list[str] = []
        if spec is not None and isinstance(spec.get("choices"), list):
            cats = [_fmt_value(c) for c in spec["choices"]]
        for p in pts:
            if _fmt_value(p[0]) not in cats:
                cats.append(_fmt_value(p[0]))
        idx = np.array([cats.index(_fmt_value(p[0])) for p in pts], dtype=float)
        rng = np.random.default_rng(0)  # seeded jitter: the same report for the same data
        x = idx + rng.uniform(-0.15, 0.15, size=len(idx))
        ax.set_xticks(range(len(cats)), labels=cats)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        ax.grid(False, axis="x")
    else:
        x = np.array([float(p[0]) for p in pts])
        if kind == "log":
            ax.set_xscale("log")
        lo, hi = (_num(spec.get("low")), _num(spec.get("high"))) if spec is not None else (None, None)
        if lo is not None and hi is not None and hi > lo and (kind != "log" or lo > 0):
            # the whole searched range, so that the plot shows where the trials fell in it
            if kind == "log":
                pad = (hi / lo) ** 0.04
                ax.set_xlim(lo / pad, hi * pad)
            else:
                pad = 0.04 * (hi - lo)
                ax.set_xlim(lo - pad, hi + pad)
            ax.axvspan(lo, hi, color="#f1f5fb", zorder=0)
    ax.errorbar(x, y, yerr=yerr, fmt="o", ms=4.5, color=_PALETTE[0], ecolor="#9bb7d4", elinewidth=0.8,
                capsize=0, alpha=0.85)
    best = [i for i, p in enumerate(pts) if p[3] == 1]
    if best:
        ax.plot(x[best], y[best], "*", ms=13, color="#c53030", zorder=3)
    ax.set_xlabel(name + (" (log scale)" if kind == "log" else ""), fontsize=9)
    ax.set_ylabel(_with_unit("CV MAE", unit), fontsize=9)
    return fig, kind


def report_figures(metadata: Mapping[str, Any], test_predictions: pd.DataFrame | None = None) -> dict[str, Figure]:
    """The report's figures, unrendered, for inspection or reuse.

    Parameters
    ----------
    metadata : mapping
        ``calibration.json`` content (or ``{"target": {"unit": ...}, "sweep": {...}}`` for a
        sweep alone).
    test_predictions : pandas.DataFrame, optional
        ``test_predictions.csv`` of the artifact.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``learning-curves``, ``parity``, ``residuals`` and ``hyperparameters/<param>`` for each
        swept parameter; a figure is left out when its data are missing.
    """
    out: dict[str, Figure] = {}
    for key, fig in (("learning-curves", _fig_learning_curves(metadata)),
                     ("parity", _fig_parity(metadata, test_predictions)),
                     ("residuals", _fig_residuals(metadata, test_predictions))):
        if fig is not None:
            out[key] = fig
    sweep = metadata.get("sweep") if isinstance(metadata.get("sweep"), Mapping) else {}
    rows = _leaderboard_rows(sweep)
    for name, spec in _sweep_params(sweep):
        made = _fig_param(name, spec, rows, _unit(metadata))
        if made is not None:
            out[f"hyperparameters/{name}"] = made[0]
    return out


# --------------------------------------------------------------------------- sections
def _section(sid: str, body: str, title: str | None = None) -> str:
    return f'<section id="{_e(sid)}"><h2>{_e(title or _TITLES[sid])}</h2>{body}</section>'


def _sec_metadata(meta: Mapping[str, Any]) -> str:
    data = meta.get("data") if isinstance(meta.get("data"), Mapping) else {}
    split = meta.get("split") if isinstance(meta.get("split"), Mapping) else {}
    ident = [
        ("name", _e(meta.get("name"))),
        ("version", _e(meta.get("version"))),
        ("model id", f'<span class="mono">{_e(meta.get("model_id"))}</span>'),
        ("created (UTC)", _e(meta.get("created_utc"))),
        ("schema version", _e(meta.get("schema_version"))),
    ]
    onnx = meta.get("onnx") if isinstance(meta.get("onnx"), Mapping) else {}
    if onnx:
        ident.append(("ONNX outputs", _e(", ".join(map(str, onnx.get("outputs") or [])))
                      + f" (opset {_e(onnx.get('opset'))}, {_e(onnx.get('n_fold_models'))} fold models)"))
    dat = [
        ("data file", f"<code>{_e(data.get('file'))}</code>"),
        ("data SHA-256", f'<span class="mono">{_e(data.get("sha256"))}</span>'),
        ("rows", _e(data.get("rows")) + (f" ({_e(data.get('rows_used'))} used by the final model)"
                                         if data.get("rows_used") is not None else "")),
        ("group column", _e(data.get("group") or "none")),
    ]
    if split:
        dat.append(("split", _e(", ".join(f"{k}={v}" for k, v in split.items()))))
    groups = _get(meta, "test", "groups")
    if isinstance(groups, list) and groups:
        dat.append(("held-out test groups", _e(", ".join(map(str, groups)))))
    versions = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    ver = [(str(k), _e(v)) for k, v in versions.items()]

    rows = []
    feats = meta.get("features") if isinstance(meta.get("features"), list) else []
    entries = [(f"input {i}", f) for i, f in enumerate(feats)]
    if isinstance(meta.get("target"), Mapping):
        entries.append(("target", meta["target"]))
    for a in meta.get("aux_targets") or []:
        entries.append(("auxiliary target", a))
    for role, f in entries:
        if not isinstance(f, Mapping):
            continue
        src = f"{f.get('source', f.get('name'))} ({f.get('source_unit', f.get('unit'))})"
        freq = _num(f.get("frequency_hz"))
        rows.append([_e(role), f"<code>{_e(f.get('name'))}</code>", _e(f.get("unit")), _e(src),
                     "" if freq is None else _fmt(freq), _fmt(f.get("min")), _fmt(f.get("max"))])
    feats_html = (_table(["role", "name", "unit", "from column (unit)", "frequency (Hz)", "min", "max"], rows,
                         numeric=(4, 5, 6))
                  + _note("min and max: the calibrated range, i.e. the values seen in training (inclusive); "
                          "outside it the network extrapolates without warning."))
    hp = meta.get("hyperparameters") if isinstance(meta.get("hyperparameters"), Mapping) else {}
    hp_html = _kv([(str(k), _e(_fmt_value(v))) for k, v in hp.items()]) if hp else _note("none recorded")
    return (f'<div class="cols"><div><h3>Identity</h3>{_kv(ident)}<h3>Software</h3>'
            f'{_kv(ver) if ver else _note("not recorded")}</div>'
            f"<div><h3>Data</h3>{_kv(dat)}</div></div>"
            f"<h3>Inputs and calibrated ranges</h3>{feats_html}"
            f"<details><summary>Hyperparameters of the final model ({len(hp)})</summary>{hp_html}</details>")


def _baseline_label(meta: Mapping[str, Any]) -> tuple[str, str | None]:
    kind = _get(meta, "baseline", "kind")
    if isinstance(kind, str) and kind.startswith("failed"):
        return "classical baseline", kind
    return (f"classical baseline ({kind})" if kind else "classical baseline"), None


def _sec_cv_metrics(meta: Mapping[str, Any]) -> str:
    unit = _unit(meta)
    summ = _get(meta, "cv", "summary") or {}
    test = meta.get("test") if isinstance(meta.get("test"), Mapping) else {}
    btest = _get(meta, "baseline", "test")
    btest = btest if isinstance(btest, Mapping) else {}
    bcv = _get(summ, "baseline_val") or _get(meta, "baseline", "cv") or {}
    blabel, bfail = _baseline_label(meta)
    tol = _num(test.get("tolerance"))
    if not summ and not test:
        return _note("This artifact records no cross-validation or test metrics.")
    rows = []
    for key, label, has_unit in _METRICS:
        pct = key == "ela"
        if pct:
            label = f"within \u00b1{_fmt(tol)} {unit} (%)" if tol is not None else "within tolerance (%)"
        elif has_unit:
            label = _with_unit(label, unit)
        rows.append([
            _e(label),
            _mean_std(_get(summ, "val", key), pct), _mean_std(_get(bcv, key), pct),
            _single(test.get(key), pct), _single(btest.get(key), pct),
            _mean_std(_get(summ, "train", key), pct),
        ])
    k = _get(meta, "cv", "n_folds")
    by = " by group" if _get(meta, "cv", "group_kfold") else ""
    n_test = test.get("rows", test.get("n"))
    bshort = f"baseline ({_get(meta, 'baseline', 'kind')})" if not bfail and _get(meta, "baseline", "kind") \
        else "baseline"
    top = (f'<tr><th rowspan="2">metric</th>'
           f'<th colspan="2" class="c">k-fold CV, validation folds<br><small>mean \u00b1 std over '
           f"{_e(k)} folds{by}</small></th>"
           f'<th colspan="2" class="c">test part<br><small>{_e(n_test)} held-out rows, evaluated once</small></th>'
           f'<th class="c">CV, training<br><small>mean \u00b1 std</small></th></tr>'
           f'<tr><th class="n">network</th><th class="n">{_e(bshort)}</th><th class="n">network</th>'
           f'<th class="n">{_e(bshort)}</th><th class="n">network</th></tr>')
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" if i == 0 else f'<td class="n">{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    out = f'<div class="wide"><table class="metrics"><thead>{top}</thead><tbody>{body}</tbody></table></div>'
    m, b = _num(test.get("mae")), _num(btest.get("mae"))
    if m is not None and b is not None and b > 0:
        word = "below" if m < b else "above"
        out += (f'<p>On the test part the network\u2019s MAE is <b>{_fmt(m / b, 3)}\u00d7</b> the classical '
                f"baseline\u2019s ({_fmt(m)} vs {_fmt(b)} {_e(unit)}, {word} it).</p>")
    if bfail:
        out += _note(f"The classical baseline could not be fitted: {bfail}")
    sm = _num(test.get("std_mean"))
    if sm is not None:
        out += _note(f"Mean spread of the fold models on the test rows (the {_get(meta, 'target', 'name')}_std "
                     f"output): {_fmt(sm)} {unit}.")
    folds = _get(meta, "cv", "folds")
    if isinstance(folds, list) and folds:
        frows = []
        for i, f in enumerate(folds):
            if not isinstance(f, Mapping):
                continue
            frows.append([_e(f.get("fold", i)), _fmt(f.get("n_train")), _fmt(f.get("n_val")),
                          _fmt(_get(f, "val", "mae")), _fmt(_get(f, "train", "mae")),
                          _fmt(_get(f, "baseline_val", "mae")), _fmt(f.get("best_epoch")),
                          _fmt(f.get("seconds"), 3)])
        out += ("<details><summary>Per fold</summary>"
                + _table(["fold", "train rows", "val rows", _e(_with_unit("val MAE", unit)),
                          _e(_with_unit("train MAE", unit)), _e(_with_unit("baseline val MAE", unit)),
                          "kept epoch", "seconds"], frows, numeric=range(1, 8))
                + "</details>")
    return out


def _verdict_class(verdict: str) -> str:
    v = verdict.lower()
    if v.startswith("near the noise floor"):
        return "verdict good"
    if v.startswith(("dev overfitting", "high")):
        return "verdict bad" if v.startswith("dev overfitting") else "verdict"
    return "verdict"


def _sec_diagnosis(meta: Mapping[str, Any]) -> str:
    d = meta.get("diagnosis") if isinstance(meta.get("diagnosis"), Mapping) else _get(meta, "cv", "diagnosis")
    unit = _unit(meta)
    if not isinstance(d, Mapping):
        floor = _num(meta.get("noise_floor"))
        return _note("No diagnosis recorded." + (f" Noise floor: {floor:.4g} {unit}." if floor is not None else ""))
    verdict = str(d.get("verdict") or "")
    src = d.get("noise_floor_source")
    rows = [
        ["noise floor (best achievable MAE)", _fmt(d.get("noise_floor")), _e(f"source: {src}" if src else "")],
        ["training MAE (CV mean)", _fmt(d.get("train_mae")), ""],
        ["validation MAE (CV mean)", _fmt(d.get("val_mae")), ""],
        ["test MAE", _fmt(d.get("test_mae")), ""],
        ["avoidable bias", _fmt(d.get("avoidable_bias")), "training \u2212 noise floor"],
        ["variance", _fmt(d.get("variance")), "validation \u2212 training"],
        ["dev overfitting", _fmt(d.get("dev_overfitting")), "test \u2212 validation"],
    ]
    head, _, rest = verdict.partition(":")
    text = f"<b>{_e(head)}</b>" + (f": {_e(rest.strip())}" if rest else "")
    return (f'<div class="{_verdict_class(verdict)}">{text}</div>'
            + _table(["quantity", _e(_with_unit("MAE", unit)), "how"], [[_e(r[0]), r[1], _e(r[2])] for r in rows],
                     numeric=(1,)))


def _sec_learning_curves(meta: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    fig = figs.get("learning-curves")
    if fig is None:
        return _note("No learning curves recorded (the cross-validation folds keep no per-epoch losses).")
    return _img(fig, "learning curves: training and dev loss per epoch for each fold",
                "Data loss per epoch in scaled units (log scale): training rows (solid) vs the dev part "
                "that drives early stopping, or the validation fold when early stopping is off (dashed); "
                "the dotted line marks the epoch whose weights were kept.")


def _sec_parity(meta: Mapping[str, Any], figs: Mapping[str, Figure], frame: pd.DataFrame | None) -> str:
    fig = figs.get("parity")
    if fig is None:
        return _note("No test predictions in this artifact (test_predictions.csv is missing or lacks the "
                     "reference and predicted columns).")
    cols = _prediction_columns(meta, frame) or {}
    cap = "Each point is a test reading; the line is 1:1"
    cap += (", error bars: standard deviation across the fold models." if cols.get("std") else ".")
    return _img(fig, "parity plot: predicted vs reference on the test part", cap)


def _sec_residuals(meta: Mapping[str, Any], figs: Mapping[str, Figure], frame: pd.DataFrame | None) -> str:
    fig = figs.get("residuals")
    if fig is None:
        return _note("No test predictions in this artifact.")
    cols = _prediction_columns(meta, frame) or {}
    cap = "Residual = predicted \u2212 reference, against the reference O2"
    cap += " and against temperature" if cols.get("temp") else " (no temperature input found)"
    cap += "; error bars: fold-model spread." if cols.get("std") else "."
    return _img(fig, "residuals vs reference O2 and vs temperature on the test part", cap)


def _sec_leaderboard(sweep: Mapping[str, Any], unit: str) -> str:
    rows = _leaderboard_rows(sweep)
    info = [(k, _e(sweep.get(k))) for k in ("strategy", "study_name", "storage") if sweep.get(k)]
    n_trials = sweep.get("trials")
    info.append(("trials", _e(f"{n_trials if n_trials is not None else len(rows)} recorded, {len(rows)} completed")))
    failed = sweep.get("failed")
    if isinstance(failed, list) and failed:
        info.append(("failed", _e("; ".join(failed[:3]) + (" ..." if len(failed) > 3 else ""))))
    out = _kv(info)
    if not rows:
        return out + _note("No completed trials recorded.")
    names: list[str] = [n for n, _ in _sweep_params(sweep)]
    head = ["rank", "trial", _e(_with_unit("CV MAE", unit)), "seconds", "kept epochs", *(_e(n) for n in names)]
    body, classes = [], []
    for r in rows[:LEADERBOARD_ROWS]:
        std = _num(r.get("mae_std"))
        epochs = r.get("best_epochs")
        body.append([_e(r.get("rank")), _e(r.get("number")),
                     _fmt(r.get("mae")) + ("" if std is None else f" \u00b1 {_fmt(std, 2)}"),
                     _fmt(r.get("seconds"), 3),
                     _e(", ".join(map(str, epochs)) if isinstance(epochs, list) else ""),
                     *(_e(_fmt_value(r["params"][n])) if n in r["params"] else "" for n in names)])
        classes.append("best" if r.get("rank") == 1 else "")
    out += _table(head, body, numeric=(0, 1, 2, 3), row_class=classes)
    if len(rows) > LEADERBOARD_ROWS:
        out += _note(f"{len(rows) - LEADERBOARD_ROWS} more completed trial(s) not listed; the plots below show all.")
    return out


def _sec_hyperparameters(sweep: Mapping[str, Any], unit: str, figs: Mapping[str, Figure]) -> str:
    rows = _leaderboard_rows(sweep)
    if not rows:
        return _note("No completed trials to plot.")
    imgs = []
    for name, spec in _sweep_params(sweep):
        fig = figs.get(f"hyperparameters/{name}")
        if fig is None:
            continue
        kind = _param_kind(name, spec, [r["params"][name] for r in rows if name in r["params"]])
        imgs.append(_img(fig, f"CV MAE vs {name}", None,
                         {"param": name, "xscale": "log" if kind == "log" else kind}))
    if not imgs:
        return _note("The completed trials record no hyperparameter values.")
    return (f'<div class="grid">{"".join(imgs)}</div>'
            + _note("Each point is a completed trial (mean validation MAE over the folds, bars: std over folds); "
                    "the red star is the best trial. The shaded band is the searched range; log ranges use a "
                    "log x-axis; choices are shown as strips."))


def _page(title: str, sub: str, kpis: Sequence[tuple[str, str]], sections: Sequence[tuple[str, str]],
          footer: str) -> str:
    nav = "".join(f'<a href="#{_e(sid)}">{_e(_NAV[sid])}</a>' for sid, _ in sections)
    k = "".join(f'<div class="kpi"><div class="v">{v}</div><div class="l">{_e(lab)}</div></div>' for lab, v in kpis)
    body = "".join(_section(sid, html_) for sid, html_ in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="generator" content="calib">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f'<header><div class="wrap"><h1>{_e(title)}</h1><div class="sub">{sub}</div>'
            + (f'<div class="kpis">{k}</div>' if kpis else "")
            + f'</div></header><nav><div class="wrap">{nav}</div></nav>'
            f'<main class="wrap">{body}</main><footer class="wrap">{footer}</footer></body></html>\n')


def _close(figs: Mapping[str, Figure]) -> None:
    for fig in figs.values():
        fig.clear()


def render_report(metadata: Mapping[str, Any], test_predictions: pd.DataFrame | None = None) -> str:
    """The HTML report of an artifact, from its metadata and test predictions (pure).

    Parameters
    ----------
    metadata : mapping
        The content of ``calibration.json`` (as :func:`calib.artifact.export_artifact` writes
        it, or the metadata given to it). Missing entries give a note in their section,
        never an error.
    test_predictions : pandas.DataFrame, optional
        ``test_predictions.csv``: the inputs, ``<target>`` (reference), ``<target>_pred``,
        ``<target>_std`` (fold-model spread) and the group column; without it the parity and
        residual sections say so.

    Returns
    -------
    str
        A complete, self-contained HTML document with the sections :data:`SECTION_IDS`.
    """
    meta = metadata if isinstance(metadata, Mapping) else {}
    frame = test_predictions
    unit = _unit(meta)
    figs = report_figures(meta, frame)
    try:
        sweep = meta.get("sweep") if isinstance(meta.get("sweep"), Mapping) else {}
        sections = [
            ("metadata", _sec_metadata(meta)),
            ("cv-metrics", _sec_cv_metrics(meta)),
            ("diagnosis", _sec_diagnosis(meta)),
            ("learning-curves", _sec_learning_curves(meta, figs)),
            ("parity", _sec_parity(meta, figs, frame)),
            ("residuals", _sec_residuals(meta, figs, frame)),
            ("leaderboard", _sec_leaderboard(sweep, unit) if sweep else _note("This artifact records no sweep.")),
            ("hyperparameters", _sec_hyperparameters(sweep, unit, figs) if sweep else _note("No sweep.")),
        ]
    finally:
        _close(figs)
    name, version = meta.get("name"), meta.get("version")
    title = "Calibration report" + (f": {name}" if name else "") + (f" {version}" if version else "")
    target = _get(meta, "target", "name")
    sub = " \u00b7 ".join(x for x in (
        f"target <code>{_e(target)}</code> in {_e(unit)}" if target else "",
        f"created {_e(meta.get('created_utc'))} UTC" if meta.get("created_utc") else "",
        f"model id <code>{_e(meta.get('model_id'))}</code>" if meta.get("model_id") else "") if x)
    test, btest = meta.get("test") if isinstance(meta.get("test"), Mapping) else {}, _get(meta, "baseline", "test")
    kpis = []
    if _num(_get(test, "mae")) is not None:
        kpis.append((_with_unit("test MAE", unit), _fmt(test["mae"])))
    if _num(_get(btest, "mae")) is not None:
        kpis.append((_with_unit("baseline test MAE", unit), _fmt(btest["mae"])))
    cvm = _get(meta, "cv", "summary", "val", "mae")
    if _num(_get(cvm, "mean")) is not None:
        kpis.append((_with_unit("CV MAE", unit), _mean_std(cvm)))
    floor = _num(meta.get("noise_floor"))
    if floor is not None:
        kpis.append((_with_unit("noise floor", unit), _fmt(floor)))
    calib_v = _get(meta, "versions", "calib")
    footer = _e(f"Written by calib {calib_v}." if calib_v else "Written by calib.") + (
        " Self-contained: figures are embedded; nothing is loaded from elsewhere.")
    return _page(title, sub, kpis, sections, footer)


def _render_sweep(sweep: Mapping[str, Any], unit: str) -> str:
    meta = {"target": {"unit": unit}, "sweep": sweep}
    figs = report_figures(meta)
    try:
        sections = [("leaderboard", _sec_leaderboard(sweep, unit)),
                    ("hyperparameters", _sec_hyperparameters(sweep, unit, figs))]
    finally:
        _close(figs)
    rows = _leaderboard_rows(sweep)
    kpis = []
    if rows:
        kpis.append((_with_unit("best CV MAE", unit), _fmt(rows[0]["mae"])))
    kpis.append(("completed trials", _e(len(rows))))
    sub = " \u00b7 ".join(x for x in (
        f"study <code>{_e(sweep.get('study_name'))}</code>" if sweep.get("study_name") else "",
        f"record <code>{_e(sweep.get('storage'))}</code>" if sweep.get("storage") else "",
        f"strategy {_e(sweep.get('strategy'))}" if sweep.get("strategy") else "") if x)
    return _page("Sweep report", sub, kpis, sections,
                 "Written by calib. Self-contained: figures are embedded; nothing is loaded from elsewhere.")


# --------------------------------------------------------------------------- sources
def _failed(trials: Sequence[Any]) -> list[str]:
    out = []
    for t in trials:
        state = t.get("state") if isinstance(t, Mapping) else getattr(t, "state", None)
        reason = t.get("reason") if isinstance(t, Mapping) else getattr(t, "reason", None)
        number = t.get("number") if isinstance(t, Mapping) else getattr(t, "number", None)
        if state == "FAIL":
            out.append(f"#{number} {str(reason or '').splitlines()[0][:80] if reason else 'failed'}")
    return out


def _sweep_from_storage(spec: str, study_name: str | None) -> tuple[dict[str, Any], str]:
    """Sweep view (leaderboard, space, ...) of a journal file or database URL, and its unit."""
    from . import search as S

    storage = S.storage_spec(spec)
    with S.quiet_optuna():
        if study_name is None:
            import optuna

            names = optuna.get_all_study_names(storage=S.open_storage(storage))
            if not names:
                raise ConfigError(f"storage {S.mask_url(storage)} holds no study")
            study_name = "calib" if "calib" in names or len(names) != 1 else names[0]
            if study_name not in names:
                raise ConfigError(f"storage {S.mask_url(storage)} holds several studies ({', '.join(sorted(names))}); "
                                  "name one with study_name")
        result = S.load_result(storage, study_name)
        space = dict(S.open_study(storage, study_name).user_attrs.get("space") or {})
    view = {"strategy": result.strategy, "study_name": result.study_name, "storage": result.storage,
            "trials": len(result.trials), "space": space, "leaderboard": S.leaderboard(result),
            "failed": _failed(result.trials)}
    return view, result.unit


def _sweep_from_json(path: Path, study_name: str | None) -> tuple[dict[str, Any], str]:
    """Sweep view of ``leaderboard.json``; the space comes from the journal beside it when it exists."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable leaderboard.json ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("leaderboard"), list):
        raise ConfigError(f"{path}: expected a JSON object with a 'leaderboard' list (written by calib sweep)")
    space = doc.get("space") if isinstance(doc.get("space"), Mapping) else None
    storage = doc.get("storage")
    if space is None and isinstance(storage, str) and "://" not in storage and Path(storage).is_file():
        try:
            space = _sweep_from_storage(storage, study_name or doc.get("study_name"))[0]["space"]
        except CalibError:
            space = None
    trials = doc.get("trials") if isinstance(doc.get("trials"), list) else []
    view = {"strategy": doc.get("strategy"), "study_name": doc.get("study_name"), "storage": storage,
            "trials": len(trials) if trials else len(doc["leaderboard"]), "space": space or {},
            "leaderboard": doc["leaderboard"], "failed": _failed(trials)}
    return view, str(doc.get("unit") or "")


def _classify(source: str | os.PathLike[str]) -> tuple[str, Any]:
    """``("artifact", version folder)``, ``("storage", spec)`` or ``("json", leaderboard.json)``."""
    from .artifact.store import METADATA_FILE, REQUIRED_FILES, SUMS_FILE, list_versions, resolve_artifact

    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source).strip():
        raise ConfigError(f"source must be an artifact folder, a sweep journal, a database URL or a folder "
                          f"holding leaderboard.json, got source={source!r}")
    s = os.fspath(source).strip()
    if "://" in s:
        return "storage", s
    p = Path(s)
    if not p.exists():
        raise ConfigError(f"source {s} does not exist (give an artifact folder, a sweep journal, a database URL "
                          "or a folder holding leaderboard.json)")
    if p.is_file():
        if p.name in (*REQUIRED_FILES, SUMS_FILE, _PRED_FILE, _REPORT_FILE) and (
                (p.parent / SUMS_FILE).exists() or (p.parent / METADATA_FILE).exists()):
            return "artifact", resolve_artifact(p.parent)
        if p.name.endswith(".json"):
            return "json", p
        return "storage", str(p)
    if (p / SUMS_FILE).exists() or (p / METADATA_FILE).exists() or list_versions(p):
        return "artifact", resolve_artifact(p)
    if (p / "leaderboard.json").is_file():
        return "json", p / "leaderboard.json"
    journals = sorted(p.glob("*.journal"))
    if len(journals) == 1:
        return "storage", str(journals[0])
    raise ConfigError(f"source {s} is a folder without an artifact, a leaderboard.json or a single *.journal")


def build_report(source: str | os.PathLike[str], *, study_name: str | None = None) -> str:
    """The HTML report of an artifact or of a sweep record.

    Parameters
    ----------
    source : str or path
        An artifact version folder ``models/<name>/<version>``, a name folder
        ``models/<name>`` (its latest version), a sweep journal file, a database URL
        (``sqlite:///runs/sweep.db``) or a folder holding ``leaderboard.json`` (or one
        ``*.journal``).
    study_name : str, optional
        Study inside a sweep storage; default ``calib``, or the only study there.

    Returns
    -------
    str
        A complete, self-contained HTML document: every section of :data:`SECTION_IDS` for an
        artifact, the sections of :data:`SWEEP_SECTION_IDS` for a sweep record.

    Raises
    ------
    IntegrityError
        An artifact file does not match ``SHA256SUMS`` (a report of a modified artifact is refused).
    ArtifactError
        The artifact is malformed, or its ``test_predictions.csv`` cannot be read.
    ConfigError
        ``source`` does not exist or is no artifact or sweep record; the storage holds no such study.
    """
    kind, where = _classify(source)
    if kind == "artifact":
        from .artifact.store import read_metadata, verify_artifact

        verify_artifact(where)
        meta = read_metadata(where)
        frame = None
        pred = Path(where) / _PRED_FILE
        if pred.is_file():
            import pandas as pd

            try:
                frame = pd.read_csv(pred)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise ArtifactError(f"{pred}: cannot read the test predictions ({exc})") from None
        return render_report(meta, frame)
    if kind == "json":
        view, unit = _sweep_from_json(where, study_name)
    else:
        view, unit = _sweep_from_storage(where, study_name)
    return _render_sweep(view, unit)


def _source_files(source: str | os.PathLike[str]) -> tuple[list[Path], Path | None]:
    """Files a report is read from, and the artifact folder (must not be written into)."""
    try:
        kind, where = _classify(source)
    except CalibError:
        return [], None
    if kind == "artifact":
        return [], Path(where)
    if kind == "json":
        return [Path(where)], None
    spec = str(where)
    if "://" in spec:
        tail = spec.split("://", 1)[1]
        return ([Path(tail[1:])] if spec.lower().startswith("sqlite") and tail.startswith("/") else []), None
    return [Path(spec)], None


def write_report(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                 study_name: str | None = None) -> Path:
    """Write the report of ``source`` to ``output`` atomically.

    Parameters
    ----------
    source : str or path
        As for :func:`build_report`.
    output : str or path
        The HTML file to write; its folder is created if missing. An existing file is
        replaced in one step (a crash leaves the old file or the new one, never half of one).
    study_name : str, optional
        As for :func:`build_report`.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    ConfigError
        ``output`` is the source itself, lies inside an artifact folder (it would break the
        artifact's ``SHA256SUMS``) or is a folder; and as :func:`build_report`.
    CalibError
        The file cannot be written.
    """
    from .fsutil import atomic_write

    out = Path(output)
    if out.is_dir():
        raise ConfigError(f"output must be a file path, got output={str(out)!r} (a folder)")
    files, art = _source_files(source)
    target = out.resolve()
    for f in files:
        if f.resolve() == target:
            raise ConfigError(f"output must not overwrite the source, got output={str(out)!r}")
    parent = target.parent
    if (art is not None and (art.resolve() == parent or art.resolve() in parent.parents)) or (
            (parent / "SHA256SUMS").is_file()):
        raise ConfigError(f"output must not be inside an artifact folder (it would break its SHA256SUMS), "
                          f"got output={str(out)!r}")
    text = build_report(source, study_name=study_name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CalibError(f"{out}: cannot create folder {out.parent} ({exc.strerror or exc})") from None
    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")
        os.chmod(p, 0o644)  # a report is for sharing; the temporary file starts private (0600)

    return atomic_write(out, write)


def artifact_report(meta: dict[str, Any], extras: Mapping[str, bytes]) -> bytes:
    """``report.html`` of an artifact being exported (the ``report`` hook of
    :func:`calib.artifact.export_artifact`): :func:`render_report` of the final metadata and
    of ``extras["test_predictions.csv"]`` when given; a short page saying why if the report
    cannot be drawn (the report is informative only: it never sinks the export)."""
    try:
        frame = None
        if "test_predictions.csv" in extras:
            import io

            import pandas as pd

            frame = pd.read_csv(io.BytesIO(extras["test_predictions.csv"]))
        return render_report(meta, frame).encode("utf-8")
    except Exception as exc:  # the report is informative only: it never sinks the export
        import html

        why = html.escape(f"{type(exc).__name__}: {exc}"[:2000])
        name = html.escape(f"{meta.get('name')} {meta.get('version')}")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Calibration report: {name}</title></head><body>"
            f"<h1>Calibration report: {name}</h1><p>The report could not be drawn: {why}</p>"
            f"<p>The metrics are in calibration.json; run <code>calib report</code> on this artifact "
            "to try again.</p></body></html>\n"
        ).encode("utf-8")
