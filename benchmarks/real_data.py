"""Accuracy on real factory calibrations: calib (nested k-fold) vs the classical fit vs MLPRegressor.

Run from the repository root::

    .venv/bin/python benchmarks/real_data.py [--folds 5] [--inner-folds 3] [--seed 0] [--jobs 1]
                                             [--raw /work/shared/data/raw]

Data: the real calibration files in ``/work/shared/data/raw`` (GPL-3.0, read in place, never
copied; see their SOURCE.md), read with :func:`calib.ingest.load_dataset`:

* ``aanderaa-optode-calcerts/aadi4330_1463_b1206E.csv``: Aanderaa 4330, 63 points, phase (deg) and
  temperature (degC) -> ``o2_umol_per_L``;
* ``aanderaa-optode-calcerts/sbe63_0800_factory.csv``: Sea-Bird SBE63, 24 points, phase delay (us)
  and temperature (degC) -> ``o2_mL_per_L``.

Skipped: ``two_point_calibrations.csv`` (two points per sensor) and the WHOI two-point log (two O2
levels): neither is a calibration set. Without the folder the benchmark prints a skip message.

Every method is scored on the same ``--folds`` outer folds (shuffled ``KFold``, seeded); each row
is predicted once, by a model that never saw it; MAE and RMSE are pooled over all rows (target unit):

(a) ``calib``, nested CV: in each outer fold, the family is chosen among ``physics``, ``hybrid``
    and ``mlp`` (each :class:`calib.nn.ModelConfig` with its defaults: 2 x 32 tanh, Adam,
    ``epochs = patience = "auto"``) by :func:`calib.validate.cross_validate` with
    ``--inner-folds`` folds on the outer-training rows only, and chosen as calib's sweep
    chooses (:func:`calib.search.one_se_choice`: the lowest inner MAE, except that ``physics``
    wins when within one standard error of it); the winner is refitted on all
    outer-training rows with :func:`calib.nn.fit_member` for the median best epoch of its
    inner folds (:func:`calib.nn.refit_config`, as the main job refits: a ``hybrid`` starts
    at the physics fit and whose folds mostly kept that epoch 0 refits as ``physics``) and
    predicts the outer-validation rows with :func:`calib.nn.predict_member`. The
    outer-validation rows play no part in the choice: an honest estimate of what
    ``calib calibrate`` delivers. Also shown, as a diagnostic only: the bare lowest inner MAE
    (calib's rule before the one-standard-error rule).
(b) the classical fit, :func:`calib.physics.fit_physics` with ``kind="auto"`` (inner-CV choice
    between SVU and two-site for a phase in deg, SBE63 for a delay in us), and each applicable
    form on its own (``svu``, ``two_site``; ``sbe63``), fitted on the outer-training rows;
(c) scikit-learn ``MLPRegressor`` (2 x 32 tanh, L-BFGS, ``alpha=1e-4``, up to 20000 iterations)
    on standardised inputs and target (``StandardScaler``, ``TransformedTargetRegressor``).

Target: calib's MAE at or below the classical fit's (auto) on every file. Prints one table per
file and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RAW = Path("/work/shared/data/raw")
#: (file relative to the raw folder, features, target)
FILES = (
    ("aanderaa-optode-calcerts/aadi4330_1463_b1206E.csv", ("phase_deg", "temperature_degC"), "o2_umol_per_L"),
    ("aanderaa-optode-calcerts/sbe63_0800_factory.csv", ("phase_delay_us", "temperature_degC"), "o2_mL_per_L"),
)
SKIPPED = (
    ("aanderaa-optode-calcerts/two_point_calibrations.csv", "two points per sensor, not a calibration set"),
    ("whoi-aanderaa4831-sn507-twopoint", "a two-point lab log (two O2 levels), not a calibration set"),
)
FAMILIES = ("physics", "hybrid", "mlp")  # ties go to the simpler family (this order)


def _metrics(y: np.ndarray, p: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    err = p - y
    fold_mae = [float(np.mean(np.abs(err[va]))) for _, va in folds]
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "max_abs": float(np.max(np.abs(err))), "fold_mae_std": float(np.std(fold_mae, ddof=1))}


def one_se_family(cvs: dict) -> str:
    """calib's choice among the families' inner CV results (calib.search.one_se_choice)."""
    from calib.search import one_se_choice

    entries = []
    for fam in FAMILIES:
        _, std = cvs[fam].mean_std("mae")
        entries.append((fam, float(cvs[fam].score), float(std), len(cvs[fam].folds)))
    return FAMILIES[one_se_choice(entries)]


def nested_calib(ds, folds, inner_folds: int, seed: int, jobs: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Out-of-fold predictions of calib with the family chosen by inner k-fold in each outer fold.

    Returns predictions for two selection rules: ``one_se`` (calib's sweep: ``physics`` when it is
    within one standard error of the lowest inner MAE, Breiman's rule) and ``argmin``
    (diagnostic: the bare lowest inner MAE), and a record per outer fold.
    """
    from calib.nn import ModelConfig, fit_member, predict_member, refit_config
    from calib.validate import cross_validate

    x, y = ds.x(), ds.y()
    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    preds = {"argmin": np.full(len(x), np.nan), "one_se": np.full(len(x), np.nan)}
    record = []
    for k, (tr, va) in enumerate(folds):
        cvs = {}
        for fam in FAMILIES:
            cfg = ModelConfig(family=fam, seed=seed)
            cvs[fam] = cross_validate(ds, tr, cfg, folds=inner_folds, jobs=jobs, seed=seed, physics=False)
        scores = {f: cvs[f].score for f in FAMILIES}
        choice = {"argmin": min(FAMILIES, key=lambda f: (scores[f], FAMILIES.index(f))), "one_se": one_se_family(cvs)}
        fitted: dict[str, tuple[np.ndarray, int]] = {}
        for fam in dict.fromkeys(choice.values()):
            # as calib.pipeline refits: median best epoch of the folds (L-BFGS: the folds' mean validation
            # curve's lowest iteration, scaled by the rows), no early stopping
            cfg, epochs = refit_config(ModelConfig(family=fam, seed=seed), cvs[fam].best_epochs, len(tr),
                                       cvs[fam].fit_rows, cvs[fam].curve_best_epoch)
            member = fit_member(cfg, x[tr], y[tr], scaling="standard", feature_names=names, feature_units=units,
                                target_unit=ds.target.unit)
            fitted[fam] = (predict_member(member, x[va])[:, 0], epochs)
        for rule, fam in choice.items():
            preds[rule][va] = fitted[fam][0]
        best = choice["one_se"]
        epochs = fitted[best][1]
        record.append({"fold": k, "chosen": best, "chosen_argmin": choice["argmin"], "epochs": epochs,
                       "inner_mae": scores, "outer_mae": float(np.mean(np.abs(preds["one_se"][va] - y[va, 0])))})
        print(f"    outer fold {k + 1}/{len(folds)}: inner MAE "
              + ", ".join(f"{f} {scores[f]:.4g}" for f in FAMILIES)
              + f" -> {best}" + (f" ({epochs} epochs)" if epochs else "")
              + f"; outer MAE {record[-1]['outer_mae']:.4g}"
              + ("" if choice["argmin"] == best else f" (lowest inner MAE: {choice['argmin']})"), flush=True)
    return preds, record


