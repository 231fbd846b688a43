"""Tests of calib.search.settings: the ``[sweep]`` table."""

from __future__ import annotations

import pytest

from calib.errors import ConfigError
from calib.search import DEFAULT_SPACE, SweepSettings


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
