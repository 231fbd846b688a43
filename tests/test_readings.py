"""calib.readings: the array helpers of the one inference path."""

from __future__ import annotations

import numpy as np
import pytest

from calib.readings import CONVERT_ROWS, finite_columns, float32_columns


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("rows", [0, 5, CONVERT_ROWS, 2 * CONVERT_ROWS + 17])
def test_float32_columns_equals_numpy_conversion(rows, order):
    x = np.asarray(np.random.default_rng(rows).normal(0, 100, (rows, 4)), order=order)
    got = float32_columns(x)
    assert got.dtype == np.float32 and got.flags.f_contiguous
    np.testing.assert_array_equal(got, np.asfortranarray(x, dtype=np.float32))


def test_float32_columns_makes_values_beyond_float32_infinite_without_warning():
    x = np.zeros((CONVERT_ROWS + 3, 2))
    x[CONVERT_ROWS + 1, 1] = 1e300
    x[2, 0] = -1e300
    with np.errstate(all="raise"):
        got = float32_columns(x)
    assert got[CONVERT_ROWS + 1, 1] == np.inf and got[2, 0] == -np.inf
    assert np.isfinite(got).sum() == got.size - 2


def test_float32_columns_converts_integers():
    x = np.arange(2 * CONVERT_ROWS + 2, dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(float32_columns(x), x.astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (CONVERT_ROWS + 5, 2), (-1, 1)])
def test_finite_columns_finds_any_non_finite_value(bad, where):
    x = np.ones((CONVERT_ROWS + 10, 3), dtype=np.float32, order="F")
    assert finite_columns(x)
    x[where] = bad
    assert not finite_columns(x)


def test_finite_columns_checks_bounds_per_column_inclusively():
    x = np.array([[0.0, 10.0], [90.0, 20.0]], dtype=np.float32)
    lo, hi = np.array([0.0, 10.0], np.float32), np.array([90.0, 20.0], np.float32)
    assert finite_columns(x, lo, hi)
    assert not finite_columns(x, lo, np.array([89.9, 20.0], np.float32))
    assert not finite_columns(x, np.array([0.0, 10.5], np.float32), hi)
    assert finite_columns(np.empty((0, 2), np.float32), lo, hi)
