"""ONNX Runtime chunk size and threads, measured on calib's own graph.

Run from the repository root (after ``make demo``, or give an artifact)::

    .venv/bin/python benchmarks/ort_chunks.py [models/sim-ptp-batch] [--rows 1000000] [--repeats 3]

:meth:`calib.runtime.CalibrationModel.graph_outputs` feeds ONNX Runtime ``CHUNK_ROWS`` rows at a
time (the full graph ``FULL_CHUNK_ROWS``; both are set to each size here). This measures, side by
side in one process, the rows/s of the full graph (final model, fold models, interval and domain
head) and of the pruned graph (final model only: what ``predict`` without flags runs) for chunk
sizes 1,024 .. 65,536 and 1 and 2 threads (chunks at once, one ONNX Runtime thread each), best
of ``--repeats``. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNKS = (1024, 4096, 16384, 65536)


def main() -> None:
    import calib.runtime as R
    from calib import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact", nargs="?", default=str(ROOT / "models" / "sim-ptp-batch"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = {"rows": args.rows, "results": []}
    rng = np.random.default_rng(0)
    print(f"{args.rows:,} readings; rows/s, best of {args.repeats}")
    print(f"{'threads':>7} {'chunk':>7} {'full graph':>14} {'final only':>14}")
    for threads in (1, 2):
        m = load_model(args.artifact, threads=threads, spots=False)
        x = np.column_stack([rng.uniform(lo, hi, args.rows) for lo, hi in zip(m.lower, m.upper)]).astype(np.float32)
        for chunk in CHUNKS:
            R.CHUNK_ROWS = R.FULL_CHUNK_ROWS = chunk
            full, main_only = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                m.graph_outputs(x, want_std=True, want_trust=True)
                full.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                m.graph_outputs(x, want_std=False, want_trust=False)
                main_only.append(time.perf_counter() - t0)
            r = {"threads": threads, "chunk": chunk, "full_rows_per_s": args.rows / min(full),
                 "final_rows_per_s": args.rows / min(main_only)}
            out["results"].append(r)
            print(f"{threads:>7} {chunk:>7} {r['full_rows_per_s']:>14,.0f} {r['final_rows_per_s']:>14,.0f}")
    best = max(out["results"], key=lambda r: r["full_rows_per_s"])
    out["best_full"] = best
    print(f"best for the full graph: chunk {best['chunk']}, threads {best['threads']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
