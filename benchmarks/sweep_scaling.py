"""Sweep scaling (1 vs 2 worker processes) and worker memory over a 50-trial sweep.

Run from the repository root::

    .venv/bin/python benchmarks/sweep_scaling.py [--trials 8] [--folds 3] [--epochs 300]
                                                 [--memory-trials 50] [--skip-scaling] [--skip-memory]

Data: the bundled ``data/readings.csv`` with ``data/calib.toml`` (features, target, group and
the train/dev/test split of its ``[split]`` table, via :func:`calib.config.load_config`,
:func:`calib.ingest.load_dataset` and :func:`calib.ingest.split_dataset`); every trial is
validated on the train + dev rows by group k-fold.

1. Scaling: the same random sweep (``--trials`` trials, seed 0, small networks, a fixed
   number of epochs, no early stopping, ``--folds`` folds) with ``jobs=1`` and ``jobs=2``,
   each into a fresh journal file (300 epochs by default, so that training, not the
   workers' start-up and TensorFlow import of ~5-8 s, dominates). Wall time of :func:`calib.search.run_sweep` (worker start-up
   and TensorFlow import included), the ratio, and a check that both runs drew the same
   configs and got the same scores (draws depend on the trial number only).
2. Memory: ``--memory-trials`` tiny trials (4 small shapes, 5 epochs, 2 folds) with
   ``jobs=1``, once with workers replaced every 10 trials (the default) and once with one
   long-lived worker (``recycle_every=None`` would run in this process, so 10**6 is used). At
   trial 5 and at the last trial the benchmark reads the resident and peak resident memory
   (VmRSS, VmHWM) of its worker processes (found with psutil if installed, else /proc).

Prints the figures and one JSON line. Timings on a shared 2-core machine are noisy.
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from calib.config import load_config  # noqa: E402
from calib.ingest import prepare  # noqa: E402
from calib.nn import ModelConfig  # noqa: E402
from calib.cli.format import format_leaderboard  # noqa: E402
from calib.search import run_sweep  # noqa: E402

SCALING_SPACE = {
    "learning_rate": {"low": 1e-3, "high": 3e-2},
    "hidden_layers": {"choices": [[16], [16, 16]]},
    "activation": {"choices": ["tanh", "relu"]},
}
MEMORY_SPACE = {  # several shapes, so that new graphs are traced along the sweep
    "learning_rate": {"low": 1e-3, "high": 3e-2},
    "hidden_layers": {"choices": [[8], [8, 8], [16], [4, 4, 4]]},
    "activation": {"choices": ["tanh", "relu"]},
}


def load_bundled():
    cfg = load_config(ROOT / "data" / "calib.toml")
    ds, sp = prepare(ROOT / "data" / "readings.csv", cfg)
    return cfg, ds, sp.train_dev


def _children(pid: int) -> list[int]:
    """Descendant process ids of ``pid``."""
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    kids = [int(k) for k in (task / "children").read_text().split()]
                except OSError:
                    continue
                out += kids
                todo += kids
        return out


def _mem_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MiB, from /proc (psutil has no peak RSS)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_memory() -> dict[int, tuple[float, float]]:
    """Memory of this process's loky worker processes (not the resource trackers)."""
    out = {}
    for pid in _children(os.getpid()):
        if "popen_loky" in _cmdline(pid):
            m = _mem_mb(pid)
            if m is not None:
                out[pid] = m
    return out


def scaling(ds, rows, trials: int, folds: int, epochs: int, tmp: Path) -> dict:
    base = ModelConfig(epochs=epochs, patience=None, batch_size=64, seed=0)
    results, times = {}, {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        res = run_sweep(ds, rows, base, SCALING_SPACE, strategy="random", n_trials=trials, folds=folds,
                        jobs=jobs, seed=0, storage=tmp / f"scaling_jobs{jobs}.journal")
        times[jobs] = time.perf_counter() - t0
        results[jobs] = res
        trial_s = sum(t.seconds or 0 for t in res.trials)
        print(f"jobs={jobs}: {times[jobs]:6.1f} s wall for {trials} trials x {folds} folds x {epochs} epochs "
              f"(sum of trial times {trial_s:.1f} s)", flush=True)
    same = [(t.params, round(t.score, 9)) for t in results[1].trials] == \
           [(t.params, round(t.score, 9)) for t in results[2].trials]
    print(f"speed-up jobs=2 vs jobs=1: {times[1] / times[2]:.2f}x; same configs and scores: {same}")
    print(format_leaderboard(results[1], top=3))
    return {"trials": trials, "folds": folds, "epochs": epochs, "jobs1_s": round(times[1], 2),
            "jobs2_s": round(times[2], 2), "speedup": round(times[1] / times[2], 3), "identical": same,
            "best_mae": results[1].best.score if results[1].best else None, "unit": results[1].unit}


def memory(ds, rows, n: int, recycle: int, tmp: Path, label: str) -> dict:
    base = ModelConfig(hidden_layers=(8,), epochs=5, patience=None, batch_size=64, seed=0)
    marks = sorted({min(5, n), n})
    seen: dict[int, dict[int, tuple[float, float]]] = {}

    def progress(done: int, total: int, best: float | None) -> None:
        if done in marks and done not in seen:
            seen[done] = worker_memory()

    t0 = time.perf_counter()
    res = run_sweep(ds, rows, base, MEMORY_SPACE, n_trials=n, folds=2, jobs=1, seed=0,
                    storage=tmp / f"memory_{label}.journal", progress=progress, recycle_every=recycle)
    secs = time.perf_counter() - t0
    out = {"label": label, "recycle_every": recycle, "trials": n, "seconds": round(secs, 1)}
    for mark in marks:
        mem = seen.get(mark, {})
        rss = max((m[0] for m in mem.values()), default=float("nan"))
        hwm = max((m[1] for m in mem.values()), default=float("nan"))
        out[f"trial{mark}_rss_mb"] = round(rss, 1)
        out[f"trial{mark}_peak_rss_mb"] = round(hwm, 1)
        print(f"{label:>14s}: after trial {mark:2d}: worker RSS {rss:7.1f} MiB, peak RSS {hwm:7.1f} MiB "
              f"({len(mem)} worker process(es))", flush=True)
    print(f"{label:>14s}: {n} trials in {secs:.1f} s; {sum(t.state == 'COMPLETE' for t in res.trials)} complete")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--memory-trials", type=int, default=50)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()

    cfg, ds, rows = load_bundled()
    print(f"data: {ds.n_rows} rows, {len(rows)} train+dev rows, {len(np.unique(ds.groups(rows)))} spots; "
          f"{os.cpu_count()} CPU(s)", flush=True)
    summary: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_scaling:
            summary["scaling"] = scaling(ds, rows, args.trials, args.folds, args.epochs, tmp)
        if not args.skip_memory:
            summary["memory"] = [
                memory(ds, rows, args.memory_trials, 10, tmp, "recycled/10"),
                memory(ds, rows, args.memory_trials, 10**6, tmp, "one worker"),
            ]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
