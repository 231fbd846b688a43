"""ONNX graph assembly of an artifact: one graph from the final and fold models, and its stamp.

:func:`merge_onnx` joins the ONNX exports of the final model and the k fold models into one
graph with input ``readings`` and outputs ``<target>`` (the final model) and
``<target>_std`` (the spread of the fold models); :func:`stamp_onnx` writes the artifact's
identity (version, features with units and ranges, target, outputs) into the graph's
metadata properties, so lab software that loads only ``model.onnx`` can read them (the input
contract, ``inputs`` and ``output_meaning``, is :mod:`calib.artifact.contract`'s).
The physics fits as ONNX nodes are in :mod:`calib.artifact.physics_graph`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArtifactError
from .store import INPUT_NAME, semver_key

__all__ = ["merge_onnx", "stamp_onnx", "opset_of", "drop_prefixed"]


def opset_of(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def drop_prefixed(proto: Any, prefix: str) -> Any:
    """Remove the nodes and initializers whose names start with ``prefix`` (in place): a graph
    stage that a function appended under its own prefix (trust head, named-input contract)."""
    g = proto.graph
    nodes = [n for n in g.node if not n.name.startswith(prefix)]
    del g.node[:]
    g.node.extend(nodes)
    inits = [i for i in g.initializer if not i.name.startswith(prefix)]
    del g.initializer[:]
    g.initializer.extend(inits)
    return proto


def merge_onnx(protos: list[Any], target: str, n_features: int, n_out: int, std_name: str | None,
               aux: Sequence[str] = ()) -> Any:
    """One graph: input ``readings``; ``target`` from protos[0]; ``std_name`` across protos[1:].

    With auxiliary targets (``n_out > 1``) and their names ``aux``, every target is its own
    output float32 [N] named as it (schema 1.3); without ``aux`` the matrix layout of schema
    <= 1.2 (``target`` [N, n_out], column 0 the primary target) is kept.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.compose import add_prefix

    from ..nn import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME

    nodes, inits, vinfo = [], [], []
    outs = []
    for i, proto in enumerate(protos):
        g = proto.graph
        if [x.name for x in g.input] != [ONNX_INPUT_NAME] or [o.name for o in g.output] != [ONNX_OUTPUT_NAME]:
            raise ArtifactError(
                f"unexpected ONNX export of model {i}: inputs {[x.name for x in g.input]}, "
                f"outputs {[o.name for o in g.output]}"
            )
        p = add_prefix(proto, f"m{i}/")
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [f"m{i}/{ONNX_INPUT_NAME}"], name=f"m{i}/input"))
        nodes.extend(p.graph.node)
        inits.extend(p.graph.initializer)
        vinfo.extend(p.graph.value_info)
        outs.append(f"m{i}/{ONNX_OUTPUT_NAME}")
    opset = max(opset_of(p) for p in protos)
    new_axes = opset >= 18  # ReduceMean takes axes as an input from opset 18

    def reduce_mean(x: str, y: str, keepdims: int) -> Any:
        if new_axes:
            return helper.make_node("ReduceMean", [x, "calib/axis1"], [y], keepdims=keepdims, name=y)
        return helper.make_node("ReduceMean", [x], [y], axes=[1], keepdims=keepdims, name=y)

    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "calib/axis1"))
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "calib/col0"))
    if n_out == 1:
        if opset >= 13:
            nodes.append(helper.make_node("Squeeze", [outs[0], "calib/axis1"], [target], name="calib/target"))
        else:
            nodes.append(helper.make_node("Squeeze", [outs[0]], [target], axes=[1], name="calib/target"))
        out_shape: list[Any] = ["N"]
    elif aux:
        if len(aux) != n_out - 1:
            raise ArtifactError(f"{n_out} model outputs but {len(aux)} auxiliary target name(s)")
        for j, name in enumerate([target, *aux]):
            inits.append(numpy_helper.from_array(np.array(j, dtype=np.int64), f"calib/out{j}"))
            nodes.append(helper.make_node("Gather", [outs[0], f"calib/out{j}"], [name], axis=1, name=f"calib/output{j}"))
        out_shape = ["N"]
    else:
        nodes.append(helper.make_node("Identity", [outs[0]], [target], name="calib/target"))
        out_shape = ["N", n_out]
    outputs = [helper.make_tensor_value_info(target, TensorProto.FLOAT, out_shape)]
    outputs += [helper.make_tensor_value_info(a, TensorProto.FLOAT, ["N"]) for a in aux]
    if std_name is not None:
        cols = []
        for i, o in enumerate(outs[1:], start=1):
            nodes.append(helper.make_node("Gather", [o, "calib/col0"], [f"calib/fold{i}"], axis=1, name=f"calib/fold{i}"))
            cols.append(f"calib/fold{i}")
        nodes.append(helper.make_node("Concat", cols, ["calib/folds"], axis=1, name="calib/folds"))
        nodes.append(reduce_mean("calib/folds", "calib/mean", 1))
        nodes.append(helper.make_node("Sub", ["calib/folds", "calib/mean"], ["calib/dev"], name="calib/dev"))
        nodes.append(helper.make_node("Mul", ["calib/dev", "calib/dev"], ["calib/sq"], name="calib/sq"))
        nodes.append(reduce_mean("calib/sq", "calib/var", 0))
        nodes.append(helper.make_node("Sqrt", ["calib/var"], [std_name], name="calib/std"))
        outputs.append(helper.make_tensor_value_info(std_name, TensorProto.FLOAT, ["N"]))
    used = {i for n in nodes for i in n.input}
    inits = [t for t in inits if t.name in used or not t.name.startswith("calib/")]
    graph = helper.make_graph(
        nodes,
        "calib",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_features])],
        outputs,
        initializer=inits,
        value_info=vinfo,
    )
    domains: dict[str, int] = {}
    for p in protos:
        for o in p.opset_import:
            domains[o.domain] = max(domains.get(o.domain, 0), o.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(domains.items())],
        producer_name="calib",
    )
    model.ir_version = max(p.ir_version for p in protos)
    onnx.checker.check_model(model, full_check=True)
    return model