def classical(ds, folds, kind: str) -> tuple[np.ndarray, list[str]]:
    from calib.physics import fit_physics

    x, y = ds.x(), ds.y()[:, 0]
    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    pred, kinds = np.full(len(x), np.nan), []
    for tr, va in folds:
        b = fit_physics(x[tr], y[tr], names, units, ds.target.unit, kind=kind)
        pred[va] = b.predict(x[va])
        kinds.append(b.kind)
    return pred, kinds


def sklearn_mlp(ds, folds, seed: int) -> np.ndarray:
    """Out-of-fold predictions of scikit-learn's MLPRegressor (benchmarks/_baselines.py)."""
    from _baselines import sklearn_mlp as fit_predict

    x, y = ds.x(), ds.y()[:, 0]
    pred = np.full(len(x), np.nan)
    for tr, va in folds:
        pred[va] = fit_predict(x[tr], y[tr], x[va], seed)
    return pred


def run_file(path: Path, features: tuple[str, ...], target: str, args) -> dict:
    from calib.config import DataSpec
    from calib.ingest import load_dataset
    from calib.validate import make_folds

    t0 = time.perf_counter()
    ds = load_dataset(path, DataSpec(features=features, target=target))
    y = ds.y()[:, 0]
    folds = make_folds(ds.n_rows, args.folds, None, args.seed)
    unit = ds.target.unit
    print(f"{path.name}: {ds.n_rows} points, {', '.join(f'{c.name} [{c.unit}]' for c in ds.features)} -> "
          f"{target} [{unit}]; {args.folds} outer folds (seed {args.seed}), family chosen by "
          f"{args.inner_folds}-fold inner CV", flush=True)
    p_calib, record = nested_calib(ds, folds, args.inner_folds, args.seed, args.jobs)
    methods: dict[str, dict] = {
        "calib": {**_metrics(y, p_calib["one_se"], folds), "chosen": [r["chosen"] for r in record]},
        "calib_argmin": {**_metrics(y, p_calib["argmin"], folds), "chosen": [r["chosen_argmin"] for r in record]},
    }
    units = {c.unit for c in ds.features}
    kinds = ["auto"] + (["svu", "two_site"] if "deg" in units else []) + (["sbe63"] if "us" in units else [])
    for kind in kinds:
        p, used = classical(ds, folds, kind)
        methods[f"classical_{kind}"] = {**_metrics(y, p, folds), "kinds": used}
    methods["sklearn_mlp"] = _metrics(y, sklearn_mlp(ds, folds, args.seed), folds)

    labels = {"calib": "calib (nested CV: physics/hybrid/mlp)", "calib_argmin": "  diagnostic: lowest inner MAE",
              "sklearn_mlp": "sklearn MLPRegressor 2x32 tanh lbfgs"}
    base = methods["classical_auto"]["mae"]
    print(f"  {'method':42s} {'MAE':>9s} {'RMSE':>9s} {'max':>9s} {'fold sd':>8s} {'MAE/classical':>13s}")
    for key, m in methods.items():
        label = labels[key] if key in labels else "classical " + key.split("_", 1)[1]
        if key == "classical_auto":
            used = m["kinds"]
            label += " (" + ", ".join(f"{k} x{used.count(k)}" for k in sorted(set(used))) + ")"
        print(f"  {label:42s} {m['mae']:9.4g} {m['rmse']:9.4g} {m['max_abs']:9.4g} {m['fold_mae_std']:8.3g} "
              f"{m['mae'] / base:13.3f}")
    ok = methods["calib"]["mae"] <= base
    print(f"  chosen per outer fold: {', '.join(methods['calib']['chosen'])} "
          f"(lowest inner MAE: {', '.join(methods['calib_argmin']['chosen'])})")
    print(f"  calib <= classical (auto): {'yes' if ok else 'NO'} ({methods['calib']['mae']:.4g} vs {base:.4g} {unit}, "
          f"ratio {methods['calib']['mae'] / base:.3f}); {time.perf_counter() - t0:.0f} s", flush=True)
    return {"file": path.name, "n": ds.n_rows, "target": target, "unit": unit, "folds": args.folds,
            "inner_folds": args.inner_folds, "methods": methods, "calib_le_classical": ok,
            "outer": record, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW, help="folder of the real data (read in place)")
    ap.add_argument("--folds", type=int, default=5, help="outer folds")
    ap.add_argument("--inner-folds", type=int, default=3, help="inner folds choosing the family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="parallel processes of the inner k-fold")
    ap.add_argument("--only", default="", help="run only the files whose name contains this text")
    args = ap.parse_args(argv)

    if not args.raw.is_dir():
        print(f"real data folder {args.raw} not found; benchmark skipped")
        print(json.dumps({"benchmark": "real_data", "skipped": f"{args.raw} not found"}))
        return 0
    for rel, why in SKIPPED:
        if (args.raw / rel).exists():
            print(f"skipped {rel}: {why}")
    results = []
    for rel, features, target in FILES:
        if args.only not in rel:
            continue
        path = args.raw / rel
        if not path.is_file():
            print(f"{path} not found; skipped")
            continue
        results.append(run_file(path, features, target, args))
        print()
    met = all(r["calib_le_classical"] for r in results)
    print(f"target calib MAE <= classical MAE on every file: {'met' if met else 'NOT met'}")
    print(json.dumps({"benchmark": "real_data", "target_met": met, "files": results}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
