"""Inference speed: a loaded artifact (ONNX Runtime, no TensorFlow) vs Keras, and ``calib predict``.

Run from the repository root::

    .venv/bin/python benchmarks/inference.py [--rows 1000000] [--file-rows 100000]
                                             [--keras-rows 1000000] [--repeats 3]

Set-up (not timed): a 2 x 32 tanh network and 5 fold models are trained briefly (speed does not
depend on accuracy) on the bundled ``data/readings.csv`` (features and target from
``data/calib.toml``) and exported with :func:`calib.artifact.export_artifact` to a temporary folder.
Readings are drawn uniformly inside the calibrated ranges.

Measured, each the best of ``--repeats`` runs:

1. ``load_model(...).predict`` on ``--rows`` readings (float64 array -> float32, chunked ONNX
   Runtime runs), in a fresh interpreter that never imports TensorFlow (checked), with calib's
   default threads (chunks at once, one ONNX Runtime thread per CPU); also from a DataFrame, and
   with the fold-model standard deviation.
   Target: >= 2M rows/s on 2 cores.
2. Keras ``model.predict(x)`` with its defaults (batch_size 32) on ``--keras-rows`` readings, and
   :func:`calib.nn.predict` (direct calls on 65536-row chunks), in this process.
3. :func:`calib.predict.predict_file` (what ``calib predict`` runs after loading) on a
   ``--file-rows`` CSV vs ``pandas.read_csv`` + ``DataFrame.to_csv`` of the same file.
   Target: <= 2x.
4. Import time of ``calib.runtime`` and time of ``load_model`` (fresh interpreter, no TensorFlow).

Prints the figures, the ratios and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# runs in a fresh interpreter: nothing of TensorFlow may be imported on this path
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import calib.runtime
t_import = time.perf_counter() - t0
from calib.runtime import load_model
from calib.predict import predict_file
import numpy as np
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
m = load_model(args["artifact"])
t_load = time.perf_counter() - t0
x = np.load(args["x"])

def best(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)

m.predict(x[:1000]); m.predict(x[:1000], return_std=True)
reps = args["repeats"]
t_arr = best(lambda: m.predict(x), reps)
import pandas as pd
df = pd.DataFrame(x, columns=list(m.features))
t_df = best(lambda: m.predict(df), reps)
t_std = best(lambda: m.predict(x, return_std=True), reps)
m2 = load_model(args["artifact"], threads=2)
m2.predict(x[:1000])
t_arr2 = best(lambda: m2.predict(x), reps)
t_file = best(lambda: predict_file(m, args["csv"], args["out"], force=True), reps)
t_pd = best(lambda: pd.read_csv(args["csv"]).to_csv(args["out_pd"], index=False), reps)
print(json.dumps({
    "import_s": t_import, "load_s": t_load, "predict_s": t_arr, "predict_df_s": t_df,
    "predict_std_s": t_std, "predict_2threads_s": t_arr2, "predict_file_s": t_file,
    "pandas_rw_s": t_pd, "tensorflow_imported": "tensorflow" in sys.modules,
    "keras_imported": "keras" in sys.modules,
}))
"""


