"""The network: construction, inference and ONNX export.

:func:`build_model` turns a :class:`~calib.nn.config.ModelConfig` into a plain Keras functional
model that maps raw readings in physical units (deg, degC, ...) to the target in its unit (hPa,
% air saturation, ...): the feature scaling and the inverse target scaling are
``keras.layers.Normalization`` layers inside the graph, so the saved ``.keras`` file and its ONNX
export need nothing else. :func:`predict` runs inference in large chunks; :func:`export_onnx`
writes an ONNX file. TensorFlow and Keras are imported inside the functions that need them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constraints import Interval, check_param
from ..errors import ConfigError
from ..scaling import Scaler
from .config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps the import TF-free
    import keras

__all__ = [
    "ONNX_INPUT_NAME",
    "ONNX_OUTPUT_NAME",
    "build_model",
    "dense_layers",
    "export_onnx",
    "onnx_model",
    "tf_activation",
    "predict",
    "zero_output",
]

_AT_LEAST_ONE = [Interval(Integral, 1, None)]

#: Name of the single input of an ONNX file written by :func:`export_onnx`.
ONNX_INPUT_NAME = "readings"
#: Name of the single output of an ONNX file written by :func:`export_onnx`.
ONNX_OUTPUT_NAME = "prediction"
#: ONNX opset of :func:`export_onnx` when none is given (tf2onnx 1.17's default).
DEFAULT_OPSET = 15


def _layer_seeds(seed: int, n: int) -> list[int]:
    """``n`` well-separated 31-bit seeds derived from one user seed."""
    return [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(seed).generate_state(max(n, 1))][:n]


def _initializer(config: ModelConfig, seed: int):
    from .tf import keras as _quiet_keras

    keras = _quiet_keras()

    if config.init == "glorot":
        return keras.initializers.GlorotUniform(seed=seed)
    if config.init == "he":
        return keras.initializers.HeNormal(seed=seed)
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=config.init_stddev, seed=seed)


def _check_scaler(scaler: Scaler, n: int, what: str) -> None:
    if not isinstance(scaler, Scaler):
        raise ConfigError(f"{what} must be a calib.scaling.Scaler, got {type(scaler).__name__}")
    if len(scaler.center) != n or len(scaler.scale) != n:
        raise ConfigError(
            f"{what} has {len(scaler.center)} column(s) but the model has {n}"
        )


def build_model(
    config: ModelConfig, n_inputs: int, n_outputs: int, x_scaler: Scaler, y_scaler: Scaler
) -> keras.Model:
    """Build the (untrained) network for ``config``.

    The graph is ``Input(n_inputs, float32, name="readings")`` -> ``Normalization``
    (``z = (x - center) / scale`` of ``x_scaler``) -> ``Dense`` hidden layers (each followed by
    ``Dropout`` when ``config.dropout > 0``) -> linear ``Dense(n_outputs)`` named
    ``"output_scaled"`` -> inverted ``Normalization`` (``y = z * scale + center`` of
    ``y_scaler``). Only built-in layers are used, so the model saves as ``.keras``, loads with
    ``keras.models.load_model(path, safe_mode=True)`` without ``custom_objects`` and exports to
    ONNX.

    Parameters
    ----------
    config : ModelConfig
    n_inputs : int
        Number of input columns (>= 1), raw readings in physical units.
    n_outputs : int
        Number of targets (>= 1): 1 = O2 only, 2 = O2 and temperature (multi-task).
    x_scaler, y_scaler : Scaler
        Fitted on the training rows; ``n_inputs`` and ``n_outputs`` columns.

    Returns
    -------
    keras.Model
        Deterministic in ``config.seed``: the same config gives the same initial weights.

    Raises
    ------
    ConfigError
        If ``n_inputs`` or ``n_outputs`` < 1 or a scaler has the wrong number of columns.
    """
    from .tf import keras as _quiet_keras

    keras = _quiet_keras()

    check_param("n_inputs", n_inputs, _AT_LEAST_ONE)
    check_param("n_outputs", n_outputs, _AT_LEAST_ONE)
    _check_scaler(x_scaler, n_inputs, "x_scaler")
    _check_scaler(y_scaler, n_outputs, "y_scaler")

    n_dense = len(config.hidden_layers) + 1
    init_seeds = _layer_seeds(config.seed, 2 * n_dense)
    drop_seeds = init_seeds[n_dense:]
    reg = (
        keras.regularizers.L1L2(l1=config.l1, l2=config.l2)
        if (config.l1 > 0 or config.l2 > 0)
        else None
    )
    activation = "linear" if config.activation == "identity" else config.activation

    x_center = np.asarray(x_scaler.center, dtype=np.float64)
    x_var = np.asarray(x_scaler.scale, dtype=np.float64) ** 2
    y_center = np.asarray(y_scaler.center, dtype=np.float64)
    y_var = np.asarray(y_scaler.scale, dtype=np.float64) ** 2

    inputs = keras.Input(shape=(int(n_inputs),), dtype="float32", name="readings")
    h = keras.layers.Normalization(
        mean=x_center.tolist(), variance=x_var.tolist(), name="input_scaling"
    )(inputs)
    for i, width in enumerate(config.hidden_layers):
        h = keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=_initializer(config, init_seeds[i]),
            bias_initializer="zeros",
            kernel_regularizer=reg,
            name=f"hidden_{i + 1}",
        )(h)
        if config.dropout > 0:
            h = keras.layers.Dropout(config.dropout, seed=drop_seeds[i], name=f"dropout_{i + 1}")(h)
    z = keras.layers.Dense(
        int(n_outputs),
        activation=None,
        kernel_initializer=_initializer(config, init_seeds[n_dense - 1]),
        bias_initializer="zeros",
        kernel_regularizer=reg,
        name="output_scaled",
    )(h)
    outputs = keras.layers.Normalization(
        mean=y_center.tolist(), variance=y_var.tolist(), invert=True, name="output"
    )(z)
    model = keras.Model(inputs, outputs, name="calib_mlp")
    if config.family == "hybrid":
        zero_output(model, y_scaler, first_only=True)
    elif config.family == "physics":
        zero_output(model, y_scaler)
    return model


def zero_output(model: keras.Model, y_scaler: Scaler, first_only: bool = False) -> None:
    """Make the network's outputs (or only its first) exactly 0 in target units.

    Those columns of the ``output_scaled`` kernel are set to 0 and their biases to
    ``-center / scale``, so the inverted output scaling gives ``z * scale + center = 0``.
    A ``hybrid`` member (physics fit + network on its residual, O2 first) therefore starts
    as the physics fit itself, and training moves it away only as far as the data ask (the
    zero-initialised residual branch of ReZero/Fixup); the hidden layers keep their random
    initial weights, so gradients flow from the first step on. A ``physics`` member keeps
    all outputs at 0 (with an identity output scaling, exactly 0.0).
    """
    last = model.get_layer("output_scaled")
    kernel, bias = (w.copy() for w in last.get_weights())
    center = np.asarray(y_scaler.center, dtype=np.float64).reshape(-1)
    scale = np.asarray(y_scaler.scale, dtype=np.float64).reshape(-1)
    cols = slice(0, 1) if first_only else slice(None)
    kernel[:, cols] = 0.0
    bias[cols] = -center[cols] / scale[cols]
    last.set_weights([kernel, bias])


def dense_layers(model: keras.Model) -> list:
    """The ``Dense`` layers of a :func:`build_model` network in graph order (hidden, then output).

    The order of the flat weight vector of :func:`calib.nn.train` (kernel, then bias, per layer).
    """
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    return hidden + [model.get_layer("output_scaled")]


def tf_activation(name: str) -> Any:
    """The TensorFlow function of ``ModelConfig.activation`` ``name``: what the hidden ``Dense``
    layers of :func:`build_model` apply, for the hand-written training loops of
    :mod:`calib.nn.training` and :mod:`calib.nn.stacked`."""
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()
    return {"relu": tf.nn.relu, "elu": tf.nn.elu, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
            "identity": lambda h: h}[name]


# --------------------------------------------------------------------------- inference


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Predict the target for raw readings, in chunks.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_model` / :func:`~calib.nn.training.train` (or loaded from ``.keras``).
    x : ndarray of shape (n, n_inputs) or (n_inputs,)
        Raw readings in physical units; one 1-D row is treated as a single reading.
    batch_size : int, default=65536
        Rows per chunk (>= 1); the model is called directly on each chunk in inference mode.

    Returns
    -------
    ndarray of float64
        Shape (n,) for a single-output model, (n, n_outputs) otherwise, in the target's unit.

    Raises
    ------
    ConfigError
        If ``batch_size`` < 1 or ``x`` has the wrong number of columns.
    """
    check_param("batch_size", batch_size, _AT_LEAST_ONE)
    n_in = int(model.inputs[0].shape[-1])
    n_out = int(model.outputs[0].shape[-1])
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_in:
        raise ConfigError(f"x must have shape (n, {n_in}), got {arr.shape}")
    out = np.empty((arr.shape[0], n_out), dtype=np.float64)
    for start in range(0, arr.shape[0], batch_size):
        chunk = arr[start : start + batch_size]
        out[start : start + len(chunk)] = np.asarray(model(chunk, training=False))
    return out[:, 0] if n_out == 1 else out


