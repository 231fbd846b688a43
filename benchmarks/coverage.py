"""Coverage of calib's 95 % conformal interval on data it never saw.

Run from the repository root::

    .venv/bin/python benchmarks/coverage.py [--repeats 8] [--rotations 4] [--jobs 2] [--raw /work/shared/data/raw]

The interval is fitted exactly as the main job fits it (:func:`calib.pipeline.fit_trust` on the
grouped out-of-fold residuals of :func:`calib.validate.cross_validate`), and evaluated with
:func:`calib.trust.evaluate`, which the tests prove equal to the artifact's ONNX outputs
(``tests/test_trust.py``, ``tests/test_runtime.py``). Every figure is on rows whose spot (or
certificate point) took no part in fitting the model or its interval:

1. bundled simulated batch (``data/readings.csv``, ``data/calib.toml``'s ``[model]``, no sweep):
   the 12 spots are cut at random into ``--rotations`` groups; each group is held out once; the
   model and its interval are fitted on the other spots (5 grouped folds inside). This is done
   for ``--repeats`` different random partitions, and the figures are pooled over all of them.
2. the same held-out spots after a two-point check (``calib adjust``'s default ``linear``
   method: ``y = s * batch + c`` through the spot's 0 and 212 hPa readings at 22.5 degC), with
   the interval a spot child carries (``conformal_adjusted``); scored on the spot's other rows.
3. the real certificates (Aanderaa 4330, 63 points; SBE63, 24 points), nested CV: 5 shuffled
   outer folds; in each the ``physics`` family and its interval are fitted on the outer-training
   points (5 inner folds) and scored on the outer-validation points. Repeated ``--repeats`` times
   with new outer folds (repeated nested CV), pooled.

Why repeats: with 12 spots (or 24 certificate points) one partition is one draw. The coverage of
the same method on the bundled batch ranged over 94.8-97.6 % between four partitions. Each
repeat's own figures are printed beside the pooled ones.

Printed per case: rows, coverage overall and per temperature tercile (target 93-97 %), MAE,
mean half-width and mean full width as multiples of the MAE, and the fraction flagged out of
domain; pooled, a 95 % bootstrap interval resampling whole spots (points) over all repeats. A
Gaussian error has a 95 % full width of 4.9 x its MAE (half-width 2.45 x), so a calibrated 95 %
interval cannot be much narrower than that without being wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REF_T, ZERO, AIR = 22.5, 0.0, 212.0


def _cfg(text: str):
    from calib.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "calib.toml"
        p.write_text(text)
        return load_config(p)


def _fit(ds, cfg, rows, folds, jobs, seed=0):
    """k-fold (grouped when ds has groups) + refit + interval, as the main job does."""
    from calib.nn import fit_member, predict_member, refit_config
    from calib.pipeline import fit_trust
    from calib.validate import cross_validate

    mc = cfg.model_config().replace(seed=seed)
    cv = cross_validate(ds, rows, mc, folds=folds, jobs=jobs, tolerance=1.0, scaling=cfg.split.scaling,
                        seed=seed, physics=False)
    x, y = ds.x(rows), ds.y(rows)
    final_cfg, _ = refit_config(mc, cv.best_epochs, len(rows), cv.fit_rows, cv.curve_best_epoch)
    final = fit_member(final_cfg, x, y, scaling=cfg.split.scaling, feature_names=list(ds.feature_names),
                       feature_units=[c.unit for c in ds.features], target_unit=ds.target.unit)
    trust, meta = fit_trust(ds, cfg, cv, x, y[:, 0], rows)
    return (lambda xx: predict_member(final, xx)[:, 0]), trust, meta, cv


def _row(name, tab, ood=None):
    bins = " / ".join(f"{100 * c:5.1f}" for c in tab["coverage_bins"])
    print(f"  {name:<52} {tab['n']:>5}  {100 * tab['coverage']:5.1f} %  [{bins}]  MAE {tab['mae']:.4g}  "
          f"half {tab['half_width_over_mae']:.2f}x  full {tab['width_over_mae']:.2f}x"
          + ("" if ood is None else f"  out of domain {100 * ood:.1f} %"))
    ci = tab.get("ci")
    if ci:
        b = " / ".join(f"{100 * a:.0f}-{100 * z:.0f}" for a, z in ci["bins"])
        print(f"  {'':<52} {'':>5}  95 % CI {100 * ci['overall'][0]:.1f}-{100 * ci['overall'][1]:.1f} % "
              f"[{b}] ({ci['by']})")
    for i, t in enumerate(tab.get("repeats", ())):
        bins = " / ".join(f"{100 * c:5.1f}" for c in t["coverage_bins"])
        print(f"  {'':<52} {'':>5}  repeat {i + 1}: {100 * t['coverage']:5.1f} %  [{bins}]  MAE {t['mae']:.4g}  "
              f"half {t['half_width_over_mae']:.2f}x")


def _pool(acc_runs, seed):
    """Coverage table of rows pooled over repeats, with each repeat's own figures beside it."""
    from calib.trust import coverage_table

    per = []
    for d in acc_runs:
        d = {k: np.concatenate(v) for k, v in d.items()}
        t = coverage_table(d["y"], d["lo"], d["hi"], d["p"], d["t"])
        per.append({k: t[k] for k in ("n", "coverage", "coverage_bins", "mae", "half_width_over_mae")})
    d = {k: np.concatenate([np.concatenate(r[k]) for r in acc_runs]) for k in acc_runs[0]}
    tab = coverage_table(d["y"], d["lo"], d["hi"], d["p"], d["t"])
    tab["out_of_domain"] = float(np.mean(d["code"] != 0))
    tab["ci"] = _bootstrap(d, seed)
    tab["repeats"] = per
    return tab


