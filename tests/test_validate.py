"""Tests of calib.validate: k-fold by group, the baseline beside it, the diagnosis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calib.config import load_config
from calib.errors import ConfigError
from calib.ingest import load_dataset, split_dataset
from calib.validate import cross_validate, diagnose

FAST = dict(hidden_layers=(16, 16), epochs=40, patience=None, batch_size=32, learning_rate=3e-3, seed=0)


@pytest.fixture(scope="module")
def batch(small_batch):
    csv, toml = small_batch
    cfg = load_config(toml)
    ds = load_dataset(csv, cfg.data)
    sp = split_dataset(ds, test_fraction=0.2, dev_fraction=0.2, seed=0)
    return ds, sp


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
    from calib.folds import inner_dev as _inner_dev

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


def test_a_test_error_above_validation_is_not_called_the_search_s_overfitting_when_nothing_was_tuned():
    tuned = diagnose(2.5, 2.8, 4.0, 0.06, spot=2.5, tuned=True)
    assert tuned.verdict.startswith("dev overfitting") and "search" in tuned.verdict
    kept = diagnose(2.5, 2.8, 4.0, 0.06, spot=2.5, tuned=False)
    assert kept.verdict.startswith("test part unlike the folds") and "search" not in kept.verdict
    assert "untuned default was kept" in kept.verdict and "spots are harder than the folds' spots" in kept.verdict
    assert kept.dev_overfitting == pytest.approx(1.2)
    rows = diagnose(1.0, 1.1, 3.0, 0.9, tuned=False)
    assert "rows differ" in rows.verdict and rows.verdict.endswith("more data")
    assert diagnose(1.0, 1.1, 3.0, 0.9).verdict.startswith("dev overfitting")  # unknown: as before


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
