"""The folds of a k-fold validation: grouped (a sensor spot never in training and validation
at once) or by row, and the inner dev part of a fold's training rows for early stopping.

Row indices in, row indices out; no model, no scikit-learn import (its ``GroupKFold`` and
``KFold(shuffle=True)`` folds are computed here, equal to its own: tested).
"""

from __future__ import annotations

import numpy as np

from .constraints import require

__all__ = ["make_folds", "inner_dev"]


def make_folds(n_rows: int, k: int, groups: np.ndarray | None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs over ``range(n_rows)``; by group when ``groups`` is given.

    Raises
    ------
    ConfigError
        If there are fewer rows (or groups) than folds.
    """
    if groups is not None:
        labels = np.unique(groups)
        require(len(labels) >= k, "folds <= number of groups", folds=k,
                note=f" with {len(labels)} groups in the train part; lower --folds or drop --group")
        # shuffle group order reproducibly, then balanced group folds
        rng = np.random.default_rng(seed)
        perm = {g: i for i, g in enumerate(rng.permutation(labels))}
        coded = np.array([perm[g] for g in groups])
        return _index_pairs(_group_fold_of(coded, k), k)
    require(n_rows >= k, "folds <= number of rows", folds=k, note=f" with {n_rows} rows")
    order = np.arange(n_rows)
    np.random.RandomState(seed).shuffle(order)
    fold = np.empty(n_rows, dtype=np.intp)
    sizes = np.full(k, n_rows // k)
    sizes[: n_rows % k] += 1
    fold[order] = np.repeat(np.arange(k), sizes)
    return _index_pairs(fold, k)


def _group_fold_of(coded: np.ndarray, k: int) -> np.ndarray:
    """Each row's fold: the groups, largest first, each to the fold with the fewest rows so far.

    The assignment of scikit-learn's ``GroupKFold(n_splits=k)`` (``shuffle=False``); the row
    folds of :func:`make_folds` are those of ``KFold(shuffle=True, random_state=seed)``. Both
    are computed here without importing scikit-learn (seconds on a loaded 2-core machine,
    before the sweep can start); a test compares them with scikit-learn's.
    """
    codes, inverse = np.unique(coded, return_inverse=True)
    sizes = np.bincount(inverse.ravel())
    order = np.argsort(sizes, kind="stable")[::-1]
    totals = np.zeros(k)
    fold_of_group = np.zeros(len(codes), dtype=np.intp)
    for g in order:
        lightest = int(np.argmin(totals))
        totals[lightest] += sizes[g]
        fold_of_group[g] = lightest
    return fold_of_group[inverse.ravel()]


def _index_pairs(fold: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def inner_dev(n: int, groups: np.ndarray | None, seed: int, fraction: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """``(train, dev)`` positions in ``range(n)``: about ``fraction`` of the groups (of the rows
    without at least 3 groups) held out as the early-stopping dev part, seeded by ``seed``."""
    rng = np.random.default_rng(seed + 7919)
    if groups is not None and len(np.unique(groups)) >= 3:
        labels = rng.permutation(np.unique(groups))
        n_dev = max(1, int(round(fraction * len(labels))))
        dev_mask = np.isin(groups, labels[:n_dev])
    else:
        n_dev = max(1, int(round(fraction * n))) if n >= 5 else 0
        dev_mask = np.zeros(n, dtype=bool)
        dev_mask[rng.permutation(n)[:n_dev]] = True
    return np.flatnonzero(~dev_mask), np.flatnonzero(dev_mask)