def export_onnx(model: keras.Model, path: str | Path, n_inputs: int, opset: int | None = None,
                writer: str = "auto") -> None:
    """Write ``model`` as an ONNX file for ONNX Runtime (no TensorFlow needed to run it).

    The file has one float32 input named ``"readings"`` (:data:`ONNX_INPUT_NAME`) of shape
    ``(batch, n_inputs)`` with a dynamic batch dimension, raw readings in physical units,
    and one float32 output named ``"prediction"`` (:data:`ONNX_OUTPUT_NAME`) of shape
    ``(batch, n_outputs)`` in the target's unit (2-D also for a single target).

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        Destination ``.onnx`` file; its folder must exist.
    n_inputs : int
        Number of input columns.
    opset : int, optional
        ONNX opset (default domain) to export; default 15 (what tf2onnx 1.17 writes).
        Artifacts pin theirs (:data:`calib.artifact.contract.ONNX_OPSET`).
    writer : {"auto", "direct", "tf2onnx"}, default="auto"
        ``"direct"`` writes the graph from the weights (:func:`calib.nn.onnx_writer.network_graph`,
        milliseconds; :func:`build_model` networks only); ``"tf2onnx"`` traces the model and
        converts it with Keras' ``model.export(format="onnx")`` (about 0.2-0.4 s); ``"auto"``
        writes directly and falls back to tf2onnx for a model with other layers.

    Raises
    ------
    ConfigError
        If ``n_inputs`` disagrees with the model, or ``writer`` is unknown.
    UnsupportedLayer
        With ``writer="direct"``, for a model the direct writer does not know.
    """
    Path(path).write_bytes(onnx_model(model, n_inputs, opset, writer).SerializeToString())


