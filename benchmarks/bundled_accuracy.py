"""Accuracy on held-out sensor spots of the bundled batch: calib's main job vs classical vs MLPRegressor.

Run from the repository root::

    .venv/bin/python benchmarks/bundled_accuracy.py [--trials N] [--jobs 2] [--seed 0]

Data: the bundled simulated batch ``data/readings.csv`` with ``data/calib.toml`` (12 spots,
4 phases + temperature -> ``o2_hPa``). Its ``[split]`` table gives a train / dev / test split by
spot (:func:`calib.ingest.split_dataset`, test fraction 0.2, seed 0): the test spots are never
seen in training or in any choice. Every figure is the MAE (hPa) on the test part's rows:

* ``calib``: the main job itself, :func:`calib.pipeline.calibrate` with the config's sweep
  (``[sweep]``: bayes, 12 trials over learning rate, width/depth, activation, L2, batch size and
  family mlp/hybrid/physics; ``--trials`` changes the budget) by 5-fold GroupKFold on train + dev,
  then the refit on train + dev and the single evaluation on the test spots; the exported ONNX
  artifact is loaded (:func:`calib.load_model`) and scored on the same rows as a check;
  ``--jobs 1`` by default, so that the bayes sweep is reproducible;
* ``calib`` without the sweep: the ``[model]`` config of ``calib.toml`` (mlp, 2 x 32 tanh, Adam
  1e-3, batch 64, auto budget) validated by the same 5-fold GroupKFold and refitted on train + dev
  for its median best epoch, as the main job refits: what the sweep adds or costs;
* the classical fit :func:`calib.physics.fit_physics` (``auto``, and ``svu`` / ``two_site`` on the
  5 kHz phase), fitted on train + dev;
* scikit-learn ``MLPRegressor`` (2 x 32 tanh, L-BFGS, ``alpha=1e-4``, up to 20000 iterations) on
  standardised inputs and target, fitted on train + dev;
* noise floors: calib's estimate from replicate readings (out-of-fold predictions of the chosen
  config, :func:`calib.validate.estimate_noise_floor`), and the simulator's documented floors
  (``data/README.md``, computed here with :func:`calib.simulate.noise_floor_table`): input noise
  alone, input noise + reference error, and + the spot-to-spot deviations (what a model applied
  to an unseen spot without a two-point check cannot beat). README figures are medians of the
  1-sd error over the 81 set-points; the MAE a perfect model would make is ``sqrt(2/pi)`` times
  the sd, averaged over the set-points.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _baselines import sklearn_mlp  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = ROOT / "data" / "readings.csv"
TOML = ROOT / "data" / "calib.toml"


def simulator_floors() -> dict:
    """The simulator's noise floors for the bundled data's config (hPa): median sd and implied MAE."""
    from calib.simulate import SimulationConfig, noise_floor_table

    sc = SimulationConfig()
    k = math.sqrt(2 / math.pi)
    inputs = noise_floor_table(sc)
    spots = noise_floor_table(sc, include_spot_variation=True)
    ref = np.hypot(sc.reference_abs_error_hPa, sc.reference_rel_error * inputs["o2_hPa"].to_numpy())
    out = {}
    for name, sd in (("inputs", inputs["sd_all_hPa"].to_numpy()),
                     ("inputs_reference", np.hypot(inputs["sd_all_hPa"].to_numpy(), ref)),
                     ("spots_reference", np.hypot(spots["sd_all_hPa"].to_numpy(), ref))):
        out[name] = {"median_sd": float(np.median(sd)), "mae": float(k * np.mean(sd))}
    return out


def refit_lengths(ds, cfg, tr: np.ndarray, te: np.ndarray, cv, seeds: int = 5) -> dict:
    """Test MAE of the ``[model]`` default refit for different lengths, over seeds 0..N-1.

    For L-BFGS the main job refits for the iteration where the folds' mean validation curve is
    lowest, scaled by the refit's rows over the rows a fold model was fitted on
    (:func:`calib.nn.refit_config`; before: the folds' median best iteration, unscaled, then
    scaled). This puts the median (unscaled, scaled), the curve's count (scaled, the main
    job's) and twice the scaled median side by side on the held-out spots (one seed on two
    spots is noise-dominated).
    ``cv`` is the default's k-fold (:func:`default_config` computed it).
    """
    from calib.nn import ModelConfig, fit_member, predict_member, refit_config

    mc = ModelConfig.from_dict(dict(cfg.model)).replace(seed=cfg.split.seed)
    _, unscaled = refit_config(mc, cv.best_epochs, len(tr))
    _, scaled = refit_config(mc, cv.best_epochs, len(tr), cv.fit_rows)
    _, curve = refit_config(mc, cv.best_epochs, len(tr), cv.fit_rows, cv.curve_best_epoch)
    x, y = ds.x(), ds.y()[:, 0]
    out = {"optimizer": mc.optimizer, "fit_rows": cv.fit_rows, "refit_rows": int(len(tr)),
           "curve_best_epoch": cv.curve_best_epoch, "rows": {}}
    for label, n in (("median, unscaled", unscaled), ("median, scaled", scaled),
                     ("validation curve, scaled (the main job's)", curve), ("2x median, scaled", 2 * scaled)):
        maes = []
        for seed in range(seeds):
            m = fit_member(mc.replace(seed=seed, epochs=int(n), patience=None), x[tr], y[tr], scaling=cfg.split.scaling,
                           feature_names=list(ds.feature_names), feature_units=[c.unit for c in ds.features],
                           target_unit=ds.target.unit)
            maes.append(float(np.mean(np.abs(predict_member(m, x[te])[:, 0] - y[te]))))
        out["rows"][label] = {"epochs": int(n), "mae": maes}
        print(f"  refit length {label}: {n} epochs, test MAE over seeds {np.round(maes, 3).tolist()} "
              f"mean {np.mean(maes):.3f}", flush=True)
    return out


def default_config(ds, cfg, tr: np.ndarray, te: np.ndarray) -> tuple[float, int, object]:
    """Test MAE of the config's ``[model]`` network without a sweep, refitted as the main job refits.

    5-fold GroupKFold on train + dev gives the median best epoch (L-BFGS: the iteration where the
    folds' mean validation curve is lowest, scaled by the rows, :func:`calib.nn.refit_config`);
    the network is refitted on train + dev for that many epochs
    (no early stopping) and scored once on the test part.
    """
    from calib.nn import ModelConfig, fit_member, predict_member, refit_config
    from calib.validate import cross_validate

    mc = ModelConfig.from_dict(dict(cfg.model)).replace(seed=cfg.split.seed)
    cv = cross_validate(ds, tr, mc, folds=cfg.validate.folds, seed=cfg.split.seed, scaling=cfg.split.scaling,
                        physics=False)
    final_cfg, epochs = refit_config(mc, cv.best_epochs, len(tr), cv.fit_rows, cv.curve_best_epoch)
    member = fit_member(final_cfg, ds.x(tr), ds.y(tr), scaling=cfg.split.scaling,
                        feature_names=list(ds.feature_names), feature_units=[c.unit for c in ds.features],
                        target_unit=ds.target.unit)
    p = predict_member(member, ds.x(te))[:, 0]
    return float(np.mean(np.abs(p - ds.y(te)[:, 0]))), epochs, cv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="sweep budget (default: the config's, 12)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes of the main job (default 1: a bayes sweep with 2 workers depends on "
                         "which trial finishes first, so its result varies from run to run)")
    ap.add_argument("--seed", type=int, default=0, help="seed of MLPRegressor (calib's seeds come from the config)")
    ap.add_argument("--seeds", type=int, default=10,
                    help="seeds of the spread check: the chosen config refit and MLPRegressor, each with seeds "
                         "0..N-1 on the same rows (0: skip)")
    ap.add_argument("--refit-seeds", type=int, default=5,
                    help="seeds of the refit-length check of the [model] default (0: skip)")
    args = ap.parse_args(argv)

    from calib.physics import fit_physics
    from calib.pipeline import CalibrateSettings, calibrate
    from calib.config import load_config
    from calib.runtime import load_model
    from calib.ingest import prepare

    cfg = load_config(TOML)
    ds, sp = prepare(DATA, cfg)
    tr, te = sp.train_dev, sp.test
    x, y = ds.x(), ds.y()[:, 0]
    spots_te = sorted(map(str, np.unique(ds.groups(te))))
    print(f"data: {DATA.name}, {ds.n_rows} rows, {len(np.unique(ds.groups()))} spots; train+dev {len(tr)} rows, "
          f"test {len(te)} rows = held-out spots {', '.join(spots_te)}", flush=True)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = CalibrateSettings(name="bench-bundled", models_dir=str(Path(tmp) / "models"),
                                     runs_dir=str(Path(tmp) / "runs"), trials=args.trials, jobs=args.jobs)
        run = calibrate(DATA, cfg, settings, progress=lambda m: print(f"  calibrate: {m}", flush=True))
        m = load_model(run.artifact.path)
        p_onnx = m.predict(x[te])
        p_onnx = p_onnx[:, 0] if p_onnx.ndim > 1 else p_onnx
        onnx_mae = float(np.mean(np.abs(p_onnx - y[te])))
    calib_s = time.perf_counter() - t0
    hp = run.config.to_dict()
    print(f"  calib: {len(run.sweep.trials)} trials in {calib_s:.0f} s; chosen: family {hp['family']}, "
          f"layers {hp['hidden_layers']}, {hp['activation']}, lr {hp['learning_rate']:.3g}, l2 {hp['l2']:g}, "
          f"batch {hp['batch_size']}, refit {run.epochs} epochs", flush=True)

    methods: dict[str, float] = {"calib": float(run.test.mae), "calib_onnx": onnx_mae}
    methods["calib_default_config"], default_epochs, default_cv = default_config(ds, cfg, tr, te)
    kinds: dict[str, str] = {}
    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    for kind in ("auto", "svu", "two_site"):
        b = fit_physics(x[tr], y[tr], names, units, ds.target.unit, kind=kind)
        methods[f"classical_{kind}"] = float(np.mean(np.abs(b.predict(x[te]) - y[te])))
        kinds[kind] = b.kind
    t1 = time.perf_counter()
    methods["sklearn_mlp"] = float(np.mean(np.abs(sklearn_mlp(x[tr], y[tr], x[te], args.seed) - y[te])))
    mlp_s = time.perf_counter() - t1
    # the same comparison on the main job's 5 cross-validation folds (train + dev, by spot): is the
    # test part typical?
    from calib.validate import make_folds

    cv_folds = make_folds(len(tr), cfg.validate.folds, ds.groups(tr), cfg.split.seed)
    mlp_cv = [float(np.mean(np.abs(sklearn_mlp(x[tr][a], y[tr][a], x[tr][b], args.seed) - y[tr][b])))
              for a, b in cv_folds]
    # seed spread on the test spots: one run of each is one draw; refit the chosen config (the main job's
    # refit recipe: its config, its epoch count, all train+dev rows) and MLPRegressor with N seeds each
    spread: dict = {}
    if args.seeds:
        from scipy import stats

        from calib.nn import fit_member, predict_member

        t2 = time.perf_counter()
        calib_seeds, mlp_seeds = [], []
        for seed in range(args.seeds):
            cfg_s = run.config.replace(seed=seed, **({"epochs": run.epochs, "patience": None} if run.epochs else {}))
            mem = fit_member(cfg_s, x[tr], y[tr], scaling=cfg.split.scaling, feature_names=names,
                             feature_units=units, target_unit=ds.target.unit)
            calib_seeds.append(float(np.mean(np.abs(predict_member(mem, x[te])[:, 0] - y[te]))))
            mlp_seeds.append(float(np.mean(np.abs(sklearn_mlp(x[tr], y[tr], x[te], seed) - y[te]))))
        a, b = np.array(calib_seeds), np.array(mlp_seeds)
        diff = float(a.mean() - b.mean())
        se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
        dof = se ** 4 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) + (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1))
        half = float(stats.t.ppf(0.975, dof) * se)
        spread = {"seeds": args.seeds, "calib": calib_seeds, "sklearn_mlp": mlp_seeds, "diff": diff,
                  "ci": [diff - half, diff + half], "seconds": time.perf_counter() - t2}
    lengths = refit_lengths(ds, cfg, tr, te, default_cv, args.refit_seeds) if args.refit_seeds else None
    floors = simulator_floors()
    est = run.cv.noise_floor

    cvm = run.cv.summary()["val"]["mae"]
    print()
    print(f"MAE in hPa on the {len(te)} rows of the {len(spots_te)} held-out spots (0-300 hPa, 5-40 degC)")
    rows = [
        ("calib main job (test part, touched once)", methods["calib"]),
        ("  same, exported ONNX artifact via load_model", methods["calib_onnx"]),
        (f"calib [model] default config, no sweep ({default_epochs} epochs)", methods["calib_default_config"]),
        (f"classical auto ({kinds['auto']})", methods["classical_auto"]),
        ("classical svu", methods["classical_svu"]),
        ("classical two_site", methods["classical_two_site"]),
        (f"sklearn MLPRegressor 2x32 tanh lbfgs ({mlp_s:.0f} s)", methods["sklearn_mlp"]),
    ]
    for label, v in rows:
        print(f"  {label:52s} {v:8.3f}   {v / methods['calib']:6.2f}x calib")
    if spread:
        a, b = np.array(spread["calib"]), np.array(spread["sklearn_mlp"])
        lo, hi = spread["ci"]
        print(f"seed spread on the same test rows ({spread['seeds']} seeds each, {spread['seconds']:.0f} s): "
              f"calib chosen config refit {a.mean():.3f} +/- {a.std(ddof=1):.3f} (min {a.min():.3f}, max "
              f"{a.max():.3f}); sklearn MLPRegressor {b.mean():.3f} +/- {b.std(ddof=1):.3f} (min {b.min():.3f}, "
              f"max {b.max():.3f}); difference {spread['diff']:+.3f} hPa, 95 % CI [{lo:+.3f}, {hi:+.3f}] (Welch)")
    cvb = run.cv.summary()["physics_val"]["mae"]
    print("cross-validation MAE on train+dev (the main job's 5 folds by spot), mean +/- sd over folds:")
    print(f"  calib (chosen config) {cvm['mean']:.3f} +/- {cvm['std']:.3f}; classical {cvb['mean']:.3f} +/- "
          f"{cvb['std']:.3f}; sklearn MLPRegressor {np.mean(mlp_cv):.3f} +/- {np.std(mlp_cv, ddof=1):.3f}")
    print("noise floors (MAE a perfect model would make, hPa):")
    print(f"  calib's estimate from replicate readings ({run.cv.noise_floor_source}): "
          + ("n/a" if est is None else f"{est:.3f}"))
    for key, label in (("inputs", "simulator: input noise (phase 0.005 deg, T 0.02 degC)"),
                       ("inputs_reference", "simulator: + reference error (0.05 hPa + 0.1 %)"),
                       ("spots_reference", "simulator: + spot-to-spot deviations (unseen spots)")):
        f = floors[key]
        print(f"  {label:56s} MAE {f['mae']:.3f} (median sd {f['median_sd']:.3f})")
    ratio_b = methods["calib"] / methods["classical_auto"]
    ratio_f = methods["calib"] / floors["spots_reference"]["mae"]
    print(f"calib / classical = {ratio_b:.3f}; calib / sklearn MLP = {methods['calib'] / methods['sklearn_mlp']:.3f}; "
          f"calib / unseen-spot floor = {ratio_f:.2f}")
    print(json.dumps({"benchmark": "bundled_accuracy", "test_rows": int(len(te)), "test_spots": spots_te,
                      "trials": len(run.sweep.trials), "calib_seconds": calib_s, "chosen": hp,
                      "refit_epochs": run.epochs, "cv_mae": cvm,
                      "default_config_epochs": default_epochs,
                      "cv_mae_classical": cvb, "cv_mae_sklearn_mlp": {"mean": float(np.mean(mlp_cv)),
                                                                      "std": float(np.std(mlp_cv, ddof=1))}, "mae": methods, "classical_kind": kinds,
                      "noise_floor_estimate": est, "noise_floor_source": run.cv.noise_floor_source,
                      "simulator_floors": floors, "ratio_calib_classical": ratio_b,
                      "ratio_calib_mlp": methods["calib"] / methods["sklearn_mlp"],
                      "ratio_calib_spot_floor": ratio_f, "seed_spread": spread, "refit_lengths": lengths},
                     default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
