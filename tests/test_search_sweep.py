"""Tests of calib.search.sweep: sweeps end to end, durability/resume, failures, parallel runs.

Trials train tiny networks (one hidden layer of 4 units, full batch, 20 epochs, 2 folds)
on 60 seeded synthetic readings of 6 sensor spots, so a trial takes about a second.
"""

from __future__ import annotations

import inspect
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
from calib.ingest import Dataset
from calib.nn import ModelConfig
from calib.search import SearchSpace, load_result, preview_trials, run_sweep

BASE = ModelConfig(hidden_layers=(4,), epochs=20, patience=None, batch_size=None, seed=0)
SPACE = {"learning_rate": {"low": 1e-3, "high": 1e-1}, "activation": {"choices": ["tanh", "relu"]}}


def make_dataset(n_groups: int = 6, per_group: int = 10, seed: int = 0) -> Dataset:
    """Seeded synthetic readings: Stern-Volmer phase at 5 kHz with a temperature term.

    Self-contained (its own imports): a test runs its source in a fresh interpreter."""
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


# --------------------------------------------------------------------------- sweeps in this process
def _sweep(ds, tmp_path, name="s.journal", **kw):
    kw.setdefault("n_trials", 3)
    kw.setdefault("folds", 2)
    kw.setdefault("jobs", 1)
    kw.setdefault("recycle_every", None)
    space = kw.pop("space", SPACE)
    return run_sweep(ds, _rows(ds), BASE, space, storage=tmp_path / name, **kw)