def onnx_model(model: keras.Model, n_inputs: int, opset: int | None = None, writer: str = "auto") -> Any:
    """:func:`export_onnx`'s graph as an in-memory ``onnx.ModelProto`` (same parameters, same
    errors), for callers that assemble graphs (:mod:`calib.artifact.export`)."""
    import onnx

    from .onnx_writer import UnsupportedLayer, network_graph

    if writer not in ("auto", "direct", "tf2onnx"):
        raise ConfigError(f"writer must be 'auto', 'direct' or 'tf2onnx', got {writer!r}")
    n_model = int(model.inputs[0].shape[-1])
    if n_inputs != n_model:
        raise ConfigError(f"n_inputs={n_inputs!r} but the model takes {n_model} input column(s)")
    if writer != "tf2onnx":
        try:
            return network_graph(model, n_inputs, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME,
                                 DEFAULT_OPSET if opset is None else int(opset))
        except UnsupportedLayer:
            if writer == "direct":
                raise
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        _export_tf2onnx(model, path, n_inputs, opset)
        return onnx.load(str(path))


def _export_tf2onnx(model: keras.Model, path: str | Path, n_inputs: int, opset: int | None) -> None:
    """:func:`export_onnx` by tracing: Keras' ``model.export(format="onnx")`` (tf2onnx)."""
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()
    spec = tf.TensorSpec((None, int(n_inputs)), tf.float32, name=ONNX_INPUT_NAME)
    # A Normalization layer built from given mean/variance holds them as eager tensors;
    # the traced function captures those as extra placeholder inputs, which tf2onnx 1.17
    # then exports as required ONNX inputs. As numpy arrays they become graph constants,
    # so swap them in for the export only.
    swapped = []
    for layer in model.layers:
        if type(layer).__name__ == "Normalization" and getattr(layer, "mean", None) is not None:
            swapped.append((layer, layer.mean, layer.variance))
            layer.mean = np.asarray(layer.mean, dtype=np.float32)
            layer.variance = np.asarray(layer.variance, dtype=np.float32)
    try:
        with warnings.catch_warnings():
            # keras patches tf2onnx for numpy 2 and trips numpy's np.object FutureWarning
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(path), format="onnx", input_signature=[spec], verbose=False,
                         opset_version=opset)
    finally:
        for layer, mean, variance in swapped:
            layer.mean, layer.variance = mean, variance
    _rename_onnx_output(path, ONNX_OUTPUT_NAME)


def _rename_onnx_output(path: str | Path, name: str) -> None:
    """Give the single graph output of an ONNX file a stable name (tf2onnx writes ``Identity:0``)."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        for i, out in enumerate(node.output):
            if out == old:
                node.output[i] = name
        for i, inp in enumerate(node.input):
            if inp == old:
                node.input[i] = name
    graph.output[0].name = name
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
