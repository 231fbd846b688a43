"""Tests of calib.search.samplers: what the random, grid and bayes strategies draw (preview_trials)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.search import preview_trials

SPACE = {"learning_rate": {"low": 1e-3, "high": 1e-1}, "activation": {"choices": ["tanh", "relu"]}}


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


@pytest.mark.parametrize("kw, match", [
    pytest.param(dict(n=0), r"^n >= 1 must hold, got n=0$", id="n"),
    pytest.param(dict(n=2, seed=-1), r"^0 <= seed < 2147483648 must hold, got seed=-1$", id="seed"),
    pytest.param(dict(n=2, strategy="tpe"), r"^strategy in \{'grid', 'random', 'bayes'\} must hold", id="strategy"),
])
def test_preview_rules(kw, match):
    with pytest.raises(ConfigError, match=match):
        preview_trials(SPACE, **kw)


def test_inert_parameters_are_not_drawn():
    """An L-BFGS trial draws no learning rate or batch size, a physics trial no network: with the
    sweep's base config, the draws differ only where the training can differ."""
    from calib.nn import ModelConfig

    space = {"optimizer": {"choices": ["adam", "lbfgs"]}, "learning_rate": {"low": 1e-4, "high": 1e-1},
             "batch_size": {"choices": [16, 64]}, "hidden_layers": {"choices": [[8], [16, 16]]},
             "family": {"choices": ["mlp", "physics"]}}
    base = ModelConfig(optimizer="adam")
    draws = preview_trials(space, 60, seed=4, base=base)
    kinds = set()
    for d in draws:
        assert list(d) == [k for k in space if k in d]  # the space's order
        if d["family"] == "physics":
            assert set(d) == {"family"}
            kinds.add("physics")
        elif d["optimizer"] == "lbfgs":
            assert set(d) == {"family", "optimizer", "hidden_layers"}
            kinds.add("lbfgs")
        else:
            assert set(d) == set(space)
            kinds.add("adam")
    assert kinds == {"physics", "lbfgs", "adam"}
    # without a base every parameter is drawn, as before
    assert all(set(d) == set(space) for d in preview_trials(space, 10, seed=4))
    # a base whose optimizer is L-BFGS and a space without `optimizer`: the learning rate is inert
    lb = preview_trials({"learning_rate": {"low": 1e-4, "high": 1e-1}, "activation": {"choices": ["tanh", "elu"]}},
                        5, seed=0, base=ModelConfig(optimizer="lbfgs"))
    assert all(set(d) == {"activation"} for d in lb)
