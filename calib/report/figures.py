"""The report's figures: learning curves, parity, residuals and score vs each swept parameter.

Matplotlib's pyplot is never used: figures are plain :class:`matplotlib.figure.Figure` objects
on their own Agg canvas, so reports can be drawn from several threads at once and the global
backend of the caller is left alone. Matplotlib and numpy are imported when a figure is drawn,
not when this module is imported.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .metadata import (as_number, format_value, leaderboard_rows, lookup, param_kind, prediction_columns,
                       sweep_params, target_unit, with_unit)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["DPI", "report_figures", "close_figures", "warm_up"]

#: Resolution of the embedded PNG images (dots per inch).
DPI = 96
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _new_figure(w: float, h: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, color="#e3e7ee", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _fold_curves(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    folds = lookup(meta, "cv", "folds")
    out = []
    for i, f in enumerate(folds if isinstance(folds, list) else []):
        if not isinstance(f, Mapping):
            continue
        tr = [as_number(v) for v in f.get("train_loss") or []]
        dv = [as_number(v) for v in f.get("dev_loss") or []]
        if tr or dv:
            out.append({"fold": f.get("fold", i), "train": tr, "dev": dv, "best": as_number(f.get("best_epoch"))})
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
            vals = [v for key in ("train", "dev") for v in c[key] if v is not None and v > 0]
            if vals and max(vals) >= 100 * min(vals):
                # two decades or more: a labelled tick per decade; the minor ticks (8 a decade) cost
                # half the report's drawing time and add no label
                from matplotlib.ticker import NullLocator

                ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(f"fold {c['fold']}", fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("loss (scaled units)", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    return fig


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
    cols = prediction_columns(meta, frame)
    if cols is None:
        return None
    fig = _new_figure(5.6, 5.2)
    ax = fig.add_subplot()
    _parity_axes(ax, frame, cols, frame[cols["ref"]].to_numpy(dtype=float), frame[cols["pred"]].to_numpy(dtype=float),
                 cols["ref"], target_unit(meta), legend=True)
    ax.set_aspect("equal", adjustable="box")
    return fig


def _parity_axes(ax: Any, frame: pd.DataFrame, cols: Mapping[str, Any], ref: Any, pred: Any, name: str, unit: str,
                 legend: bool) -> None:
    """Predicted vs reference of ``name`` on ``ax``, with the 1:1 line and equal limits."""
    import numpy as np

    _style(ax)
    finite = np.concatenate([ref[np.isfinite(ref)], pred[np.isfinite(pred)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.04 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="#555", lw=1, label="1:1")
    _scatter_groups(ax, frame, cols, ref, pred, legend=legend)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(with_unit(f"reference {name}", unit), fontsize=9)
    ax.set_ylabel(with_unit(f"predicted {name}", unit), fontsize=9)


def _fig_residuals(meta: Mapping[str, Any], frame: pd.DataFrame | None) -> Figure | None:
    cols = prediction_columns(meta, frame)
    if cols is None:
        return None
    unit = target_unit(meta)
    ref = frame[cols["ref"]].to_numpy(dtype=float)
    res = frame[cols["pred"]].to_numpy(dtype=float) - ref
    panels: list[tuple[Any, str]] = [(ref, with_unit(f"reference {cols['ref']}", unit))]
    if cols["temp"] is not None:
        tcol, tunit = cols["temp"]
        panels.append((frame[tcol].to_numpy(dtype=float), with_unit(tcol, tunit)))
    fig = _new_figure(5.2 * len(panels) + 0.4, 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for k, (x, label) in enumerate(panels):
        ax = axes[k]
        _style(ax)
        ax.axhline(0.0, color="#555", lw=1)
        _scatter_groups(ax, frame, cols, x, res, legend=False)
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel(with_unit("predicted \u2212 reference", unit), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if cols["group"] is not None and 0 < len(labels) <= 12:  # one legend above both panels, off the data
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), fontsize=8,
                   frameon=False)
    return fig


def output_names(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(name, unit)]`` of every output: the target, then the auxiliary targets."""
    out = []
    for entry in [meta.get("target"), *(meta.get("aux_targets") or [])]:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            out.append((entry["name"], str(entry.get("unit", ""))))
    return out


def _fig_output(meta: Mapping[str, Any], frame: pd.DataFrame | None, name: str, unit: str) -> Figure | None:
    """Parity and residual of one output (``<name>`` vs ``<name>_pred`` in ``frame``), side by side."""
    if frame is None or len(frame) == 0 or name not in frame.columns or f"{name}_pred" not in frame.columns:
        return None
    group = lookup(meta, "data", "group")
    cols = {"group": group if isinstance(group, str) and group in frame.columns else None, "std": None}
    ref = frame[name].to_numpy(dtype=float)
    pred = frame[f"{name}_pred"].to_numpy(dtype=float)
    fig = _new_figure(10.8, 4.4)
    ax1, ax2 = fig.subplots(1, 2)
    _parity_axes(ax1, frame, cols, ref, pred, name, unit, legend=False)
    _style(ax2)
    ax2.axhline(0.0, color="#555", lw=1)
    _scatter_groups(ax2, frame, cols, ref, pred - ref, legend=False)
    ax2.set_xlabel(with_unit(f"reference {name}", unit), fontsize=9)
    ax2.set_ylabel(with_unit("predicted \u2212 reference", unit), fontsize=9)
    return fig


