"""Run every benchmark and write ``benchmarks/RESULTS.md``.

Run from the repository root::

    .venv/bin/python benchmarks/run_all.py [--full] [--only NAME,...] [--output benchmarks/RESULTS.md]

Each benchmark script runs as a subprocess (a fresh interpreter, so that TensorFlow start-up and
memory of one do not leak into another), in this order: ``train_speed``, ``inference``,
``sweep_scaling``, ``spot_adjust`` (when the script exists), ``real_data``, ``bundled_accuracy``,
``coverage``, ``coverage_reference``, ``diagnosis``, ``stream_predict``, ``main_job``, ``fold_bound``.
Their figures are read from the JSON line each prints last; their full output goes into the
report's "Raw output" section. By default the slower scripts run with reduced settings (listed
in the report) so that the whole run stays under ~25 minutes on a 2-core machine; ``--full``
runs every script with its own defaults. A script that fails or is missing is reported as
such and the others still run.

The report starts with "measured on <date>, <machine>" (CPU model from /proc/cpuinfo, cores,
memory), the Python and package versions and the git commit, then one table per benchmark
(figures and ratios). Timings on a shared machine are noisy; accuracy figures are seeded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"

#: name -> (script, reduced arguments, --full arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "train_speed": ("train_speed.py", ["--seeds", "10", "--mae-seeds", "30", "--cold-runs", "3"], []),
    "inference": ("inference.py", ["--repeats", "2"], []),
    "sweep_scaling": ("sweep_scaling.py", ["--memory-trials", "30"], []),
    "spot_adjust": ("spot_adjust.py", [], []),
    "real_data": ("real_data.py", [], []),
    "bundled_accuracy": ("bundled_accuracy.py", [], []),
    "coverage": ("coverage.py", [], []),
    "coverage_reference": ("coverage_reference.py", ["--draws", "12"], []),
    "diagnosis": ("diagnosis.py", [], []),
    "multitask": ("multitask.py", ["--seeds", "5", "--folds", "3"], []),
    "stream_predict": ("stream_predict.py", [], []),
    "main_job": ("main_job.py", ["--rounds", "1", "--variants", "baseline,now"],
                 ["--rounds", "3", "--variants", "baseline,now"]),
    "fold_bound": ("fold_bound.py", [], []),
}
PACKAGES = ("calib", "tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "scipy", "scikit-learn",
            "onnx", "onnxruntime", "tf2onnx", "optuna", "pyarrow")


# --------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        models = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
        if models:
            info["cpu"] = models[0]
        phys = {ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("physical id")}
        cores = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("cpu cores")]
        if phys and cores:
            info["physical_cores"] = len(phys) * int(cores[0])
    except OSError:
        pass
    try:
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        info["memory_gib"] = round(int(mem.split()[1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    info["os"] = platform.platform()
    info["python"] = platform.python_version()
    from importlib.metadata import PackageNotFoundError, version

    info["versions"] = {}
    for p in PACKAGES:
        try:
            info["versions"][p] = version(p)
        except PackageNotFoundError:
            pass
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)
        if head.returncode == 0:
            info["git"] = head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------- running
def run(name: str, args: list[str], timeout: float) -> dict[str, Any]:
    script = HERE / BENCHMARKS[name][0]
    if not script.exists():
        print(f"[{name}] {script.name} not present; skipped", flush=True)
        return {"name": name, "status": "missing", "args": args}
    cmd = [sys.executable, str(script), *args]
    print(f"[{name}] {' '.join(['python', f'benchmarks/{script.name}', *args])}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - t0
    data = None
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    status = "ok" if rc == 0 and data is not None else (f"failed (exit {rc})" if rc != 0 else "no JSON line")
    print(f"[{name}] {status} in {seconds:.0f} s", flush=True)
    text = "\n".join(ln for ln in out.splitlines() if not ln.startswith("{"))
    return {"name": name, "status": status, "args": args, "seconds": seconds, "data": data,
            "stdout": text, "stderr_tail": "\n".join(err.strip().splitlines()[-15:])}


# --------------------------------------------------------------------------- tables
def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
        return str(v)

    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def t_train_speed(d: dict) -> list[str]:
    m = d["methods"]
    g = m["calib train (graph)"]
    rows = [[k, v["cold_s"], v["warm_s"], f"{v['mae']:.3f} +/- {v.get('mae_se', 0):.3f} ({v.get('mae_seeds', d['seeds'])})",
             v["cold_s"] / g["cold_s"], v["warm_s"] / g["warm_s"]]
            for k, v in m.items()]
    out = [f"{d['rows']} rows of data/readings.csv (80/20 split), 2 x 32 tanh, Adam 1e-3, batch 32, "
           f"{d['epochs']} epochs, {d['seeds']} seeds timed; cold = first run of the shape in a process (median of "
           f"{d.get('cold_runs', 1)} fresh interpreters), warm = median of the other seeds. MAE: mean +/- standard "
           "error over the seeds (n).", ""]
    out += _table(["method", "cold s", "warm s", "validation MAE (hPa)", "cold / calib graph", "warm / calib graph"], rows)
    if d.get("mae_diff"):
        out += ["", "MAE difference calib - peer, 95 % confidence interval over seeds (Welch): "
                + "; ".join(f"{k}: {v['diff']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] hPa" for k, v in d["mae_diff"].items())
                + ". The training is chaotic (the shuffling order alone picks the basin), so equal error is a "
                  "statement about the distribution over seeds."]
    out += ["", "Checks: " + "; ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in d["checks"].items()) + "."]
    return out


def t_inference(d: dict) -> list[str]:
    k = d["keras_predict_rows_per_s"]
    rows = [[label, d[key], d[key] / k] for label, key in (
        ("load_model(...).predict (ONNX Runtime, default threads: one per CPU)", "ort_rows_per_s"),
        ("load_model(..., threads=2).predict", "ort_2threads_rows_per_s"),
        ("  with return_std (final + 5 fold models)", "ort_std_rows_per_s"),
        ("keras model.predict (defaults, batch 32)", "keras_predict_rows_per_s"),
        ("calib.nn.predict (TensorFlow, 65536-row chunks)", "calib_model_predict_rows_per_s"),
    )]
    out = [f"{d['rows']:,} readings, 5 features, 2 x 32 tanh with 5 fold models.", ""]
    out += _table(["path", "rows/s", "vs keras model.predict"], rows)
    out += ["", f"`predict_file` on a 100,000-row CSV: {d['predict_file_s']:.3f} s vs pandas read_csv + to_csv "
                f"{d['pandas_rw_s']:.3f} s (ratio {d['file_ratio']:.2f}, target <= 2). `import calib.runtime` "
                f"{d['import_s'] * 1000:.0f} ms, `load_model` {d['load_s'] * 1000:.0f} ms, TensorFlow imported: "
                f"{'yes' if d['tensorflow_imported'] else 'no'}."]
    return out


def t_sweep_scaling(d: dict) -> list[str]:
    out = []
    s = d.get("scaling")
    if s:
        out += [f"Random sweep, {s['trials']} trials x {s['folds']} folds x {s['epochs']} epochs on the bundled "
                "train+dev rows (worker start-up and TensorFlow import included).", ""]
        out += _table(["jobs", "wall s", "speed-up", "same configs and scores", f"best MAE ({s['unit']})"],
                      [[1, s["jobs1_s"], 1.0, "", s["best_mae"]], [2, s["jobs2_s"], s["speedup"], s["identical"], ""]])
    mem = d.get("memory") or []
    if mem:
        marks = sorted({int(k[5:].split("_")[0]) for m in mem for k in m if k.startswith("trial") and k.endswith("_rss_mb")})
        head = ["workers", "trials", "s"] + [f"RSS / peak after trial {t} (MiB)" for t in marks]
        rows = [[m["label"], m["trials"], m["seconds"]] + [f"{m.get(f'trial{t}_rss_mb')} / {m.get(f'trial{t}_peak_rss_mb')}"
                                                           for t in marks] for m in mem]
        out += ["", "Worker memory over a sweep of tiny trials (jobs=1):", ""] + _table(head, rows)
    return out


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, d)]


def t_spot_adjust(d: dict) -> list[str]:
    out = []
    b = d.get("bundled_mae")
    if isinstance(b, dict) and isinstance(b.get("held"), dict):
        held, seen = b["held"], b.get("seen", {})
        a = held.get("a_batch", {}).get("mae")
        rows = [[f"`{k}`", v.get("mae"), seen.get(k, {}).get("mae", ""), (v.get("mae") / a) if a else ""]
                for k, v in held.items()]
        out += ["Bundled batch, MAE (hPa) on each spot's rows other than its two-point reference; the methods "
                "are the script's keys (its printed table, under Raw output, names them).", ""]
        out += _table(["method", "held-out spots", "seen spots", "held-out / (a) batch alone"], rows)
    rest = _flatten({k: v for k, v in d.items() if k not in ("benchmark", "bundled_mae")})
    if rest:
        out += ["", "Other figures (see the script's output for their meaning):", ""]
        out += _table(["figure", "value"], [[k, v] for k, v in rest[:60]])
    return out


def t_real_data(d: dict) -> list[str]:
    if d.get("skipped"):
        return [f"Skipped: {d['skipped']}."]
    out = []
    for f in d["files"]:
        base = f["methods"]["classical_auto"]["mae"]
        rows = []
        for k, m in f["methods"].items():
            labels = {"calib": "calib (nested CV: physics / hybrid / mlp, one-SE family rule)",
                      "calib_argmin": "  diagnostic: same inner scores, bare lowest inner MAE",
                      "sklearn_mlp": "sklearn MLPRegressor 2x32 tanh lbfgs"}
            label = labels[k] if k in labels else "classical " + k.split("_", 1)[1]
            if k == "classical_auto":
                label += " (" + ", ".join(sorted(set(m["kinds"]))) + ")"
            rows.append([label, m["mae"], m["rmse"], m["max_abs"], m["mae"] / base])
        out += [f"**{f['file']}**: {f['n']} points, target {f['target']} [{f['unit']}], {f['folds']} outer folds, "
                f"family chosen by {f['inner_folds']}-fold inner CV: {', '.join(f['methods']['calib']['chosen'])}"
                + (f" (bare lowest inner MAE: {', '.join(f['methods']['calib_argmin']['chosen'])})"
                   if "calib_argmin" in f["methods"] else "") + ". "
                f"calib <= classical: **{'yes' if f['calib_le_classical'] else 'NO'}**.", ""]
        out += _table(["method", f"MAE ({f['unit']})", "RMSE", "max", "MAE / classical auto"], rows) + [""]
    out.append(f"Target calib <= classical on every file: **{'met' if d['target_met'] else 'NOT met'}**.")
    return out


def t_bundled_accuracy(d: dict) -> list[str]:
    m, c = d["mae"], d["mae"]["calib"]
    h = d["chosen"]
    labels = {"calib": "calib main job (test part, touched once)", "calib_onnx": "  same, exported ONNX artifact",
              "calib_default_config": f"calib [model] default config, no sweep ({d.get('default_config_epochs')} epochs)",
              "classical_auto": f"classical auto ({d['classical_kind']['auto']})", "classical_svu": "classical svu",
              "classical_two_site": "classical two_site", "sklearn_mlp": "sklearn MLPRegressor 2x32 tanh lbfgs"}
    rows = [[labels.get(k, k), v, v / c] for k, v in m.items()]
    out = [f"Test part = {d['test_rows']} rows of the held-out spots {', '.join(d['test_spots'])}. calib: "
           f"{d['trials']} sweep trials ({d['calib_seconds']:.0f} s), chosen family {h['family']}, layers "
           f"{h['hidden_layers']}, {h['activation']}, lr {h['learning_rate']:.3g}, batch {h['batch_size']}, "
           f"l2 {h['l2']:g}; refit {d['refit_epochs']} epochs.", ""]
    out += _table(["method", "MAE (hPa)", "/ calib"], rows)
    import statistics as st

    sp = d.get("seed_spread") or {}
    if sp:
        def ms(v: list[float]) -> str:
            return f"{st.mean(v):.3f} +/- {st.stdev(v):.3f} (min {min(v):.3f}, max {max(v):.3f})"

        out += ["", f"Seed spread on the same test rows: one run is one draw of the initial weights. The chosen "
                f"config refit as the main job refits it (same epochs, all train + dev rows) and MLPRegressor, "
                f"seeds 0-{sp['seeds'] - 1} each ({sp['seconds']:.0f} s):", ""]
        out += _table(["method", "test MAE over seeds (hPa)"],
                      [["calib chosen config, refit", ms(sp["calib"])], ["sklearn MLPRegressor", ms(sp["sklearn_mlp"])]])
        out += ["", f"Difference calib - MLPRegressor: {sp['diff']:+.3f} hPa, 95 % CI [{sp['ci'][0]:+.3f}, "
                f"{sp['ci'][1]:+.3f}] (Welch)."]
    rl = d.get("refit_lengths")
    if rl:
        n_seeds = len(next(iter(rl["rows"].values()))["mae"])
        out += ["", f"Refit length of the `[model]` default ({rl['optimizer']}): the folds' median best epoch as "
                f"before, scaled by the refit's {rl['refit_rows']} rows over the {int(st.median(rl['fit_rows']))} a "
                f"fold model was fitted on (what the main job now does), and twice that; test MAE over seeds "
                f"0-{n_seeds - 1}:", ""]
        out += _table(["refit", "epochs", "test MAE mean +/- sd (hPa)", "per seed"],
                      [[k, v["epochs"], f"{st.mean(v['mae']):.3f} +/- {st.stdev(v['mae']):.3f}",
                        " ".join(f"{m:.3f}" for m in v["mae"])] for k, v in rl["rows"].items()])
    cv = [["calib (chosen config)", d["cv_mae"]]]
    if "cv_mae_classical" in d:
        cv += [["classical auto", d["cv_mae_classical"]], ["sklearn MLPRegressor", d["cv_mae_sklearn_mlp"]]]
    out += ["", "Cross-validation on train + dev (the main job's 5 folds by spot), MAE mean +/- sd over folds:", ""]
    out += _table(["method", "CV MAE (hPa)", "sd"], [[k, v["mean"], v["std"]] for k, v in cv])
    f = d["simulator_floors"]
    est = d.get("noise_floor_estimate")
    floors = [["calib's estimate from replicate readings", est if est is not None else "n/a", "", c / est if est else ""],
              ["simulator: input noise", f["inputs"]["mae"], f["inputs"]["median_sd"], c / f["inputs"]["mae"]],
              ["simulator: + reference error", f["inputs_reference"]["mae"], f["inputs_reference"]["median_sd"],
               c / f["inputs_reference"]["mae"]],
              ["simulator: + spot-to-spot deviations (unseen spots)", f["spots_reference"]["mae"],
               f["spots_reference"]["median_sd"], c / f["spots_reference"]["mae"]]]
    out += ["", "Noise floors (the MAE a perfect model would make; simulator figures as in data/README.md):", ""]
    out += _table(["floor", "MAE (hPa)", "median 1-sd (hPa)", "calib / floor"], floors)
    return out


def t_coverage(d: dict) -> list[str]:
    def row(name: str, t: dict) -> list[Any]:
        ci = t.get("ci") or {}
        bins = " / ".join(f"{100 * c:.1f}" for c in t["coverage_bins"])
        cib = " / ".join(f"{100 * a:.0f}-{100 * b:.0f}" for a, b in ci.get("bins", []))
        k = len(t.get("repeats", ())) or 1
        return [name, f"{t['n'] // k} x {k}", f"{100 * t['coverage']:.1f} % ({100 * ci['overall'][0]:.1f}-"
                f"{100 * ci['overall'][1]:.1f})" if ci else f"{100 * t['coverage']:.1f} %", f"{bins} ({cib})", t["mae"],
                f"{t['half_width_over_mae']:.2f}x / {t['width_over_mae']:.2f}x", f"{100 * t['out_of_domain']:.1f} %"]

    cases = [("bundled batch, held-out spots (all rotations)", d["bundled"]["batch"]),
             ("  same spots after a two-point check (child interval)", d["bundled"]["adjusted"])]
    cases += [(f"{k} certificate, nested 5-fold CV (physics)", v) for k, v in d.get("certificates", {}).items()]
    k = max(len(t.get("repeats", ())) for _, t in cases) or 1
    out = [f"Coverage of the 95 % conformal interval on rows whose spot (certificate point) took no part in "
           f"fitting the model or its interval, pooled over {k} repeats (random partitions of the spots; new outer "
           "folds of the certificates); in brackets a 95 % bootstrap interval resampling whole spots (points). "
           "Target: 93-97 % overall and per temperature tercile; width <= 4 x the MAE. A Gaussian "
           "error's 95 % interval is 2.45 x its MAE each side (4.9 x in full), so the width is given as "
           "half-width / full width over the MAE.", ""]
    out += _table(["case", "rows x repeats", "coverage (95 % CI)", "per temperature tercile % (CI)", "MAE",
                   "half / full width", "out of domain"], [row(n, t) for n, t in cases])
    per = []
    for name, t in cases:
        for i, r in enumerate(t.get("repeats", ()), start=1):
            per.append([name.strip(), i, f"{100 * r['coverage']:.1f} %",
                        " / ".join(f"{100 * c:.1f}" for c in r["coverage_bins"]), r["mae"],
                        f"{r['half_width_over_mae']:.2f}x"])
    if per:
        out += ["", "Each repeat alone (one partition is one draw of the spots):", ""]
        out += _table(["case", "repeat", "coverage", "per temperature tercile %", "MAE", "half width"], per)
    return out


def t_coverage_reference(d: dict) -> list[str]:
    rows = []
    for name, s in d.items():
        for fig in ("overall", "cold", "mid", "warm"):
            rows.append([name if fig == "overall" else "", fig, f"{100 * s['mean'][fig]:.1f} %",
                         f"{100 * s['sd'][fig]:.1f}", f"{100 * s['p05'][fig]:.1f}-{100 * s['p95'][fig]:.1f} %",
                         f"{100 * s['in_band'][fig]:.0f} %"])
        rows.append(["", "all four within 93-97 %", "", "", "", f"{100 * s['all_in_band']:.0f} %"])
    k = next(iter(d.values()), {})
    out = [f"Synthetic certificates with the real ones' readings and grid, the physics fit on all points as the "
           f"truth and Gaussian errors of its residual sd: the model form is exactly right. On each of "
           f"{k.get('draws', '?')} draws `coverage.py`'s protocol runs unchanged (8 outer shuffles pooled). The mean "
           "is what calib's 95 % interval does by design at this size; the spread is chance. The last column is "
           "the share of draws whose figure falls within the issue's 93-97 % band.", ""]
    out += _table(["certificate", "figure", "mean over draws", "sd (points)", "5-95 % of draws", "within 93-97 %"],
                  rows)
    return out


def t_diagnosis(d: dict) -> list[str]:
    rows = []
    for k, v in d.items():
        f = lambda x: "n/a" if x is None else f"{x:.4g}"  # noqa: E731
        rows.append([k, v["family"], f"{f(v['noise_floor'])} ({v['noise_floor_source']})", f(v.get("spot_floor")),
                     f"{f(v.get('floor'))} ({v.get('floor_name')})", f(v["train_mae"]), f(v["val_mae"]),
                     v["verdict"]])
    b = d.get("bundled", {})
    out = [f"`calib validate`'s diagnosis (5 folds; by spot on the bundled batch; unit of each data set). "
           f"Simulator's known input-noise floor on the bundled batch: {b.get('simulator_input_noise_floor', 0):.4g} "
           f"hPa (calib's estimate / truth = {b.get('noise_floor_ratio') or 0:.2f}); with the spot deviations: "
           f"{b.get('simulator_unseen_spot_floor', 0):.3g} hPa.", ""]
    out += _table(["data", "family", "noise floor", "spot-to-spot", "compared with", "train MAE", "validation MAE",
                   "verdict"], rows)
    return out


def t_multitask(d: dict) -> list[str]:
    rows = []
    for name, o in d["outputs"].items():
        lo, hi = o["ci95"]
        rows.append([f"{name} ({o['unit']})", f"{o['multi_mean']:.4g} +/- {o['multi_std']:.3g}",
                     f"{o['single_mean']:.4g} +/- {o['single_std']:.3g}", f"{o['difference']:+.3g}",
                     f"{lo:+.3g} .. {hi:+.3g}", f"{o['ratio']:.3f}", o["verdict"]])
    c = d.get("config", {})
    out = [f"Bundled batch, the four phases as the only inputs, O2 and temperature as outputs; "
           f"{d['folds']} GroupKFold folds by spot (all {d['rows']} rows), {d['seeds']} seeds (folds and initialisation); "
           f"`[model]` of data/calib.toml ({c.get('hidden_layers')}, {c.get('optimizer')}). One shared network with "
           "two outputs vs two single-task networks of the same size on the same folds. Validation MAE mean +/- std "
           "over seeds; difference = shared - single per seed, 95 % t-interval over seeds.", ""]
    out += _table(["output", "shared network", "single-task", "difference", "95 % CI", "shared / single", "verdict"], rows)
    return out


def t_stream_predict(d: dict) -> list[str]:
    n, old = d["rows"], d["old_rows"]
    rows = [[f"`calib predict`, {n:,} rows ({d['file_mib']:.0f} MiB CSV), streamed", d["stream_rss_mb"], d["stream_s"],
             d["stream_rows_per_s"]],
            ["  the same with `--threads 1`", d["stream_1thread_rss_mb"], d["stream_1thread_s"], n / d["stream_1thread_s"]],
            ["pandas `read_csv` + `to_csv`, the same file", d["pandas_rss_mb"], d["pandas_s"], d["pandas_rows_per_s"]],
            [f"`calib predict`, {old:,} rows, read whole (the path before streaming)", d["whole_rss_mb"], d["whole_s"],
             old / d["whole_s"]],
            [f"`calib predict`, {old:,} rows, streamed", d["streamed_small_rss_mb"], d["streamed_small_s"],
             old / d["streamed_small_s"]]]
    out = ["Each command in a fresh interpreter (wall time includes start-up and `load_model`); peak RSS of the "
           "process. Targets (issue 17): peak RSS <= 300 MB "
           f"({'met' if d['rss_target_met'] else 'NOT met'}), rows/s >= pandas' "
           f"({'met' if d['speed_target_met'] else 'NOT met'}: {d['stream_rows_per_s'] / d['pandas_rows_per_s']:.2f}x). "
           f"Streamed output byte-identical to the whole-file path's: {'yes' if d['identical'] else 'NO'}.", ""]
    out += _table(["command", "peak RSS (MB)", "s", "rows/s"], rows)
    a = d["api_rows_per_s"]
    out += ["", f"Python API on {d['api_rows']:,} readings (a float64 numpy array, drawn uniformly inside the "
            "calibrated ranges: many are far from every calibration point, so flagged), rows/s. ONNX Runtime runs "
            "every node of a graph for any output, so any output beyond the prediction costs the whole graph "
            "(final + 5 fold models + interval/domain head); the flags add per flagged row Python work "
            "(their reasons).", ""]
    out += _table(["call", "graph ONNX Runtime runs", "rows/s"], [
        ["`model.predict(X)`", "pruned: the final model only", a["predict"]],
        ["`load_model(..., threads=1).predict(X)`", "pruned", a["predict_1thread"]],
        ["`model.predict(X, return_std=True)`", "whole graph", a["predict_std"]],
        ["`model.predict(X, return_interval=True)`", "whole graph, + flags", a["predict_interval"]],
        ["`model.run(x)` (every output and the flags: what `calib predict` computes)", "whole graph, + flags",
         a["run"]]])
    return out


def t_main_job(d: dict) -> list[str]:
    runs = d["runs"]

    def span(name: str, key: str, fmt: str = "{:.1f}") -> str:
        vals = [r[key] for r in runs[name] if key in r]
        if not vals:
            return "-"
        lo, hi = fmt.format(min(vals)), fmt.format(max(vals))
        return lo if lo == hi else f"{lo}-{hi}"

    rows = [[name, span(name, "wall"), span(name, "startup"), span(name, "first_trial"), span(name, "sweep"),
             span(name, "trials_per_min"), span(name, "trials_per_min_after_first"), span(name, "pruned", "{:.0f}"),
             span(name, "after_sweep"), span(name, "export"), span(name, "exit"), span(name, "test_mae", "{:.3f}")]
            for name in runs]
    keys = ("wall", "trials_per_min", "trials_per_min_after_first")
    mean = {n: {k: sum(r.get(k, 0.0) for r in rs) / len(rs) for k in keys} for n, rs in runs.items()}
    n_rounds = len(next(iter(runs.values())))
    out = [f"`calib calibrate` on the bundled data (`make demo`'s main job: 12 trials x 5 folds, 2 workers), each "
           f"variant in a fresh folder and interpreter, one after the other, {n_rounds} round(s) (min-max). "
           f"`baseline` is the code of git {d['baseline']} run from a temporary worktree. Stages from the time stamps "
           "of the progress lines: start-up (to the `data:` line), the first trial done, sweep (from its start to its "
           "last trial; since the main process imports TensorFlow in the background, the sweep starts before its "
           "workers are ready, so their start-up is in it), after the sweep (choice, fold models, refit, test), "
           "export (ONNX, report, certificate) and exit (after the `exported` line). Trials per minute over the "
           "whole sweep, and after its first trial. Targets (issue 17): <= 60 s wall with the same or better held-out "
           "MAE; sweep trials per minute >= 2.5x the 5.5 of when the issue was filed.", ""]
    out += _table(["variant", "wall s", "start-up s", "1st trial s", "sweep s", "trials/min", "after 1st trial",
                   "pruned", "after sweep s", "export s", "exit s", "test MAE (hPa)"], rows)
    if "baseline" in mean and "now" in mean:
        line = (f"now vs baseline: wall {mean['now']['wall'] / mean['baseline']['wall']:.2f}x (mean "
                f"{mean['now']['wall']:.1f} s vs {mean['baseline']['wall']:.1f} s), trials/min "
                f"{mean['now']['trials_per_min'] / mean['baseline']['trials_per_min']:.2f}x "
                f"({mean['now']['trials_per_min'] / 5.5:.2f}x the 5.5 trials/min of when the issue was filed)")
        if "now, prune = false" in mean:
            line += f"; without pruning: wall {mean['now, prune = false']['wall'] / mean['baseline']['wall']:.2f}x"
        out += ["", line + "."]
    return out


def t_fold_bound(d: dict) -> list[str]:
    res = d["results"]
    one = res[0]
    rows = [[r["threads"], f"{r['k1_ms']:.2f} ms", f"{r['k5_ms']:.2f} ms", f"{r['k5_ms'] / r['k1_ms']:.2f}x",
             f"{r['call_ms']:.2f} ms", f"{r['numpy_ms']:.2f} ms"] for r in res]
    out = [f"One L-BFGS objective evaluation (loss, gradient and dev loss of a {one['width']} x {one['width']} tanh "
           f"network on {one['rows']} + {one['dev']} rows, a bundled fold's) through calib's stacked objective "
           "(`calib.nn.stacked`: weights stacked on a model axis, batched matmuls, one compiled call), K = 1 and "
           "K = 5 models, median per call. A 5-fold trial in one compiled call cannot cost less per iteration "
           "than the K = 5 evaluation, so K = 5 / K = 1 bounds issue 17's \"5 folds <= 1.5x one fold\" from "
           "below (scipy's L-BFGS-B step, ~0.25 ms per model and call, only adds).", ""]
    out += _table(["TF threads", "K = 1", "K = 5 (one call)", "K = 5 / K = 1", "a compiled call doing nothing",
                   "numpy, same arithmetic, 1 model"], rows)
    out += ["", f"Bound on 2 cores: 5 folds on 2 threads / one fold on 1 = "
                f"{res[1]['k5_ms'] / one['k1_ms']:.2f}x (target 1.5x)."]
    return out


TABLES: dict[str, tuple[str, Callable[[dict], list[str]]]] = {
    "train_speed": ("Training speed", t_train_speed),
    "inference": ("Inference speed", t_inference),
    "sweep_scaling": ("Sweep scaling and worker memory", t_sweep_scaling),
    "spot_adjust": ("Two-point spot adjustment", t_spot_adjust),
    "real_data": ("Accuracy on real factory calibrations (nested k-fold)", t_real_data),
    "bundled_accuracy": ("Accuracy on held-out spots of the bundled batch", t_bundled_accuracy),
    "coverage": ("Coverage of the conformal interval", t_coverage),
    "coverage_reference": ("Coverage a certificate of this size can show", t_coverage_reference),
    "diagnosis": ("Bias / variance diagnosis and noise floors", t_diagnosis),
    "multitask": ("Dual sensing: one network for O2 and temperature vs two", t_multitask),
    "stream_predict": ("Streamed calib predict: memory and speed", t_stream_predict),
    "main_job": ("The main job on the bundled data: wall time by stage", t_main_job),
    "fold_bound": ("5 folds in one compiled call: the arithmetic bound", t_fold_bound),
}


def report(results: list[dict], info: dict, started: dt.datetime, total_s: float, full: bool) -> str:
    v = info.get("versions", {})
    tf = v.get("tensorflow-cpu") or v.get("tensorflow")
    mach = (f"{info['cpu']} ({info['cores']} logical cores"
            + (f", {info['physical_cores']} physical" if info.get("physical_cores") else "")
            + (f", {info['affinity']} usable" if info.get("affinity") and info["affinity"] != info["cores"] else "")
            + (f", {info['memory_gib']} GiB RAM" if info.get("memory_gib") else "") + ")")
    lines = [
        "# calib benchmarks",
        "",
        f"Measured on {started:%Y-%m-%d %H:%M} UTC, {mach}, {info['os']}, Python {info['python']}.",
        "",
        "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if k != "tensorflow-cpu") +
        (f" (TensorFlow CPU build {tf})" if v.get("tensorflow-cpu") else "") +
        (f"; git {info['git']}" if info.get("git") else "") + ".",
        "",
        f"Generated by `python benchmarks/run_all.py{' --full' if full else ''}` in {total_s / 60:.1f} min "
        "(each script in a fresh interpreter, one after the other). Timings on a shared machine are noisy; "
        "accuracy figures are seeded.",
        "",
    ]
    lines += _table(["benchmark", "command", "wall time", "status"],
                    [[TABLES[r["name"]][0], f"`{BENCHMARKS[r['name']][0]} {' '.join(r['args'])}`".replace(" `", "`"),
                      f"{r['seconds']:.0f} s" if "seconds" in r else "", r["status"]] for r in results])
    for r in results:
        title, fn = TABLES[r["name"]]
        lines += ["", f"## {title}", "", f"`benchmarks/{BENCHMARKS[r['name']][0]}"
                  + (" " + " ".join(r["args"]) if r["args"] else "") + "`", ""]
        if r["status"] == "missing":
            lines.append("The script is not present; skipped.")
            continue
        if r.get("data") is None:
            lines += [f"No figures: {r['status']}.", "", "```text", r.get("stderr_tail", ""), "```"]
            continue
        try:
            lines += fn(r["data"])
        except Exception as exc:  # a changed JSON layout must not lose the other tables
            lines += [f"(figures could not be tabulated: {type(exc).__name__}: {exc}; see the raw output)"]
        if r["status"] != "ok":
            lines += ["", f"Status: {r['status']}."]
    lines += ["", "## Raw output", ""]
    for r in results:
        if "stdout" in r:
            lines += [f"<details><summary>{BENCHMARKS[r['name']][0]}</summary>", "", "```text",
                      r["stdout"].rstrip(), "```", "", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _split(text: str) -> tuple[str, dict[str, str], str]:
    """(head, {section title: body}, raw output body) of a RESULTS.md."""
    parts = text.split("\n## ")
    head, sections, raw = parts[0], {}, ""
    for p in parts[1:]:
        title, _, body = p.partition("\n")
        if title.strip() == "Raw output":
            raw = body
        else:
            sections[title.strip()] = body
    return head, sections, raw


def merge(old: str, new: str, started: dt.datetime, info: dict) -> str:
    """``old`` RESULTS.md with the sections, summary rows and raw outputs of ``new`` replaced or added."""
    oh, osec, oraw = _split(old)
    nh, nsec, nraw = _split(new)
    osec.update(nsec)
    new_rows = {ln.split("|")[1].strip(): ln for ln in nh.splitlines() if ln.startswith("| ") and "---" not in ln}
    head_lines = []
    for ln in oh.splitlines():
        if ln.startswith("| ") and ln.split("|")[1].strip() in new_rows:
            ln = new_rows.pop(ln.split("|")[1].strip())
        head_lines.append(ln)
    table_end = max(i for i, ln in enumerate(head_lines) if ln.startswith("|"))
    head_lines[table_end + 1:table_end + 1] = [r for k, r in new_rows.items() if k != "benchmark"]
    head_lines.insert(table_end + 2 + len(new_rows), "")
    head_lines.append(f"Updated on {started:%Y-%m-%d %H:%M} UTC (git {info.get('git')}, `run_all.py --update`): "
                      + ", ".join(nsec) + ".")
    blocks = {b.split("</summary>")[0]: b for b in (oraw.split("<details><summary>")[1:])}
    blocks.update({b.split("</summary>")[0]: b for b in (nraw.split("<details><summary>")[1:])})
    raw = "\n" + "".join("<details><summary>" + b for b in blocks.values())
    body = "\n".join(head_lines).rstrip() + "\n" + "".join(f"\n## {t}\n{b}" for t, b in osec.items())
    return body.rstrip() + "\n\n## Raw output\n" + raw.rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every script with its own default settings")
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per script")
    ap.add_argument("--update", action="store_true",
                    help="replace only these benchmarks' sections in the existing output, keep the others")
    args = ap.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    started = dt.datetime.now(dt.timezone.utc)
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores; writing {args.output}", flush=True)
    t0 = time.perf_counter()
    results = [run(n, BENCHMARKS[n][2] if args.full else BENCHMARKS[n][1], args.timeout) for n in names]
    total = time.perf_counter() - t0
    text = report(results, info, started, total, args.full)
    if args.update and args.output.exists():
        text = merge(args.output.read_text(encoding="utf-8"), text, started, info)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({total / 60:.1f} min)")
    return 0 if all(r["status"] in ("ok", "missing") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
