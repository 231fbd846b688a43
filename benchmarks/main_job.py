"""The main job on the bundled data (``make demo``'s ``calib calibrate``): wall time by stage, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/main_job.py [--baseline 4100f71] [--rounds 2]

Each round runs ``calib calibrate data/readings.csv --config data/calib.toml`` (12 trials x 5
folds, 2 workers, as ``make demo``) in a fresh folder, one variant after the other:

* ``baseline``: the code of ``--baseline`` (a git revision; checked out into a temporary
  worktree, run with this interpreter) - what the main job cost before;
* ``now``: this working tree;
* ``now, prune = false``: this working tree with ``[sweep] prune = false`` (no trial stopped early).

A variant's stages come from the time stamps of its progress lines: start-up (to the ``data:``
line), the first trial done, the sweep (to the last trial), after the sweep (choice, fold
models, refit, test), the export, and the exit (after the ``exported`` line). Also printed:
trials per minute of the sweep (from its start: this includes the workers' start-up where the
sweep starts before they are ready, as it does since the main process imports TensorFlow in
the background) and after the first trial done, how many trials were pruned, and the held-out
test MAE (the same data, split and seeds in every variant). ``--variants`` picks the variants.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "readings.csv"
TOML = ROOT / "data" / "calib.toml"
RUNNER = "import sys; from calib.cli import main; sys.argv = ['calib'] + sys.argv[1:]; main()"


def run_variant(code_root: Path, toml: Path, work: Path) -> dict:
    """One ``calib calibrate`` of the code in ``code_root``, in the fresh folder ``work``: stage times."""
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(code_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-c", RUNNER, "calibrate", str(DATA), "--config", str(toml), "--name", "bench"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip()))
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{code_root}: calib calibrate failed:\n" + "\n".join(l for _, l in lines[-20:]))

    def first(pattern: str) -> tuple[float, re.Match] | None:
        for t, line in lines:
            m = re.search(pattern, line)
            if m:
                return t, m
        return None

    data_t = first(r"^data: ")[0]
    sweep_end = [t for t, line in lines if re.search(r"sweep: (\d+)/\1 trials done", line)]
    sweep_start = first(r"sweep: 0/\d+ trials done")
    test = first(r"test \(\d+ rows, touched once\): MAE ([0-9.]+)")
    exported = first(r"^exported ")[0]
    pruned = first(r"sweep: (\d+) of \d+ trials pruned")
    trials = int(first(r"sweep: \S+, (\d+) trials x")[1].group(1))
    first_done = first(r"sweep: 1/\d+ trials done")
    s0 = sweep_start[0] if sweep_start else data_t
    s1 = sweep_end[-1]
    f1 = first_done[0] if first_done else s0
    return {"wall": wall, "startup": data_t, "first_trial": f1, "sweep": s1 - s0, "after_sweep": test[0] - s1,
            "export": exported - test[0], "exit": wall - exported, "trials": trials,
            "trials_per_min": trials / (s1 - s0) * 60,
            "trials_per_min_after_first": (trials - 1) / max(s1 - f1, 1e-9) * 60,
            "pruned": int(pruned[1].group(1)) if pruned else 0, "test_mae": float(test[1].group(1))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="4100f71", help="git revision of the 'before' code (default: 4100f71, the stop of 2026-11-30 06:00)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the three variants (default 2)")
    ap.add_argument("--variants", default="baseline,now,now, prune = false".replace(", ", "|"),
                    help="comma-separated variants to run: baseline, now, now|prune = false (default: all three)")
    args = ap.parse_args(argv)
    wanted = [v.strip().replace("|", ", ") for v in args.variants.split(",") if v.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_root = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_root), args.baseline],
                       check=True, capture_output=True)
        no_prune = tmp / "calib-noprune.toml"
        text = TOML.read_text()
        no_prune.write_text(re.sub(r"(?m)^\[sweep\][^\n]*\n", lambda m: m.group(0) + "prune = false\n", text, count=1))
        variants = {"baseline": (base_root, TOML), "now": (ROOT, TOML), "now, prune = false": (ROOT, no_prune)}
        variants = {k: v for k, v in variants.items() if k in wanted}
        runs: dict[str, list[dict]] = {k: [] for k in variants}
        try:
            for r in range(args.rounds):
                for i, (name, (code, toml)) in enumerate(variants.items()):
                    res = run_variant(code, toml, tmp / f"round{r}-variant{i}")
                    runs[name].append(res)
                    print(f"round {r + 1} {name:20s} wall {res['wall']:6.1f} s, sweep {res['sweep']:5.1f} s "
                          f"({res['trials_per_min']:.1f} trials/min, {res['pruned']} pruned), test MAE "
                          f"{res['test_mae']:.3f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_root)],
                           capture_output=True)

    def span(name: str, key: str, fmt: str = "{:.1f}") -> str:
        vals = [r[key] for r in runs[name]]
        lo, hi = min(vals), max(vals)
        return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"

    print()
    print(f"calib calibrate on the bundled data (12 trials x 5 folds, 2 workers), {args.rounds} round(s), "
          f"min-max over rounds; baseline = {args.baseline}")
    print(f"{'':22s} {'wall s':>11s} {'start-up':>9s} {'1st trial':>11s} {'sweep s':>11s} {'trials/min':>11s} "
          f"{'after 1st':>11s} {'pruned':>7s} {'after s':>9s} {'export s':>9s} {'exit s':>9s} {'test MAE':>13s}")
    for name in variants:
        print(f"{name:22s} {span(name, 'wall'):>11s} {span(name, 'startup'):>9s} {span(name, 'first_trial'):>11s} "
              f"{span(name, 'sweep'):>11s} {span(name, 'trials_per_min'):>11s} "
              f"{span(name, 'trials_per_min_after_first'):>11s} {span(name, 'pruned', '{:.0f}'):>7s} "
              f"{span(name, 'after_sweep'):>9s} {span(name, 'export'):>9s} {span(name, 'exit'):>9s} "
              f"{span(name, 'test_mae', '{:.3f}'):>13s}")
    keys = ("wall", "trials_per_min", "trials_per_min_after_first")
    mean = {n: {k: sum(r[k] for r in rs) / len(rs) for k in keys} for n, rs in runs.items()}
    if "baseline" in mean:
        for name in (n for n in mean if n != "baseline"):
            print(f"{name} vs baseline: wall {mean[name]['wall'] / mean['baseline']['wall']:.2f}x, sweep trials/min "
                  f"{mean[name]['trials_per_min'] / mean['baseline']['trials_per_min']:.2f}x (after the first "
                  f"trial {mean[name]['trials_per_min_after_first'] / mean['baseline']['trials_per_min_after_first']:.2f}x)")
    print(json.dumps({"benchmark": "main_job", "baseline": args.baseline, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
