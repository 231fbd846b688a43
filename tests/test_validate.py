"""Tests of calib.validate: k-fold by group, the baseline beside it, the diagnosis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calib.config import load_config
from calib.errors import ConfigError
from calib.ingest import load_dataset, split_dataset
from calib.validate import cross_validate, diagnose, make_folds

FAST = dict(hidden_layers=(16, 16), epochs=40, patience=None, batch_size=32, learning_rate=3e-3, seed=0)


@pytest.fixture(scope="module")
def batch(small_batch):
    csv, toml = small_batch
    cfg = load_config(toml)
    ds = load_dataset(csv, cfg.data)
    sp = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=0)
    return ds, sp


def test_group_folds_never_share_a_group():
    groups = np.repeat(np.array(list("ABCDEFG")), 10)
    folds = make_folds(len(groups), 3, groups, seed=1)
    seen = []
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
        seen.extend(set(groups[va]))
    assert sorted(seen) == list("ABCDEFG")  # every group validated exactly once


def test_row_folds_cover_every_row_once():
    folds = make_folds(23, 5, None, seed=0)
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(23))


@pytest.mark.parametrize("case", range(12))
def test_folds_are_scikit_learns(case):
    """make_folds computes GroupKFold's and KFold(shuffle=True)'s folds without importing
    scikit-learn; they must stay the same folds (the sweep's journals and results depend on them)."""
    from sklearn.model_selection import GroupKFold, KFold

    rng = np.random.default_rng(case)
    n, k = int(rng.integers(10, 400)), int(rng.integers(2, 8))
    sizes = rng.integers(1, 60, size=int(rng.integers(k, 3 * k + 2)))
    if case % 3 == 0:
        sizes[:] = 7  # ties between equal groups
    groups = np.repeat([f"S{i:02d}" for i in rng.permutation(len(sizes))], sizes)[rng.permutation(int(sizes.sum()))]
    seed = int(rng.integers(0, 1000))
    labels = np.unique(groups)
    perm = {g: i for i, g in enumerate(np.random.default_rng(seed).permutation(labels))}
    coded = np.array([perm[g] for g in groups])
    want = list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=coded))
    got = make_folds(len(groups), k, groups, seed=seed)
    assert len(got) == len(want) == k
    for (tr, va), (wtr, wva) in zip(got, want):
        np.testing.assert_array_equal(va, wva)
        np.testing.assert_array_equal(tr, wtr)
    want = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))
    got = make_folds(n, k, None, seed=seed)
    for (tr, va), (wtr, wva) in zip(got, want):
        np.testing.assert_array_equal(va, wva)
        np.testing.assert_array_equal(tr, wtr)


def test_more_folds_than_groups_is_config_error():
    with pytest.raises(ConfigError, match="folds <= number of groups must hold, got folds=4 with 3 groups"):
        make_folds(30, 4, np.repeat(["a", "b", "c"], 10))


def test_cross_validate_scores_network_and_baseline(batch):
    from calib.nn import ModelConfig

    ds, sp = batch
    cv = cross_validate(ds, sp.train_dev, ModelConfig(**FAST), folds=3, tolerance=5.0)
    assert len(cv.folds) == 3 and cv.group_kfold
    for f in cv.folds:
        assert f.val.n == f.n_val and f.n_train + f.n_val == len(sp.train_dev)
        assert f.n_fit == f.n_train  # no early stopping: no inner dev part
        assert len(f.train_loss) == 40 and len(f.dev_loss) == 40
        assert f.physics_val is not None and f.physics_kind in ("svu", "two_site", "poly")
        assert np.isfinite([f.val.mae, f.val.rmse, f.val.max_abs, f.val.r2]).all()
        assert 0 <= f.val.ela <= 1 and f.val.max_abs >= f.val.rmse >= f.val.mae
    mean, std = cv.mean_std("mae")
    assert mean == pytest.approx(np.mean([f.val.mae for f in cv.folds]))
    assert cv.score == mean
    # a trained network is far better than predicting the mean (~90 hPa MAE here)
    assert mean < 30
    d = cv.to_dict()
    assert set(d["summary"]) == {"val", "train", "physics_val", "physics_train", "outputs", "objective"}
    assert list(d["summary"]["outputs"]) == [cv.target] and d["summary"]["objective"]["mean"] == pytest.approx(mean)
    assert d["diagnosis"]["verdict"]


