"""How cheap can 5 folds in one compiled call be? The arithmetic bound of issue 17's "5 folds <= 1.5x one fold".

Run from the repository root::

    .venv/bin/python benchmarks/fold_bound.py [--reps 400] [--rows 1296 --dev 324]

An L-BFGS fold of the bundled main job spends its time in one computation, called about 1.1
times per iteration: the network's loss and gradient on the fold's training rows plus the dev
loss (``calib.nn.training``'s L-BFGS objective). This script times that computation through
calib's own stacked objective (:mod:`calib.nn.stacked`: the K models' weights stacked on a
leading axis, batched matmuls, one compiled call) for K = 1 and K = 5, side by side in one
run, on 1 TensorFlow thread (as in a sweep worker) and on 2. It also times a compiled call that
does almost nothing (the fixed cost of one call) and the same arithmetic in numpy.

A 5-fold trial trained in one compiled call cannot take less than the K = 5 evaluation per
iteration; one fold alone cannot take more than the K = 1 evaluation plus its share of the
optimizer. So ``eval(K=5) / eval(K=1)`` is a lower bound of "5 folds / one fold" for stacked
L-BFGS (scipy's own L-BFGS-B step, about 0.25 ms per call per model, only adds to the 5 folds).
The same holds for Adam & co, whose steps are the same kind of arithmetic on mini-batches.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(threads: int, reps: int, rows: int, dev: int, width: int) -> dict:
    """In this process (TensorFlow on ``threads`` threads): ms per evaluation for K = 1 and K = 5."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np

    from calib.nn.tf import tensorflow

    def set_threads(tf):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    tf = tensorflow(before_first_op=set_threads)
    from calib.nn.stacked import _StackPlan, _build_objective_fn, _shapes

    rng = np.random.default_rng(0)
    widths, n_in = (width, width, 1), 5
    n_params = sum(int(np.prod(s)) for s in _shapes(widths, n_in))
    out = {"threads": threads, "rows": rows, "dev": dev, "width": width}
    for k in (1, 5):
        plan = _StackPlan(widths=widths, n_inputs=n_in, activation="tanh", loss="mse", optimizer="lbfgs",
                          lr_schedule="constant", dropout=False, l1=False, l2=False, n_models=k, n_batches=1,
                          batch=rows, n_dev=dev, xla=False)
        fn = _build_objective_fn(plan)
        f32 = np.float32
        data = (rng.normal(size=(k, rows, n_in)).astype(f32), rng.normal(size=(k, rows, 1)).astype(f32),
                np.ones((k, rows, 1), f32), rng.normal(size=(k, dev, n_in)).astype(f32),
                rng.normal(size=(k, dev, 1)).astype(f32), np.ones((k, dev, 1), f32), np.zeros((k, 4), f32))
        data = tuple(tf.constant(a) for a in data)
        concrete = fn.get_concrete_function(tf.TensorSpec([None, n_params], tf.float32),
                                            *(tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in data))
        theta = tf.constant((rng.normal(size=(k, n_params)) * 0.1).astype(f32))
        for _ in range(20):
            concrete(theta, *data)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            res = concrete(theta, *data)
            res[3].numpy()
            times.append(time.perf_counter() - t)
        out[f"k{k}_ms"] = statistics.median(times) * 1e3

    tiny = tf.function(lambda a: a * 2.0, autograph=False).get_concrete_function(tf.TensorSpec([n_params], tf.float32))
    v = tf.constant(np.zeros(n_params, np.float32))
    for _ in range(20):
        tiny(v)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        tiny(v).numpy()
        times.append(time.perf_counter() - t)
    out["call_ms"] = statistics.median(times) * 1e3

    # the same arithmetic (forward, backward, dev forward) in numpy, one model
    x, z = rng.normal(size=(rows, n_in)).astype(np.float32), rng.normal(size=(rows, 1)).astype(np.float32)
    xd = rng.normal(size=(dev, n_in)).astype(np.float32)
    w1, w2, w3 = (rng.normal(size=s).astype(np.float32) * 0.1 for s in ((n_in, width), (width, width), (width, 1)))
    b1, b2 = np.zeros(width, np.float32), np.zeros(width, np.float32)

    def numpy_eval():
        a1 = np.tanh(x @ w1 + b1)
        a2 = np.tanh(a1 @ w2 + b2)
        r = a2 @ w3 - z
        dp = (2.0 / rows) * r
        d2 = (dp @ w3.T) * (1 - a2 * a2)
        d1 = (d2 @ w2.T) * (1 - a1 * a1)
        grads = (a2.T @ dp, a1.T @ d2, x.T @ d1, d2.sum(0), d1.sum(0))
        np.tanh(np.tanh(xd @ w1 + b1) @ w2 + b2) @ w3
        return grads

    for _ in range(20):
        numpy_eval()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        numpy_eval()
        times.append(time.perf_counter() - t)
    out["numpy_ms"] = statistics.median(times) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--rows", type=int, default=1296, help="training rows of a fold (the bundled batch: 1296)")
    ap.add_argument("--dev", type=int, default=324, help="dev rows of a fold")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.reps, args.rows, args.dev, args.width)))
        return
    results = []
    for threads in (1, 2):  # each in a fresh interpreter: TensorFlow's thread count is set once
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run([sys.executable, __file__, "--child", str(threads), "--reps", str(args.reps),
                               "--rows", str(args.rows), "--dev", str(args.dev), "--width", str(args.width)],
                              capture_output=True, text=True, env=env, cwd=ROOT, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"One L-BFGS objective evaluation (loss, gradient, dev loss) of a {args.width} x {args.width} tanh "
          f"network, {args.rows} + {args.dev} rows, calib's stacked objective, median of {args.reps} calls:\n")
    print("| TF threads | K = 1 | K = 5 (one call) | K = 5 / K = 1 | a compiled call doing nothing | "
          "numpy, 1 model |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['threads']} | {r['k1_ms']:.2f} ms | {r['k5_ms']:.2f} ms | **{r['k5_ms'] / r['k1_ms']:.2f}x** | "
              f"{r['call_ms']:.2f} ms | {r['numpy_ms']:.2f} ms |")
    one = results[0]
    print(f"\nA 5-fold trial in one compiled call costs at least {one['k5_ms'] / one['k1_ms']:.1f}x one fold on "
          f"1 thread, {results[1]['k5_ms'] / one['k1_ms']:.1f}x with the 5 folds on 2 threads against one "
          "fold on 1 (target 1.5x); the fixed cost of a call is "
          f"{one['call_ms'] / one['k1_ms']:.0%} of one fold's evaluation, the rest is arithmetic that "
          "grows with the number of models.")
    print(json.dumps({"benchmark": "fold_bound", "results": results}))


if __name__ == "__main__":
    main()