def bundled(args):
    """Held-out spots, ``--repeats`` random partitions of the spots into ``--rotations`` groups."""
    from calib.config import load_config
    from calib.ingest import load_dataset
    from calib.trust import ConformalSpec, TrustSpec, evaluate

    cfg = load_config(ROOT / "data" / "calib.toml")
    ds = load_dataset(ROOT / "data" / "readings.csv", cfg.data)
    groups = ds.groups()
    spots = np.array(sorted(np.unique(groups)))
    x_all, y_all = ds.x(), ds.y()[:, 0]
    tj = [c.unit for c in ds.features].index("degC")
    runs = {"batch": [], "adjusted": []}
    t0 = time.perf_counter()
    for i in range(args.repeats):
        held_sets = np.array_split(np.random.default_rng(args.seed + i).permutation(spots), args.rotations)
        acc = {k: {"y": [], "p": [], "lo": [], "hi": [], "t": [], "code": [], "g": []} for k in runs}
        for r, held in enumerate(held_sets):
            train = np.flatnonzero(~np.isin(groups, held))
            predict, trust, meta, _ = _fit(ds, cfg, train, 5, args.jobs, seed=args.seed + 100 * i + r)
            child = TrustSpec(ConformalSpec.from_dict(meta["conformal_adjusted"]), trust.domain)
            for spot in held:
                rows = np.flatnonzero(groups == spot)
                x, y, t = x_all[rows], y_all[rows], x_all[rows, tj]
                p = predict(x).astype(np.float32).astype(np.float64)
                ev = evaluate(trust, x, p)
                for k, v in (("y", y), ("p", p), ("lo", ev["lo"]), ("hi", ev["hi"]), ("t", t),
                             ("code", ev["domain_code"]), ("g", groups[rows])):
                    acc["batch"][k].append(v)
                # the two-point check: zero and air at the reference temperature (calib adjust, linear)
                at = np.abs(t - REF_T) <= 1.0
                z, a = at & (y == ZERO), at & (y == AIR)
                s = (AIR - ZERO) / (p[a].mean() - p[z].mean())
                c = ZERO - s * p[z].mean()
                pa = (s * p + c).astype(np.float32).astype(np.float64)
                keep = ~(z | a)
                ev = evaluate(child, x[keep], pa[keep])
                for k, v in (("y", y[keep]), ("p", pa[keep]), ("lo", ev["lo"]), ("hi", ev["hi"]), ("t", t[keep]),
                             ("code", ev["domain_code"]), ("g", groups[rows][keep])):
                    acc["adjusted"][k].append(v)
            print(f"  partition {i + 1}/{args.repeats}, rotation {r + 1}/{len(held_sets)}: held out "
                  f"{', '.join(sorted(held))} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for k in runs:
            runs[k].append(acc[k])
    return {k: _pool(v, args.seed) for k, v in runs.items()}


def _bootstrap(d, seed, n_boot=2000):
    """95 % percentile intervals of the coverage (overall, per tercile) resampling whole groups."""
    inside = (d["y"] >= d["lo"]) & (d["y"] <= d["hi"])
    edges = np.quantile(d["t"], [1 / 3, 2 / 3])
    tb = (d["t"][:, None] > edges[None, :]).sum(axis=1)
    labels = np.unique(d["g"])
    idx = {g: np.flatnonzero(d["g"] == g) for g in labels}
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        rows = np.concatenate([idx[g] for g in rng.choice(labels, len(labels))])
        stats.append([inside[rows].mean(), *(inside[rows][tb[rows] == b].mean() if (tb[rows] == b).any()
                                               else np.nan for b in range(3))])
    lo, hi = np.nanpercentile(np.array(stats), [2.5, 97.5], axis=0)
    return {"overall": [float(lo[0]), float(hi[0])], "bins": [[float(a), float(b)] for a, b in zip(lo[1:], hi[1:])],
            "by": f"{len(labels)} groups resampled"}


CERTS = {
    "aanderaa_4330": ("aanderaa-optode-calcerts/aadi4330_1463_b1206E.csv",
                      'features = ["phase_deg", "temperature_degC"]\ntarget = "o2_umol_per_L"'),
    "sbe63": ("aanderaa-optode-calcerts/sbe63_0800_factory.csv",
              'features = ["phase_delay_us", "temperature_degC"]\ntarget = "o2_mL_per_L"'),
}


def certificates(args):
    from calib.ingest import load_dataset

    out = {}
    for name, (rel, data) in CERTS.items():
        path = Path(args.raw) / rel
        if not path.exists():
            print(f"  {name}: {path} absent, skipped")
            continue
        cfg = _cfg(f"[data]\n{data}\n\n[model]\nfamily = \"physics\"\n")
        ds = load_dataset(path, cfg.data)
        out[name] = _pool(nested_cv(ds, cfg, args.repeats, args.seed), args.seed)
    return out


def nested_cv(ds, cfg, repeats, seed):
    """Repeated nested CV of a certificate: per repeat, 5 shuffled outer folds; in each the model and
    its interval are fitted on the outer-training points (5 inner folds) and evaluated on the others.
    Returns per repeat the evaluated rows (``y, p, lo, hi, t, code, g``: lists of arrays)."""
    from sklearn.model_selection import KFold

    from calib.trust import evaluate

    x_all, y_all = ds.x(), ds.y()[:, 0]
    tj = [c.unit for c in ds.features].index("degC")
    runs = []
    for i in range(repeats):  # each repeat shuffles the outer folds anew
        acc = {k: [] for k in ("y", "p", "lo", "hi", "t", "code", "g")}
        for k, (tr, va) in enumerate(KFold(5, shuffle=True, random_state=seed + i).split(x_all)):
            predict, trust, _, _ = _fit(ds, cfg, tr, 5, 1, seed=seed + 100 * i + k)
            p = predict(x_all[va]).astype(np.float32).astype(np.float64)
            ev = evaluate(trust, x_all[va], p)
            for key, v in (("y", y_all[va]), ("p", p), ("lo", ev["lo"]), ("hi", ev["hi"]), ("t", x_all[va, tj]),
                           ("code", ev["domain_code"]), ("g", va)):
                acc[key].append(v)
        runs.append(acc)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=8, help="random partitions (outer-fold shuffles) pooled")
    ap.add_argument("--rotations", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--raw", default=str(ROOT.parent / "shared" / "data" / "raw"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    print("coverage of the 95 % conformal interval on unseen spots / points "
          "(coverage overall [per temperature tercile]; width as a multiple of the MAE)")
    res = {"bundled": bundled(args)}
    res["certificates"] = certificates(args)
    print()
    print(f"  {'case':<52} {'rows':>5}  coverage  [terciles]")
    _row("bundled batch, held-out spots", res["bundled"]["batch"], res["bundled"]["batch"]["out_of_domain"])
    _row("bundled batch, held-out spots, two-point adjusted", res["bundled"]["adjusted"],
         res["bundled"]["adjusted"]["out_of_domain"])
    for name, tab in res["certificates"].items():
        _row(f"{name} certificate, nested CV (physics)", tab, tab["out_of_domain"])
    print(f"\n({time.perf_counter() - t0:.0f} s; rows are evaluations pooled over {args.repeats} repeats)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
