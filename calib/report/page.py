"""The report page: its sections, style sheet and layout, for an artifact or a sweep alone.

:func:`render_report` and :func:`render_sweep` are pure: metadata (and test predictions) in,
one self-contained HTML document out, the same bytes for the same inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .figures import close_figures, report_figures
from .markup import escape, fmt, img, kv, mean_std, note, single, table
from ..units import display_unit
from .metadata import (as_number, format_value, leaderboard_rows, lookup, param_kind, prediction_columns,
                       sweep_params, target_unit, with_unit)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["SECTION_IDS", "SWEEP_SECTION_IDS", "LEADERBOARD_ROWS", "render_report", "render_sweep"]

#: Section ids of an artifact report, in page order.
SECTION_IDS = ("metadata", "cv-metrics", "outputs", "coefficients", "diagnosis", "uncertainty", "learning-curves", "parity", "residuals",
               "cv-parity", "cv-residuals", "leaderboard", "hyperparameters")
#: Section ids of a report of a sweep record alone.
SWEEP_SECTION_IDS = ("leaderboard", "hyperparameters")

_NAV = {"metadata": "Artifact", "cv-metrics": "Metrics", "outputs": "Outputs", "coefficients": "Coefficients", "diagnosis": "Diagnosis", "uncertainty": "Uncertainty",
        "learning-curves": "Learning curves", "parity": "Parity", "residuals": "Residuals",
        "cv-parity": "Out-of-fold", "cv-residuals": "OOF residuals",
        "leaderboard": "Leaderboard", "hyperparameters": "Hyperparameters"}
_TITLES = {
    "metadata": "Artifact",
    "cv-metrics": "Metrics: calib's model vs the physics fit alone",
    "outputs": "Every output: metrics, objective, single-task baseline",
    "diagnosis": "Bias / variance diagnosis",
    "coefficients": "Coefficients of the classical form",
    "uncertainty": "Uncertainty: interval, budget, applicability domain",
    "learning-curves": "Learning curves",
    "parity": "Predicted vs reference (test part)",
    "residuals": "Residuals (test part)",
    "cv-parity": "Predicted vs reference, every calibration point (out-of-fold)",
    "cv-residuals": "Residuals, every calibration point (out-of-fold)",
    "leaderboard": "Sweep leaderboard",
    "hyperparameters": "Score vs hyperparameters",
}
_METRICS = (("mae", "MAE", True), ("rmse", "RMSE", True), ("max_abs", "max |error|", True),
            ("r2", "R\u00b2", False), ("ela", "within tolerance", False))
#: Rows of the leaderboard table shown (the plots show every completed trial).
LEADERBOARD_ROWS = 25
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


def _section(sid: str, body: str, title: str | None = None) -> str:
    return f'<section id="{escape(sid)}"><h2>{escape(title or _TITLES[sid])}</h2>{body}</section>'


def _sec_metadata(meta: Mapping[str, Any]) -> str:
    data = meta.get("data") if isinstance(meta.get("data"), Mapping) else {}
    split = meta.get("split") if isinstance(meta.get("split"), Mapping) else {}
    ident = [
        ("name", escape(meta.get("name"))),
        ("version", escape(meta.get("version"))),
        ("model id", f'<span class="mono">{escape(meta.get("model_id"))}</span>'),
        ("created (UTC)", escape(meta.get("created_utc"))),
        ("schema version", escape(meta.get("schema_version"))),
    ]
    onnx = meta.get("onnx") if isinstance(meta.get("onnx"), Mapping) else {}
    if onnx:
        ident.append(("ONNX outputs", escape(", ".join(map(str, onnx.get("outputs") or [])))
                      + f" (opset {escape(onnx.get('opset'))}, {escape(onnx.get('n_fold_models'))} fold models)"))
    dat = [
        ("data file", f"<code>{escape(data.get('file'))}</code>"),
        ("data SHA-256", f'<span class="mono">{escape(data.get("sha256"))}</span>'),
        ("rows", escape(data.get("rows")) + (f" ({escape(data.get('rows_used'))} used by the final model)"
                                             if data.get("rows_used") is not None else "")),
        ("group column", escape(data.get("group") or "none")),
    ]
    if split:
        dat.append(("split", escape(", ".join(f"{k}={v}" for k, v in split.items()))))
    groups = lookup(meta, "test", "groups")
    if isinstance(groups, list) and groups:
        dat.append(("held-out test groups", escape(", ".join(map(str, groups)))))
    versions = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    ver = [(str(k), escape(v)) for k, v in versions.items()]

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
        freq = as_number(f.get("frequency_hz"))
        rows.append([escape(role), f"<code>{escape(f.get('name'))}</code>", escape(f.get("unit")), escape(src),
                     "" if freq is None else fmt(freq), fmt(f.get("min")), fmt(f.get("max"))])
    feats_html = (table(["role", "name", "unit", "from column (unit)", "frequency (Hz)", "min", "max"], rows,
                        numeric=(4, 5, 6))
                  + note("min and max: the calibrated range, i.e. the values seen in training (inclusive); "
                         "outside it the model extrapolates; calib flags such rows (out_of_range_reason)."))
    hp = meta.get("hyperparameters") if isinstance(meta.get("hyperparameters"), Mapping) else {}
    hp_html = kv([(str(k), escape(format_value(v))) for k, v in hp.items()]) if hp else note("none recorded")
    return (f'<div class="cols"><div><h3>Identity</h3>{kv(ident)}<h3>Software</h3>'
            f'{kv(ver) if ver else note("not recorded")}</div>'
            f"<div><h3>Data</h3>{kv(dat)}</div></div>"
            f"<h3>Inputs and calibrated ranges</h3>{feats_html}"
            f"<details><summary>Hyperparameters of the final model ({len(hp)})</summary>{hp_html}</details>")


def _physics_fit(meta: Mapping[str, Any]) -> Any:
    """The physics fit scored alone (``physics_fit``; ``baseline`` in schema 1.0 artifacts)."""
    return meta.get("physics_fit") if "physics_fit" in meta else meta.get("baseline")


def _physics_label(meta: Mapping[str, Any]) -> tuple[str, str | None]:
    kind = lookup(_physics_fit(meta), "kind")
    if isinstance(kind, str) and kind.startswith("failed"):
        return "physics fit", kind
    return (f"physics fit ({kind})" if kind else "physics fit"), None


def _sec_cv_metrics(meta: Mapping[str, Any]) -> str:
    unit = target_unit(meta)
    summ = lookup(meta, "cv", "summary") or {}
    test = meta.get("test") if isinstance(meta.get("test"), Mapping) else {}
    btest = lookup(_physics_fit(meta), "test")
    btest = btest if isinstance(btest, Mapping) else {}
    bcv = (lookup(summ, "physics_val") or lookup(summ, "baseline_val") or lookup(_physics_fit(meta), "cv")
           or {})
    blabel, bfail = _physics_label(meta)
    tol = as_number(test.get("tolerance"))
    if not summ and not test:
        return note("This artifact records no cross-validation or test metrics.")
    rows = []
    for key, label, has_unit in _METRICS:
        pct = key == "ela"
        if pct:
            label = f"within \u00b1{fmt(tol)} {unit} (%)" if tol is not None else "within tolerance (%)"
        elif has_unit:
            label = with_unit(label, unit)
        rows.append([
            escape(label),
            mean_std(lookup(summ, "val", key), pct), mean_std(lookup(bcv, key), pct),
            single(test.get(key), pct), single(btest.get(key), pct),
            mean_std(lookup(summ, "train", key), pct),
        ])
    k = lookup(meta, "cv", "n_folds")
    by = " by group" if lookup(meta, "cv", "group_kfold") else ""
    n_test = test.get("rows", test.get("n"))
    bkind = lookup(_physics_fit(meta), "kind")
    bshort = f"physics fit ({bkind})" if not bfail and bkind else "physics fit"
    fam = lookup(meta, "hyperparameters", "final_family") or lookup(meta, "hyperparameters", "family")
    mname = {"physics": "calib (physics)", "hybrid": "calib (hybrid)"}.get(str(fam), "network")
    top = (f'<tr><th rowspan="2">metric</th>'
           f'<th colspan="2" class="c">k-fold CV, validation folds<br><small>mean \u00b1 std over '
           f"{escape(k)} folds{by}</small></th>"
           f'<th colspan="2" class="c">test part<br><small>{escape(n_test)} held-out rows, evaluated once</small></th>'
           f'<th class="c">CV, training<br><small>mean \u00b1 std</small></th></tr>'
           f'<tr><th class="n">{escape(mname)}</th><th class="n">{escape(bshort)}</th><th class="n">{escape(mname)}</th>'
           f'<th class="n">{escape(bshort)}</th><th class="n">{escape(mname)}</th></tr>')
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" if i == 0 else f'<td class="n">{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    out = f'<div class="wide"><table class="metrics"><thead>{top}</thead><tbody>{body}</tbody></table></div>'
    m, b = as_number(test.get("mae")), as_number(btest.get("mae"))
    if m is not None and b is not None and b > 0:
        word = "below" if m < b else "above"
        out += (f'<p>On the test part calib\u2019s MAE ({escape(mname)}) is <b>{fmt(m / b, 3)}\u00d7</b> the '
                f"physics fit\u2019s ({fmt(m)} vs {fmt(b)} {escape(unit)}, {word} it).</p>")
    if bfail:
        out += note(f"The physics fit could not be fitted: {bfail}")
    sm = as_number(test.get("std_mean"))
    if sm is not None:
        out += note(f"Mean spread of the fold models on the test rows (the {lookup(meta, 'target', 'name')}_std "
                    f"output): {fmt(sm)} {unit}.")
    folds = lookup(meta, "cv", "folds")
    if isinstance(folds, list) and folds:
        frows = []
        for i, f in enumerate(folds):
            if not isinstance(f, Mapping):
                continue
            frows.append([escape(f.get("fold", i)), fmt(f.get("n_train")), fmt(f.get("n_val")),
                          fmt(lookup(f, "val", "mae")), fmt(lookup(f, "train", "mae")),
                          fmt(lookup(f, "physics_val", "mae") or lookup(f, "baseline_val", "mae")), fmt(f.get("best_epoch")),
                          fmt(f.get("seconds"), 3)])
        out += ("<details><summary>Per fold</summary>"
                + table(["fold", "train rows", "val rows", escape(with_unit("val MAE", unit)),
                         escape(with_unit("train MAE", unit)), escape(with_unit("physics fit val MAE", unit)),
                         "kept epoch", "seconds"], frows, numeric=range(1, 8))
                + "</details>")
    return out


def _verdict_class(verdict: str) -> str:
    v = verdict.lower()
    if v.startswith("near the"):
        return "verdict good"
    if v.startswith(("dev overfitting", "high")):
        return "verdict bad" if v.startswith("dev overfitting") else "verdict"
    return "verdict"


def _sec_diagnosis(meta: Mapping[str, Any]) -> str:
    d = meta.get("diagnosis") if isinstance(meta.get("diagnosis"), Mapping) else lookup(meta, "cv", "diagnosis")
    unit = target_unit(meta)
    if not isinstance(d, Mapping):
        floor = as_number(meta.get("noise_floor"))
        return note("No diagnosis recorded." + (f" Noise floor: {floor:.4g} {unit}." if floor is not None else ""))
    verdict = str(d.get("verdict") or "")
    src = d.get("noise_floor_source")
    rows = [
        ["noise floor (input noise alone)", fmt(d.get("noise_floor")), escape(f"source: {src}" if src else "")],
        *([["spot-to-spot part of the error", fmt(d.get("spot_floor")),
            "per-spot gain/offset of the out-of-fold error"],
           ["unseen-spot floor", fmt(d.get("floor")), "both combined: what the errors are compared with"]]
          if d.get("spot_floor") is not None else []),
        ["training MAE (CV mean)", fmt(d.get("train_mae")), ""],
        ["validation MAE (CV mean)", fmt(d.get("val_mae")), ""],
        ["test MAE", fmt(d.get("test_mae")), ""],
        ["avoidable bias", fmt(d.get("avoidable_bias")), f"training \u2212 {d.get('floor_name') or 'noise floor'}"],
        ["variance", fmt(d.get("variance")), "validation \u2212 training"],
        ["dev overfitting", fmt(d.get("dev_overfitting")), "test \u2212 validation"],
    ]
    head, _, rest = verdict.partition(":")
    text = f"<b>{escape(head)}</b>" + (f": {escape(rest.strip())}" if rest else "")
    return (f'<div class="{_verdict_class(verdict)}">{text}</div>'
            + table(["quantity", escape(with_unit("MAE", unit)), "how"],
                    [[escape(r[0]), r[1], escape(r[2])] for r in rows], numeric=(1,)))


def _sec_coefficients(meta: Mapping[str, Any]) -> str:
    sheet = meta.get("coefficients")
    if not isinstance(sheet, Mapping):
        return note("No classical form was fitted for this artifact.")
    rows = [[escape(k), escape(f"{v:.10g}")] for k, v in (sheet.get("coefficients") or {}).items()]
    head = (f"{escape(sheet.get('vendor'))}: {escape(sheet.get('source'))}; inputs "
            f"{escape(', '.join(sheet.get('inputs') or []))}; O2 in {escape(sheet.get('unit'))}. "
            f"<code>{escape(sheet.get('formula'))}</code>")
    return f"<p>{head}</p>" + table(["coefficient", "value"], rows, numeric=(1,)) + note(
        "The same numbers are in coefficients.csv in the artifact, to type into the instrument.")


def _sec_uncertainty(meta: Mapping[str, Any]) -> str:
    c = meta.get("conformal")
    unit = target_unit(meta)
    if not isinstance(c, Mapping):
        return note("This artifact has no conformal interval or applicability domain (written by calib < 0.2).")
    parts = []
    iv = lookup(meta, "test", "interval")
    rows = [["level", f"{float(c['level']):.0%}", "nominal coverage"],
            ["calibration residuals", str(c.get("n")), escape(str(c.get("source", "")))],
            ["coverage of those residuals", f"{float(c['oof_coverage']):.1%}", "by construction >= level"]]
    if isinstance(iv, Mapping):
        rows += [["test coverage", f"{float(iv['coverage']):.1%}", f"{iv['n']} held-out rows"],
                 ["test mean width", fmt(iv.get("mean_width")), escape(f"{float(iv['width_over_mae']):.2f} x the test MAE")]]
    parts.append(table(["interval", "value", "note"], rows))
    u = meta.get("uncertainty")
    if isinstance(u, Mapping):
        urows = [[escape(k), fmt(v)] for k, v in u["components"].items()]
        urows += [["combined u_c", fmt(u["combined"])], [f"<b>expanded U (k = {fmt(u['k'])})</b>", f"<b>{fmt(u['expanded'])}</b>"]]
        parts.append(table(["budget component", escape(with_unit("u", unit))], urows, numeric=(1,)))
        parts.append(note(f"\u00b1U holds {float(u['oof_coverage']):.1%} of the out-of-fold residuals; the fit "
                          "residual already contains noise and reference error, so U is conservative."))
    d = meta.get("domain")
    if isinstance(d, Mapping):
        parts.append(note(
            f"Applicability domain: each input within its training range; within {fmt(d.get('threshold'))} "
            f"(standardised distance, the largest out-of-fold one) of one of {len(d.get('prototypes') or [])} "
            f"calibration prototypes; the prediction within {fmt(d.get('y_lower'))}..{fmt(d.get('y_upper'))} "
            f"{escape(display_unit(unit))}. Outputs domain_code and domain_distance of model.onnx; out_of_range_reason in calib."))
    return "".join(parts)


def _sec_outputs(meta: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    """Every output of a multi-task model: metrics, the objective, the single-task baseline, plots."""
    outs = lookup(meta, "cv", "summary", "outputs")
    if not isinstance(outs, Mapping) or len(outs) < 2:
        return note("One output: the target (its metrics are above). With [data] aux_targets, each further "
                    "output is scored, compared with a single-task network and plotted here.")
    test = lookup(meta, "test", "outputs") or {}
    rows = []
    for name, o in outs.items():
        if not isinstance(o, Mapping):
            continue
        u = display_unit(str(o.get("unit", "")))
        t = test.get(name) if isinstance(test, Mapping) else None
        rows.append([f"<code>{escape(name)}</code>", escape(u), fmt(o.get("tolerance")), fmt(o.get("weight")),
                     mean_std(lookup(o, "val", "mae")), mean_std(lookup(o, "val", "rmse")),
                     mean_std(lookup(o, "val", "r2")), mean_std(lookup(o, "val", "ela"), True),
                     single(lookup(t, "mae")), single(lookup(t, "interval_coverage"), True)])
    html = table(["output", "unit", "tolerance", "weight", "CV MAE", "CV RMSE", "CV R2", "CV within tolerance (%)",
                  "test MAE", "test interval coverage (%)"], rows, numeric=(2, 3, 4, 5, 6, 7, 8, 9))
    obj = lookup(meta, "cv", "summary", "objective")
    if isinstance(obj, Mapping):
        html += note(f"Objective the sweep minimised: {escape(obj.get('formula'))} = "
                     f"{escape(mean_std(obj))} (mean \u00b1 std over folds).")
    base = lookup(meta, "cv", "baseline", "outputs")
    if isinstance(base, list) and base:
        brows = []
        for b in base:
            if not isinstance(b, Mapping):
                continue
            ci = lookup(b, "difference", "ci95") or [None, None]
            brows.append([f"<code>{escape(b.get('name'))}</code>", mean_std(b.get("multi")),
                          mean_std(b.get("single")), fmt(lookup(b, "difference", "mean")),
                          f"{fmt(ci[0])} .. {fmt(ci[1])}", escape(b.get("verdict"))])
        html += "<h3>Shared network vs single-task networks</h3>" + table(
            ["output", "shared network MAE", "single-task MAE", "difference", "95 % CI", "verdict"], brows,
            numeric=(1, 2, 3, 4)) + note("Each output also trained by its own network of the same size on the "
                                         "same folds; difference = shared \u2212 single-task validation MAE per "
                                         "fold (negative: the shared network is better).")
    for name in outs:
        for key, what in ((f"outputs/{name}", "test part"), (f"cv-outputs/{name}", "out-of-fold")):
            fig = figs.get(key)
            if fig is not None:
                html += img(fig, f"parity and residuals of {name}, {what}",
                            f"{name}: predicted vs reference (left) and residual vs reference (right), {what}.")
    return html


def _sec_learning_curves(meta: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    fig = figs.get("learning-curves")
    if fig is None:
        return note("No learning curves recorded (the cross-validation folds keep no per-epoch losses).")
    return img(fig, "learning curves: training and dev loss per epoch for each fold",
               "Data loss per epoch in scaled units (log scale): training rows (solid) vs the dev part "
               "that drives early stopping, or the validation fold when early stopping is off (dashed); "
               "the dotted line marks the epoch whose weights were kept.")


def _sec_parity(meta: Mapping[str, Any], figs: Mapping[str, Figure], frame: pd.DataFrame | None) -> str:
    fig = figs.get("parity")
    if fig is None:
        if lookup(meta, "split", "test_rows") == 0:
            return note("No test part: test_fraction = 0, every point calibrated the model; the out-of-fold "
                        "plots below show every point's honest residual.")
        return note("No test predictions in this artifact (test_predictions.csv is missing or lacks the "
                    "reference and predicted columns).")
    cols = prediction_columns(meta, frame) or {}
    cap = "Each point is a test reading; the line is 1:1"
    cap += (", error bars: standard deviation across the fold models." if cols.get("std") else ".")
    return img(fig, "parity plot: predicted vs reference on the test part", cap)


def _sec_residuals(meta: Mapping[str, Any], figs: Mapping[str, Figure], frame: pd.DataFrame | None) -> str:
    fig = figs.get("residuals")
    if fig is None:
        return note("No test predictions in this artifact.")
    cols = prediction_columns(meta, frame) or {}
    cap = "Residual = predicted \u2212 reference, against the reference O2"
    cap += " and against temperature" if cols.get("temp") else " (no temperature input found)"
    cap += "; error bars: fold-model spread." if cols.get("std") else "."
    return img(fig, "residuals vs reference O2 and vs temperature on the test part", cap)


def _sec_leaderboard(sweep: Mapping[str, Any], unit: str) -> str:
    rows = leaderboard_rows(sweep)
    info = [(k, escape(sweep.get(k))) for k in ("strategy", "study_name", "storage") if sweep.get(k)]
    n_trials = sweep.get("trials")
    recorded = n_trials if n_trials is not None else len(rows)
    info.append(("trials", escape(f"{recorded} recorded, {len(rows)} completed")))
    failed = sweep.get("failed")
    if isinstance(failed, list) and failed:
        info.append(("failed", escape("; ".join(failed[:3]) + (" ..." if len(failed) > 3 else ""))))
    out = kv(info)
    if not rows:
        return out + note("No completed trials recorded.")
    names: list[str] = [n for n, _ in sweep_params(sweep)]
    head = ["rank", "trial", escape(with_unit("CV MAE", unit)), "seconds", "kept epochs", *(escape(n) for n in names)]
    body, classes = [], []
    for r in rows[:LEADERBOARD_ROWS]:
        std = as_number(r.get("mae_std"))
        epochs = r.get("best_epochs")
        body.append([escape(r.get("rank")), escape(r.get("number")),
                     fmt(r.get("mae")) + ("" if std is None else f" \u00b1 {fmt(std, 2)}"),
                     fmt(r.get("seconds"), 3),
                     escape(", ".join(map(str, epochs)) if isinstance(epochs, list) else ""),
                     *(escape(format_value(r["params"][n])) if n in r["params"] else "" for n in names)])
        classes.append("best" if r.get("rank") == 1 else "")
    out += table(head, body, numeric=(0, 1, 2, 3), row_class=classes)
    if len(rows) > LEADERBOARD_ROWS:
        out += note(f"{len(rows) - LEADERBOARD_ROWS} more completed trial(s) not listed; the plots below show all.")
    return out


def _sec_hyperparameters(sweep: Mapping[str, Any], unit: str, figs: Mapping[str, Figure]) -> str:
    rows = leaderboard_rows(sweep)
    if not rows:
        return note("No completed trials to plot.")
    imgs = []
    for name, spec in sweep_params(sweep):
        fig = figs.get(f"hyperparameters/{name}")
        if fig is None:
            continue
        kind = param_kind(name, spec, [r["params"][name] for r in rows if name in r["params"]])
        imgs.append(img(fig, f"CV MAE vs {name}", None,
                        {"param": name, "xscale": "log" if kind == "log" else kind}))
    if not imgs:
        return note("The completed trials record no hyperparameter values.")
    return (f'<div class="grid">{"".join(imgs)}</div>'
            + note("Each point is a completed trial (mean validation MAE over the folds, bars: std over folds); "
                   "the red star is the best trial. The shaded band is the searched range; log ranges use a "
                   "log x-axis; choices are shown as strips."))


def _page(title: str, sub: str, kpis: Sequence[tuple[str, str]], sections: Sequence[tuple[str, str]],
          footer: str) -> str:
    nav = "".join(f'<a href="#{escape(sid)}">{escape(_NAV[sid])}</a>' for sid, _ in sections)
    k = "".join(f'<div class="kpi"><div class="v">{v}</div><div class="l">{escape(lab)}</div></div>' for lab, v in kpis)
    body = "".join(_section(sid, html_) for sid, html_ in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="generator" content="calib">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f'<header><div class="wrap"><h1>{escape(title)}</h1><div class="sub">{sub}</div>'
            + (f'<div class="kpis">{k}</div>' if kpis else "")
            + f'</div></header><nav><div class="wrap">{nav}</div></nav>'
            f'<main class="wrap">{body}</main><footer class="wrap">{footer}</footer></body></html>\n')


def _sec_cv_plot(figs: Mapping[str, Figure], key: str, what: str) -> str:
    fig = figs.get(key)
    if fig is None:
        return note("No out-of-fold predictions in this artifact (cv_predictions.csv, written by calib >= 0.2).")
    return img(fig, f"{what} of every calibration point, each predicted by the fold model that did not see it",
               "Each calibration point predicted by the k-fold model that left it out (its spot, with spot "
               "folds): the honest residual of every point, not only of the test part.")


def render_report(metadata: Mapping[str, Any], test_predictions: pd.DataFrame | None = None,
                  cv_predictions: pd.DataFrame | None = None) -> str:
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
    unit = target_unit(meta)
    figs = report_figures(meta, frame, cv_predictions)
    try:
        sweep = meta.get("sweep") if isinstance(meta.get("sweep"), Mapping) else {}
        sections = [
            ("metadata", _sec_metadata(meta)),
            ("cv-metrics", _sec_cv_metrics(meta)),
            ("outputs", _sec_outputs(meta, figs)),
            ("coefficients", _sec_coefficients(meta)),
            ("diagnosis", _sec_diagnosis(meta)),
            ("uncertainty", _sec_uncertainty(meta)),
            ("learning-curves", _sec_learning_curves(meta, figs)),
            ("parity", _sec_parity(meta, figs, frame)),
            ("residuals", _sec_residuals(meta, figs, frame)),
            ("cv-parity", _sec_cv_plot(figs, "cv-parity", "parity plot")),
            ("cv-residuals", _sec_cv_plot(figs, "cv-residuals", "residuals")),
            ("leaderboard", _sec_leaderboard(sweep, unit) if sweep else note("This artifact records no sweep.")),
            ("hyperparameters", _sec_hyperparameters(sweep, unit, figs) if sweep else note("No sweep.")),
        ]
    finally:
        close_figures(figs)
    name, version = meta.get("name"), meta.get("version")
    title = "Calibration report" + (f": {name}" if name else "") + (f" {version}" if version else "")
    target = lookup(meta, "target", "name")
    sub = " \u00b7 ".join(x for x in (
        f"target <code>{escape(target)}</code> in {escape(display_unit(unit))}" if target else "",
        f"created {escape(meta.get('created_utc'))} UTC" if meta.get("created_utc") else "",
        f"model id <code>{escape(meta.get('model_id'))}</code>" if meta.get("model_id") else "") if x)
    test, btest = meta.get("test") if isinstance(meta.get("test"), Mapping) else {}, lookup(_physics_fit(meta), "test")
    kpis = []
    if as_number(lookup(test, "mae")) is not None:
        kpis.append((with_unit("test MAE", unit), fmt(test["mae"])))
    if as_number(lookup(btest, "mae")) is not None:
        kpis.append((with_unit("physics fit test MAE", unit), fmt(btest["mae"])))
    cvm = lookup(meta, "cv", "summary", "val", "mae")
    if as_number(lookup(cvm, "mean")) is not None:
        kpis.append((with_unit("CV MAE", unit), mean_std(cvm)))
    floor = as_number(meta.get("noise_floor"))
    if floor is not None:
        kpis.append((with_unit("noise floor", unit), fmt(floor)))
    calib_v = lookup(meta, "versions", "calib")
    footer = escape(f"Written by calib {calib_v}." if calib_v else "Written by calib.") + (
        " Self-contained: figures are embedded; nothing is loaded from elsewhere.")
    return _page(title, sub, kpis, sections, footer)


def render_sweep(sweep: Mapping[str, Any], unit: str) -> str:
    meta = {"target": {"unit": unit}, "sweep": sweep}
    figs = report_figures(meta)
    try:
        sections = [("leaderboard", _sec_leaderboard(sweep, unit)),
                    ("hyperparameters", _sec_hyperparameters(sweep, unit, figs))]
    finally:
        close_figures(figs)
    rows = leaderboard_rows(sweep)
    kpis = []
    if rows:
        kpis.append((with_unit("best CV MAE", unit), fmt(rows[0]["mae"])))
    kpis.append(("completed trials", escape(len(rows))))
    sub = " \u00b7 ".join(x for x in (
        f"study <code>{escape(sweep.get('study_name'))}</code>" if sweep.get("study_name") else "",
        f"record <code>{escape(sweep.get('storage'))}</code>" if sweep.get("storage") else "",
        f"strategy {escape(sweep.get('strategy'))}" if sweep.get("strategy") else "") if x)
    return _page("Sweep report", sub, kpis, sections,
                 "Written by calib. Self-contained: figures are embedded; nothing is loaded from elsewhere.")


