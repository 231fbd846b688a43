"""Tests of calib.sweep: search space, sampling, durability/resume, failures, parallel runs.

Trials train tiny networks (one hidden layer of 4 units, full batch, 20 epochs, 2 folds)
on 60 seeded synthetic readings of 6 sensor spots, so a trial takes about a second.
"""

from __future__ import annotations

import csv
import inspect
import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.ingest import Column, Dataset
from calib.nn import ModelConfig
from calib.sweep import (
    DEFAULT_SPACE,
    SearchSpace,
    SweepResult,
    SweepSettings,
    TrialRecord,
    format_leaderboard,
    leaderboard,
    load_result,
    make_progress,
    preview_trials,
    run_sweep,
    write_leaderboard,
)

BASE = ModelConfig(hidden_layers=(4,), epochs=20, patience=None, batch_size=None, seed=0)
SPACE = {"learning_rate": {"low": 1e-3, "high": 1e-1}, "activation": {"choices": ["tanh", "relu"]}}


def make_dataset(n_groups: int = 6, per_group: int = 10, seed: int = 0) -> Dataset:
    """Seeded synthetic readings: Stern-Volmer phase at 5 kHz with a temperature term."""
    import numpy as np
    import pandas as pd

    from calib.ingest import Column, Dataset

    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    temp = rng.uniform(5.0, 35.0, n)
    o2 = rng.uniform(0.0, 250.0, n)
    tau_ratio = 1.0 / (1.0 + 0.03 * o2 * (1.0 + 0.01 * (temp - 20.0)))
    phase = np.degrees(np.arctan(2 * np.pi * 5000 * 60e-6 * tau_ratio)) + rng.normal(0, 0.01, n)
    frame = pd.DataFrame({
        "phase_deg": phase, "temperature_degC": temp, "o2_hPa": o2,
        "spot_id": np.repeat([f"S{i}" for i in range(n_groups)], per_group),
    })
    return Dataset(
        frame=frame,
        features=(Column("phase_deg", "phase_deg", "deg", "deg", "phase", 5000.0),
                  Column("temperature_degC", "temperature_degC", "degC", "degC", "temperature")),
        target=Column("o2_hPa", "o2_hPa", "hPa", "hPa", "o2"),
        group="spot_id",
    )


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return make_dataset()


def _rows(ds: Dataset) -> np.ndarray:
    return np.arange(ds.n_rows)


def _journal_trials(path: Path) -> list:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="calib", storage=JournalStorage(JournalFileBackend(str(path))))
    return study.get_trials(deepcopy=False)


# --------------------------------------------------------------------------- the space
def test_space_forms_and_defaults():
    space = SearchSpace.from_dict({
        "learning_rate": {"low": 1e-4, "high": 1e-2},
        "dropout": {"low": 0.0, "high": 0.3, "step": 0.1},
        "epochs": {"low": 100, "high": 400, "step": 100},
        "l2": {"choices": [0.0, 1e-5, 1e-4]},
        "hidden_layers": {"choices": [[16], [32, 32], 8]},
        "batch_size": {"choices": [16, "FULL"]},
    })
    p = {x.name: x for x in space.params}
    assert p["learning_rate"].log and not p["learning_rate"].is_int
    assert not p["dropout"].log and p["dropout"].grid_values() == [0.0, 0.1, 0.2, 0.3]
    assert p["epochs"].is_int and p["epochs"].grid_values() == [100, 200, 300, 400]
    assert p["hidden_layers"].grid_values() == [[16], [32, 32], [8]]
    assert p["batch_size"].grid_values() == [16, "full"]
    assert SearchSpace.from_dict(space.to_dict()) == space
    cfg = space.to_config(BASE, {"hidden_layers": [32, 32], "batch_size": "full", "l2": 0.0})
    assert cfg.hidden_layers == (32, 32) and cfg.batch_size is None and cfg.l2 == 0.0
    space.check(BASE, "random")


def test_default_space_is_valid():
    assert set(DEFAULT_SPACE.names) == {"learning_rate", "hidden_layers", "activation", "l2", "batch_size", "family", "optimizer"}
    DEFAULT_SPACE.check(BASE, "random")
    lr = DEFAULT_SPACE.params[0]
    assert (lr.low, lr.high, lr.log) == (1e-4, 3e-2, True)


