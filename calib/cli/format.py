"""Every text the ``calib`` commands print on stdout: the library returns data, this module formats it.

Each ``format_*`` function takes what a library call returned (a result object or its JSON-able
dict) and gives the text of one command's output; :func:`format_json` is the ``--json`` form of
any of them. Nothing here prints, and nothing here imports TensorFlow or pandas.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "format_error",
    "format_json",
    "format_wrote",
    "format_outputs",
    "format_ingest_summary",
    "format_cv",
    "format_leaderboard",
    "format_sweep_files",
    "format_calibration_run",
    "format_prediction",
    "format_inspection",
    "format_model_list",
    "format_adjustment",
    "format_serving",
]


def display_unit(token: str) -> str:
    """A unit token typeset for people (``umol_per_L`` -> ``µmol/L``); :func:`calib.units.display_unit`,
    imported when first needed so that ``calib --help`` stays light."""
    from ..units import display_unit as typeset

    return typeset(token)


def format_error(exc: BaseException) -> str:
    """The one line after ``Error:``: the message's whitespace collapsed, and every control or
    bidi character escaped (``\\x1b``, ``\\u202e``), so that a hostile file or column name can
    neither break the line nor drive the terminal."""
    from ..errors import escape_text

    return escape_text(" ".join(str(exc).split()))


def format_json(obj: Any) -> str:
    """Indented JSON of ``obj`` in calib's one JSON form (:func:`calib.serial.to_jsonable`).

    numpy scalars and arrays, tuples, paths and result objects (``to_dict()``) become plain
    JSON values; a non-finite float becomes ``null``.
    """
    from ..serial import to_jsonable

    return json.dumps(to_jsonable(obj), indent=2)


def format_wrote(*paths: Any) -> str:
    """``wrote A`` or ``wrote A and B``: the files a command wrote."""
    return "wrote " + " and ".join(str(p) for p in paths)


def _num(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


# --------------------------------------------------------------------------- calib ingest
def format_ingest_summary(s: dict[str, Any]) -> str:
    """``calib ingest``: rows, groups, each column's role, unit and range, the split sizes, the file written.

    ``s`` is :func:`calib.ingest.summarize`'s dict, with ``output`` when a file was written.
    """
    lines = [f"{s['file']}: {s['rows']} rows" + (f", {s['groups']} groups ({s['group']})" if s["group"] else "")]
    w = max(len(c["name"]) for c in s["columns"])
    for c in s["columns"]:
        conv = f" (from {c['source']} [{c['source_unit']}])" if c["source"] != c["name"] or c["source_unit"] != c["unit"] else ""
        lines.append(f"  {c['role']:<10} {c['name']:<{w}}  {c['min']:>10.4g} .. {c['max']:<10.4g} {c['unit']}{conv}")
    if "split" in s:
        sp = s["split"]
        lines.append(f"  split{' by group' if sp['by_group'] else ''} (seed {sp['seed']}): "
                     f"train {sp['train']}, dev {sp['dev']}, test {sp['test']} rows")
    if s.get("output"):
        lines.append(format_wrote(s["output"]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- calib validate
def format_cv(cv: Any) -> str:
    """``calib validate``: a table per fold beside the physics fit, mean +/- std, the bias/variance verdict.

    ``cv`` is a :class:`calib.validate.CVResult`.
    """
    unit = display_unit(cv.unit)
    head = f"{'fold':>5} {'n_val':>6} {'MAE':>9} {'RMSE':>9} {'max':>9} {'R2':>7} {'ELA':>6} | {'base MAE':>9} {'base RMSE':>9}  best epoch"
    lines = [f"k-fold validation of {cv.target} [{unit}], {len(cv.folds)} folds"
             + (" by group (GroupKFold)" if cv.group_kfold else ""), head]
    for f in cv.folds:
        b = f.physics_val
        lines.append(f"{f.fold + 1:>5} {f.n_val:>6} {f.val.mae:>9.4g} {f.val.rmse:>9.4g} {f.val.max_abs:>9.4g} "
                     f"{f.val.r2:>7.4f} {f.val.ela:>6.1%} | {b.mae if b else float('nan'):>9.4g} "
                     f"{b.rmse if b else float('nan'):>9.4g}  {f.best_epoch}")
    s = cv.summary()

    def ms(which: str, m: str, pct: bool = False) -> str:
        mean, std = s[which][m]["mean"], s[which][m]["std"]
        return f"{mean:.1%} +/- {std:.1%}" if pct else f"{mean:.4g} +/- {std:.3g}"

    lines.append(f"network : MAE {ms('val', 'mae')}, RMSE {ms('val', 'rmse')}, max {ms('val', 'max_abs')}, "
                 f"R2 {ms('val', 'r2')}, within {cv.folds[0].val.tolerance:g} {unit}: {ms('val', 'ela', True)}")
    kinds = sorted({f.physics_kind for f in cv.folds if f.physics_kind})
    if cv.folds[0].physics_val is not None:
        lines.append(f"physics fit: MAE {ms('physics_val', 'mae')}, RMSE {ms('physics_val', 'rmse')}, "
                     f"max {ms('physics_val', 'max_abs')} ({'/'.join(kinds)})")
        nn, base = s["val"]["mae"]["mean"], s["physics_val"]["mae"]["mean"]
        if base > 0:
            verdict = "equal" if abs(nn / base - 1) < 0.005 else ("better" if nn < base else "worse")
            lines.append(f"calib's MAE is {nn / base:.2f}x the physics fit's ({verdict})")
    d = cv.diagnosis()
    lines.append(format_floors(d.to_dict(), unit))
    lines.append(f"train MAE {d.train_mae:.4g}, validation MAE {d.val_mae:.4g}"
                 + ("" if d.avoidable_bias is None else f"; avoidable bias {d.avoidable_bias:.3g} (vs the {d.floor_name})")
                 + f", variance gap {d.variance:.3g}")
    lines.append(f"verdict: {d.verdict}")
    if len(s["outputs"]) > 1:
        lines += format_outputs(s["outputs"], s["objective"], cv.baseline)
    return "\n".join(lines)


def format_outputs(outputs: dict[str, Any], objective: dict[str, Any] | None, baseline: dict[str, Any] | None,
                   test: dict[str, Any] | None = None) -> list[str]:
    """Lines for a model with several outputs: per-output validation metrics (and test MAE), the
    objective, and the single-task baseline (``CVResult.summary()`` ``outputs``/``objective``,
    ``CVResult.baseline``)."""
    lines = ["per output (validation, mean +/- std over folds):"]
    for name, o in outputs.items():
        v, u = o["val"], display_unit(o["unit"])
        lines.append(f"  {name} [{u}]: MAE {v['mae']['mean']:.4g} +/- {v['mae']['std']:.3g}, RMSE "
                     f"{v['rmse']['mean']:.4g}, max {v['max_abs']['mean']:.4g}, R2 {v['r2']['mean']:.4f}, within "
                     f"{o['tolerance']:g} {u}: {v['ela']['mean']:.1%}"
                     + (f"; test MAE {test[name]['mae']:.4g}" if test and name in test else ""))
    if objective:
        lines.append(f"objective {objective['mean']:.4g} +/- {objective['std']:.3g} = {objective['formula']}")
    for b in (baseline or {}).get("outputs", []):
        u = display_unit(b["unit"])
        lo, hi = b["difference"]["ci95"]
        lines.append(f"  shared vs single-task network, {b['name']}: MAE {b['multi']['mean']:.4g} vs "
                     f"{b['single']['mean']:.4g} {u} (difference {b['difference']['mean']:+.3g}, 95 % CI "
                     f"{lo:+.3g} .. {hi:+.3g} {u}): {b['verdict']}")
    return lines


def format_floors(d: dict[str, Any], unit: str) -> str:
    """The floors a diagnosis compares with (``Diagnosis.to_dict()``), one line."""
    noise = ("unknown" if d.get("noise_floor") is None
             else f"{d['noise_floor']:.3g} {unit} ({d.get('noise_floor_source')})")
    line = f"noise floor (input noise) {noise}"
    if d.get("spot_floor") is not None:
        line += f"; spot-to-spot {d['spot_floor']:.3g} {unit}"
        if d.get("floor") is not None:
            line += f" -> unseen-spot floor {d['floor']:.3g} {unit}"
    return line


# --------------------------------------------------------------------------- calib sweep
def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def format_leaderboard(result: Any, top: int = 10) -> str:
    """``calib sweep``: an aligned table of the ``top`` best trials, with a line on the failed ones.

    ``result`` is a :class:`calib.search.SweepResult`.

    Examples
    --------
    ::

        rank  trial  MAE hPa           s  learning_rate  hidden_layers  activation
           1      7  0.412 +/- 0.031  41  0.00412        [32, 32]       tanh
    """
    from ..search.results import leaderboard

    rows = leaderboard(result)[: max(0, int(top))]
    names: list[str] = []
    for r in rows:
        names += [k for k in r["params"] if k not in names]
    unit = f" {result.unit}" if result.unit else ""
    outs: list[str] = []  # several outputs: the score is the objective, each output's MAE beside it
    for r in rows:
        outs += [k for k in r.get("outputs", {}) if k not in outs]
    head = ["rank", "trial", f"{'objective' if outs else 'MAE'}{unit}", "s", *(f"MAE {o}" for o in outs), *names]
    body = []
    for r in rows:
        std = "" if r["mae_std"] is None else f" +/- {r['mae_std']:.4g}"
        body.append([str(r["rank"]), str(r["number"]), f"{r['mae']:.4g}{std}",
                     "" if r["seconds"] is None else f"{r['seconds']:.0f}",
                     *(f"{r.get('outputs', {}).get(o, [float('nan')])[0]:.4g}" for o in outs),
                     *(_fmt_value(r["params"].get(n, "")) for n in names)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {0, 1, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(head), *(line(b) for b in body)]
    if not rows:
        out = ["no completed trials"]
    failed = [t for t in result.trials if t.state == "FAIL" and t.counts]
    if failed:
        out.append(f"{len(failed)} failed trial(s): " + "; ".join(
            f"#{t.number} {(t.reason or '').splitlines()[0][:80]}" for t in failed[:3])
            + (" ..." if len(failed) > 3 else ""))
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    if pruned:
        out.append(f"{len(pruned)} pruned trial(s), stopped behind the median after some folds ([sweep] prune): "
                   + ", ".join(f"#{t.number}" for t in pruned[:8]) + (" ..." if len(pruned) > 8 else ""))
    return "\n".join(out)


def format_sweep_files(storage: str, csv_path: Any, json_path: Any) -> str:
    """``calib sweep``: where the trials and the leaderboard files are."""
    return f"trials recorded in {storage}; leaderboard in {csv_path} and {json_path}"


# --------------------------------------------------------------------------- calib calibrate
def format_calibration_run(d: dict[str, Any]) -> str:
    """``calib calibrate``: the artifact, CV and test metrics beside the physics fit, the verdict.

    ``d`` is :meth:`calib.pipeline.CalibrationRun.to_dict`.
    """
    unit = display_unit(d["unit"])
    cvm = d["cv"]["val"]
    t = d["test"]
    lines = [
        f"artifact: {d['artifact']} (version {d['version']})",
        f"cv   MAE {cvm['mae']['mean']:.4g} +/- {cvm['mae']['std']:.3g} {unit}, "
        f"RMSE {cvm['rmse']['mean']:.4g}, max {cvm['max_abs']['mean']:.4g}, R2 {cvm['r2']['mean']:.5f}",
        (f"test MAE {t['mae']:.4g} {unit}, RMSE {t['rmse']:.4g}, max {t['max_abs']:.4g}, R2 {t['r2']:.5f}, "
         f"within {t['tolerance']:g} {unit}: {t['ela']:.1%}" if t else
         "test: none (test_fraction = 0, every row calibrates the final model); the error estimate is the "
         "k-fold CV above"),
    ]
    if d["test_physics"] and t:
        b = d["test_physics"]
        lines.append(f"physics fit ({d['physics_kind']}) test MAE {b['mae']:.4g} {unit} "
                     f"-> calib's error is {t['mae'] / b['mae']:.2f}x the physics fit's")
    iv = d.get("interval")
    if iv:
        lines.append(f"interval: {iv['level']:.0%} conformal, test coverage {iv['coverage']:.1%} of {iv['n']} rows, "
                     f"mean half-width {iv['mean_width'] / 2:.3g} {unit}"
                     + (f"; expanded uncertainty U = {d['uncertainty']['expanded']:.3g} {unit} (k = 2)"
                        if d.get("uncertainty") else ""))
    lines.append(format_floors(d["diagnosis"], unit))
    lines.append(f"verdict: {d['diagnosis']['verdict']}")
    o = d.get("outputs") or {}
    if len(o.get("cv") or {}) > 1:
        lines += format_outputs(o["cv"], o.get("objective"), o.get("baseline"), o.get("test"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- calib predict / inspect / models
def format_prediction(model: Any, summary: dict[str, Any], output: Any) -> str:
    """``calib predict``: one line on what was predicted and written.

    ``model`` is the :class:`calib.runtime.CalibrationModel`, ``summary`` what
    :func:`calib.predict.predict_file` returned, ``output`` the path asked for.
    """
    n, oor = summary.get("rows"), summary.get("out_of_range")
    why = summary.get("out_of_range_reasons") or {}
    detail = f": {', '.join(f'{k} {v}' for k, v in why.items())}" if why else ""
    return (f"{model.name} {model.version}: predicted {model.target} [{display_unit(model.unit)}] for {n} readings "
            f"({oor} not vouched for{detail}); wrote {summary.get('output', output)}"
            + (f" (provenance: {summary['provenance']})" if str(summary.get("provenance", "")).endswith(".json") else ""))


def format_inspection(info: dict[str, Any]) -> str:
    """``calib inspect``: plain-text form of :func:`calib.predict.inspect_artifact`'s dict."""
    t = info.get("target") or {}
    lines = [
        f"{info.get('name')} {info.get('version')}  ({info.get('path')})",
        f"  model id {info.get('model_id')}, created {info.get('created_utc')}, schema {info.get('schema_version')}",
        f"  predicts {t.get('name')} in {t.get('unit')} (trained on {_num(t.get('min'))}..{_num(t.get('max'))})"
        + ("; with per-reading std across fold models" if info.get("has_std") else ""),
    ]
    for a in info.get("aux_targets") or []:
        lines.append(f"  also predicts {a.get('name')} in {a.get('unit')}")
    lines.append("  inputs (in order, calibrated range):")
    for f in info.get("features") or []:
        src = ""
        if f.get("source") and (f.get("source") != f.get("name") or f.get("source_unit") != f.get("unit")):
            src = f"  [from {f.get('source')} in {f.get('source_unit')}]"
        lines.append(f"    {f.get('name')} ({f.get('unit')}): {_num(f.get('min'))} .. {_num(f.get('max'))}{src}")
    m = info.get("metrics") or {}
    cv = m.get("cv")
    if isinstance(cv, dict) and isinstance(cv.get("val"), dict):
        mae = cv["val"].get("mae") or {}
        lines.append(f"  cv MAE {_num(mae.get('mean'))} +/- {_num(mae.get('std'))} {t.get('unit')}")
    test = m.get("test")
    if isinstance(test, dict) and "mae" in test:
        lines.append(f"  test MAE {_num(test['mae'])} {t.get('unit')}")
    d = info.get("data") or {}
    if d:
        lines.append(f"  data {d.get('file')} ({d.get('rows')} rows, sha256 {str(d.get('sha256'))[:12]}...)")
    kids = info.get("spot_children") or {}
    if kids:
        lines.append(f"  spot children ({len(kids)}, applied by spot id): {', '.join(list(kids)[:10])}"
                     + (" ..." if len(kids) > 10 else ""))
    if info.get("requires_adjustment"):
        lines.append("  trained on spot-normalised phases: only readings of spots with a child are trustworthy")
    versions = info.get("versions") or []
    if versions:
        lines.append(f"  versions: {', '.join(versions)}")
    v = info.get("verification")
    if v is None:
        lines.append("  verification: not run (use --verify)")
    elif v.get("ok"):
        lines.append(f"  verification: OK ({len(v.get('files', []))} files match SHA256SUMS, no unsafe content)")
    else:
        lines.append(f"  verification: FAILED ({v.get('kind')}): {v.get('error')}")
    return "\n".join(lines)