def test_fold_scores_count_the_rows_the_network_was_fitted_on(batch):
    from calib.nn import ModelConfig
    from calib.validate import _inner_dev

    ds, sp = batch
    cv = cross_validate(ds, sp.train_dev, ModelConfig(**{**FAST, "epochs": 5, "patience": 3}), folds=3,
                        tolerance=5.0, physics=False)
    groups = ds.groups(sp.train_dev)
    for f, (tr, _va) in zip(cv.folds, cv.fold_pairs):
        inner_tr, inner_dev = _inner_dev(len(tr), groups[tr], FAST["seed"] + f.fold)
        assert len(inner_dev) > 0 and f.n_fit == len(inner_tr) == f.n_train - len(inner_dev)
    assert cv.fit_rows == [f.n_fit for f in cv.folds]
    assert all(d["n_fit"] == f.n_fit for d, f in zip(cv.to_dict()["folds"], cv.folds))


@pytest.mark.slow  # two worker processes start (about 10 s cold)
def test_parallel_folds_equal_sequential(batch):
    from calib.nn import ModelConfig

    ds, sp = batch
    cfg = ModelConfig(**{**FAST, "epochs": 15})
    a = cross_validate(ds, sp.train_dev, cfg, folds=2, jobs=1, physics=False)
    b = cross_validate(ds, sp.train_dev, cfg, folds=2, jobs=2, physics=False)
    np.testing.assert_allclose([f.val.mae for f in a.folds], [f.val.mae for f in b.folds], rtol=1e-4)


def test_test_rows_are_never_used(batch):
    from calib.nn import ModelConfig

    ds, sp = batch
    cv = cross_validate(ds, sp.train_dev, ModelConfig(**{**FAST, "epochs": 5}), folds=2, physics=False)
    assert sum(f.n_val for f in cv.folds) == len(sp.train_dev)
    assert len(sp.test) > 0 and len(set(sp.test) & set(sp.train_dev)) == 0


@pytest.mark.parametrize("train, val, test, floor, word", [
    pytest.param(5.0, 5.5, None, 0.1, "high avoidable bias", id="bias"),
    pytest.param(1.0, 4.0, None, 0.9, "high variance", id="variance"),
    pytest.param(1.0, 1.1, 3.0, 0.9, "dev overfitting", id="dev-overfitting"),
    pytest.param(1.0, 1.1, 1.15, 0.95, "near the noise floor", id="floor"),
    pytest.param(2.0, 2.6, None, 1.2, "balanced", id="balanced"),
])
def test_diagnosis_verdicts(train, val, test, floor, word):
    d = diagnose(train, val, test, floor)
    assert d.verdict.startswith(word)
    assert d.avoidable_bias == pytest.approx(train - floor) and d.variance == pytest.approx(val - train)
    if test is not None:
        assert d.dev_overfitting == pytest.approx(test - val)


def test_diagnosis_names_the_unseen_spot_floor_and_fits_the_family():
    d = diagnose(3.0, 3.4, None, 0.06, "replicates", spot=3.0)
    assert d.floor_name == "unseen-spot floor" and d.floor == pytest.approx(math.hypot(0.06, 3.0))
    assert d.verdict.startswith("near the unseen-spot floor") and "calib adjust" in d.verdict
    phys = diagnose(5.0, 5.5, None, 0.1, family="physics")
    assert phys.verdict.startswith("high avoidable bias") and "larger network" not in phys.verdict
    assert "hybrid" in phys.verdict


def test_stacked_folds_equal_folds_one_by_one(batch):
    """Stacked folds (the default with jobs=1) are the folds trained one by one, with early stopping."""
    from calib.nn import ModelConfig

    ds, sp = batch
    cfg = ModelConfig(**{**FAST, "epochs": 30, "patience": 3})
    a = cross_validate(ds, sp.train_dev, cfg, folds=3, physics=False, keep_weights=True, stacked=False)
    b = cross_validate(ds, sp.train_dev, cfg, folds=3, physics=False, keep_weights=True)
    assert [f.best_epoch for f in b.folds] == [f.best_epoch for f in a.folds]
    assert [len(f.dev_loss) for f in b.folds] == [len(f.dev_loss) for f in a.folds]
    np.testing.assert_allclose([f.val.mae for f in b.folds], [f.val.mae for f in a.folds], rtol=1e-4)
    np.testing.assert_allclose(b.oof, a.oof, rtol=1e-4, atol=1e-3)  # hPa
    assert [len(w[0]) for w in b.fold_weights] == [len(w[0]) for w in a.fold_weights]
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(a.fold_pairs, b.fold_pairs))