@pytest.mark.parametrize("space, match", [
    pytest.param({"learnig_rate": {"low": 1e-4, "high": 1e-2}},
                 r"unknown search-space parameter 'learnig_rate'.*valid parameters are: hidden_layers, "
                 r"activation", id="unknown-parameter"),
    pytest.param({"l2": {"low": 0.0, "high": 1e-3}},
                 r"low > 0 must hold for a log range, got l2 low=0.0 \(log = true\)", id="log-low-zero"),
    pytest.param({"dropout": {"low": -0.1, "high": 0.3, "log": True}},
                 r"low > 0 must hold for a log range, got dropout low=-0.1", id="log-low-negative"),
    pytest.param({"learning_rate": {"low": 1e-2, "high": 1e-3}},
                 r"low < high must hold, got learning_rate low=0.01, high=0.001", id="low-above-high"),
    pytest.param({"learning_rate": {"choices": [1e-3], "low": 1e-4, "high": 1e-2}},
                 r"either choices or a range", id="choices-and-range"),
    pytest.param({"learning_rate": {"low": 1e-4}}, r"needs choices = \[...\] or both low and high",
                 id="range-without-high"),
    pytest.param({"activation": {"choices": []}}, r"choices must be a non-empty list", id="empty-choices"),
    pytest.param({"activation": {"choices": "tanh"}}, r"choices must be a non-empty list, got choices='tanh'",
                 id="choices-not-a-list"),
    pytest.param({"activation": {"choices": ["tanh", "tanh"]}}, r"choices must not repeat a value",
                 id="repeated-choice"),
    pytest.param({"activation": {"values": ["tanh"]}},
                 r"unknown key\(s\) 'values' in \[sweep.space\] activation; valid keys: choices, low",
                 id="unknown-entry-key"),
    pytest.param({"activation": "tanh"}, r"activation must be a table", id="entry-not-a-table"),
    pytest.param({"hidden_layers": {"low": 1, "high": 3}}, r"hidden_layers takes choices, not a range",
                 id="range-on-non-numeric"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "step": -0.1}}, r"step > 0 must hold, got dropout step=-0.1",
                 id="negative-step"),
    pytest.param({"learning_rate": {"low": 1e-4, "high": 1e-2, "step": 1e-4, "log": True}},
                 r"step and log = true cannot be combined", id="step-with-log"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.25, "step": 0.1}},
                 r"high - low must be a multiple of step", id="step-not-dividing"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "num": 1}}, r"num >= 2 must hold, got dropout num=1",
                 id="num-below-2"),
    pytest.param({"dropout": {"low": "a", "high": 0.3}}, r"dropout low must be a finite number, got low='a'",
                 id="non-numeric-bound"),
    pytest.param({}, r"must name at least one parameter", id="empty-space"),
])
def test_space_rules(space, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_dict(space)


@pytest.mark.parametrize("space, strategy, match", [
    pytest.param({"activation": {"choices": ["tanh", "swish"]}}, "random",
                 r"\[sweep.space\] activation: activation must be one of .*got activation='swish'",
                 id="bad-choice"),
    pytest.param({"dropout": {"low": 0.0, "high": 1.5}}, "random",
                 r"\[sweep.space\] dropout: 0 <= dropout < 1 must hold, got dropout=1.5", id="bad-bound"),
    pytest.param({"epochs": {"low": 10.0, "high": 20.0}}, "random",
                 r"epochs must be an integer or None, got epochs=10.0", id="float-range-for-int"),
    pytest.param({"hidden_layers": {"choices": [[8], [0]]}}, "random",
                 r"every hidden layer width >= 1 must hold", id="bad-layer"),
    pytest.param({"learning_rate": {"low": 1e-4, "high": 1e-2}}, "grid",
                 r"grid strategy needs num = N points for the range learning_rate", id="grid-without-num"),
    pytest.param({"epochs": {"low": 10, "high": 12, "num": 5}}, "grid",
                 r"num <= 3 must hold for the integer range epochs 10..12, got num=5", id="grid-int-repeats"),
])
def test_space_checked_against_model_config(space, strategy, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_dict(space).check(BASE, strategy)


def test_sweep_settings_from_dict():
    s = SweepSettings.from_dict({"strategy": "bayes", "trials": 40, "jobs": 2, "folds": 3,
                                 "storage": "runs/x.journal", "study": "foil7",
                                 "space": {"learning_rate": {"low": 1e-4, "high": 1e-2}}})
    assert (s.strategy, s.trials, s.jobs, s.folds, s.study) == ("bayes", 40, 2, 3, "foil7")
    assert s.space.names == ("learning_rate",)
    assert SweepSettings.from_dict({}).space == DEFAULT_SPACE


@pytest.mark.parametrize("table, match", [
    pytest.param({"strategie": "grid"}, r"unknown key 'strategie' in \[sweep\]; valid keys: strategy, trials",
                 id="unknown-key"),
    pytest.param({"strategy": "hyperband"}, r"strategy must be one of grid, random, bayes, got strategy='hyperband'",
                 id="strategy"),
    pytest.param({"trials": 0}, r"trials >= 1 must hold, got trials=0", id="trials"),
    pytest.param({"seed": -1}, r"seed must be an integer >= 0, got seed=-1", id="seed"),
    pytest.param({"folds": 1}, r"folds >= 2 must hold, got folds=1", id="folds"),
    pytest.param({"jobs": 0}, r"jobs >= 1 \(or -1 for every core\) must hold, got jobs=0", id="jobs"),
    pytest.param({"storage": "redis://host/0"}, r"storage URL scheme must be one of sqlite", id="storage-scheme"),
    pytest.param({"study": ""}, r"study must be a non-empty name", id="study"),
    pytest.param({"strategy": "grid", "space": {"dropout": {"low": 0.0, "high": 0.3}}},
                 r"grid strategy needs num = N points for the range dropout", id="grid-range"),
])
def test_sweep_settings_rules(table, match):
    with pytest.raises(ConfigError, match=match):
        SweepSettings.from_dict(table)


# --------------------------------------------------------------------------- sampling
def test_log_range_spreads_over_decades():
    from scipy import stats

    draws = preview_trials({"learning_rate": {"low": 1e-5, "high": 1e-1}}, 300, seed=0)
    u = np.log10([d["learning_rate"] for d in draws])
    assert u.min() >= -5 and u.max() <= -1
    assert stats.kstest(u, "uniform", args=(-5, 4)).pvalue > 0.01
    share = np.histogram(u, bins=[-5, -4, -3, -2, -1])[0] / len(u)
    assert np.all(np.abs(share - 0.25) < 0.075), share  # 3 standard errors at n=300


def test_linear_range_is_not_log_uniform():
    from scipy import stats

    draws = preview_trials({"learning_rate": {"low": 1e-5, "high": 1e-1, "log": False}}, 300, seed=0)
    u = np.log10([d["learning_rate"] for d in draws])
    assert stats.kstest(u, "uniform", args=(-5, 4)).pvalue < 1e-10
    assert np.mean(u < -3) < 0.03  # the two lower decades hold ~1 % of a linear range
    assert np.mean(u > -2) > 0.85  # the top decade ~90 %


def test_int_range_draws_ints_within_bounds():
    draws = preview_trials({"epochs": {"low": 10, "high": 20, "step": 5}}, 30, seed=1)
    assert {d["epochs"] for d in draws} == {10, 15, 20}
    assert all(type(d["epochs"]) is int for d in draws)


def test_grid_covers_exactly_the_product():
    space = {
        "activation": {"choices": ["tanh", "relu"]},
        "hidden_layers": {"choices": [[4], [4, 4]]},
        "batch_size": {"choices": [16, "full"]},
        "learning_rate": {"low": 1e-3, "high": 1e-1, "num": 3},
    }
    draws = preview_trials(space, 100, strategy="grid", seed=3)
    got = [(d["activation"], tuple(d["hidden_layers"]), d["batch_size"], d["learning_rate"]) for d in draws]
    want = set(itertools.product(["tanh", "relu"], [(4,), (4, 4)], [16, "full"], [0.001, 0.01, 0.1]))
    assert len(got) == 24 and set(got) == want


def test_bayes_starts_with_the_random_draws_then_uses_tpe():
    bayes = preview_trials(SPACE, 14, strategy="bayes", seed=2)
    assert bayes[:10] == preview_trials(SPACE, 10, strategy="random", seed=2)  # TPE's 10 startup trials
    assert all(1e-3 <= d["learning_rate"] <= 1e-1 and d["activation"] in ("tanh", "relu") for d in bayes)


def test_random_draws_depend_only_on_seed():
    a = preview_trials(SPACE, 5, seed=7)
    assert a == preview_trials(SPACE, 5, seed=7)
    assert a != preview_trials(SPACE, 5, seed=8)


# --------------------------------------------------------------------------- sweeps in this process
def _sweep(ds, tmp_path, name="s.journal", **kw):
    kw.setdefault("n_trials", 3)
    kw.setdefault("folds", 2)
    kw.setdefault("jobs", 1)
    kw.setdefault("recycle_every", None)
    space = kw.pop("space", SPACE)
    return run_sweep(ds, _rows(ds), BASE, space, storage=tmp_path / name, **kw)


def test_same_seed_gives_same_trials_and_scores(ds, tmp_path):
    a = _sweep(ds, tmp_path, "a.journal")
    b = _sweep(ds, tmp_path, "b.journal")
    assert [t.params for t in a.trials] == [t.params for t in b.trials] == preview_trials(SPACE, 3, seed=0)
    assert [t.state for t in a.trials] == ["COMPLETE"] * 3
    for x, y in zip(a.trials, b.trials):
        assert x.score == pytest.approx(y.score, rel=1e-9)
        assert x.score_std == pytest.approx(y.score_std, rel=1e-6)
        assert x.best_epochs == y.best_epochs == (20, 20)
    assert a.best.score == min(t.score for t in a.trials)
    assert a.best_config == BASE.replace(learning_rate=a.best.params["learning_rate"],
                                         activation=a.best.params["activation"])
    assert a.unit == "hPa" and a.n_counted == 3
    assert a.to_dict()["best"]["number"] == a.best.number
    assert json.loads(json.dumps(a.to_dict()))["trials"][0]["params"] == a.trials[0].params


def test_diverging_trial_is_failed_with_reason_and_sweep_goes_on(ds, tmp_path):
    space = {"learning_rate": {"choices": [1e6, 1e-2]}, "optimizer": {"choices": ["sgd"]}}
    res = _sweep(ds, tmp_path, strategy="grid", space=space, n_trials=5)
    assert len(res.trials) == 2  # the grid has 2 points
    by_lr = {t.params["learning_rate"]: t for t in res.trials}
    bad, good = by_lr[1e6], by_lr[1e-2]
    assert bad.state == "FAIL" and bad.score is None
    assert "training diverged" in bad.reason and "learning_rate=1e+06" in bad.reason
    assert good.state == "COMPLETE" and res.best is good
    assert bad.counts and res.n_counted == 2
    assert "1 failed trial(s): #%d training diverged" % bad.number in format_leaderboard(res)


def test_more_trials_adds_only_the_missing_ones(ds, tmp_path):
    first = _sweep(ds, tmp_path, n_trials=2)
    calls = []
    more = _sweep(ds, tmp_path, n_trials=3, progress=lambda *a: calls.append(a))
    assert [t.number for t in more.trials] == [0, 1, 2]
    assert [(t.params, t.score) for t in more.trials[:2]] == [(t.params, t.score) for t in first.trials]
    assert calls[0] == (2, 3, first.best.score) and calls[-1][:2] == (3, 3)
    again = _sweep(ds, tmp_path, n_trials=3, progress=lambda *a: calls.append(a))
    assert again.trials == more.trials  # nothing re-run
    loaded = load_result(tmp_path / "s.journal")
    assert loaded.trials == more.trials and loaded.best_config == more.best_config
    with pytest.raises(ConfigError, match=r"holds a study 'calib' with another search space; use a new --storage"):
        _sweep(ds, tmp_path, n_trials=4, space={"learning_rate": {"low": 1e-3, "high": 1e-2}})
    with pytest.raises(ConfigError, match=r"with another strategy \('random', now 'bayes'\)"):
        _sweep(ds, tmp_path, n_trials=4, strategy="bayes")
    assert len(_journal_trials(tmp_path / "s.journal")) == 3


@pytest.mark.parametrize("kw, match", [
    pytest.param(dict(space={"activation": {"choices": ["tanh", "swish"]}}), r"got activation='swish'",
                 id="bad-space"),
    pytest.param(dict(folds=7), r"folds <= number of groups must hold, got folds=7 with 6 groups",
                 id="too-many-folds"),
    pytest.param(dict(strategy="grid", space={"learning_rate": {"low": 1e-3, "high": 1e-1}}),
                 r"grid strategy needs num = N", id="grid-range"),
    pytest.param(dict(n_trials=0), r"n_trials >= 1 must hold, got n_trials=0", id="n-trials"),
    pytest.param(dict(scaling="log"), r"scaling must be one of standard", id="scaling"),
    pytest.param(dict(recycle_every=0), r"recycle_every >= 1 \(or None\) must hold", id="recycle"),
])
def test_config_errors_stop_before_any_trial(ds, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        _sweep(ds, tmp_path, **kw)
    assert not (tmp_path / "s.journal").exists()  # storage untouched: no study, no trial


# --------------------------------------------------------------------------- output
def _result() -> SweepResult:
    trials = (
        TrialRecord(0, {"learning_rate": 0.01, "hidden_layers": [8, 8]}, "COMPLETE", 2.5, 0.25, 3.0, None, (20, 20)),
        TrialRecord(1, {"learning_rate": 1e6, "hidden_layers": [8]}, "FAIL", None, None, 0.1, "training diverged"),
        TrialRecord(2, {"learning_rate": 0.001, "hidden_layers": [8]}, "COMPLETE", 1.5, 0.5, 4.0, None, (18, 20)),
        TrialRecord(3, {"learning_rate": 0.003, "hidden_layers": [8]}, "FAIL", None, None, None, "interrupted"),
    )
    return SweepResult(trials, trials[2], BASE.replace(learning_rate=0.001, hidden_layers=(8,)),
                       "/x/sweep.journal", "calib", "random", 9.0, "hPa")


def test_leaderboard_is_best_first():
    rows = leaderboard(_result())
    assert [(r["rank"], r["number"], r["mae"], r["mae_std"]) for r in rows] == [(1, 2, 1.5, 0.5), (2, 0, 2.5, 0.25)]
    text = format_leaderboard(_result(), top=10).splitlines()
    assert text[0].split() == ["rank", "trial", "MAE", "hPa", "s", "learning_rate", "hidden_layers"]
    assert text[1].split()[:5] == ["1", "2", "1.5", "+/-", "0.5"]
    assert len({line.index("learning_rate") for line in text[:1]}) == 1
    assert text[1].index("0.001") == text[0].index("learning_rate")  # columns aligned
    assert text[-1] == "1 failed trial(s): #1 training diverged"  # the interrupted one is not counted
    assert len(format_leaderboard(_result(), top=1).splitlines()) == 3


def test_write_leaderboard(tmp_path):
    csv_path, json_path = write_leaderboard(_result(), tmp_path / "runs")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["number"] for r in rows] == ["2", "0"] and rows[1]["hidden_layers"] == "[8, 8]"
    assert float(rows[0]["mae"]) == 1.5
    doc = json.loads(json_path.read_text())
    assert doc["best"]["number"] == 2 and len(doc["trials"]) == 4 and doc["leaderboard"][0]["number"] == 2
    assert doc["best_config"]["hidden_layers"] == [8]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["leaderboard.csv", "leaderboard.json"]


def test_progress_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = make_progress(3, stream=out)
    bar(0, 3, None)
    bar(1, 3, 2.5)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sweep: 0/3 trials done, best MAE n/a")
    assert lines[1].startswith("sweep: 1/3 trials done, best MAE 2.5, elapsed 0:00:00, ETA 0:00:00")
    quiet = io.StringIO()
    make_progress(3, enabled=False, stream=quiet)(1, 3, 2.5)
    assert quiet.getvalue() == ""


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = make_progress(3, stream=out)
    bar(1, 3, None)
    bar(3, 3, 0.75)
    assert "3/3" in out.getvalue() and "best MAE 0.75" in out.getvalue()


# --------------------------------------------------------------------------- worker processes
def test_parallel_workers_recycled_and_resume_after_sigkill(ds, tmp_path):
    """Two worker processes, a fresh one per trial; then a sweep killed by SIGKILL resumes."""
    res = _sweep(ds, tmp_path, "par.journal", n_trials=3, jobs=2, recycle_every=1)
    trials = _journal_trials(tmp_path / "par.journal")
    assert [t.state for t in res.trials] == ["COMPLETE"] * 3
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 3  # recycled after each trial
    assert os.getpid() not in {t.user_attrs["worker"]["pid"] for t in trials}
    # random draws depend on the trial number only, whichever worker ran it
    assert [t.params for t in res.trials] == preview_trials(SPACE, 3, seed=0)

    journal = tmp_path / "kill.journal"
    script = tmp_path / "sweep_script.py"
    script.write_text("from __future__ import annotations\n" + inspect.getsource(make_dataset) + textwrap.dedent(f"""
        import numpy as np
        from calib.nn import ModelConfig
        from calib.sweep import run_sweep
        ds = make_dataset()
        run_sweep(ds, np.arange(ds.n_rows), ModelConfig.from_dict({BASE.to_dict()!r}),
                  {SPACE!r}, n_trials=5, folds=2, jobs=1, storage={str(journal)!r})
        """))
    log = (tmp_path / "sweep_script.log").open("w")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    running = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if not journal.exists():
                continue
            try:
                trials = _journal_trials(journal)
            except Exception:  # study not created yet
                continue
            complete = [t for t in trials if t.state.name == "COMPLETE"]
            running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
            if len(complete) >= 2 and running:
                break
        assert running, "the sweep never had 2 complete trials and a running one: " + (
            tmp_path / "sweep_script.log").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = {t.number: (t.params, t.value) for t in trials if t.state.name == "COMPLETE"}
        worker = running[0].user_attrs["worker"]["pid"]
        for _ in range(100):  # the orphaned worker notices its parent died and exits
            if not Path(f"/proc/{worker}").exists() or Path(f"/proc/{worker}/stat").read_text().split(") ")[1][0] in "ZX":
                break
            time.sleep(0.1)
        else:
            info = Path(f"/proc/{worker}/stat").read_text()
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"the orphaned worker process kept running: {info} {[ (t.number, t.state.name) for t in _journal_trials(journal)]}")
    finally:
        if proc.poll() is None:
            proc.kill()

    res = run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=5, folds=2, jobs=1, recycle_every=None, storage=journal)
    after = {t.number: t for t in res.trials}
    for number, (params, value) in before.items():  # nothing lost, nothing re-run
        assert after[number].params == params and after[number].score == value
    killed = after[running[0].number]
    assert killed.state == "FAIL" and killed.reason == "interrupted" and not killed.counts
    assert res.n_counted == 5 and len(after) == len(res.trials)
    assert all(t.state != "RUNNING" for t in res.trials)
    assert len({t.number for t in res.trials}) == len(res.trials)


