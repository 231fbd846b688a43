"""``MODEL_CARD.md`` of an artifact: intended use, inputs and ranges, data, metrics, limits.

:func:`model_card` renders the card from an artifact's final metadata; spot children add a
section of their own (:mod:`calib.spots`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .store import KERAS_FILE, ONNX_FILE, REQUIRED_FILES, SUMS_FILE

__all__ = ["model_card"]


def _fmt_num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.6g}"
    return str(v)


def _flat_metrics(obj: Any, prefix: str = "", limit: int = 24) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(o: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{p}.{k}" if p else str(k))
        elif isinstance(o, (int, float, str)) or o is None:
            out.append((p, o))

    walk(obj, prefix)
    return out


def _metrics_section(meta: Mapping[str, Any], unit: str) -> list[str]:
    lines = ["## Metrics", "", f"Errors are in the target's unit ({unit}); ELA is the share within the tolerance.", ""]
    cv = meta.get("cv")
    summary = cv.get("summary") if isinstance(cv, dict) else None
    if isinstance(summary, dict) and isinstance(summary.get("val"), dict):
        n = cv.get("n_folds") or len(cv.get("folds") or []) or "k"
        lines += [f"**{n}-fold cross-validation** (mean +/- std over folds):", "",
                  "| metric | network (validation) | network (train) | physics fit (validation) |",
                  "|---|---|---|---|"]
        for m in ("mae", "rmse", "max_abs", "r2", "ela"):
            cells = []
            for which in ("val", "train", "physics_val"):
                s = (summary.get(which) or {}).get(m)
                if isinstance(s, dict) and s.get("mean") is not None:
                    cells.append(f"{_fmt_num(s['mean'])} +/- {_fmt_num(s.get('std'))}")
                else:
                    cells.append("-")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    elif cv:
        lines += ["**Cross-validation:**", ""] + [f"- {k}: {_fmt_num(v)}" for k, v in _flat_metrics(cv)] + [""]
    else:
        lines += ["Cross-validation: not recorded.", ""]
    for key, title in (("test", "Test set (touched once)"), ("physics_fit", "Physics fit alone (classical)")):
        v = meta.get(key) if key in meta else meta.get("baseline")  # schema 1.0 named it baseline
        if v:
            lines += [f"**{title}:** " + ", ".join(f"{k} = {_fmt_num(x)}" for k, x in _flat_metrics(v)), ""]
        else:
            lines += [f"{title}: not recorded.", ""]
    return lines


def _noise_floor(meta: Mapping[str, Any]) -> Any:
    if meta.get("noise_floor") is not None:
        return meta["noise_floor"]
    cv = meta.get("cv")
    if isinstance(cv, dict) and isinstance(cv.get("diagnosis"), dict):
        return cv["diagnosis"].get("noise_floor")
    return None


#: Hyperparameters of the network; a physics-family model has none of them.
_NETWORK_KEYS = ("hidden_layers", "activation", "init", "init_stddev", "optimizer", "learning_rate", "momentum",
                 "beta_1", "beta_2", "rho", "epsilon", "lr_schedule", "decay_rate", "decay_steps", "batch_size",
                 "epochs", "patience", "min_delta", "l1", "l2", "dropout", "loss", "final_epochs")


def _model_lines(meta: Mapping[str, Any]) -> list[str]:
    hp = dict(meta.get("hyperparameters") or {})
    family = hp.get("final_family", hp.get("family"))
    sheet = meta.get("coefficients")
    lines = []
    if family == "physics":
        lines.append(f"- Model: the classical physics form `{(meta.get('physics') or {}).get('kind')}` alone "
                     "(family physics, no network); its coefficients are below.")
        hp = {k: v for k, v in hp.items() if k not in _NETWORK_KEYS}
    lines.append("- Hyperparameters: " + ", ".join(f"{k}={_fmt_num(v) if not isinstance(v, list) else v}"
                                                  for k, v in hp.items()) + ".")
    if isinstance(sheet, Mapping):
        lines += ["", f"**Coefficients** ({sheet.get('vendor')}; {sheet.get('source')}; O2 in "
                  f"{sheet.get('unit')}; inputs {', '.join(sheet.get('inputs') or [])}):", "",
                  f"    {sheet.get('formula')}", "", "| coefficient | value |", "|---|---|"]
        lines += [f"| {k} | {v:.10g} |" for k, v in (sheet.get("coefficients") or {}).items()]
        lines += ["", "Also in `coefficients.csv`."]
    return lines


def _outputs_section(meta: Mapping[str, Any]) -> list[str]:
    """Card section of a model with auxiliary targets: every output's metrics, the objective and the
    single-task baseline (``cv.summary.outputs``, ``cv.summary.objective``, ``cv.baseline``)."""
    outs = ((meta.get("cv") or {}).get("summary") or {}).get("outputs") or {}
    if len(outs) < 2:
        return []
    test = (meta.get("test") or {}).get("outputs") or {}
    lines = ["## Every output", "", "| output | unit | tolerance | weight | CV MAE (mean +/- std) | CV R2 | test MAE |",
             "|---|---|---|---|---|---|---|"]
    for name, o in outs.items():
        v = o["val"]
        t = test.get(name) or {}
        lines.append(f"| {name} | {o['unit']} | {_fmt_num(o['tolerance'])} | {_fmt_num(o['weight'])} | "
                     f"{_fmt_num(v['mae']['mean'])} +/- {_fmt_num(v['mae']['std'])} | {_fmt_num(v['r2']['mean'])} | "
                     f"{_fmt_num(t['mae']) if 'mae' in t else '-'} |")
    obj = ((meta.get("cv") or {}).get("summary") or {}).get("objective")
    if obj:
        lines += ["", f"Objective the sweep minimised: {obj['formula']} = {_fmt_num(obj['mean'])} "
                      f"+/- {_fmt_num(obj['std'])}."]
    base = ((meta.get("cv") or {}).get("baseline") or {}).get("outputs") or []
    if base:
        lines += ["", "Shared network vs one single-task network per output (same size, same folds; "
                      "difference of validation MAE per fold, 95 % CI):", ""]
        for b in base:
            lo, hi = b["difference"]["ci95"]
            lines.append(f"- {b['name']}: {_fmt_num(b['multi']['mean'])} vs {_fmt_num(b['single']['mean'])} "
                         f"{b['unit']} (difference {_fmt_num(b['difference']['mean'])}, CI {_fmt_num(lo)} .. "
                         f"{_fmt_num(hi)}): {b['verdict']}.")
    if any(n for n in outs if n != meta["target"]["name"]) and "conformal_aux" in meta:
        lines += ["", "Each auxiliary output has its own conformal interval (`<name>_lo` .. `<name>_hi`) from its "
                      "out-of-fold residuals."]
    return lines + [""]


def _trust_limits(meta: Mapping[str, Any]) -> list[str]:
    t = meta["target"]["name"]
    return [
        "- **Out-of-domain behaviour.** Outside the calibrated domain the model extrapolates and may be "
        "badly wrong; it is not clipped. The graph itself says so: `domain_code` (int32 bit mask, 0 = in "
        "domain) has bit 1 for an input outside its range, 2 for a reading far from every calibration "
        "point although each input is in range (`domain_distance` > 1: nearest calibration point / the "
        "largest out-of-fold distance), 4 for a prediction outside the calibrated target range widened "
        "by the 95th percentile of the out-of-fold error, 8 for a physically impossible reading. calib "
        "reports them as `out_of_range` and `out_of_range_reason`.",
        f"- **Interval.** `{t}_lo` .. `{t}_hi` is the conformal prediction interval (below).",
    ]


def uncertainty_section(meta: Mapping[str, Any]) -> list[str]:
    """Card section: conformal interval, its measured coverage, and the GUM-style budget."""
    unit = meta["target"]["unit"]
    c = meta["conformal"]
    lines = [
        "## Uncertainty",
        "",
        f"**Prediction interval** (`{meta['target']['name']}_lo` .. `_hi`, level {c['level']:.0%}): "
        f"split-conformal on {c['n']} {c.get('source', 'out-of-fold')} residuals, normalised by the "
        f"difficulty sigma(y) = max({_fmt_num(c['a'])} + {_fmt_num(c['b'])} y, {_fmt_num(c['floor'])}) {unit}, "
        f"one quantile per {c['bin_name']} bin (edges {', '.join(_fmt_num(e) for e in c['edges']) or 'none'}; "
        f"q = {', '.join(_fmt_num(q) for q in c['q'])}). Coverage of the calibration residuals "
        f"{c['oof_coverage']:.1%}.",
    ]
    iv = (meta.get("test") or {}).get("interval")
    if iv:
        lines.append(f"Measured on the held-out test part ({iv['n']} rows): coverage {iv['coverage']:.1%}, "
                     f"mean width {_fmt_num(iv['mean_width'])} {unit} ({iv['width_over_mae']:.2f} x the test MAE).")
    ca = meta.get("conformal_adjusted")
    if ca:
        lines.append(f"A spot child (`calib adjust`) carries the interval of residuals after a two-point check "
                     f"(q = {', '.join(_fmt_num(q) for q in ca['q'])}, sigma(y) = max({_fmt_num(ca['a'])} + "
                     f"{_fmt_num(ca['b'])} y, {_fmt_num(ca['floor'])}) {unit}).")
    u = meta.get("uncertainty")
    if u:
        lines += ["", "**Uncertainty budget** (standard uncertainties, combined in quadrature):", "",
                  f"| component | u ({unit}) |", "|---|---|"]
        lines += [f"| {k} | {_fmt_num(v)} |" for k, v in u["components"].items()]
        lines += [f"| combined u_c | {_fmt_num(u['combined'])} |",
                  f"| **expanded U (k = {_fmt_num(u['k'])})** | **{_fmt_num(u['expanded'])}** |", "",
                  f"+/- U holds {u['oof_coverage']:.1%} of the out-of-fold residuals. The fit residual already "
                  "contains the validation readings' own noise and reference error, so U is conservative; the "
                  "conformal interval is the calibrated statement of coverage."
                  + ("" if u.get("input_noise_known") else " The input noise was not estimated (no replicate "
                     "readings).")]
    return lines + [""]


def model_card(meta: Mapping[str, Any], extra_names: Sequence[str]) -> bytes:
    t = meta["target"]
    unit = t["unit"]
    feats = meta["features"]
    outputs = meta["onnx"]["outputs"]
    data = meta["data"]
    aux = meta.get("aux_targets") or []
    floor = _noise_floor(meta)
    lines = [
        f"# Calibration model `{meta['name']}` {meta['version']}",
        "",
        f"- Model id: `{meta['model_id']}`; created {meta['created_utc']} with calib "
        f"{meta['versions'].get('calib')} (schema {meta['schema_version']}).",
        f"- Predicts **{t['name']}** in **{unit}**"
        + (f", with {', '.join(a['name'] + ' (' + a['unit'] + ')' for a in aux)}" if aux else "")
        + f" from {len(feats)} reading(s) per row.",
        "",
        "## Intended use",
        "",
        "Converts readings of optical (luminescence) O2 sensors made from the calibrated foil batch "
        "(the sensor spots of the data below) into the O2 level, for readings inside the calibrated "
        "ranges. It is not validated for other foil batches, other instruments, or readings outside "
        "those ranges; recalibrate or re-validate before such use.",
        "",
        "- Python without TensorFlow: `calib.load_model(path).predict(df)`, or `calib predict`.",
        f"- Any ONNX Runtime (C#, C++, Java, Node.js, MATLAB, LabVIEW): `{ONNX_FILE}`, one float32 [N] "
        "input per feature, named as below (name and unit in one word), in the units below; outputs "
        + ", ".join(f"`{o}`" for o in outputs) + " (metadata `output_meaning` says what each is).",
        f"- Python with TensorFlow: `keras.models.load_model('{KERAS_FILE}', safe_mode=True)`.",
        "",
        "## Inputs (in this order) and calibrated ranges",
        "",
        "| # | input | unit | from column (unit) | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(feats):
        src = f"{f.get('source')} ({f.get('source_unit')})"
        if f.get("frequency_hz"):
            src += f", {_fmt_num(f['frequency_hz'])} Hz"
        lines.append(f"| {i} | {f['name']} | {f['unit']} | {src} | {_fmt_num(f['min'])} | {_fmt_num(f['max'])} |")
    lines += [
        "",
        f"Target range in training: {_fmt_num(t['min'])} to {_fmt_num(t['max'])} {unit}.",
        "",
        "## Data",
        "",
        f"- File `{data.get('file')}`, SHA-256 `{data.get('sha256')}`, {data.get('rows')} rows"
        + (f" ({data['rows_used']} used to train the final model)" if data.get("rows_used") else "")
        + (f", grouped by `{data['group']}`" if data.get("group") else "")
        + ".",
        *_model_lines(meta),
        "",
        *_metrics_section(meta, unit),
        *_outputs_section(meta),
        "## Limits",
        "",
        "- **Calibrated ranges.** Each input is only trusted inside the range seen in training "
        "(table above, bounds inclusive), and only for combinations of inputs like those calibrated.",
        f"- **Unit.** Predictions are in {unit}; inputs must be in the units above (calib converts "
        "source units such as K or rad by column name; raw ONNX users must convert themselves).",
        "- **Noise floor.** No model beats the noise of its inputs"
        + (f": the estimated floor is {_fmt_num(floor)} {unit} (MAE)." if floor is not None else
           " (no floor was estimated for this model)."),
        *(_trust_limits(meta) if meta.get("conformal") else [
            "- **Out-of-range behaviour.** Outside the calibrated ranges the model extrapolates "
            "silently and may be badly wrong; it is not clipped. `calib` flags such rows with "
            "`out_of_range = True` (any input outside its range); the raw ONNX graph does not."]),
    ]
    if meta.get("conformal"):
        lines += ["", *uncertainty_section(meta)]
    if f"{t['name']}_std" in outputs:
        k = meta["onnx"].get("n_fold_models")
        lines.append(
            f"- **Spread.** `{t['name']}_std` is the standard deviation (ddof=0) of the predictions of "
            f"the {k} cross-validation fold models: a model-spread indicator that grows where data "
            "were sparse, not a measurement uncertainty (reference and input noise are not included)."
        )
    lines += ["", "## Files", ""]
    for name in sorted({*REQUIRED_FILES, *extra_names}):
        lines.append(f"- `{name}`")
    lines += [f"- `{SUMS_FILE}` (check with `sha256sum -c {SUMS_FILE}`)", ""]
    return "\n".join(lines).encode("utf-8")
