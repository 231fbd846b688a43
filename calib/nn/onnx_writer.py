"""The network as an ONNX graph, written directly from its weights (no TensorFlow tracing).

A :func:`~calib.nn.network.build_model` network is a fixed chain: input ``Normalization`` ->
``Dense`` layers with an element-wise activation (``Dropout`` between them, a no-op at
inference) -> linear ``Dense`` -> inverted ``Normalization``. :func:`network_graph` writes that
chain as ONNX nodes (``MatMul``/``Add``, ``Tanh``/``Elu``/``Relu``/``Sigmoid``) with the
weights as float32 initializers, in a few milliseconds, where tracing the model and
converting it with tf2onnx takes about 0.2-0.4 s per model. The scaling constants are
computed as Keras computes them (``max(sqrt(variance), epsilon)`` in float32) and folded
into the first and last layers' weights (or written as ``Sub``/``Div`` and ``Mul``/``Add``
nodes: ``fold_scaling=False``), so the graph gives Keras' predictions to float32 rounding.

A model with any other layer is refused with :class:`UnsupportedLayer`;
:func:`~calib.nn.network.export_onnx` then falls back to tf2onnx.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["UnsupportedLayer", "network_graph", "IR_VERSION"]

#: IR version of the graphs written here (what tf2onnx 1.17 writes for opset 15; ONNX Runtime
#: >= 1.10 reads it).
IR_VERSION = 8
_EPSILON = np.float32(1e-7)  # keras.backend.epsilon(): the floor of a Normalization's sqrt(variance)
_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "elu": "Elu", "linear": None}


class UnsupportedLayer(ValueError):
    """The model holds a layer (or an activation) the direct writer does not know."""


def _scale_of(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ``max(sqrt(variance), epsilon)`` of a ``Normalization`` layer, float32 (1, n)."""
    if tuple(getattr(layer, "axis", (-1,)) or ()) not in ((-1,), (1,)):
        raise UnsupportedLayer(f"Normalization layer {layer.name!r} normalises axis {layer.axis!r}")
    mean = np.asarray(layer.mean, dtype=np.float32).reshape(1, -1)
    var = np.asarray(layer.variance, dtype=np.float32).reshape(1, -1)
    return mean, np.maximum(np.sqrt(var), _EPSILON).astype(np.float32)


def network_graph(model: Any, n_inputs: int, input_name: str, output_name: str, opset: int,
                  fold_scaling: bool = True) -> Any:
    """The ONNX ``ModelProto`` of a :func:`~calib.nn.network.build_model` network.

    Parameters
    ----------
    model : keras.Model
        A network of :func:`~calib.nn.network.build_model` (trained or loaded from ``.keras``).
    n_inputs : int
        Number of input columns (checked by the caller).
    input_name, output_name : str
        Names of the graph's float32 input ``(N, n_inputs)`` and output ``(N, n_outputs)``.
    opset : int
        ONNX opset of the default domain (>= 13).
    fold_scaling : bool, default=True
        Fold the input scaling into the first ``Dense`` layer (``W / scale``, ``b - (mean /
        scale) @ W``) and the output scaling into the last (``W * scale``, ``b * scale +
        mean``), computed in float64 and stored as float32: the graph is then the bare
        ``MatMul``/``Add``/activation chain. Element-wise scaling of a few columns costs ONNX
        Runtime more than the matrix products of a small network: folded, a 2 x 32 network
        runs about twice as fast (``benchmarks/inference.py``). The predictions equal Keras'
        to float32 rounding (the input's own float32 rounding, scaled). False: ``Sub``/``Div``
        and ``Mul``/``Add`` nodes, as Keras computes them.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker``.

    Raises
    ------
    UnsupportedLayer
        If the model holds a layer other than ``InputLayer``, ``Normalization``, ``Dense`` and
        ``Dropout``, an unknown activation, or the layers are not one chain in that order.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # --- read the chain: [input scaling], Dense (+ activation) ..., [output scaling]
    in_scale: tuple[str, np.ndarray, np.ndarray] | None = None
    out_scale: tuple[str, np.ndarray, np.ndarray] | None = None
    dense: list[tuple[str, np.ndarray, np.ndarray, str]] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if out_scale is not None:
            raise UnsupportedLayer(f"layer {layer.name!r} ({kind}) after the output scaling")
        if kind == "InputLayer" or kind == "Dropout":
            continue
        if kind == "Normalization":
            mean, scale = _scale_of(layer)
            if getattr(layer, "invert", False):
                if not dense:
                    raise UnsupportedLayer(f"inverted Normalization {layer.name!r} before any Dense layer")
                out_scale = (layer.name, mean, scale)
            else:
                if dense or in_scale is not None:
                    raise UnsupportedLayer(f"Normalization {layer.name!r} between Dense layers")
                in_scale = (layer.name, mean, scale)
            continue
        if kind != "Dense":
            raise UnsupportedLayer(f"layer {layer.name!r} is a {kind}")
        weights = layer.get_weights()
        if len(weights) != 2:
            raise UnsupportedLayer(f"Dense layer {layer.name!r} has no bias")
        act = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if act not in _ACTIVATIONS:
            raise UnsupportedLayer(f"Dense layer {layer.name!r} has activation {act!r}")
        dense.append((layer.name, np.asarray(weights[0]), np.asarray(weights[1]), act))
    if not dense:
        raise UnsupportedLayer("the model has no Dense layer")

    if fold_scaling:  # into the first and the last Dense layer, in float64
        if in_scale is not None:
            name, kernel, bias, act = dense[0]
            mean, scale = (np.asarray(v, np.float64).reshape(-1) for v in in_scale[1:])
            k = np.asarray(kernel, np.float64) / scale[:, None]
            dense[0] = (name, k, np.asarray(bias, np.float64) - mean @ k, act)
            in_scale = None
        if out_scale is not None:
            name, kernel, bias, act = dense[-1]
            mean, scale = (np.asarray(v, np.float64).reshape(-1) for v in out_scale[1:])
            dense[-1] = (name, np.asarray(kernel, np.float64) * scale[None, :],
                         np.asarray(bias, np.float64) * scale + mean, act)
            out_scale = None

    # --- write it
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    current = input_name
    if in_scale is not None:
        name, mean, scale = in_scale
        t = node("Sub", [current, const(f"{name}/mean", mean)], f"{name}/sub")
        current = node("Div", [t, const(f"{name}/scale", scale)], f"{name}/div")
    for name, kernel, bias, act in dense:
        t = node("MatMul", [current, const(f"{name}/kernel", kernel)], f"{name}/matmul")
        current = node("Add", [t, const(f"{name}/bias", bias)], f"{name}/add")
        op = _ACTIVATIONS[act]
        if op is not None:
            current = node(op, [current], f"{name}/{act}", **({"alpha": 1.0} if op == "Elu" else {}))
    if out_scale is not None:
        name, mean, scale = out_scale
        t = node("Mul", [current, const(f"{name}/scale", scale)], f"{name}/mul")
        current = node("Add", [t, const(f"{name}/mean", mean)], f"{name}/add")
    n_out = int(dense[-1][1].shape[1])
    nodes.append(helper.make_node("Identity", [current], [output_name], name=output_name))
    graph = helper.make_graph(
        nodes, "calib_network",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", int(n_inputs)])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", n_out])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))], producer_name="calib")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto
