"""Tests of calib.nn.config: ModelConfig validation, TOML round trips, the epoch budget."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest

from calib.errors import ConfigError
from calib.nn import ACTIVATIONS, AUTO, ModelConfig

def test_import_does_not_load_tensorflow():
    code = (
        "import sys; import calib.nn; from calib.nn import ModelConfig; ModelConfig(); "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_defaults_are_valid_and_documented_choices():
    cfg = ModelConfig()
    assert cfg.hidden_layers == (32, 32) and cfg.activation == "tanh" and cfg.init == "glorot"
    assert cfg.optimizer == "adam" and cfg.learning_rate == 1e-3 and cfg.batch_size == 64
    assert cfg.epochs is None and cfg.patience == AUTO and cfg.loss == "mse" and cfg.family == "mlp"
    assert set(ACTIVATIONS) == {"relu", "elu", "tanh", "sigmoid", "identity"}


@pytest.mark.parametrize(
    "changes, message",
    [
        pytest.param({"hidden_layers": (32, 0)}, "hidden_layers is a list of layer widths >= 1 must hold, got hidden_layers=(32, 0)", id="layer-width"),
        pytest.param({"hidden_layers": ("32",)}, "hidden_layers is a list of layer widths >= 1 must hold, got hidden_layers=('32',)", id="layer-type"),
        pytest.param({"activation": "swish"}, "activation in {'relu', 'elu', 'tanh', 'sigmoid', 'identity'} must hold, got activation='swish'", id="activation"),
        pytest.param({"init": "xavier"}, "init in {'glorot', 'he', 'truncated_normal'} must hold, got init='xavier'", id="init"),
        pytest.param({"init": "truncated_normal", "init_stddev": 0.0}, "init_stddev > 0 must hold, got init_stddev=0.0", id="init-stddev"),
        pytest.param({"optimizer": "adagrad"}, "optimizer in {'sgd', 'momentum', 'rmsprop', 'adam', 'lbfgs'} must hold, got optimizer='adagrad'", id="optimizer"),
        pytest.param({"learning_rate": -0.1}, "learning_rate > 0 must hold, got learning_rate=-0.1", id="learning-rate"),
        pytest.param({"learning_rate": float("nan")}, "learning_rate > 0 must hold, got learning_rate=nan (not a number)", id="learning-rate-nan"),
        pytest.param({"momentum": 1.0}, "0 <= momentum < 1 must hold, got momentum=1.0", id="momentum"),
        pytest.param({"beta_1": 1.0}, "0 <= beta_1 < 1 must hold, got beta_1=1.0", id="beta-1"),
        pytest.param({"beta_2": -0.1}, "0 <= beta_2 < 1 must hold, got beta_2=-0.1", id="beta-2"),
        pytest.param({"rho": 1.5}, "0 <= rho < 1 must hold, got rho=1.5", id="rho"),
        pytest.param({"epsilon": 0.0}, "epsilon > 0 must hold, got epsilon=0.0", id="epsilon"),
        pytest.param({"lr_schedule": "cosine"}, "lr_schedule in {'constant', 'exponential', 'inverse_time'} must hold, got lr_schedule='cosine'", id="lr-schedule"),
        pytest.param({"decay_rate": 0.0}, "decay_rate > 0 must hold, got decay_rate=0.0", id="decay-rate"),
        pytest.param({"decay_steps": 0}, "decay_steps >= 1 must hold, got decay_steps=0", id="decay-steps"),
        pytest.param({"batch_size": 0}, "batch_size >= 1 (or None for the full batch) must hold, got batch_size=0", id="batch-size"),
        pytest.param({"batch_size": 2.5}, "batch_size >= 1 (or None for the full batch) must hold, got batch_size=2.5", id="batch-size-type"),
        pytest.param({"epochs": 0}, 'epochs >= 1 (or "auto") must hold, got epochs=0', id="epochs"),
        pytest.param({"epochs": True}, 'epochs >= 1 (or "auto") must hold, got epochs=True', id="epochs-bool"),
        pytest.param({"patience": 0}, 'patience >= 1 (or "auto" or "none" to disable early stopping) must hold, got patience=0', id="patience"),
        pytest.param({"min_delta": -1e-3}, "min_delta >= 0 must hold, got min_delta=-0.001", id="min-delta"),
        pytest.param({"l1": -1e-4}, "l1 >= 0 must hold, got l1=-0.0001", id="l1"),
        pytest.param({"l2": -1.0}, "l2 >= 0 must hold, got l2=-1.0", id="l2"),
        pytest.param({"dropout": 1.0}, "0 <= dropout < 1 must hold, got dropout=1.0", id="dropout-high"),
        pytest.param({"dropout": -0.1}, "0 <= dropout < 1 must hold, got dropout=-0.1", id="dropout-low"),
        pytest.param({"loss": "rmse"}, "loss in {'mse', 'mae', 'huber'} must hold, got loss='rmse'", id="loss"),
        pytest.param({"seed": "0"}, "0 <= seed < 2147483648 must hold, got seed='0' (not an integer)", id="seed-type"),
        pytest.param({"seed": -1}, "0 <= seed < 2147483648 must hold, got seed=-1", id="seed"),
        pytest.param({"hidden_layers": "32"}, "hidden_layers is a list of layer widths >= 1 must hold, got hidden_layers='32' (not a list)", id="layer-string"),
        pytest.param({"family": "svm"}, "family in {'mlp', 'hybrid', 'physics'} must hold, got family='svm'", id="family"),
        pytest.param({"decay_steps": 2.0}, "decay_steps >= 1 must hold, got decay_steps=2.0 (not an integer)", id="decay-steps-type"),
        pytest.param({"init_stddev": float("inf")}, "init_stddev is a finite number must hold, got init_stddev=inf (not a number)", id="init-stddev-finite"),
        pytest.param({"hidden_layers": (100000, 100000)},
                     "hidden_layers has at most 5,000,000 parameters (MAX_PARAMETERS) must hold, got 10,000,400,001 "
                     "parameters for hidden_layers=[100000, 100000]", id="network-too-large"),
    ],
)
def test_each_rule_names_parameter_rule_and_value(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"hidden_layers": ()}, id="linear-model"),
        pytest.param({"batch_size": 1}, id="batch-1"),
        pytest.param({"batch_size": None}, id="full-batch"),
        pytest.param({"patience": None}, id="no-early-stopping"),
        pytest.param({"init_stddev": 0.0}, id="stddev-unused-by-glorot"),
        pytest.param({"learning_rate": 1}, id="int-learning-rate"),
        pytest.param({"hidden_layers": (2234, 2234)}, id="network-at-the-parameter-cap"),
    ],
)
def test_edge_values_are_accepted(changes):
    cfg = ModelConfig(**changes)
    assert isinstance(cfg.learning_rate, float)


def test_lists_become_tuples_and_config_is_hashable():
    cfg = ModelConfig(hidden_layers=[8, 4])
    assert cfg.hidden_layers == (8, 4)
    assert hash(cfg) == hash(ModelConfig(hidden_layers=(8, 4)))


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'layers' in \[model\]; did you mean 'hidden_layers'\? \(valid keys: hidden_layers, activation, .*seed\)"):
        ModelConfig.from_dict({"layers": [8]})


def test_replace_validates_and_rejects_unknown_keys():
    cfg = ModelConfig()
    assert cfg.replace(epochs=7).epochs == 7 and cfg.epochs is None
    with pytest.raises(ConfigError, match=re.escape("learning_rate > 0 must hold, got learning_rate=0.0")):
        cfg.replace(learning_rate=0.0)
    with pytest.raises(ConfigError, match=re.escape("unknown key 'lr' in [model]")):
        cfg.replace(lr=0.1)


def test_from_toml_full_batch_and_round_trip():
    table = tomllib.loads(
        """
        hidden_layers = [24, 12]
        activation = "elu"
        learning_rate = 1
        batch_size = "full"
        patience = "none"
        lr_schedule = "exponential"
        """
    )
    cfg = ModelConfig.from_dict(table)
    assert cfg.hidden_layers == (24, 12) and cfg.batch_size is None and cfg.patience is None
    assert cfg.learning_rate == 1.0
    assert ModelConfig.from_dict({"batch_size": 0}).batch_size is None
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert ModelConfig.from_dict(json.loads(json.dumps(d))) == cfg


@pytest.mark.parametrize(
    "schedule, expected",
    [
        pytest.param("constant", 0.1, id="constant"),
        pytest.param("exponential", 0.1 * 0.5 ** (25 / 10), id="exponential"),
        pytest.param("inverse_time", 0.1 / (1 + 0.5 * 25 / 10), id="inverse-time"),
    ],
)
def test_learning_rate_at_matches_formula(schedule, expected):
    cfg = ModelConfig(learning_rate=0.1, lr_schedule=schedule, decay_rate=0.5, decay_steps=10)
    assert cfg.learning_rate_at(25) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_batches, epochs, patience", [
    pytest.param(1, 20_000, 2_000, id="tiny-certificate-full-batch"),
    pytest.param(18, 1_667, 112, id="bundled-batch"),
    pytest.param(2_000, 100, 50, id="large-file"),
])
def test_auto_budget_adapts_to_the_data(n_batches, epochs, patience):
    assert ModelConfig().budget(n_batches) == (epochs, patience)
    assert ModelConfig(epochs=7, patience=None).budget(n_batches) == (7, None)


def test_auto_from_toml_strings_round_trip():
    cfg = ModelConfig.from_dict({"epochs": "auto", "patience": "auto", "family": "hybrid"})
    assert cfg.epochs is None and cfg.patience == AUTO and cfg.family == "hybrid"
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["epochs"] == "auto" and cfg.to_dict()["patience"] == "auto"


@pytest.mark.parametrize("kw, match", [
    pytest.param({"family": "svm"}, "family in {'mlp', 'hybrid', 'physics'}", id="family"),
    pytest.param({"patience": -5}, "patience >= 1", id="negative-patience"),
    pytest.param({"epochs": 0}, "epochs >= 1", id="zero-epochs"),
])
def test_family_and_budget_rules(kw, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kw)


def test_parameter_count_of_dense_layers():
    from calib.nn.config import MAX_PARAMETERS, parameter_count

    assert parameter_count((32, 32), n_inputs=5) == (5 * 32 + 32) + (32 * 32 + 32) + (32 + 1)
    assert parameter_count(()) == 2  # linear: one weight, one bias
    assert parameter_count((2234, 2234)) <= MAX_PARAMETERS < parameter_count((2234, 2235))
