"""What coverage figures a certificate of this size can show when the model is exactly right.

Run from the repository root::

    .venv/bin/python benchmarks/coverage_reference.py [--draws 24] [--repeats 8] [--jobs 2]
                                                      [--raw /work/shared/data/raw]

``coverage.py`` measures calib's 95 % interval on the two real certificates (63 and 24 points) in
repeated nested CV, and the issue's target is 93-97 % overall and in each temperature tercile.
A tercile of those certificates holds 21 (Aanderaa) or 8 (SBE63) distinct points, so its figure
moves by whole points. This script asks how far such figures move by chance alone:

1. the physics fit on all points of the real certificate is taken as the truth ``f(x)``;
2. each draw replaces the reference values by ``max(f(x) + e, 0)``, ``e`` Gaussian with the
   standard deviation of the real fit's residuals (the same readings, the same temperature and
   O2 grid, a model form that is exactly right, independent errors);
3. on each draw the protocol of ``coverage.py`` runs unchanged: ``--repeats`` shuffles of 5 outer
   folds, ``physics`` family and interval (:func:`calib.pipeline.fit_trust`, 5 inner folds) fitted
   on the outer-training points, scored on the outer-validation points, pooled.

Printed per certificate and figure (overall, cold / mid / warm tercile): the mean over draws, the
standard deviation, the 5-95 % range, and the fraction of draws within 93-97 %, alone and all four
together. The mean is what calib's interval does by design at this size; the spread is the chance
part of a single certificate's figure.
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
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIGURES = ("overall", "cold", "mid", "warm")


def _bench():
    """benchmarks/coverage.py, by its path (the name ``coverage`` is also coverage.py's package)."""
    import importlib.util

    if "calib_bench_coverage" not in sys.modules:
        spec = importlib.util.spec_from_file_location("calib_bench_coverage", HERE / "coverage.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["calib_bench_coverage"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["calib_bench_coverage"]
BAND = (0.93, 0.97)


def _truth(name: str, raw: str):
    bench = _bench()
    from calib.ingest import load_dataset
    from calib.physics import fit_physics

    rel, data = bench.CERTS[name]
    cfg = bench._cfg(f"[data]\n{data}\n\n[model]\nfamily = \"physics\"\n")
    path = Path(raw) / rel
    ds = load_dataset(path, cfg.data)
    x, y = ds.x(), ds.y()[:, 0]
    m = fit_physics(x, y, list(ds.feature_names), [c.unit for c in ds.features], ds.target.unit)
    f = m.predict(x)
    return path, ds.target.name, f, float(np.sqrt(np.mean((y - f) ** 2))), m.kind


def one_draw(name: str, path: Path, target: str, f: np.ndarray, sd: float, draw: int, repeats: int) -> list[float]:
    """Coverage (overall, cold, mid, warm) of one synthetic certificate, pooled over ``repeats``."""
    bench = _bench()
    import pandas as pd

    from calib.ingest import load_dataset
    from calib.trust import coverage_table

    cfg = bench._cfg(f"[data]\n{bench.CERTS[name][1]}\n\n[model]\nfamily = \"physics\"\n")
    rng = np.random.default_rng(10_000 + draw)
    frame = pd.read_csv(path)
    frame[target] = np.maximum(f + rng.normal(0.0, sd, len(f)), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "synthetic.csv"
        frame.to_csv(p, index=False)
        ds = load_dataset(p, cfg.data)
    d = {k: np.concatenate([np.concatenate(r[k]) for r in bench.nested_cv(ds, cfg, repeats, 0)])
         for k in ("y", "p", "lo", "hi", "t")}
    tab = coverage_table(d["y"], d["lo"], d["hi"], d["p"], d["t"])
    return [tab["coverage"], *tab["coverage_bins"]]


def summarise(res: np.ndarray) -> dict:
    inb = (res >= BAND[0]) & (res <= BAND[1])
    return {
        "draws": int(len(res)),
        "mean": dict(zip(FIGURES, map(float, res.mean(axis=0)))),
        "sd": dict(zip(FIGURES, map(float, res.std(axis=0, ddof=1)))),
        "p05": dict(zip(FIGURES, map(float, np.percentile(res, 5, axis=0)))),
        "p95": dict(zip(FIGURES, map(float, np.percentile(res, 95, axis=0)))),
        "in_band": dict(zip(FIGURES, map(float, inb.mean(axis=0)))),
        "all_in_band": float(inb.all(axis=1).mean()),
    }


def main() -> None:
    bench = _bench()
    from joblib import Parallel, delayed

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=24, help="synthetic certificates per real one")
    ap.add_argument("--repeats", type=int, default=8, help="outer-fold shuffles pooled per draw (as coverage.py)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--raw", default=str(ROOT.parent / "shared" / "data" / "raw"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"coverage of calib's 95 % interval on synthetic certificates (physics form exactly right, Gaussian "
          f"errors), {args.draws} draws x {args.repeats} outer shuffles; target band 93-97 %")
    out = {}
    for name, (rel, _) in bench.CERTS.items():
        if not (Path(args.raw) / rel).exists():
            print(f"  {name}: {Path(args.raw) / rel} absent, skipped")
            continue
        path, target, f, sd, kind = _truth(name, args.raw)  # once; each draw adds its own errors
        t1 = time.perf_counter()
        res = np.array(Parallel(n_jobs=args.jobs)(delayed(one_draw)(name, path, target, f, sd, d, args.repeats)
                                                  for d in range(args.draws)))
        s = summarise(res)
        s.update(points=int(len(f)), noise_sd=sd, truth=kind, seconds=round(time.perf_counter() - t1, 1))
        out[name] = s
        print(f"\n  {name}: {len(f)} points, truth = its {kind} fit, noise sd {sd:.4g} ({s['seconds']:.0f} s)")
        print(f"    {'':<8} {'mean':>6} {'sd':>5} {'5-95 % of draws':>16} {'in 93-97':>9}")
        for fig in FIGURES:
            print(f"    {fig:<8} {100 * s['mean'][fig]:5.1f}% {100 * s['sd'][fig]:5.1f} "
                  f"{100 * s['p05'][fig]:7.1f}-{100 * s['p95'][fig]:5.1f} % {100 * s['in_band'][fig]:8.0f}%")
        print(f"    all four within 93-97 %: {100 * s['all_in_band']:.0f} % of draws")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
