"""A printable calibration certificate: ``certificate.html`` of a batch artifact or a spot child.

``calibration.json`` (+ ``cv_predictions.csv`` of a batch artifact) -> one self-contained HTML
page with print CSS (A4, no navigation): what was calibrated (sensor or spot, model id and
version, date), by whom against which reference standard, every calibration point with its
reference, the model's value, the residual and pass/fail against the tolerance, the
uncertainty (conformal interval and expanded uncertainty), the coefficients of the classical
form when there is one, software versions and the data checksum. Units are typeset
(``umol_per_L`` as µmol/L, ``degC`` as °C).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..units import display_unit
from .markup import escape

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["render_certificate", "CERTIFICATE_FILE"]

CERTIFICATE_FILE = "certificate.html"

_CSS = """
body{font:10.5pt/1.4 "DejaVu Sans",Arial,sans-serif;color:#111;margin:24px auto;max-width:820px}
h1{font-size:17pt;margin:0 0 4px}h2{font-size:12pt;margin:18px 0 6px;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;margin:4px 0}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#1a7f37;font-weight:600}
.fail{color:#b42318;font-weight:700}.sub{color:#444}.sign{margin-top:28px;display:flex;gap:40px}
.sign div{flex:1;border-top:1px solid #333;padding-top:4px}code{font-size:9.5pt}
@page{size:A4;margin:14mm}@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}
"""


def _num(v: Any, digits: int = 6) -> str:
    try:
        return f"{float(v):.{digits}g}"
    except (TypeError, ValueError):
        return ""


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _points_batch(meta: Mapping[str, Any], frame: pd.DataFrame | None, unit: str, tol: float) -> tuple[str, int, int]:
    target = meta["target"]["name"]
    if frame is None or f"{target}_fit" not in frame.columns:
        return "<p>No calibration points recorded in this artifact.</p>", 0, 0
    feats = [f["name"] for f in meta["features"]]
    head = ("<tr><th class='n'>#</th>" + "".join(
        f"<th class='n'>{escape(f['name'])} ({escape(display_unit(f['unit']))})</th>" for f in meta["features"])
        + f"<th class='n'>reference ({escape(unit)})</th><th class='n'>calibrated ({escape(unit)})</th>"
        f"<th class='n'>residual</th><th class='n'>out-of-fold residual</th><th>within &plusmn;{_num(tol, 4)}</th></tr>")
    rows, n_pass = [], 0
    for i, r in enumerate(frame.itertuples(index=False), start=1):
        d = r._asdict() if hasattr(r, "_asdict") else dict(zip(frame.columns, r))
        ref, fit = float(d[target]), float(d[f"{target}_fit"])
        res = fit - ref
        oof = float(d[f"{target}_pred"]) - ref if f"{target}_pred" in d else float("nan")
        ok = abs(res) <= tol
        n_pass += ok
        rows.append(f"<tr><td class='n'>{i}</td>" + "".join(f"<td class='n'>{_num(d.get(c))}</td>" for c in feats)
                    + f"<td class='n'>{_num(ref)}</td><td class='n'>{_num(fit)}</td><td class='n'>{_num(res, 3)}</td>"
                    f"<td class='n'>{_num(oof, 3)}</td><td class='{'pass' if ok else 'fail'}'>"
                    f"{'pass' if ok else 'FAIL'}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>", n_pass, len(rows)


def _points_child(meta: Mapping[str, Any], unit: str, tol: float) -> tuple[str, int, int]:
    a = meta["spot_adjustment"]
    head = (f"<tr><th>level</th><th>rows of the reference file</th><th class='n'>reference ({escape(unit)})</th>"
            f"<th class='n'>batch model ({escape(unit)})</th><th class='n'>adjusted ({escape(unit)})</th>"
            f"<th class='n'>temperature (\u00b0C)</th><th>within &plusmn;{_num(tol, 4)}</th></tr>")
    rows, n_pass = [], 0
    for lev in ("zero", "air"):
        p = a.get(lev) or {}
        res = float(p.get("adjusted_reading", float("nan"))) - float(p.get("value", float("nan")))
        ok = abs(res) <= tol
        n_pass += ok
        rows.append(f"<tr><td>{lev}</td><td>{escape(', '.join(map(str, p.get('rows', []))))}</td>"
                    f"<td class='n'>{_num(p.get('value'))}</td><td class='n'>{_num(p.get('batch_reading'))}</td>"
                    f"<td class='n'>{_num(p.get('adjusted_reading'))}</td><td class='n'>{_num(p.get('temperature_degC'))}</td>"
                    f"<td class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'FAIL'}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>", n_pass, len(rows)


def render_certificate(meta: Mapping[str, Any], cv_predictions: pd.DataFrame | None = None, *,
                       operator: str | None = None, reference_standard: str | None = None,
                       tolerance: float | None = None) -> str:
    """The certificate page of an artifact (batch model or spot child).

    Parameters
    ----------
    meta : mapping
        The final ``calibration.json``.
    cv_predictions : pandas.DataFrame, optional
        ``cv_predictions.csv`` (batch artifact): every calibration row with ``<target>_fit`` (the
        exported model) and ``<target>_pred`` (out-of-fold).
    operator, reference_standard : str, optional
        Who calibrated, and against what (default: ``meta["certificate"]`` entries).
    tolerance : float, optional
        Pass/fail bound on the residual, target unit (default: the Error Limited Accuracy
        tolerance of the cross-validation).
    """
    cert = meta.get("certificate") if isinstance(meta.get("certificate"), Mapping) else {}
    operator = operator or cert.get("operator") or "not recorded"
    reference_standard = reference_standard or cert.get("reference_standard") or "not recorded"
    unit = display_unit(meta["target"]["unit"])
    folds = (meta.get("cv") or {}).get("folds") or [{}]
    tol = tolerance if tolerance is not None else float(((folds[0] or {}).get("val") or {}).get("tolerance") or 1.0)
    child = isinstance(meta.get("spot_adjustment"), Mapping)
    what = (f"spot <b>{escape(meta['spot_adjustment']['spot_id'])}</b> (two-point check of the batch model "
            f"<code>{escape(meta['spot_adjustment']['parent']['name'])}</code> "
            f"{escape(meta['spot_adjustment']['parent']['version'])})" if child else
            f"sensor batch / data set <code>{escape((meta.get('data') or {}).get('file'))}</code>")
    points, n_pass, n = _points_child(meta, unit, tol) if child else _points_batch(meta, cv_predictions, unit, tol)
    verdict = ("<span class='pass'>PASS</span>" if n and n_pass == n else
               f"<span class='fail'>{n - n_pass} of {n} points outside the tolerance</span>" if n else "n/a")
    u = meta.get("uncertainty") if isinstance(meta.get("uncertainty"), Mapping) else None
    c = meta.get("conformal") if isinstance(meta.get("conformal"), Mapping) else None
    unc = []
    if c:
        unc.append(("prediction interval", f"{float(c['level']):.0%} conformal interval, given with every "
                    f"prediction (<code>{escape(meta['target']['name'])}_lo</code> .. <code>_hi</code>); "
                    f"calibrated on {c.get('n')} {escape(c.get('source', 'out-of-fold'))} residuals"))
    if u:
        unc.append(("expanded uncertainty", f"U = {_num(u['expanded'], 4)} {escape(unit)} (k = {_num(u['k'], 2)}), "
                    + ", ".join(f"{escape(k)} {_num(v, 3)}" for k, v in u["components"].items())))
    chk = (meta.get("spot_adjustment") or {}).get("check") if child else None
    if isinstance(chk, Mapping):
        state = ("within the acceptance bounds" if chk.get("within_bounds") else
                 "OUTSIDE the acceptance bounds, forced by the operator" if chk.get("forced") else "outside the bounds")
        unc.append(("check", f"{escape(chk.get('date'))}: gain {_num(chk.get('gain'), 5)}, offset "
                    f"{_num(chk.get('offset'), 4)} {escape(unit)}, {state}; {chk.get('previous_checks', 0)} earlier "
                    "check(s)" + (f"; drift {_num((chk.get('drift') or {}).get('error_per_day'), 3)} {escape(unit)}/day"
                                  if chk.get("drift") else "")))
        unc.append(("next check due", f"<b>{escape(chk.get('due'))}</b> (projected error then "
                    f"{_num(chk.get('projected_error_at_due'), 3)} {escape(unit)}, tolerance {_num(chk.get('tolerance'), 3)})"))
    est = meta.get("error_estimate") or "test"
    cvm = ((meta.get("cv") or {}).get("summary") or {}).get("val", {}).get("mae", {})
    test = meta.get("test") if isinstance(meta.get("test"), Mapping) else None
    err = (f"k-fold cross-validation MAE {_num(cvm.get('mean'), 4)} {escape(unit)}" if cvm else "not recorded")
    if child and cvm:
        err += " (the batch model's, across spots)"
    if test and est == "test":
        err += f"; held-out test MAE {_num(test.get('mae'), 4)} {escape(unit)} ({test.get('rows')} rows)"
    elif est != "test":
        err += " (no test part: every point calibrated the model)"
    sheet = meta.get("coefficients") if isinstance(meta.get("coefficients"), Mapping) else None
    coef = ""
    if sheet:
        coef = (f"<h2>Coefficients ({escape(sheet.get('vendor'))})</h2><p class='sub'>{escape(sheet.get('source'))}; "
                f"O2 in {escape(display_unit(sheet.get('unit', '')))}. <code>{escape(sheet.get('formula'))}</code></p>"
                + _kv([(k, _num(v, 10)) for k, v in (sheet.get("coefficients") or {}).items()]))
    versions = meta.get("versions") or {}
    data = meta.get("data") or {}
    ident = _kv([
        ("calibrated", what),
        ("model", f"<code>{escape(meta['name'])}</code> version <b>{escape(meta['version'])}</b>"),
        ("model id", f"<code>{escape(meta['model_id'])}</code>"),
        ("date (UTC)", escape(meta.get("created_utc"))),
        ("operator", escape(operator)),
        ("reference standard", escape(reference_standard)),
        ("measurand", f"{escape(meta['target']['name'])} in {escape(unit)}, from "
                      + ", ".join(f"{escape(f['name'])} ({escape(display_unit(f['unit']))}, "
                                  f"{_num(f.get('min'), 5)} to {_num(f.get('max'), 5)})" for f in meta["features"])),
        ("result", verdict),
    ])
    body = (f"<h1>Calibration certificate</h1><p class='sub'>{escape(meta['name'])} {escape(meta['version'])} "
            "&middot; written by calib</p>" + ident
            + f"<h2>Calibration points</h2><p class='sub'>Residual = calibrated &minus; reference; pass when "
              f"|residual| &le; {_num(tol, 4)} {escape(unit)}."
            + (" The out-of-fold residual is that of the fold model that did not see the point." if not child else
               " The two points of the check are met by construction; they do not validate the adjustment.")
            + "</p>" + points
            + "<h2>Uncertainty</h2>" + _kv(unc + [("error estimate", err)]) + coef
            + "<h2>Traceability</h2>" + _kv([
                ("data", f"<code>{escape(data.get('file'))}</code>, {escape(data.get('rows'))} rows, SHA-256 "
                         f"<code>{escape(data.get('sha256'))}</code>"),
                ("software", ", ".join(f"{escape(k)} {escape(v)}" for k, v in versions.items() if v)),
                ("artifact", "model.onnx, calibration.json and this page are listed with their SHA-256 in SHA256SUMS"),
            ])
            + "<div class='sign'><div>operator</div><div>reviewed by</div><div>date</div></div>")
    title = escape(f"Calibration certificate {meta['name']} {meta['version']}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")