def _fig_param(name: str, spec: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]],
               unit: str) -> tuple[Figure, str] | None:
    import numpy as np

    # a physics-family trial has no network: its learning rate or width says nothing about its score
    pts = [(r["params"][name], float(r["mae"]), as_number(r.get("mae_std")), r.get("rank"))
           for r in rows if name in r["params"]
           and not (name not in ("family", "physics_kind") and r["params"].get("family") == "physics")]
    if not pts:
        return None
    kind = param_kind(name, spec, [p[0] for p in pts])
    fig = _new_figure(4.3, 3.1)
    ax = fig.add_subplot()
    _style(ax)
    y = np.array([p[1] for p in pts])
    yerr = np.array([p[2] if p[2] is not None else 0.0 for p in pts])
    if kind == "categorical":
        cats: list[str] = []
        if spec is not None and isinstance(spec.get("choices"), list):
            cats = [format_value(c) for c in spec["choices"]]
        for p in pts:
            if format_value(p[0]) not in cats:
                cats.append(format_value(p[0]))
        idx = np.array([cats.index(format_value(p[0])) for p in pts], dtype=float)
        rng = np.random.default_rng(0)  # seeded jitter: the same report for the same data
        x = idx + rng.uniform(-0.15, 0.15, size=len(idx))
        ax.set_xticks(range(len(cats)), labels=cats)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        ax.grid(False, axis="x")
    else:
        x = np.array([float(p[0]) for p in pts])
        if kind == "log":
            ax.set_xscale("log")
        lo, hi = (as_number(spec.get("low")), as_number(spec.get("high"))) if spec is not None else (None, None)
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
    ax.set_ylabel(with_unit("CV MAE", unit), fontsize=9)
    return fig, kind


def report_figures(metadata: Mapping[str, Any], test_predictions: pd.DataFrame | None = None,
                   cv_predictions: pd.DataFrame | None = None) -> dict[str, Figure]:
    """The report's figures, unrendered, for inspection or reuse.

    Parameters
    ----------
    metadata : mapping
        ``calibration.json`` content (or ``{"target": {"unit": ...}, "sweep": {...}}`` for a
        sweep alone).
    test_predictions : pandas.DataFrame, optional
        ``test_predictions.csv`` of the artifact.
    cv_predictions : pandas.DataFrame, optional
        ``cv_predictions.csv``: every calibration row with its out-of-fold prediction.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``learning-curves``, ``parity``, ``residuals``, ``cv-parity``, ``cv-residuals``; with
        auxiliary targets ``outputs/<name>`` and ``cv-outputs/<name>`` (parity and residuals of
        each output, test part and out-of-fold); and ``hyperparameters/<param>`` for each
        swept parameter; a figure is left out when its data are missing.
    """
    out: dict[str, Figure] = {}
    for key, fig in (("learning-curves", _fig_learning_curves(metadata)),
                     ("parity", _fig_parity(metadata, test_predictions)),
                     ("residuals", _fig_residuals(metadata, test_predictions)),
                     ("cv-parity", _fig_parity(metadata, cv_predictions)),
                     ("cv-residuals", _fig_residuals(metadata, cv_predictions))):
        if fig is not None:
            out[key] = fig
    outputs = output_names(metadata)
    if len(outputs) > 1:  # several outputs: parity and residuals of each (test part and out-of-fold)
        for name, unit in outputs:
            for key, frame in ((f"outputs/{name}", test_predictions), (f"cv-outputs/{name}", cv_predictions)):
                fig = _fig_output(metadata, frame, name, unit)
                if fig is not None:
                    out[key] = fig
    sweep = metadata.get("sweep") if isinstance(metadata.get("sweep"), Mapping) else {}
    rows = leaderboard_rows(sweep)
    for name, spec in sweep_params(sweep):
        made = _fig_param(name, spec, rows, target_unit(metadata))
        if made is not None:
            out[f"hyperparameters/{name}"] = made[0]
    return out


def close_figures(figs: Mapping[str, Figure]) -> None:
    """Free the figures of :func:`report_figures` once they are drawn."""
    for fig in figs.values():
        fig.clear()


def warm_up() -> None:
    """Draw one small figure, so that a report drawn afterwards in this process finds matplotlib
    imported and its fonts and text layout loaded (about 1 of a cold report's 3.5 s on 2 cores).

    The main job calls it in a thread while it waits for its refit; a figure is never drawn in
    two threads at once (the caller joins the thread before the report). Draws nothing the
    report keeps: a report is the same with or without it.
    """
    import io

    fig = _new_figure(2.0, 1.5)
    ax = fig.subplots()
    _style(ax)
    ax.plot([1, 2, 3], [1.0, 10.0, 100.0], "-", lw=1.4, label="a")
    ax.plot([1, 2, 3], [2.0, 20.0, 50.0], "o", ms=3)
    ax.set_yscale("log")
    ax.set_title("warm-up", fontsize=10)
    ax.set_xlabel("x (unit)", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.savefig(io.BytesIO(), format="png", dpi=DPI)
    fig.clear()