def test_stacked_needs_one_process(batch):
    from calib.nn import ModelConfig

    ds, sp = batch
    with pytest.raises(ConfigError, match=r"jobs = 1 when stacked=True must hold, got jobs=2 \(stacked folds"):
        cross_validate(ds, sp.train_dev, ModelConfig(**FAST), folds=2, jobs=2, stacked=True)


def test_lbfgs_folds_record_validation_curves_and_the_refit_length_comes_from_them(batch):
    from dataclasses import replace

    from calib.nn import ModelConfig
    from calib.nn.training import MONITOR_EVERY

    ds, sp = batch
    cfg = ModelConfig(hidden_layers=(8,), optimizer="lbfgs", epochs=120, patience=20, seed=0)
    cv = cross_validate(ds, sp.train_dev, cfg, folds=3, tolerance=5.0, physics=False)
    assert all(len(f.val_curve) == len(f.train_loss) // MONITOR_EVERY > 0 for f in cv.folds)
    curves = [np.asarray(f.val_curve) for f in cv.folds]
    n = max(len(c) for c in curves)
    mean = np.mean([np.concatenate([c, np.full(n - len(c), c[-1])]) for c in curves], axis=0)
    assert cv.curve_best_epoch == (int(np.argmin(mean)) + 1) * MONITOR_EVERY
    # the fold models' out-of-fold predictions along their runs: the recorded loss is theirs
    for f, (_tr, va) in zip(cv.folds, cv.fold_pairs):
        assert f.val_path.shape == (len(f.val_curve), len(va), 1) and "val_path" not in f.to_dict()
    oof, oof_all, source = cv.refit_oof
    k = cv.curve_best_epoch // MONITOR_EVERY - 1
    for f, (_tr, va) in zip(cv.folds, cv.fold_pairs):
        np.testing.assert_array_equal(oof[va], f.val_path[min(k, len(f.val_path) - 1), :, 0])
    assert oof_all.shape == cv.oof_all.shape and source == f"out-of-fold at iteration {cv.curve_best_epoch} (the refit's length)"
    y = ds.y(sp.train_dev)[:, 0]
    assert not np.array_equal(oof, cv.oof)
    # a fold stopped before the asked iteration gives its last point
    late = cv.oof_at(10 ** 6)[0]
    for f, (_tr, va) in zip(cv.folds, cv.fold_pairs):
        np.testing.assert_array_equal(late[va], f.val_path[-1, :, 0])
    assert np.isfinite(np.abs(y - oof)).all()
    # a hybrid whose folds kept the physics fit refits as physics: its residuals stay the folds' own
    kept = replace(cv, config={**cv.config, "family": "hybrid"},
                   folds=tuple(replace(f, best_epoch=0) for f in cv.folds))
    assert kept.refit_oof[2] == "out-of-fold" and np.array_equal(kept.refit_oof[0], cv.oof)
    # a fold without a curve (another optimizer, no early stopping) leaves the median rule
    folds = (replace(cv.folds[0], val_curve=()), *cv.folds[1:])
    assert replace(cv, folds=folds).curve_best_epoch is None
    adam = cross_validate(ds, sp.train_dev, ModelConfig(**{**FAST, "epochs": 5, "patience": 3}), folds=3,
                          tolerance=5.0, physics=False)
    assert adam.curve_best_epoch is None and all(f.val_curve == () for f in adam.folds)
    oof, oof_all, source = adam.refit_oof  # no paths: the early-stopped folds' out-of-fold predictions
    assert source == "out-of-fold" and np.array_equal(oof, adam.oof) and adam.oof_at(100) is None


def test_curve_best_epoch_holds_a_stopped_folds_last_value():
    from calib.metrics import score
    from calib.nn.training import MONITOR_EVERY
    from calib.validate import CVResult, FoldScore

    m = score(np.array([1.0, 2.0]), np.array([1.0, 2.5]), 1.0)

    def fold(k, curve):
        return FoldScore(fold=k, n_train=10, n_val=5, val=m, train=m, physics_val=None, physics_train=None,
                         physics_kind=None, train_loss=(), dev_loss=(), best_epoch=1, seconds=0.0,
                         val_curve=tuple(curve))

    # fold 0 stopped at its 2nd point (held at 1.0); the mean is lowest at the 3rd point
    cv = CVResult(folds=(fold(0, [3.0, 1.0]), fold(1, [5.0, 4.0, 1.0, 2.0])), config={}, target="o2", unit="hPa",
                  group_kfold=True, noise_floor=None, noise_floor_source="", seconds=0.0)
    assert cv.curve_best_epoch == 3 * MONITOR_EVERY