def setup(folder: Path, n_rows: int, file_rows: int) -> tuple[Path, Path, Path, object]:
    from calib.config import DataSpec
    from calib.artifact.export import describe_dataset, export_artifact
    from calib.ingest import load_dataset
    from calib.nn import ModelConfig, train
    from calib.scaling import fit_scaler

    with open(ROOT / "data" / "calib.toml", "rb") as fh:
        data = tomllib.load(fh)["data"]
    ds = load_dataset(ROOT / "data" / "readings.csv",
                      DataSpec(features=tuple(data["features"]), target=data["target"], group=data.get("group")))
    x, y = ds.x(), ds.y()
    cfg = ModelConfig(hidden_layers=(32, 32), epochs=10, patience=None)

    def fit(rows, seed):
        return train(cfg.replace(seed=seed), x[rows], y[rows], x_scaler=fit_scaler(x[rows]),
                     y_scaler=fit_scaler(y[rows])).model

    idx = np.arange(ds.n_rows)
    final = fit(idx, 0)
    folds = [fit(idx[idx % 5 != k], k + 1) for k in range(5)]
    art = export_artifact(folder / "models", "bench", model=final, fold_models=folds,
                          metadata={**describe_dataset(ds), "hyperparameters": cfg.to_dict()})
    rng = np.random.default_rng(0)
    xs = rng.uniform(x.min(axis=0), x.max(axis=0), size=(n_rows, x.shape[1]))
    np.save(folder / "x.npy", xs)
    # a readings file like the bundled one (all its columns), resampled with small noise
    import pandas as pd

    raw = pd.read_csv(ROOT / "data" / "readings.csv")
    big = raw.sample(file_rows, replace=True, random_state=0).reset_index(drop=True)
    for c in data["features"]:
        big[c] = (big[c] + rng.normal(0, 0.005, file_rows)).round(4)
    big.to_csv(folder / "readings_100k.csv", index=False)
    return art.path, folder / "x.npy", folder / "readings_100k.csv", final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keras-rows", type=int, default=1_000_000)
    ap.add_argument("--file-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        art, x_path, csv, final = setup(folder, args.rows, args.file_rows)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps({
                "artifact": str(art), "x": str(x_path), "csv": str(csv), "repeats": args.repeats,
                "out": str(folder / "pred.csv"), "out_pd": str(folder / "pandas.csv")})],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        if child.returncode != 0:
            sys.exit(child.stderr)
        r = json.loads(child.stdout.strip().splitlines()[-1])

        from calib.nn import predict

        xs = np.load(x_path)
        xk = xs[: args.keras_rows].astype(np.float32)
        final.predict(xk[:64], verbose=0)
        t0 = time.perf_counter()
        final.predict(xk, verbose=0)
        t_keras = time.perf_counter() - t0
        predict(final, xs[:1000])
        t_direct = min(
            (lambda t: (predict(final, xs), time.perf_counter() - t)[1])(time.perf_counter())
            for _ in range(args.repeats)
        )

    n, nk = args.rows, args.keras_rows
    rate = n / r["predict_s"]
    rows = [
        ("load_model(...).predict, default threads", rate),
        ("load_model(..., threads=2).predict", n / r["predict_2threads_s"]),
        ("  from a DataFrame (column lookup)", n / r["predict_df_s"]),
        ("  with return_std (final + 5 fold models)", n / r["predict_std_s"]),
        ("keras model.predict (defaults, batch 32)", nk / t_keras),
        ("calib.nn.predict (TF, 65536-row chunks)", n / t_direct),
    ]
    print(f"Inference on {n:,} readings ({xs.shape[1]} features, 2 x 32 tanh, 5 fold models), rows/s:")
    for label, v in rows:
        print(f"  {label:<46} {v:>14,.0f}")
    print(f"  ratio ORT / keras model.predict            {rate / (nk / t_keras):>14.1f}x")
    print(f"  ratio ORT / calib.nn.predict (TF)          {rate / (n / t_direct):>14.1f}x")
    print(f"  target >= 2,000,000 rows/s: {'met' if rate >= 2e6 else 'NOT met'}")
    ratio = r["predict_file_s"] / r["pandas_rw_s"]
    print(f"predict_file on {args.file_rows:,} CSV rows: {r['predict_file_s']:.3f} s; pandas read_csv + to_csv: "
          f"{r['pandas_rw_s']:.3f} s; ratio {ratio:.2f} (target <= 2: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"import calib.runtime: {r['import_s'] * 1000:.0f} ms; load_model: {r['load_s'] * 1000:.0f} ms; "
          f"tensorflow imported: {r['tensorflow_imported']}, keras imported: {r['keras_imported']}")
    print(json.dumps({"rows": n, "ort_rows_per_s": rate, "ort_2threads_rows_per_s": n / r["predict_2threads_s"],
                      "ort_std_rows_per_s": n / r["predict_std_s"], "keras_predict_rows_per_s": nk / t_keras,
                      "calib_model_predict_rows_per_s": n / t_direct, "predict_file_s": r["predict_file_s"],
                      "pandas_rw_s": r["pandas_rw_s"], "file_ratio": ratio, "import_s": r["import_s"],
                      "load_s": r["load_s"], "tensorflow_imported": r["tensorflow_imported"]}))


if __name__ == "__main__":
    main()
