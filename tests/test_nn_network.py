"""Tests of calib.nn.network: building the network, inference, .keras and ONNX round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest

from calib.errors import ConfigError
from calib.nn import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, ModelConfig, build_model, export_onnx, predict, train
from calib.scaling import fit_scaler
from nn_data import BASE, data, make_data, weights  # noqa: F401 (data: fixture)

def test_build_model_layers_and_known_scaling(data):
    import keras

    _, _, _, _, xs, ys = data
    model = build_model(ModelConfig(hidden_layers=(16, 8), dropout=0.2), 2, 1, xs, ys)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Normalization", "Dense", "Dropout", "Dense", "Dropout", "Dense", "Normalization"]
    assert model.layers[-1].invert is True
    assert all(not isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert model.count_params() == (2 * 16 + 16) + (16 * 8 + 8) + (8 + 1)

    # A linear model with kernel 1 and bias 0 maps x to (x - cx)/sx * sy + cy: scaling is in the graph.
    xs1, ys1 = fit_scaler(np.array([[10.0], [30.0]])), fit_scaler(np.array([100.0, 300.0]))
    lin = build_model(ModelConfig(hidden_layers=()), 1, 1, xs1, ys1)
    lin.get_layer("output_scaled").set_weights([np.ones((1, 1)), np.zeros(1)])
    np.testing.assert_allclose(predict(lin, np.array([[10.0], [20.0], [50.0]])), [100.0, 200.0, 500.0], rtol=1e-6)


def test_build_model_is_seeded(data):
    _, _, _, _, xs, ys = data
    w0 = weights(build_model(ModelConfig(seed=3), 2, 1, xs, ys))
    w1 = weights(build_model(ModelConfig(seed=3), 2, 1, xs, ys))
    w2 = weights(build_model(ModelConfig(seed=4), 2, 1, xs, ys))
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert not all(np.array_equal(a, b) for a, b in zip(w0, w2))


def test_build_model_rejects_scaler_of_wrong_width(data):
    _, _, _, _, xs, ys = data
    with pytest.raises(ConfigError, match=re.escape("x_scaler has 2 column(s) but the model has 3")):
        build_model(ModelConfig(), 3, 1, xs, ys)
    with pytest.raises(ConfigError, match=re.escape("n_outputs >= 1 must hold, got n_outputs=0")):
        build_model(ModelConfig(), 2, 0, xs, ys)


# ----------------------------------------------------------------------------- inference, export


@pytest.fixture(scope="module")
def trained(data):
    x, y, xd, yd, xs, ys = data
    return train(ModelConfig(**{**BASE, "epochs": 10}), x, y, xd, yd, x_scaler=xs, y_scaler=ys, jit_compile=False).model


def test_predict_shapes_chunks_and_validation(trained, data):
    _, _, xd, _, _, _ = data
    full = predict(trained, xd)
    assert full.shape == (64,) and full.dtype == np.float64
    # float32 graph: chunking may move an output by 1 ulp of the output scaling (~1e-7 target units)
    np.testing.assert_allclose(predict(trained, xd, batch_size=7), full, rtol=1e-6, atol=1e-6)
    assert predict(trained, xd[0]).shape == (1,)
    with pytest.raises(ConfigError, match=re.escape("x must have shape (n, 2), got (64, 3)")):
        predict(trained, np.zeros((64, 3)))
    with pytest.raises(ConfigError, match=re.escape("batch_size >= 1 must hold, got batch_size=0")):
        predict(trained, xd, batch_size=0)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras saving internals
def test_keras_save_load_safe_mode_round_trip(trained, data, tmp_path):
    import keras

    _, _, xd, _, _, _ = data
    path = tmp_path / "model.keras"
    trained.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert np.array_equal(predict(loaded, xd), predict(trained, xd))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras saving internals
def test_onnx_round_trip(data, tmp_path):
    import keras
    import onnxruntime as ort

    x, _, xd, _, xs, _ = data
    _, y2 = make_data(256, seed=1, two_targets=True)
    ys2 = fit_scaler(y2)
    model = train(ModelConfig(**{**BASE, "epochs": 5}), x, y2, x_scaler=xs, y_scaler=ys2, jit_compile=False).model
    before = predict(model, xd)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, n_inputs=2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == ONNX_INPUT_NAME and out.name == ONNX_OUTPUT_NAME and inp.shape[1] == 2
    got = session.run(None, {ONNX_INPUT_NAME: xd.astype(np.float32)})[0]
    assert got.shape == (64, 2)
    np.testing.assert_allclose(got, before, rtol=1e-5, atol=1e-5)
    one = session.run(None, {ONNX_INPUT_NAME: xd[:1].astype(np.float32)})[0]  # dynamic batch
    np.testing.assert_allclose(one, before[:1], rtol=1e-5, atol=1e-5)
    assert np.array_equal(predict(model, xd), before)  # the export left the model intact

    # a model loaded from .keras exports the same way
    model.save(tmp_path / "m.keras")
    export_onnx(keras.models.load_model(tmp_path / "m.keras", safe_mode=True), tmp_path / "m2.onnx", 2)
    again = ort.InferenceSession(str(tmp_path / "m2.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(again.run(None, {ONNX_INPUT_NAME: xd.astype(np.float32)})[0], before, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match=re.escape("n_inputs=3 but the model takes 2 input column(s)")):
        export_onnx(model, tmp_path / "bad.onnx", n_inputs=3)