@pytest.mark.slow
def test_sweep_on_a_dask_cluster(ds, tmp_path):
    pytest.importorskip("distributed")
    from dask.distributed import LocalCluster

    t0 = time.monotonic()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        res = run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=3, folds=2, jobs=2, seed=0,
                        storage=tmp_path / "dask.journal", scheduler=cluster.scheduler_address)
        pids = {t.user_attrs["worker"]["pid"] for t in _journal_trials(tmp_path / "dask.journal")}
        worker_pids = set(cluster.scheduler_info["workers"][w]["pid"] if "pid" in cluster.scheduler_info["workers"][w]
                          else -1 for w in cluster.scheduler_info["workers"])
    assert [t.state for t in res.trials] == ["COMPLETE"] * 3
    assert [t.params for t in res.trials] == preview_trials(SPACE, 3, seed=0)
    assert os.getpid() not in pids and (pids <= worker_pids or -1 in worker_pids)
    assert all(math.isfinite(t.score) for t in res.trials)
    assert time.monotonic() - t0 < 60


def test_one_se_choice_prefers_the_simpler_family_within_one_standard_error():
    from calib.sweep import one_se_choice

    # hybrid lowest, physics within one SE (0.02 / sqrt(4) = 0.01): physics is kept
    entries = [("mlp", 1.30, 0.05, 4), ("hybrid", 1.00, 0.02, 4), ("physics", 1.009, 0.03, 4)]
    assert one_se_choice(entries) == 2
    # physics beyond one SE: the lowest (hybrid) stays
    entries[2] = ("physics", 1.011, 0.03, 4)
    assert one_se_choice(entries) == 1
    # within a family the lowest score wins, and a far better network is never overruled
    entries = [("mlp", 0.50, 0.05, 5), ("mlp", 0.48, 0.05, 5), ("physics", 2.0, 0.1, 5)]
    assert one_se_choice(entries) == 1
    # hybrid and mlp are both networks: between them the lowest score wins
    assert one_se_choice([("mlp", 1.00, 0.2, 5), ("hybrid", 1.05, 0.2, 5)]) == 0
    assert one_se_choice([("hybrid", 1.00, 0.2, 5), ("mlp", 1.05, 0.2, 5)]) == 0
    # unknown spread (one fold): the bare lowest score
    assert one_se_choice([("hybrid", 1.0, None, 1), ("physics", 1.0001, None, 1)]) == 0
    # ties on score and family: the first entry
    assert one_se_choice([("mlp", 1.0, 0.0, 3), ("mlp", 1.0, 0.0, 3)]) == 0
    with pytest.raises(ValueError):
        one_se_choice([])