@pytest.mark.slow
def test_same_seed_gives_same_trials_and_scores(ds, tmp_path):
    a = _sweep(ds, tmp_path, "a.journal", n_trials=2)
    b = _sweep(ds, tmp_path, "b.journal", n_trials=2)
    assert [t.params for t in a.trials] == [t.params for t in b.trials] == preview_trials(SPACE, 2, seed=0)
    assert [t.state for t in a.trials] == ["COMPLETE"] * 2
    for x, y in zip(a.trials, b.trials):
        assert x.score == pytest.approx(y.score, rel=1e-9)
        assert x.score_std == pytest.approx(y.score_std, rel=1e-6)
        assert x.best_epochs == y.best_epochs == (20, 20)
    assert a.best.score == min(t.score for t in a.trials)
    assert a.best_config == BASE.replace(learning_rate=a.best.params["learning_rate"],
                                         activation=a.best.params["activation"])
    assert a.unit == "hPa" and a.n_counted == 2
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
    assert bad.reason.splitlines()[0].startswith("training diverged")  # the leaderboard's failed-trial line


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
    pytest.param(dict(scaling="log"), r"^scaling in \{'standard', .*\} must hold, got scaling='log'$", id="scaling"),
    pytest.param(dict(recycle_every=0), r"^recycle_every >= 1 \(or None\) must hold, got recycle_every=0$", id="recycle"),
    pytest.param(dict(seed=-1), r"^0 <= seed < 2147483648 must hold, got seed=-1$", id="seed"),
    pytest.param(dict(folds=1), r"^folds >= 2 must hold, got folds=1$", id="folds"),
    pytest.param(dict(jobs=0), r"^jobs >= 1 \(or -1 for every core\) must hold, got jobs=0$", id="jobs"),
    pytest.param(dict(strategy="tpe"), r"^strategy in \{'grid', 'random', 'bayes'\} must hold, got strategy='tpe'$",
                 id="strategy"),
    pytest.param(dict(tolerance=0), r"^tolerance > 0 must hold, got tolerance=0$", id="tolerance"),
    pytest.param(dict(noise_floor=-1.0), r"^noise_floor >= 0 must hold, got noise_floor=-1.0$", id="noise-floor"),
    pytest.param(dict(study_name=" "), r"^study_name is a non-empty string must hold, got study_name=' '$",
                 id="study-name"),
    pytest.param(dict(scheduler="localhost"),
                 r"^scheduler is an address such as tcp://host:8786 must hold, got scheduler='localhost'$",
                 id="scheduler"),
])
def test_config_errors_stop_before_any_trial(ds, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        _sweep(ds, tmp_path, **kw)
    assert not (tmp_path / "s.journal").exists()  # storage untouched: no study, no trial


# --------------------------------------------------------------------------- worker processes
@pytest.mark.slow
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
        from calib.search import run_sweep
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


# --------------------------------------------------------------------------- default records
def test_two_data_sets_swept_with_default_settings_keep_their_own_records(tmp_path, monkeypatch):
    """No storage given: one journal (and leaderboard) per data set and search settings."""
    import dataclasses

    from calib.search import default_storage, study_identity, write_leaderboard

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALIB_RUNS_DIR", raising=False)
    first = dataclasses.replace(make_dataset(seed=0), source=str(tmp_path / "foil A.csv"))
    second = dataclasses.replace(make_dataset(seed=1), source=str(tmp_path / "foil-B.csv"))
    kw = dict(n_trials=1, folds=2, jobs=1, recycle_every=None)
    a = run_sweep(first, _rows(first), BASE, SPACE, **kw)
    board_a = write_leaderboard(a, Path(a.storage).parent)[1].read_text()
    b = run_sweep(second, _rows(second), BASE, SPACE, **kw)  # used to meet the first one's study
    write_leaderboard(b, Path(b.storage).parent)
    ident = study_identity(first, _rows(first), BASE, SearchSpace.from_dict(SPACE), strategy="random", folds=2,
                           seed=0, scaling="standard")
    assert a.storage == str(tmp_path / default_storage(first, ident))
    assert Path(a.storage).parent.parent == tmp_path / "runs" / "foil-A"
    assert Path(b.storage).parent.parent == tmp_path / "runs" / "foil-B"
    # both intact: each record holds its own trial, each leaderboard is its own
    assert len(load_result(a.storage).trials) == len(load_result(b.storage).trials) == 1
    assert (Path(a.storage).parent / "leaderboard.json").read_text() == board_a
    assert json.loads((Path(b.storage).parent / "leaderboard.json").read_text())["storage"] == b.storage
    # another search space on the same data is another record; the same sweep resumes its own
    c = run_sweep(first, _rows(first), BASE, {"learning_rate": {"low": 1e-3, "high": 1e-2}}, **kw)
    assert Path(c.storage).parent.parent == Path(a.storage).parent.parent and c.storage != a.storage
    again = run_sweep(first, _rows(first), BASE, SPACE, **{**kw, "n_trials": 2})
    assert again.storage == a.storage and [t.number for t in again.trials] == [0, 1]
    assert again.trials[0].score == a.trials[0].score


def test_named_studies_keep_their_own_leaderboards(tmp_path):
    from calib.search import write_leaderboard

    res = _sweep(make_dataset(), tmp_path, n_trials=1)
    named = _sweep(make_dataset(), tmp_path, n_trials=1, study_name="foil-B")
    paths = write_leaderboard(res, tmp_path) + write_leaderboard(named, tmp_path)
    assert [p.name for p in paths] == ["leaderboard.csv", "leaderboard.json", "leaderboard-foil-B.csv",
                                       "leaderboard-foil-B.json"]


def test_a_config_drawn_again_reuses_its_score(ds, tmp_path):
    """A two-point space and 4 random trials: configs repeat; a repeat takes the first one's recorded score
    (same config, data, folds and seed: the same validation) instead of training again."""
    res = _sweep(ds, tmp_path, "twin.journal", n_trials=4, strategy="random",
                 space={"activation": {"choices": ["tanh", "relu"]}})
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len(done) == 4 and len({t.params["activation"] for t in done}) <= 2
    first: dict = {}
    twins = 0
    for t in _journal_trials(tmp_path / "twin.journal"):
        act = t.params["activation"]
        if act in first:
            twins += 1
            assert t.user_attrs["same_config_as"] == first[act].number
            assert t.value == first[act].value and t.user_attrs["best_epochs"] == first[act].user_attrs["best_epochs"]
            assert t.user_attrs["seconds"] < first[act].user_attrs["seconds"]
        else:
            first[act] = t
            assert "same_config_as" not in t.user_attrs
    assert twins >= 2
    # the reused score is what training again gives
    again = _sweep(ds, tmp_path, "one.journal", n_trials=1, strategy="grid",
                   space={"activation": {"choices": [done[0].params["activation"]]}})
    assert again.trials[0].score == pytest.approx(done[0].score, rel=1e-9)


def test_lbfgs_trials_that_differ_only_in_learning_rate_share_one_training(ds, tmp_path):
    """L-BFGS has no step size: two grid points that differ only in learning_rate train alike (the
    learning rate is not even drawn), so the second reuses the first's score, which equals what
    training it with either learning rate gives."""
    from calib.validate import cross_validate

    base = BASE.replace(optimizer="lbfgs", epochs=15)
    res = run_sweep(ds, _rows(ds), base, {"learning_rate": {"choices": [1e-3, 1e-2]}}, strategy="grid",
                    n_trials=2, folds=2, jobs=1, recycle_every=None, storage=tmp_path / "lb.journal")
    a, b = sorted(_journal_trials(tmp_path / "lb.journal"), key=lambda t: t.number)
    assert b.user_attrs["same_config_as"] == a.number and b.value == a.value
    assert "learning_rate" not in a.params and "learning_rate" not in b.params
    own = cross_validate(ds, _rows(ds), base.replace(learning_rate=1e-2), folds=2, physics=False, seed=0)
    assert own.score == pytest.approx(b.value, rel=1e-9)
    assert len({t.score for t in res.trials}) == 1


# --------------------------------------------------------------------------- the trials' fold models
@pytest.mark.parametrize("jobs", [1, 2])
def test_the_sweep_hands_back_each_trained_trials_k_fold(ds, tmp_path, jobs):
    """The main job keeps the chosen trial's fold models instead of validating its config again: what
    ``SweepResult.validations`` holds must be what ``cross_validate`` of that config computes (the same
    folds, seed and threads), weights included; a twin (same config drawn after it) trains nothing."""
    from calib.validate import cross_validate, with_physics

    res = _sweep(ds, tmp_path, f"v{jobs}.journal", n_trials=2, jobs=jobs,
                 recycle_every=None if jobs == 1 else 10,
                 space={"activation": {"choices": ["tanh"]}})  # two draws of one config: the second is a twin
    assert [t.state for t in res.trials] == ["COMPLETE"] * 2
    # one by one, the second draw is a twin that copies trial 0's score; two workers may train both at once
    # (when trial 1 starts before trial 0 is recorded): a trial is handed back exactly when it trained
    twins = {t.number for t in _journal_trials(tmp_path / f"v{jobs}.journal") if "same_config_as" in t.user_attrs}
    assert sorted(res.validations) == sorted({0, 1} - twins) and 0 in res.validations
    assert jobs == 2 or twins == {1}
    got = res.validations[0]
    cfg = BASE.replace(activation="tanh")
    want = cross_validate(ds, _rows(ds), cfg, folds=2, seed=0, keep_weights=True, physics=True)
    assert got.score == want.score == res.trials[0].score
    for (wa, *_), (wb, *_) in zip(got.fold_weights, want.fold_weights):
        for a, b in zip(wa, wb):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.oof, want.oof)
    assert all(f.physics_kind is None for f in got.folds)  # the trials skip the physics fit ...
    full = with_physics(got, ds, _rows(ds))  # ... which the main job adds on the same folds
    assert [f.physics_kind for f in full.folds] == [f.physics_kind for f in want.folds]
    assert [f.physics_val.mae for f in full.folds] == pytest.approx([f.physics_val.mae for f in want.folds],
                                                                    rel=1e-12)
    assert full.summary()["physics_val"] == want.summary()["physics_val"]
    assert with_physics(full, ds, _rows(ds)) is full


