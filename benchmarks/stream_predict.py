"""Streamed ``calib predict``: peak memory and speed on a 10M-row CSV, side by side with pandas.

Run from the repository root::

    .venv/bin/python benchmarks/stream_predict.py [--rows 10000000] [--old-rows 1000000]
                                                  [--api-rows 1000000] [--repeats 3] [--artifact DIR]

Set-up (not timed): an artifact: ``--artifact``, else ``models/sim-ptp-batch`` when ``make demo``
made it, else ``calib calibrate`` of a tiny config (2 x 32 tanh, Adam, 30 epochs, one trial of 5
folds; about 30 s) on the bundled ``data/readings.csv`` into a temporary folder. Either way its
full graph holds the final model, 5 fold models (``<target>_std``) and the interval/domain head.
A CSV of ``--rows`` readings in ``data/readings.csv``'s columns (its rows resampled, features with
a little noise, as ``benchmarks/inference.py`` does), written by pyarrow in pieces; and a file of
its first ``--old-rows`` rows. Both are deleted at the end.

Measured, each command in its own fresh interpreter, one after the other; peak RSS is the
child's ``ru_maxrss`` (``os.wait4``), wall time includes start-up (imports, ``load_model``). This
process stays small (it imports neither pandas nor pyarrow; the files are written by a child):
Linux counts the memory of the process that starts a child into the child's ``ru_maxrss`` (the
child starts in its parent's memory until it ``exec``-s), so a parent holding 300 MB would read
as a 300 MB peak of every command.

1. ``calib predict ARTIFACT big.csv -o out.csv`` (streamed: the file is over
   ``CALIB_STREAM_MIN_BYTES``), with ONNX Runtime's default threads and with ``--threads 1``.
   Targets (issue 17): peak RSS <= 300 MB; rows/s >= pandas'.
2. pandas ``read_csv`` + ``to_csv`` of the same file, defaults.
3. ``calib predict`` on the ``--old-rows`` file read whole (``CALIB_STREAM_MIN_BYTES`` set above
   its size: the path every file took before) and streamed.
4. In one process, the Python API on ``--api-rows`` float64 readings (a numpy array in; drawn
   uniformly inside the calibrated ranges, as ``benchmarks/inference.py`` does, so many are far
   from every calibration point and flagged), best of
   ``--repeats``: ``model.predict(X)`` (the pruned graph: the final model only, no flags),
   the same with ``threads=1``, ``predict(X, return_std=True)`` (final + 5 fold models), ``predict(X, return_interval=True)``
   (final + interval/domain head, and the fold models: ONNX Runtime runs the whole graph for any
   output beyond the pruned one) and ``run`` (every output and the flags: what ``calib predict``
   computes). Issue 17's target ">= today's 14 M rows/s" is for the first.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = """
[model]
hidden_layers = [32, 32]
optimizer = "adam"
epochs = 30
patience = "none"

[sweep]
strategy = "random"
trials = 1
folds = 5
jobs = 1

[sweep.space]
learning_rate = { low = 1e-3, high = 1e-2 }
"""

API = r"""
import json, sys, time
import numpy as np
from calib.runtime import load_model
args = json.loads(sys.argv[1])
m = load_model(args["artifact"])
rng = np.random.default_rng(0)
x = rng.uniform(m.lower, m.upper, size=(args["rows"], len(m.features)))
def best(f):
    ts = []
    for _ in range(args["repeats"]):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)
m1 = load_model(args["artifact"], threads=1)
calls = {
    "predict": lambda: m.predict(x),
    "predict_1thread": lambda: m1.predict(x),
    "predict_std": lambda: m.predict(x, return_std=True),
    "predict_interval": lambda: m.predict(x, return_interval=True),
    "run": lambda: m.run(m.as_array(x)),
}
for f in calls.values():
    f()