def format_model_list(arts: dict[str, dict[str, Any]], models_dir: Any) -> str:
    """``calib models``: per model its versions and lineage (:func:`calib.spots.history.lineage`)."""
    if not arts:
        return f"no calibration models under {models_dir}"
    lines = []
    for name, e in arts.items():
        lines.append(f"{name}: {', '.join(e['versions'])} (current {e['current']})")
        if e.get("problem"):
            lines.append(f"  current version cannot be loaded: {e['problem']}")
        p = e.get("parent")
        if p:
            lines.append(f"  spot {e.get('spot')} of {p.get('name')} {p.get('version')} (model id {p.get('model_id')})")
        c = e.get("check")
        if c:
            when = (" " if c.get("due") is None else
                    f"; next check due {c['due'][:10]} " + (f"(OVERDUE by {-c['days']} day(s))" if c["overdue"]
                                                             else f"(in {c['days']} day(s))"))
            lines.append(f"  last check {c['date'][:10]} ({c['n_checks']} recorded): gain {c['gain']:.5f}, "
                         f"offset {c['offset']:+.4g}" + (" [forced, out of bounds]" if c.get("forced") else "")
                         + when.rstrip())
        if e.get("children"):
            lines.append(f"  spot children: {', '.join(e['children'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- calib adjust
def format_adjustment(result: Any) -> str:
    """``calib adjust``: one line per spot of :func:`calib.spots.child.adjust_spots`'s ``AdjustResult``."""
    from ..spots.adjust import SPOT_MAP

    p = result.parent
    lines = [f"{p['name']} {p['version']}: {len(result.adjustments)} spot(s) adjusted from "
             f"{result.reference['file']} (method {result.method})"]
    if result.note:
        lines.append(f"  note: {result.note}")
    arts = list(result.artifacts) + [None] * (len(result.adjustments) - len(result.artifacts))
    checks = {a.spot_id: c for a, c in zip(result.adjustments, getattr(result, "checks", ()))}
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
        c = checks.get(a.spot_id)
        if c:
            d = c.get("drift")
            drift = ("one check: drift unknown" if d is None else
                     f"drift over {d['n_checks']} checks: gain {d['gain_per_day'] * 365.25:+.4f}/year, offset "
                     f"{d['offset_per_day'] * 365.25:+.4g} {u}/year")
            err = c.get("projected_error_at_due")
            lines.append(
                f"    check {c['date'][:10]}: gain {c['gain']:.5f}, offset {c['offset']:+.4g} {u}"
                + ("" if c["within_bounds"] else f" OUT OF BOUNDS ({'; '.join(c['reasons'])}), forced")
                + f"; {drift}; next check due {c['due'][:10]}"
                + ("" if err is None else f" (projected error {err:.3g} {u}, tolerance {c['tolerance']:g})")
            )
    return "\n".join(lines)


def format_serving(models_dir: Any, host: str, port: int, token: bool) -> str:
    """The start-up line of ``calib serve``."""
    shown = f"[{host}]" if ":" in host else host
    where = "this computer only" if host in ("127.0.0.1", "localhost", "::1") else "the network"
    return (f"Serving {models_dir} at http://{shown}:{port}/ ({where}; "
            f"{'token required' if token else 'no token'}); Ctrl+C stops")
