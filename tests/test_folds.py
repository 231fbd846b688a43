"""calib.folds: grouped and row folds (equal to scikit-learn's), the inner dev part."""

from __future__ import annotations

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.folds import inner_dev, make_folds


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


def test_inner_dev_holds_out_whole_groups_and_is_seeded():
    groups = np.repeat(np.array(list("ABCDEFGHIJ")), 7)
    tr, dev = inner_dev(len(groups), groups, seed=3)
    assert len(tr) + len(dev) == len(groups) and not set(groups[tr]) & set(groups[dev])
    assert len(set(groups[dev])) == 2  # 15 % of 10 groups, rounded
    np.testing.assert_array_equal(dev, inner_dev(len(groups), groups, seed=3)[1])
    tr, dev = inner_dev(40, None, seed=0)  # no groups: 15 % of the rows
    assert len(dev) == 6 and len(np.intersect1d(tr, dev)) == 0