# --------------------------------------------------------------------------- pruning, the default first, warm workers
def test_fold_pruner_compares_running_means_after_as_many_folds():
    import optuna
    from optuna.trial import TrialState, create_trial

    from calib.search.trial import FoldPruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()

    def finished(values, **attrs):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=values[-1], user_attrs=attrs,
                                     intermediate_values=dict(enumerate(values))))

    def running(values):
        return create_trial(state=TrialState.RUNNING, intermediate_values=dict(enumerate(values)))

    pruner = FoldPruner(n_startup_trials=3, n_warmup_steps=1)
    finished([1.0, 2.0, 2.0])
    finished([1.2, 2.2, 2.1])
    assert not pruner.prune(study, running([5.0, 9.0]))  # two finished trials: too few to judge
    finished([1.2, 2.2, 2.1], same_config_as=1)  # a twin counts once
    assert not pruner.prune(study, running([5.0, 9.0]))
    finished([3.0, 3.0, 3.0])
    # step 1: the finished trials' running means 2.0, 2.2, 3.0 -> median 2.2
    assert pruner.prune(study, running([0.5, 2.3]))  # its first fold was the best of all: the running mean decides
    assert not pruner.prune(study, running([3.0, 2.1]))
    assert not pruner.prune(study, running([9.0]))  # no decision after the first fold


