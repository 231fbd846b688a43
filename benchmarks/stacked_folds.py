"""All folds in one compiled call: a 5-fold trial stacked vs its folds one by one vs one fold.

Run from the repository root::

    .venv/bin/python benchmarks/stacked_folds.py [--optimizers adam lbfgs] [--reps 2] [--folds 5]
                                                 [--csv PATH --toml PATH]

The bundled ``data/readings.csv`` with ``data/calib.toml``: the train+dev part of the split the
pipeline makes (``[split]``), 5 grouped folds (``[validate]``), the ``[model]`` network
(2 x 64 tanh, epochs and patience "auto"), once with its ``optimizer = "lbfgs"`` and once with
``adam`` (learning rate 1e-3, batch 64). For each, :func:`calib.validate.cross_validate` runs
``stacked=False`` (the folds one by one, as before) and ``stacked=True`` (every fold's network in
one compiled call, :func:`calib.nn.train_stacked`), alternately, ``--reps`` times, in one process:
the first pair pays the tracing and XLA compilation (a trial's first fold), later pairs reuse it
(later trials of a sweep). "one fold" is the wall time of one fold of the one-by-one run (the
time between two progress calls: training, prediction, scoring and freeing), the median over its
folds; so "5 folds stacked / one fold" is what the issue's target (<= 1.5) reads.

Per-fold validation MAE (hPa) is printed for both paths: with the same seeds the stacked folds
are the same models (Adam: bit-identical weights under XLA; L-BFGS: the same iterations and
stopping epoch, weights equal to float tolerance, see ``tests/test_nn_stacked.py``).

Timings on a shared machine are noisy: read ratios within one run, and repeat the run.
The last line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(ds, rows, config, folds: int, stacked: bool) -> dict:
    from calib.validate import cross_validate

    marks: list[float] = []
    t0 = time.perf_counter()
    cv = cross_validate(ds, rows, config, folds=folds, physics=False, stacked=stacked,
                        progress=lambda done, total: marks.append(time.perf_counter()))
    total = time.perf_counter() - t0
    per_fold = [b - a for a, b in zip([t0] + marks[:-1], marks)]
    return {"seconds": total, "fold_seconds": per_fold, "mae": [f.val.mae for f in cv.folds],
            "best_epoch": [f.best_epoch for f in cv.folds], "epochs_run": [len(f.train_loss) for f in cv.folds]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=ROOT / "data" / "readings.csv")
    ap.add_argument("--toml", type=Path, default=ROOT / "data" / "calib.toml")
    ap.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"], choices=["adam", "lbfgs"])
    ap.add_argument("--reps", type=int, default=2, help="pairs (one by one, stacked) per optimizer")
    ap.add_argument("--folds", type=int, default=None, help="default: [validate] folds of the toml")
    ap.add_argument("--threads", type=int, default=1,
                    help="TensorFlow intra/inter-op threads (1: as in a sweep worker; 0: TensorFlow's default)")
    args = ap.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from calib.config import load_config
    from calib.ingest import load_dataset, split_dataset

    cfg = load_config(args.toml)
    ds = load_dataset(args.csv, cfg.data)
    sp = split_dataset(ds, test_fraction=cfg.split.test_fraction, dev_fraction=cfg.split.dev_fraction,
                       seed=cfg.split.seed)
    rows = sp.train_dev
    folds = args.folds or cfg.validate.folds
    base = cfg.model_config()
    print(f"{len(rows)} rows, {folds} grouped folds, network {list(base.hidden_layers)} {base.activation}, "
          f"cpu cores: {os.cpu_count()}")
    figures: dict = {}
    for opt in args.optimizers:
        config = base.replace(optimizer=opt)
        reps: dict[str, list[dict]] = {"one_by_one": [], "stacked": []}
        for rep in range(args.reps):
            for name, stacked in (("one_by_one", False), ("stacked", True)):
                r = run(ds, rows, config, folds, stacked)
                reps[name].append(r)
                print(f"{opt:6s} rep {rep + 1} {name:10s} {r['seconds']:7.2f} s  folds "
                      f"[{', '.join(f'{s:.2f}' for s in r['fold_seconds'])}] s  epochs {r['epochs_run']}  "
                      f"MAE [{', '.join(f'{m:.3f}' for m in r['mae'])}] hPa", flush=True)
        summary = []
        for rep in range(args.reps):
            one, st = reps["one_by_one"][rep], reps["stacked"][rep]
            fold = statistics.median(one["fold_seconds"])
            summary.append({"rep": rep + 1, "one_fold_s": fold, "five_one_by_one_s": one["seconds"],
                            "five_stacked_s": st["seconds"], "stacked_over_one_fold": st["seconds"] / fold,
                            "one_by_one_over_one_fold": one["seconds"] / fold,
                            "speedup_vs_one_by_one": one["seconds"] / st["seconds"]})
            print(f"{opt:6s} rep {rep + 1}: one fold {fold:.2f} s | {folds} folds one by one {one['seconds']:.2f} s "
                  f"({one['seconds'] / fold:.2f}x one fold) | stacked {st['seconds']:.2f} s "
                  f"({st['seconds'] / fold:.2f}x one fold, {one['seconds'] / st['seconds']:.2f}x faster)")
        mae_one, mae_st = reps["one_by_one"][-1]["mae"], reps["stacked"][-1]["mae"]
        print(f"{opt:6s} per-fold MAE one by one [{', '.join(f'{m:.4f}' for m in mae_one)}] mean "
              f"{statistics.mean(mae_one):.4f} | stacked [{', '.join(f'{m:.4f}' for m in mae_st)}] mean "
              f"{statistics.mean(mae_st):.4f} hPa")
        figures[opt] = {"timings": summary, "mae_one_by_one": mae_one, "mae_stacked": mae_st,
                        "epochs_one_by_one": reps["one_by_one"][-1]["epochs_run"],
                        "epochs_stacked": reps["stacked"][-1]["epochs_run"]}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
