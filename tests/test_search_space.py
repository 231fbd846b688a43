"""Tests of calib.search.space: the forms of a search space, its rules and its check against ModelConfig."""

from __future__ import annotations

import pytest

from calib.errors import ConfigError
from calib.nn import ModelConfig
from calib.search import DEFAULT_SPACE, SearchSpace

BASE = ModelConfig(hidden_layers=(4,), epochs=20, patience=None, batch_size=None, seed=0)


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
                 r"unknown key 'learnig_rate' in \[sweep.space\]; did you mean 'learning_rate'\? "
                 r"\(valid keys: hidden_layers, activation", id="unknown-parameter"),
    pytest.param({"l2": {"low": 0.0, "high": 1e-3}},
                 r"^low > 0 for a log range must hold, got low=0.0 in \[sweep.space.l2\] \(log = true\)", id="log-low-zero"),
    pytest.param({"dropout": {"low": -0.1, "high": 0.3, "log": True}},
                 r"^low > 0 for a log range must hold, got low=-0.1 in \[sweep.space.dropout\]", id="log-low-negative"),
    pytest.param({"learning_rate": {"low": 1e-2, "high": 1e-3}},
                 r"^low < high must hold, got low=0.01, high=0.001 in \[sweep.space.learning_rate\]$", id="low-above-high"),
    pytest.param({"learning_rate": {"choices": [1e-3], "low": 1e-4, "high": 1e-2}},
                 r"either choices or a range", id="choices-and-range"),
    pytest.param({"learning_rate": {"low": 1e-4}}, r"needs choices = \[...\] or both low and high",
                 id="range-without-high"),
    pytest.param({"activation": {"choices": []}}, r"^choices is a non-empty list, no value repeated must hold, got choices=\[\] in \[sweep.space.activation\]$",
                 id="empty-choices"),
    pytest.param({"activation": {"choices": "tanh"}}, r"^choices is a non-empty list, no value repeated must hold, got choices='tanh' in \[sweep.space.activation\]$",
                 id="choices-not-a-list"),
    pytest.param({"activation": {"choices": ["tanh", "tanh"]}}, r"^choices is a non-empty list, no value repeated must hold, got choices=\['tanh', 'tanh'\]",
                 id="repeated-choice"),
    pytest.param({"activation": {"values": ["tanh"]}},
                 r"^unknown key 'values' in \[sweep.space.activation\] \(valid keys: choices, low, high, log, step, num\)$",
                 id="unknown-entry-key"),
    pytest.param({"activation": "tanh"}, r"activation must be a table", id="entry-not-a-table"),
    pytest.param({"hidden_layers": {"low": 1, "high": 3}}, r"hidden_layers takes choices, not a range",
                 id="range-on-non-numeric"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "step": -0.1}}, r"^step > 0 must hold, got step=-0.1 in \[sweep.space.dropout\]$",
                 id="negative-step"),
    pytest.param({"learning_rate": {"low": 1e-4, "high": 1e-2, "step": 1e-4, "log": True}},
                 r"step and log = true cannot be combined", id="step-with-log"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.25, "step": 0.1}},
                 r"^high - low is a multiple of step must hold, got low=0.0, high=0.25, step=0.1 in \[sweep.space.dropout\]$", id="step-not-dividing"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "num": 1}}, r"^num >= 2 must hold, got num=1 in \[sweep.space.dropout\]$",
                 id="num-below-2"),
    pytest.param({"dropout": {"low": "a", "high": 0.3}}, r"^low is a finite number must hold, got low='a' \(not a number\) in \[sweep.space.dropout\]$",
                 id="non-numeric-bound"),
    pytest.param({}, r"must name at least one parameter", id="empty-space"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "log": 1}},
                 r"^log in \{true, false\} must hold, got log=1 \(not a bool\) in \[sweep.space.dropout\]$",
                 id="log-not-bool"),
    pytest.param({"dropout": {"low": 0.0, "high": 0.3, "num": 2.0}},
                 r"^num >= 2 must hold, got num=2.0 \(not an integer\) in \[sweep.space.dropout\]$",
                 id="num-not-int"),
])
def test_space_rules(space, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_dict(space)


@pytest.mark.parametrize("space, strategy, match", [
    pytest.param({"activation": {"choices": ["tanh", "swish"]}}, "random",
                 r"\[sweep.space\] activation: activation in \{.*\} must hold, got activation='swish'",
                 id="bad-choice"),
    pytest.param({"dropout": {"low": 0.0, "high": 1.5}}, "random",
                 r"\[sweep.space\] dropout: 0 <= dropout < 1 must hold, got dropout=1.5", id="bad-bound"),
    pytest.param({"epochs": {"low": 10.0, "high": 20.0}}, "random",
                 r'epochs >= 1 \(or "auto"\) must hold, got epochs=10.0$', id="float-range-for-int"),
    pytest.param({"hidden_layers": {"choices": [[8], [0]]}}, "random",
                 r"hidden_layers is a list of layer widths >= 1 must hold, got hidden_layers=\(0,\)", id="bad-layer"),
    pytest.param({"hidden_layers": {"choices": [[16], [3000, 3000]]}}, "random",
                 r"^\[sweep.space\] hidden_layers: hidden_layers has at most 5,000,000 parameters \(MAX_PARAMETERS\) "
                 r"must hold, got 9,012,001 parameters for hidden_layers=\[3000, 3000\]", id="network-too-large"),
    pytest.param({"learning_rate": {"low": 1e-4, "high": 1e-2}}, "grid",
                 r"grid strategy needs num = N points for the range learning_rate", id="grid-without-num"),
    pytest.param({"epochs": {"low": 10, "high": 12, "num": 5}}, "grid",
                 r"^num <= 3 must hold, got num=5 in \[sweep.space.epochs\] \(the integer range 10..12: points repeat\)$", id="grid-int-repeats"),
])
def test_space_checked_against_model_config(space, strategy, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_dict(space).check(BASE, strategy)


def test_point_of_a_config():
    """The main job's first trial is its untuned default when the default is a point of the space."""
    space = SearchSpace.from_dict({
        "optimizer": {"choices": ["lbfgs", "adam"]},
        "learning_rate": {"low": 1e-4, "high": 1e-2},
        "hidden_layers": {"choices": [[32, 32], [64, 64]]},
        "batch_size": {"choices": [32, "full"]},
        "epochs": {"low": 100, "high": 1000, "step": 100},
    })
    adam = ModelConfig(optimizer="adam", learning_rate=1e-3, hidden_layers=(64, 64), batch_size=None, epochs=300)
    point = space.point_of(adam)
    assert point == {"optimizer": "adam", "learning_rate": 1e-3, "hidden_layers": "[64, 64]",
                     "batch_size": "full", "epochs": 300}
    assert space.to_config(adam, {k: v for k, v in point.items() if k != "hidden_layers"}
                           | {"hidden_layers": [64, 64]}) == adam
    # L-BFGS ignores the learning rate and the batch size: they are not part of its point
    lbfgs = adam.replace(optimizer="lbfgs", learning_rate=0.5)
    assert set(space.point_of(lbfgs)) == {"optimizer", "hidden_layers", "epochs"}
    # a value off the space: no point
    assert space.point_of(adam.replace(hidden_layers=(16,))) is None
    assert space.point_of(adam.replace(learning_rate=0.5)) is None
    assert space.point_of(adam.replace(epochs=250)) is None  # off the step
    assert space.point_of(adam.replace(batch_size=64)) is None
