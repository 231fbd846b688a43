"""Dual sensing: one network for O2 and temperature vs two single-task networks of the same size.

Run from the repository root::

    .venv/bin/python benchmarks/multitask.py [--seeds 5] [--folds 5] [--jobs 1]

The bundled batch (``data/readings.csv``) with the four phases as the only inputs, ``o2_hPa`` as
the target and ``temperature_degC`` as an auxiliary target (``[data] aux_targets``), so the
network must read the temperature from the phases (the sensor works without its thermistor).
``data/calib.toml``'s ``[model]`` (the ``mlp`` default) is trained

* as one shared (multi-task) network with two outputs, and
* as two single-task networks of the same size, one per output,

on the same GroupKFold folds (by spot), for several seeds (each seed moves the folds and the
network's initialisation), with :func:`calib.validate.cross_validate` and
:func:`calib.validate.single_task_baseline` (what ``calib validate`` and the main job run).
Reports the validation MAE of each output (hPa, degC), the difference shared - single per seed
and a 95 % t-interval of its mean over seeds (negative: the shared network is better).

Prints a block of text and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ["phase_1000hz_deg", "phase_2000hz_deg", "phase_5000hz_deg", "phase_10000hz_deg"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)

    from scipy import stats

    from calib.config import load_config
    from calib.ingest import prepare
    from calib.pipeline import objective_of
    from calib.validate import cross_validate, single_task_baseline

    cfg = load_config(ROOT / "data" / "calib.toml")
    cfg = replace(cfg, data=replace(cfg.data, features=tuple(PHASES), aux_targets=("temperature_degC",)))
    ds, sp = prepare(ROOT / "data" / "readings.csv", cfg)
    rows = np.arange(ds.n_rows)  # every spot: the folds hold whole spots out
    objective = objective_of(cfg, ds)
    base = cfg.model_config()
    per_seed = []
    t_all = time.perf_counter()
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        mc = base.replace(seed=seed)
        cv = cross_validate(ds, rows, mc, folds=args.folds, jobs=args.jobs, seed=seed, scaling=cfg.split.scaling,
                            physics=False, noise_floor=0.0, objective=objective)
        b = single_task_baseline(ds, rows, mc, cv, folds=args.folds, seed=seed, scaling=cfg.split.scaling,
                                 jobs=args.jobs)
        entry = {"seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
        for o in b["outputs"]:
            entry[o["name"]] = {"multi": o["multi"]["mean"], "single": o["single"]["mean"],
                                "multi_folds": o["multi"]["folds"], "single_folds": o["single"]["folds"]}
        per_seed.append(entry)
        print(f"seed {seed}: " + "; ".join(f"{n} shared {entry[n]['multi']:.4g} vs single {entry[n]['single']:.4g}"
                                            for n in objective.names) + f" ({entry['seconds']} s)", flush=True)
    out = {"seeds": args.seeds, "folds": args.folds, "rows": int(ds.n_rows), "inputs": PHASES,
           "config": {k: v for k, v in base.to_dict().items() if k in ("hidden_layers", "optimizer", "activation",
                                                                         "family", "epochs", "l2")},
           "seconds": round(time.perf_counter() - t_all, 1), "outputs": {}, "per_seed": per_seed}
    for name, unit in zip(objective.names, objective.units):
        m = np.array([e[name]["multi"] for e in per_seed])
        s = np.array([e[name]["single"] for e in per_seed])
        d = m - s
        k = len(d)
        half = float(stats.t.ppf(0.975, k - 1) * d.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
        lo, hi = float(d.mean() - half), float(d.mean() + half)
        verdict = ("the shared network is better" if hi < 0 else "the single-task networks are better" if lo > 0
                   else "no significant difference")
        out["outputs"][name] = {"unit": unit, "multi_mean": float(m.mean()), "multi_std": float(m.std(ddof=1)) if k > 1 else 0.0,
                                "single_mean": float(s.mean()), "single_std": float(s.std(ddof=1)) if k > 1 else 0.0,
                                "difference": float(d.mean()), "ci95": [lo, hi],
                                "ratio": float(m.mean() / s.mean()), "verdict": verdict}
        print(f"{name} [{unit}]: shared {m.mean():.4g} +/- {out['outputs'][name]['multi_std']:.3g}, single-task "
              f"{s.mean():.4g} +/- {out['outputs'][name]['single_std']:.3g}; difference {d.mean():+.3g} "
              f"(95 % CI {lo:+.3g} .. {hi:+.3g}) -> {verdict}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
