"""Tests of calib.nn.onnx_writer: the network's ONNX graph written from its weights equals
Keras' predictions and tf2onnx's export of the same model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.nn import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, ModelConfig, build_model, export_onnx, predict, train
from calib.nn.onnx_writer import UnsupportedLayer, network_graph
from calib.scaling import fit_scaler


def _run(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {ONNX_INPUT_NAME: x.astype(np.float32)})[0]


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    x = rng.uniform([10, 20, 5], [60, 70, 40], (300, 3))
    y = np.c_[300.0 / (1.0 + 0.02 * x[:, 0]) + x[:, 2], 0.5 * x[:, 2] + 1.0]
    return x, y


@pytest.mark.parametrize("activation", ["tanh", "elu", "relu", "sigmoid", "identity"])
@pytest.mark.parametrize("family", ["mlp", "hybrid"])
def test_direct_graph_equals_keras_and_tf2onnx(xy, tmp_path, activation, family):
    x, y = xy
    cfg = ModelConfig(hidden_layers=(16, 8), activation=activation, family=family, optimizer="adam", epochs=3,
                      batch_size=64, dropout=0.1 if activation == "relu" else 0.0)
    model = train(cfg, x, y, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y)).model
    ref = predict(model, x)
    export_onnx(model, tmp_path / "direct.onnx", 3, writer="direct")
    export_onnx(model, tmp_path / "traced.onnx", 3, writer="tf2onnx")
    direct, traced = _run(tmp_path / "direct.onnx", x), _run(tmp_path / "traced.onnx", x)
    assert direct.shape == traced.shape == (len(x), 2)
    # float32 rounding only: the outputs are O(100), one float32 ulp there is 7.6e-6
    np.testing.assert_allclose(direct, ref, rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(direct, traced, rtol=2e-6, atol=2e-5)
    # the same signature as the traced export: lab software sees no difference
    import onnx

    d, t = onnx.load(str(tmp_path / "direct.onnx")), onnx.load(str(tmp_path / "traced.onnx"))
    assert [i.name for i in d.graph.input] == [i.name for i in t.graph.input] == [ONNX_INPUT_NAME]
    assert [o.name for o in d.graph.output] == [o.name for o in t.graph.output] == [ONNX_OUTPUT_NAME]
    assert d.opset_import[0].version == t.opset_import[0].version == 15
    one = _run(tmp_path / "direct.onnx", x[:1])  # dynamic batch
    np.testing.assert_allclose(one, ref[:1], rtol=2e-6, atol=2e-5)


def test_linear_and_physics_networks(xy, tmp_path):
    x, y = xy
    for cfg in (ModelConfig(hidden_layers=()), ModelConfig(family="physics")):
        model = build_model(cfg, 3, 2, fit_scaler(x), fit_scaler(y))
        export_onnx(model, tmp_path / "m.onnx", 3, writer="direct")
        np.testing.assert_allclose(_run(tmp_path / "m.onnx", x), predict(model, x), rtol=2e-6, atol=2e-5)


def test_a_tiny_variance_is_floored_as_keras_floors_it(tmp_path):
    x = np.c_[np.linspace(0, 1, 50), np.full(50, 7.0)]  # the second input is constant: variance 0
    y = 3 * x[:, :1] + 1
    model = build_model(ModelConfig(hidden_layers=(4,)), 2, 1, fit_scaler(x), fit_scaler(y))
    export_onnx(model, tmp_path / "m.onnx", 2, writer="direct")
    got = _run(tmp_path / "m.onnx", x + [0.0, 1e-3])
    np.testing.assert_allclose(got[:, 0], predict(model, x + [0.0, 1e-3]), rtol=1e-5, atol=1e-5)


def test_other_layers_are_refused_or_traced(xy, tmp_path):
    import keras

    x, _ = xy
    inp = keras.Input(shape=(3,), name="readings")
    h = keras.layers.Dense(4, activation="tanh")(inp)
    h = keras.layers.BatchNormalization()(h)
    foreign = keras.Model(inp, keras.layers.Dense(1)(h))
    with pytest.raises(UnsupportedLayer, match="BatchNormalization"):
        network_graph(foreign, 3, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, 15)
    with pytest.raises(UnsupportedLayer, match="BatchNormalization"):
        export_onnx(foreign, tmp_path / "f.onnx", 3, writer="direct")
    export_onnx(foreign, tmp_path / "f.onnx", 3)  # auto: falls back to tf2onnx
    from calib.nn import onnx_model

    proto = onnx_model(foreign, 3)  # the same graph in memory, for artifacts
    assert [o.name for o in proto.graph.output] == [ONNX_OUTPUT_NAME]
    np.testing.assert_allclose(_run(tmp_path / "f.onnx", x)[:, 0], predict(foreign, x), rtol=1e-5, atol=1e-5)

    swish = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Dense(4, activation="swish")(inp)))
    with pytest.raises(UnsupportedLayer, match="activation 'silu'"):
        network_graph(swish, 3, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, 15)
    with pytest.raises(ConfigError, match=re.escape("writer must be 'auto', 'direct' or 'tf2onnx', got 'x'")):
        export_onnx(foreign, tmp_path / "f.onnx", 3, writer="x")


def test_the_scaling_is_folded_into_the_first_and_last_layers(tmp_path):
    """By default the graph is the bare MatMul/Add/activation chain (no element-wise scaling
    node): it gives the unfolded graph's and Keras' predictions to float32 rounding, also for
    an input far from zero relative to its spread (a pressure near 1013 hPa, +/- 5), where
    folding the centring into the weights cancels the most."""
    import onnx

    rng = np.random.default_rng(3)
    x = np.c_[rng.uniform(10, 60, 400), rng.uniform(0, 40, 400), rng.normal(1013.25, 5.0, 400)]
    y = (300.0 / (1.0 + 0.02 * x[:, 0]) + x[:, 1] + 0.1 * (x[:, 2] - 1013.25))[:, None]
    for layers in ((16, 8), ()):
        cfg = ModelConfig(hidden_layers=layers, optimizer="adam", epochs=3, batch_size=64)
        model = train(cfg, x, y, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y)).model
        folded = network_graph(model, 3, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, 15)
        plain = network_graph(model, 3, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, 15, fold_scaling=False)
        ops = [n.op_type for n in folded.graph.node]
        assert not {"Sub", "Div", "Mul"} & set(ops) and ops.count("MatMul") == len(layers) + 1
        assert {"Sub", "Div", "Mul"} <= {n.op_type for n in plain.graph.node}
        onnx.save(folded, tmp_path / "folded.onnx")
        onnx.save(plain, tmp_path / "plain.onnx")
        ref = predict(model, x).reshape(-1, 1)
        np.testing.assert_allclose(_run(tmp_path / "folded.onnx", x), ref, rtol=2e-6, atol=1e-4)
        np.testing.assert_allclose(_run(tmp_path / "plain.onnx", x), ref, rtol=2e-6, atol=2e-5)