@pytest.mark.slow
def test_pruned_trials_count_and_are_never_kept(ds, tmp_path):
    """L-BFGS folds run one by one: a config well behind the median after 2 folds stops there
    (grid order of seed 2: three distinct trials finish first, one of them with l2 = 3)."""
    base = ModelConfig(hidden_layers=(4,), optimizer="lbfgs", epochs=30, patience=None, seed=0)
    space = {"hidden_layers": {"choices": [[3], [4], [6]]}, "l2": {"choices": [0.0, 3.0]}}
    res = run_sweep(ds, _rows(ds), base, space, strategy="grid", n_trials=6, folds=3, jobs=1, seed=2,
                    recycle_every=None, storage=tmp_path / "p.journal", prune=True)
    trials = {t.number: t for t in _journal_trials(tmp_path / "p.journal")}
    assert res.n_counted == 6 and len(res.trials) == 6
    pruned = [t for t in res.trials if t.state == "PRUNED"]
    assert pruned, [(t.params, t.state) for t in res.trials]
    for t in pruned:
        assert t.params["l2"] == 3.0 and t.score is None and t.reason.startswith("pruned after fold 2 of 3")
        assert sorted(trials[t.number].intermediate_values) == [0, 1]
        assert t.number not in res.validations
    assert res.best.state == "COMPLETE" and res.best.params["l2"] == 0.0
    # the sweep hands back the k-fold of its 4 best trained trials (memory), the best among them
    done = sorted((t for t in res.trials if t.state == "COMPLETE"), key=lambda t: t.score)
    assert len(done) == 5 and sorted(res.validations) == sorted(t.number for t in done[:4])


def test_the_main_jobs_sweep_starts_with_its_default(ds, tmp_path):
    space = {"hidden_layers": {"choices": [[3], [4], [6]]}, "activation": {"choices": ["relu", "tanh"]}}
    res = _sweep(ds, tmp_path, "b.journal", n_trials=2, space=space, start_with_base=True)
    assert res.trials[0].params == {"hidden_layers": [4], "activation": "tanh"}  # BASE
    off = BASE.replace(hidden_layers=(5,))  # not a point of the space: the sampler draws as before
    res = run_sweep(ds, _rows(ds), off, space, n_trials=1, folds=2, jobs=1, recycle_every=None,
                    storage=tmp_path / "c.journal", start_with_base=True)
    assert res.trials[0].params == preview_trials(space, 1, seed=0)[0]


@pytest.mark.slow
def test_a_warm_pool_runs_the_trials(ds, tmp_path):
    """Worker processes started ahead of the sweep (the main job starts them before reading data)."""
    from calib.search import WarmPool

    with WarmPool(2) as pool:
        started = {s.executor for s in pool.slots}
        res = run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=2, folds=2, jobs=2, storage=tmp_path / "w.journal",
                        pool=pool)
        assert pool.slots == []  # the sweep took both
    assert [t.state for t in res.trials] == ["COMPLETE"] * 2
    pids = {t.user_attrs["worker"]["pid"] for t in _journal_trials(tmp_path / "w.journal")}
    assert os.getpid() not in pids and len(started) == 2
    with WarmPool(1) as spare:  # a pool no sweep took is ended on close
        slot = spare.slots[0]
    assert spare.slots == [] and slot.executor is None


def _gone(pid: int) -> bool:
    """The process has ended (or is a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_an_idle_worker_at_the_tail_is_offered_as_spare(ds, tmp_path):
    """When a worker has no trial left while another still runs, ``spare(interim, submit)`` gets the
    finished trials so far and runs work in that idle worker process (the main job's refit ahead);
    the work finishes after the sweep has returned."""
    offers: list = []

    def spare(interim, submit):
        offers.append((len([t for t in interim.trials if t.state == "COMPLETE"]), dict(interim.validations),
                       submit(os.getpid)))

    res = run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=3, folds=2, jobs=2, storage=tmp_path / "t.journal",
                    spare=spare)
    assert [t.state for t in res.trials] == ["COMPLETE"] * 3
    assert offers, "the tail of a 3-trial sweep on 2 workers leaves one worker idle"
    finished, validations, fut = offers[0]
    # the trials finished so far, with their k-folds; the running one may already be in the journal
    # (a worker records its trial before its result reaches this process), so up to all 3
    assert 1 <= finished <= 3 and validations
    pids = {t.user_attrs["worker"]["pid"] for t in _journal_trials(tmp_path / "t.journal")}
    assert fut.result(timeout=60) in pids and fut.result() != os.getpid()
    # the worker that was not lent is ended at once (killed: no TensorFlow teardown on the CPU
    # the caller's own work after the sweep needs)
    idle = pids - {fut.result()}
    deadline = time.monotonic() + 20
    while idle and time.monotonic() < deadline and not all(_gone(p) for p in idle):
        time.sleep(0.1)
    assert idle and all(_gone(p) for p in idle)
    # a failing spare never sinks the sweep
    def broken(interim, submit):
        raise RuntimeError("no thanks")

    res = run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=3, folds=2, jobs=2, storage=tmp_path / "b.journal",
                    spare=broken)
    assert [t.state for t in res.trials] == ["COMPLETE"] * 3
    # one process: no tail, no offer
    none: list = []
    run_sweep(ds, _rows(ds), BASE, SPACE, n_trials=2, folds=2, jobs=1, recycle_every=None,
              storage=tmp_path / "one.journal", spare=lambda i, s: none.append(i))
    assert none == []
