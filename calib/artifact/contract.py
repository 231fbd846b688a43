"""The input/output contract of ``model.onnx``: one named input per feature, pinned opset.

A graph with one positional matrix ``readings`` [N, n_features] lets lab software swap two
columns without any error (the phase fed as the temperature gives thousands of umol/L). So
the last step of every export (:func:`calib.artifact.export.export_artifact`, a spot child
in :mod:`calib.spots.child`) is :func:`name_inputs`: the graph then takes one float32 [N]
input per feature, named exactly as the feature in ``calibration.json`` (``phase_5000hz_deg``,
``temperature_degC``: name and unit in one word), and concatenates them inside the graph
into the internal tensor ``readings`` that everything downstream (scaling, physics fit,
trust head, a spot child's correction) reads. A consumer feeds inputs by name, so a swap
cannot happen; a missing, extra or misspelt name, a float64 or a 2-D array is refused by
ONNX Runtime itself.

The contract is recorded twice: in ``calibration.json`` (``onnx.inputs``, ``onnx.opset``,
``onnx.output_meaning``) and in ``model.onnx``'s ``metadata_props`` (``inputs``, ``opset``,
``output_meaning``), which :func:`calib.artifact.schema.check_onnx_stamp` cross-checks.
Artifacts of calib < 0.2 (schema 1.1: one input ``readings``) still load.

This module imports ``onnx`` only inside the functions that edit a graph.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .onnx import drop_prefixed
from .store import INPUT_NAME
from .trust_graph import DOMAIN_CODE, DOMAIN_DISTANCE

__all__ = ["ONNX_OPSET", "INPUT_DTYPE", "PREFIX", "name_inputs", "unname_inputs", "output_meaning",
           "contract_metadata"]

#: The ONNX opset (default domain) calib exports; ONNX Runtime >= 1.10 and MATLAB's
#: ``importNetworkFromONNX`` read it.
ONNX_OPSET = 15
#: Element type of every input (ONNX ``tensor(float)``).
INPUT_DTYPE = "float32"
#: Name prefix of the nodes and constants :func:`name_inputs` adds.
PREFIX = "calib_inputs/"


def _onnx_names(g: Any) -> set[str]:
    names = {i.name for i in g.initializer} | {o.name for o in g.output}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
    return names


def name_inputs(proto: Any, features: Sequence[str]) -> Any:
    """Replace the graph input ``readings`` [N, n] by one float32 [N] input per feature (in place).

    Parameters
    ----------
    proto : onnx.ModelProto
        A graph whose only input is ``readings`` float32 [N, len(features)].
    features : sequence of str
        The feature names in column order (``calibration.json`` ``features[].name``).

    Returns
    -------
    onnx.ModelProto
        ``proto``, checked by ``onnx.checker``.

    Raises
    ------
    ConfigError
        The graph has other inputs, or a feature name is already a tensor of the graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import numpy as np

    g = proto.graph
    features = [str(f) for f in features]
    if [i.name for i in g.input] != [INPUT_NAME]:
        raise ConfigError(f"expected a graph with the one input {INPUT_NAME!r}, got {[i.name for i in g.input]}")
    taken = sorted(set(features) & (_onnx_names(g) - {INPUT_NAME}))
    if taken or INPUT_NAME in features:
        raise ConfigError(f"feature name(s) {', '.join(taken or [INPUT_NAME])} clash with tensors of the graph; "
                          "rename the feature(s)")
    axis = f"{PREFIX}axis1"
    nodes = [helper.make_node("Unsqueeze", [f, axis], [f"{PREFIX}{f}"], name=f"{PREFIX}{f}") for f in features]
    nodes.append(helper.make_node("Concat", [f"{PREFIX}{f}" for f in features], [INPUT_NAME], axis=1,
                                  name=f"{PREFIX}concat"))
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    g.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), axis))
    del g.input[:]
    g.input.extend(helper.make_tensor_value_info(f, TensorProto.FLOAT, ["N"]) for f in features)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def unname_inputs(proto: Any) -> Any:
    """Undo :func:`name_inputs` (in place): the graph takes ``readings`` [N, n] again.

    A graph that already takes ``readings`` (an artifact of calib < 0.2) is returned as it is.
    """
    from onnx import TensorProto, helper

    g = proto.graph
    if [i.name for i in g.input] == [INPUT_NAME]:
        return proto
    n = len(g.input)
    drop_prefixed(proto, PREFIX)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n]))
    return proto


def output_meaning(target: Mapping[str, Any], aux: Sequence[Mapping[str, Any]], outputs: Sequence[str],
                   level: float | None = None) -> dict[str, str]:
    """One line per graph output: what it is, its type and shape, its unit.

    Parameters
    ----------
    target : mapping
        ``calibration.json`` ``target`` (``name``, ``unit``).
    aux : sequence of mapping
        ``aux_targets``.
    outputs : sequence of str
        The graph's output names.
    level : float, optional
        The conformal interval's level (0..1).
    """
    t, u = str(target["name"]), str(target["unit"])
    lvl = f"{100 * level:g} % " if level else ""
    cols = ", ".join([f"{t} ({u})"] + [f"{a['name']} ({a['unit']})" for a in aux])
    split = bool(aux) and all(str(a["name"]) in outputs for a in aux)  # schema >= 1.3: one output per target
    known = {
        t: (f"float32 [N, {1 + len(aux)}]: predictions of {cols}" if aux and not split
            else f"float32 [N]: predicted {t} in {u}"),
        f"{t}_std": f"float32 [N]: spread of the fold models' {t} (standard deviation, ddof=0) in {u}",
        f"{t}_lo": f"float32 [N]: lower bound of the {lvl}conformal interval of {t} in {u}",
        f"{t}_hi": f"float32 [N]: upper bound of the {lvl}conformal interval of {t} in {u}",
        DOMAIN_CODE: ("int32 [N]: bit mask, 0 = in the calibrated domain; 1 an input outside its calibrated "
                      "range, 2 far from every calibration point (joint), 4 prediction outside the "
                      "calibrated target range, 8 physically impossible reading"),
        DOMAIN_DISTANCE: ("float32 [N]: distance to the nearest calibration point over the out-of-fold "
                          "threshold (<= 1 in domain)"),
    }
    for a in aux if split else ():
        n, au = str(a["name"]), str(a["unit"])
        known[n] = f"float32 [N]: predicted {n} in {au} (auxiliary target, same network)"
        known[f"{n}_lo"] = f"float32 [N]: lower bound of the {lvl}conformal interval of {n} in {au}"
        known[f"{n}_hi"] = f"float32 [N]: upper bound of the {lvl}conformal interval of {n} in {au}"
    return {o: known.get(o, "") for o in outputs}


def contract_metadata(features: Sequence[Mapping[str, Any]], target: Mapping[str, Any],
                      aux: Sequence[Mapping[str, Any]], outputs: Sequence[str], opset: int,
                      level: float | None = None) -> dict[str, Any]:
    """The contract entries of ``calibration.json`` ``onnx``: ``inputs``, ``input_dtype``,
    ``input_shape``, ``outputs``, ``output_meaning``, ``opset``."""
    if opset != ONNX_OPSET:
        raise ConfigError(f"the graph has opset {opset}, calib exports opset {ONNX_OPSET}")
    return {
        "inputs": [str(f["name"]) for f in features],
        "input_dtype": INPUT_DTYPE,
        "input_shape": ["N"],
        "outputs": list(outputs),
        "output_meaning": output_meaning(target, aux, outputs, level),
        "opset": int(opset),
    }
