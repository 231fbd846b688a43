"""The network as an ONNX graph, written directly from its weights (no TensorFlow tracing).

A :func:`~calib.nn.network.build_model` network is a fixed chain: input ``Normalization`` ->
``Dense`` layers with an element-wise activation (``Dropout`` between them, a no-op at
inference) -> linear ``Dense`` -> inverted ``Normalization``. :func:`network_graph` writes that
chain as ONNX nodes (``Sub``/``Div``, ``MatMul``/``Add``, ``Tanh``/``Elu``/``Relu``/
``Sigmoid``, ``Mul``/``Add``) with the weights as float32 initializers, in a few milliseconds,
where tracing the model and converting it with tf2onnx takes about 0.2-0.4 s per model.
The scaling constants are computed as Keras computes them (``max(sqrt(variance), epsilon)``
in float32), so the graph gives Keras' predictions to float32 rounding.

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


def network_graph(model: Any, n_inputs: int, input_name: str, output_name: str, opset: int) -> Any:
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

    nodes: list[Any] = []
    inits: list[Any] = []
    current = input_name
    n_out = None
    seen_output_norm = False

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    layers = list(model.layers)
    dense_seen = False
    for layer in layers:
        kind = type(layer).__name__
        if seen_output_norm:
            raise UnsupportedLayer(f"layer {layer.name!r} ({kind}) after the output scaling")
        if kind == "InputLayer" or kind == "Dropout":
            continue
        if kind == "Normalization":
            mean, scale = _scale_of(layer)
            if getattr(layer, "invert", False):
                if not dense_seen:
                    raise UnsupportedLayer(f"inverted Normalization {layer.name!r} before any Dense layer")
                t = node("Mul", [current, const(f"{layer.name}/scale", scale)], f"{layer.name}/mul")
                current = node("Add", [t, const(f"{layer.name}/mean", mean)], f"{layer.name}/add")
                seen_output_norm = True
            else:
                if dense_seen:
                    raise UnsupportedLayer(f"Normalization {layer.name!r} between Dense layers")
                t = node("Sub", [current, const(f"{layer.name}/mean", mean)], f"{layer.name}/sub")
                current = node("Div", [t, const(f"{layer.name}/scale", scale)], f"{layer.name}/div")
            continue
        if kind != "Dense":
            raise UnsupportedLayer(f"layer {layer.name!r} is a {kind}")
        weights = layer.get_weights()
        if len(weights) != 2:
            raise UnsupportedLayer(f"Dense layer {layer.name!r} has no bias")
        kernel, bias = weights
        act = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if act not in _ACTIVATIONS:
            raise UnsupportedLayer(f"Dense layer {layer.name!r} has activation {act!r}")
        t = node("MatMul", [current, const(f"{layer.name}/kernel", kernel)], f"{layer.name}/matmul")
        current = node("Add", [t, const(f"{layer.name}/bias", bias)], f"{layer.name}/add")
        op = _ACTIVATIONS[act]
        if op is not None:
            current = node(op, [current], f"{layer.name}/{act}", **({"alpha": 1.0} if op == "Elu" else {}))
        n_out = int(kernel.shape[1])
        dense_seen = True
    if n_out is None:
        raise UnsupportedLayer("the model has no Dense layer")
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