print(json.dumps({k: args["rows"] / best(f) for k, f in calls.items()}))
"""


def artifact(folder: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    demo = ROOT / "models" / "sim-ptp-batch"
    if demo.is_dir() and any(demo.iterdir()):
        return demo
    data = (ROOT / "data" / "calib.toml").read_text().split("[model]")[0]
    (folder / "calib.toml").write_text(data + TINY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALIB_RUNS_DIR": str(folder / "runs")}
    res = subprocess.run([sys.executable, "-m", "calib.cli", "-q", "calibrate", str(ROOT / "data" / "readings.csv"),
                          "--config", str(folder / "calib.toml"), "--models-dir", str(folder / "models"),
                          "--name", "bench", "--json"], env=env, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(res.stderr)
    return Path(json.loads(res.stdout)["artifact"])


def readings(path: Path, rows: int, piece: int = 1_000_000) -> None:
    """``rows`` readings like data/readings.csv's, written in pieces (header by hand: pyarrow quotes it)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(ROOT / "data" / "calib.toml", "rb") as fh:
        features = tomllib.load(fh)["data"]["features"]
    raw = pd.read_csv(ROOT / "data" / "readings.csv")
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        fh.write((",".join(raw.columns) + "\n").encode())
        for start in range(0, rows, piece):
            n = min(piece, rows - start)
            part = raw.iloc[rng.integers(0, len(raw), n)].reset_index(drop=True)
            for c in features:
                part[c] = (part[c] + rng.normal(0, 0.005, n)).round(4)
            pcsv.write_csv(pa.Table.from_pandas(part, preserve_index=False), fh,
                           pcsv.WriteOptions(include_header=False, quoting_style="none"))


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time (s) and peak RSS (MB) of a command run in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}{out}")
    return {"s": seconds, "rss_mb": usage.ru_maxrss / 1024, "stdout": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--old-rows", type=int, default=1_000_000)
    ap.add_argument("--api-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--artifact", help="artifact folder (default: models/sim-ptp-batch, else a tiny one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="calib-stream-") as tmp:
        folder = Path(tmp)
        art = artifact(folder, args.artifact)
        big, small = folder / "big.csv", folder / "small.csv"
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                        "import stream_predict as s; s.readings(Path(sys.argv[2]), int(sys.argv[3]))",
                        str(ROOT / "benchmarks"), str(big), str(args.rows)], check=True)
        with open(big, "rb") as fh, open(small, "wb") as out:
            for _ in range(args.old_rows + 1):
                out.write(fh.readline())
        size_mb = big.stat().st_size / 2**20
        import resource

        parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"artifact {art}; {args.rows:,} rows = {size_mb:.0f} MiB; free disk "
              f"{shutil.disk_usage(folder).free / 2**30:.0f} GiB; this process {parent_mb:.0f} MB", flush=True)
        predict = [sys.executable, "-m", "calib.cli", "-q", "predict", str(art)]
        streamed = {"CALIB_STREAM_MIN_BYTES": "0"}  # a 10M-row file is streamed anyway; a small --rows too
        stream = measured(predict + [str(big), "-o", str(folder / "out.csv"), "--json"], env=streamed)
        summary = json.loads(stream["stdout"])
        (folder / "out.csv").unlink()
        (folder / "out.csv.json").unlink()
        one = measured(predict + [str(big), "-o", str(folder / "out.csv"), "--threads", "1"], env=streamed)
        (folder / "out.csv").unlink()
        (folder / "out.csv.json").unlink()
        pandas = measured([sys.executable, "-c", "import sys, pandas as pd; pd.read_csv(sys.argv[1]).to_csv(sys.argv[2], "
                           "index=False)", str(big), str(folder / "pandas.csv")])
        (folder / "pandas.csv").unlink()
        big.unlink()
        whole = measured(predict + [str(small), "-o", str(folder / "whole.csv")],
                         env={"CALIB_STREAM_MIN_BYTES": str(1 << 40)})
        streamed_small = measured(predict + [str(small), "-o", str(folder / "streamed.csv")], env=streamed)
        same = (folder / "whole.csv").read_bytes() == (folder / "streamed.csv").read_bytes()
        api = json.loads(measured([sys.executable, "-c", API, json.dumps(
            {"artifact": str(art), "rows": args.api_rows, "repeats": args.repeats})])["stdout"].strip().splitlines()[-1])

    rate, pd_rate = args.rows / stream["s"], args.rows / pandas["s"]
    print(f"{'':<52} {'peak RSS MB':>12} {'s':>8} {'rows/s':>12}")
    rows = [(f"calib predict, {args.rows:,} rows (streamed)", stream, args.rows),
            (f"  the same with --threads 1", one, args.rows),
            (f"pandas read_csv + to_csv, {args.rows:,} rows", pandas, args.rows),
            (f"calib predict, {args.old_rows:,} rows, read whole", whole, args.old_rows),
            (f"calib predict, {args.old_rows:,} rows, streamed", streamed_small, args.old_rows)]
    for label, r, n in rows:
        print(f"{label:<52} {r['rss_mb']:>12.0f} {r['s']:>8.1f} {n / r['s']:>12,.0f}")
    print(f"streamed output byte-identical to the whole-file path's ({args.old_rows:,} rows): {same}")
    print(f"targets: peak RSS <= 300 MB: {'met' if stream['rss_mb'] <= 300 else 'NOT met'}; rows/s >= pandas: "
          f"{'met' if rate >= pd_rate else 'NOT met'} ({rate / pd_rate:.2f}x)")
    print(f"Python API on {args.api_rows:,} rows (numpy in), rows/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in api.items())
          + f"; target predict >= 14 M: {'met' if api['predict'] >= 14e6 else 'NOT met'}")
    print(json.dumps({
        "rows": args.rows, "file_mib": size_mb, "out_of_range": summary["out_of_range"],
        "stream_s": stream["s"], "stream_rss_mb": stream["rss_mb"], "stream_rows_per_s": rate,
        "stream_1thread_s": one["s"], "stream_1thread_rss_mb": one["rss_mb"],
        "pandas_s": pandas["s"], "pandas_rss_mb": pandas["rss_mb"], "pandas_rows_per_s": pd_rate,
        "old_rows": args.old_rows, "whole_s": whole["s"], "whole_rss_mb": whole["rss_mb"],
        "streamed_small_s": streamed_small["s"], "streamed_small_rss_mb": streamed_small["rss_mb"],
        "identical": same, "api_rows": args.api_rows, "api_rows_per_s": api, "parent_rss_mb": parent_mb,
        "rss_target_met": stream["rss_mb"] <= 300, "speed_target_met": rate >= pd_rate,
    }))


if __name__ == "__main__":
    main()