def stamp_onnx(proto: Any, meta: Mapping[str, Any]) -> bytes:
    from onnx import helper

    major, minor, patch = semver_key(meta["version"])
    proto.model_version = major * 1_000_000 + minor * 1_000 + patch
    onnx_meta = meta["onnx"]
    proto.doc_string = (
        f"calib calibration model {meta['name']} {meta['version']}: one float32 [N] input per feature, by "
        f"name ({', '.join(f['name'] + ' in ' + f['unit'] for f in meta['features'])}) -> "
        f"{meta['target']['name']} in {meta['target']['unit']}; metadata output_meaning says what every "
        "output is"
    )
    feats = [
        {k: f.get(k) for k in ("name", "unit", "source", "source_unit", "frequency_hz", "min", "max")}
        for f in meta["features"]
    ]
    props = {
        "calib_version": str(meta["versions"].get("calib")),
        "schema_version": meta["schema_version"],
        "model_id": meta["model_id"],
        "name": meta["name"],
        "version": meta["version"],
        "created_utc": meta["created_utc"],
        "features": json.dumps(feats),
        "target": meta["target"]["name"],
        "unit": meta["target"]["unit"],
        "aux_targets": json.dumps([{"name": a["name"], "unit": a["unit"]} for a in meta["aux_targets"]]),
        "outputs": json.dumps(onnx_meta["outputs"]),
        "inputs": json.dumps([{"name": f["name"], "unit": f["unit"], "dtype": onnx_meta["input_dtype"],
                               "shape": onnx_meta["input_shape"]} for f in meta["features"]]),
        "output_meaning": json.dumps(onnx_meta["output_meaning"]),
        "opset": str(onnx_meta["opset"]),
    }
    if meta.get("spot_normalisation"):
        props["use"] = ("spot-normalised batch model: its numbers are only right through a spot's child "
                        "(models/<name>.<spot>/, calib adjust); do not apply this graph to raw readings")
    del proto.metadata_props[:]
    helper.set_model_props(proto, props)
    return proto.SerializeToString()


# --------------------------------------------------------------------------- export: card
